# One image for every wardwatch service; docker compose picks the subcommand (ENTRYPOINT wardwatch).
#
# It installs the serving environment only (requirements/serve.txt: onnxruntime, no PyTorch),
# exactly as pinned and hash-checked, with uv pinned the same way (requirements/uv.txt).
# BASE_IMAGE is any image with Python 3.11+ and its venv module on PATH as `python3`
# (Debian: the python3 and python3-venv packages); the default is the official slim image.
ARG BASE_IMAGE=python:3.11-slim

# --- build stage: uv, downloads and the wheel build stay here --------------------------------
FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never
WORKDIR /src
COPY requirements/ ./requirements/
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/python -m pip install --require-hashes -r requirements/uv.txt
# Dependencies first (their layer survives source edits), compiled to bytecode because the
# non-root user cannot write __pycache__ at run time.
RUN /opt/uv/bin/uv venv --python python3 /opt/wardwatch \
    && /opt/uv/bin/uv pip sync --python /opt/wardwatch/bin/python --require-hashes --compile-bytecode \
        requirements/serve.txt
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY ingest ./ingest
COPY inference ./inference
COPY alerts ./alerts
COPY sim ./sim
COPY wardwatch ./wardwatch
# The project itself, without dependencies (all pinned above); its build backend is pinned too.
RUN /opt/uv/bin/uv pip install --python /opt/wardwatch/bin/python --no-deps --compile-bytecode \
        --build-constraints requirements/build.txt .

# --- final stage: the base image plus the virtual environment, nothing else -----------------
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/wardwatch/bin:$PATH
COPY --from=build /opt/wardwatch /opt/wardwatch
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/wardwatch wardwatch
USER wardwatch
WORKDIR /home/wardwatch
ENTRYPOINT ["wardwatch"]
CMD ["--help"]
