# One image for every wardwatch service; docker-compose picks the subcommand.
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# CPU-only PyTorch keeps the image small; the scorer does not need a GPU.
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch>=2.3,<3"

COPY pyproject.toml README.md ./
COPY runtime ./runtime
COPY ingest ./ingest
COPY inference ./inference
COPY alerts ./alerts
COPY sim ./sim
COPY wardwatch ./wardwatch
RUN pip install .

RUN useradd --system --uid 10001 wardwatch
USER wardwatch

ENTRYPOINT ["wardwatch"]
CMD ["--help"]
