import pytest


@pytest.fixture(scope="session")
def chgnet():
    """The real CHGNet 0.3.0 force field, loaded once."""
    from matserve.forcefields import load_forcefield

    return load_forcefield("chgnet")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    from tests.redis_server import start_redis

    process, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()
    process.wait()
