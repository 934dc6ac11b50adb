import pytest


@pytest.fixture(scope="session")
def chgnet():
    """The real CHGNet 0.3.0 force field, loaded once."""
    from matserve.forcefields import load_forcefield

    return load_forcefield("chgnet")
