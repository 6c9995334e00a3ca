"""The HTTP API against its own OpenAPI schema (schemathesis, in-process over ASGI), bounded in time.

Generated requests to every operation: no 5xx, every response conforms to the schema
(status codes, content types, bodies); with a token configured, each route but /healthz,
/readyz and /metrics answers 401 to a request without it. A longer run, from the
repository root:

    DRIFTGATE_SCHEMA_EXAMPLES=2000 .venv/bin/python -m pytest tests/unit/api/test_app_schema.py
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import CheckFunction, not_a_server_error

from monitor.api.app import OPEN_PATHS, create_app
from monitor.config import Settings, parse_config
from monitor.core.records import Record
from monitor.embedded.simulator import TrafficSimulator
from monitor.sidecar.service import Sidecar, Sink, Source

TOKEN = "schema-token"
MAX_EXAMPLES = int(os.environ.get("DRIFTGATE_SCHEMA_EXAMPLES", "40"))


def _unused_source() -> Source:
    raise AssertionError("these tests feed records directly")


def _unused_sink() -> Sink:
    raise AssertionError("these tests feed records directly")


def _settings(token: str | None) -> Settings:
    return parse_config(
        {
            "api": {"token": token},
            "deployments": [
                {"name": "doc-classifier", "classes": ["invoice", "contract", "other"],
                 "topics": {"live": "d.live", "canary": "d.canary", "feedback": "d.feedback"}},
                {"name": "empty", "topics": {"live": "e.live", "canary": "e.canary", "feedback": "e.feedback"}},
            ],
        },
        {},
    )


def _sidecar(token: str | None) -> Sidecar:
    """A sidecar whose first deployment has seen traffic (a verdict, windows, a review queue)."""
    sidecar = Sidecar(_settings(token), _unused_source, _unused_sink)
    offsets = {"live": 0, "canary": 0, "feedback": 0}
    records = []
    for event in TrafficSimulator("shift", deployment="doc-classifier", seed=5).stream(
        1500, start_ts=1_800_000_000.0, rate_per_s=20
    ):
        value = orjson.dumps(event.payload)
        records.append(Record(f"d.{event.role}", 0, offsets[event.role], event.key.encode(), value))
        offsets[event.role] += 1
    sidecar.ingest.process(records, now=1_800_000_000.0)
    sidecar.evaluate_verdicts()
    return sidecar


open_app = create_app(_sidecar(None), ["doc-classifier", "empty"])
guarded_app = create_app(_sidecar(TOKEN), ["doc-classifier", "empty"], token=TOKEN)
open_schema = schemathesis.openapi.from_asgi("/openapi.json", open_app)
# The schema itself is behind the token, like every route but health, readiness and metrics.
guarded_schema = schemathesis.openapi.from_asgi(
    "/openapi.json", guarded_app, headers={"Authorization": f"Bearer {TOKEN}"}
)

BOUNDED = settings(
    max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)


def not_ready_is_no_server_error(case: schemathesis.Case) -> list[CheckFunction]:
    """/readyz answers 503 by contract while the consumer is not reading (here: never started)."""
    return [not_a_server_error] if case.path == "/readyz" else []


@open_schema.parametrize()
@BOUNDED
def test_responses_conform_to_the_schema_and_none_is_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(excluded_checks=not_ready_is_no_server_error(case))


@guarded_schema.parametrize()
@BOUNDED
def test_every_route_but_health_readiness_and_metrics_needs_the_token(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": ""})
    if case.path in OPEN_PATHS:
        assert response.status_code != 401
    else:
        assert response.status_code == 401, (case.method, case.formatted_path, response.status_code)
        assert TOKEN not in response.text


@guarded_schema.parametrize()
@BOUNDED
def test_with_the_token_responses_conform_too(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"}, excluded_checks=not_ready_is_no_server_error(case)
    )


def test_the_schema_lists_every_route() -> None:
    paths = {operation.ok().path for operation in open_schema.get_all_operations()}
    assert {"/v1/deployments", "/v1/deployments/{name}/verdict", "/v1/deployments/{name}/gate",
            "/v1/deployments/{name}/metrics", "/v1/gates/flagger", "/v1/gates/flagger/{hook}",
            "/healthz", "/readyz", "/metrics"} <= paths


@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
def test_open_routes_answer_without_a_token(path: str) -> None:
    operation = guarded_schema[path]["GET"]
    response = operation.Case().call()
    assert response.status_code in (200, 503)


def post_in_chunks(app: Any, path: str, chunks: list[bytes]) -> httpx.Response:
    """POST a body without Content-Length (chunked), as a client streaming it would."""

    async def body() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://driftgate") as client:
            return await client.post(path, content=body(), headers={"content-type": "application/json"})

    return asyncio.run(go())


def test_a_chunked_body_over_the_limit_is_refused_with_413() -> None:
    huge = post_in_chunks(open_app, "/v1/gates/flagger", [b'{"name": "', *[b"x" * 8192] * 10, b'"}'])
    assert huge.status_code == 413
    assert "65536" in huge.json()["detail"]
    small = post_in_chunks(open_app, "/v1/gates/flagger", [b'{"name": ', b'"doc-classifier"}'])
    assert small.status_code in (200, 403)
    assert small.json()["deployment"] == "doc-classifier"
