# One image for every wardwatch service; docker-compose picks the subcommand.
#   docker build -t wardwatch .                                  (official python:3.11-slim base)
#   docker build --build-arg BASE_IMAGE=my/python:3.11 -t wardwatch .   (any Python 3.11 image)
# The serving environment is installed from the hash-pinned lock (requirements/serve.txt): no
# PyTorch, no compiler, no pip cache in the final image, and it runs as an unprivileged user.
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY requirements/serve.txt requirements/build.txt requirements/
RUN python -m venv /opt/wardwatch \
 && /opt/wardwatch/bin/pip install --quiet --require-hashes --no-deps -r requirements/serve.txt -r requirements/build.txt
COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY ingest ./ingest
COPY inference ./inference
COPY alerts ./alerts
COPY sim ./sim
COPY wardwatch ./wardwatch
RUN /opt/wardwatch/bin/pip install --quiet --no-deps --no-build-isolation . \
 && /opt/wardwatch/bin/pip uninstall --quiet --yes setuptools wheel pip \
 && find /opt/wardwatch -name '__pycache__' -prune -exec rm -rf {} +

FROM ${BASE_IMAGE}
ENV PATH=/opt/wardwatch/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
COPY --from=build /opt/wardwatch /opt/wardwatch
RUN useradd --system --uid 10001 --create-home wardwatch
USER wardwatch
WORKDIR /home/wardwatch
ENTRYPOINT ["wardwatch"]
CMD ["--help"]
