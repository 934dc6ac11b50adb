# matserve on the official Triton Inference Server image (server 2.51, the same
# release as the nvidia-pytriton 0.7.0 wheel used outside a container).
#
#   docker build -t matserve:0.1.0 .
#   docker run --gpus all --shm-size=2g -p 8000:8000 -e MATSERVE_DEVICE=gpu matserve:0.1.0
#
# Python: the image's own python3 is 3.10, but requirements.lock and pyproject.toml
# need 3.11 (several locked wheels exist for 3.11 and newer only). So the service
# runs from a Python 3.11 virtual environment (Ubuntu 22.04's python3.11), and
# Triton's Python backend uses the 3.11 stub that nvidia-pytriton 0.7.0 ships for
# this very server release.
FROM nvcr.io/nvidia/tritonserver:24.10-py3

# PyPI's Linux torch wheel is a CUDA build that brings its own CUDA libraries
# (nvidia-* wheels), so any driver new enough for that CUDA works. Outside a
# container torch==2.13.0 is a local CPU build. For another CUDA build, name it
# here and, if it lives on PyTorch's index, give that index too, e.g.
#   --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126
# (constraints.txt pins torch==2.13.0; a local label such as +cu126 still matches).
ARG TORCH_SPEC="torch==2.13.0"
ARG TORCH_INDEX_URL=""
ARG MATSERVE_UID=10001
ARG MATSERVE_GID=10001

LABEL org.opencontainers.image.title="matserve" \
      org.opencontainers.image.description="NIM-style materials inference: Triton Inference Server + FastAPI gateway" \
      org.opencontainers.image.version="0.1.0"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV VENV=/opt/matserve/venv \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
ENV PATH="${VENV}/bin:${PATH}"

# Ubuntu's python3.11 follows the base image's release and its security updates.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv libpython3.11 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid "${MATSERVE_GID}" matserve \
    && useradd --no-log-init --create-home --uid "${MATSERVE_UID}" --gid matserve --shell /bin/bash matserve \
    && python3.11 -m venv "${VENV}" \
    && "${VENV}/bin/pip" install --no-cache-dir pip==24.3.1

WORKDIR /opt/matserve

# Dependencies first (a layer that changes only with the lock files), in the
# Makefile's order: torch, then the exact versions, then the pynvml repair.
COPY requirements.lock constraints.txt ./
# torch is pinned by the TORCH_SPEC build argument (default torch==2.13.0), which hadolint cannot see.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--index-url "${TORCH_INDEX_URL}"} "${TORCH_SPEC}" \
    && pip install --no-cache-dir -c constraints.txt -r requirements.lock \
    # chgnet pulls nvidia-ml-py3, which overwrites pynvml.py: restore the maintained one.
    && pip install --no-cache-dir --force-reinstall --no-deps "$(grep '^nvidia-ml-py==' requirements.lock)" \
    # mace-torch pins e3nn 0.4.4 (broken with torch 2.13; its models run with the locked 0.6.0): no deps.
    && pip install --no-cache-dir --no-deps mace-torch==0.3.16 \
    # The image's Python-backend stub is built for its python3 (3.10); use the
    # wheel's 3.11 stub for the same server release. A link, so that the stub's
    # RPATH ($ORIGIN/../../../../nvidia_pytriton.libs) still finds its libraries.
    && stub="$(python -c 'import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).parent / "tritonserver/python_backend_stubs/3.11/triton_python_backend_stub")')" \
    && test -x "${stub}" \
    && ln -sf "${stub}" /opt/tritonserver/backends/python/triton_python_backend_stub

# matserve itself, installed in editable mode as the Makefile does: the Triton
# model repository (model_repository/) is found beside the package.
COPY pyproject.toml ./
COPY matserve ./matserve
COPY gateway ./gateway
COPY model_repository ./model_repository
RUN pip install --no-cache-dir --no-deps -e . \
    && python -m compileall -q matserve gateway \
    && mkdir -p /data \
    && chown "${MATSERVE_UID}:${MATSERVE_GID}" /data

ENV MATSERVE_HOST=0.0.0.0 \
    MATSERVE_PORT=8000 \
    MATSERVE_DATA_DIR=/data

EXPOSE 8000
USER ${MATSERVE_UID}:${MATSERVE_GID}

# Liveness never waits for the models; readiness (/v1/health/ready) is for the orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/v1/health/live' % os.environ.get('MATSERVE_PORT', '8000'), timeout=4)"]

ENTRYPOINT ["matserve", "serve"]
