"""The HTTP gateway: readings posted over HTTP (JSON or FHIR) -> `vitals.raw`, acknowledged by Kafka.

Split by concern: `config` (the settings), `tokens` (named client tokens, rotation, rate
limits), `triage` (the pure core: body -> per-item answers and records), `writer` (the Kafka
producer), `metrics` (declared once), `app` (the Starlette app and its uvicorn server).
"""

from ingest.gateway.app import READINGS_PATH, Gateway, openapi_document
from ingest.gateway.config import STAGE, GatewayConfig
from ingest.gateway.triage import BadRequest, ItemResult, Triage, Write, triage

__all__ = ["READINGS_PATH", "STAGE", "BadRequest", "Gateway", "GatewayConfig", "ItemResult", "Triage", "Write", "openapi_document", "triage"]
