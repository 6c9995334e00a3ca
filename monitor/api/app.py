"""The HTTP API (docs/contract.md §3): verdicts, snapshots, deploy gates, health, Prometheus exposition."""

from __future__ import annotations

import hmac
from typing import Any, Literal, Protocol

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.api.metrics import SidecarCollector
from monitor.api.ui import UI_PATH, mount_ui, token_in_query, unauthorized_page
from monitor.core.verdict import Verdict
from monitor.errors import DriftgateError, UnknownDeploymentError, http_status
from monitor.sidecar.actions import Actions
from monitor.sidecar.views import DeploymentView, as_json

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
FLAGGER_HOOKS = ("rollout", "confirm-promotion", "pre-rollout", "rollback")


class SidecarView(Protocol):
    """What the API reads from the running sidecar, and asks of it."""

    verdicts: dict[str, Verdict]
    actions: Actions

    def snapshot(self, name: str) -> DeploymentView: ...
    def unrouted_dead_letters(self) -> dict[str, int]: ...
    def consumer_lag(self) -> dict[tuple[str, str, int], int]: ...
    def collectors(self) -> list[Collector]: ...
    def ready(self) -> tuple[bool, str]: ...


class FlaggerRequest(BaseModel):
    """The body Flagger posts to a webhook."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    namespace: str = ""
    phase: str = ""
    checksum: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


class LabelRequest(BaseModel):
    """A reviewer's answer for one queued request: a class name, or "unsure"."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=512)
    label: str = Field(min_length=1, max_length=256)


class ErrorBody(BaseModel):
    """A refusal: a sentence saying why."""

    detail: str


class Readiness(BaseModel):
    """The answer of /readyz."""

    status: str
    reason: str


# Answers other than 200 that routes give, declared so the OpenAPI schema says all a client may get.
Responses = dict[int | str, dict[str, Any]]
GUARDED: Responses = {401: {"model": ErrorBody, "description": "Missing or wrong bearer token (when a token is set)"}}
UNKNOWN: Responses = {404: {"model": ErrorBody, "description": "No such deployment"}}
BODY_REFUSED: Responses = {
    400: {"model": ErrorBody, "description": "The request body cannot be read (not UTF-8)"},
    413: {"model": ErrorBody, "description": "Request body over api.max_body_bytes"},
}
GATE_CLOSED: Responses = {403: {"description": "The gate is closed: the verdict object, with its reasons"}}


class BodyLimit:
    """Refuse request bodies over the configured size with 413.

    By their Content-Length before reading them; a body without one (chunked) is counted
    as it is read, and refused once over the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body over {self.max_bytes} bytes"
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await JSONResponse({"detail": too_large}, status_code=413)(scope, receive, send)
            return
        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised while the route reads its body: FastAPI passes HTTPException on, answered as 413.
                raise HTTPException(status_code=413, detail=too_large)
            return message

        await self.app(scope, receive_within_limit, send)


class BearerToken(BaseHTTPMiddleware):
    """Require ``Authorization: Bearer <token>`` on every route but health, readiness and metrics."""

    def __init__(self, app: Any, token: str) -> None:
        super().__init__(app)
        self.expected = f"Bearer {token}".encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path not in OPEN_PATHS:
            given = request.headers.get("authorization", "").encode()
            # A browser cannot send a header when it opens a page: /ui alone also takes ?token=.
            in_query = token_in_query(request)
            # Constant-time comparison, so the token cannot be guessed byte by byte.
            if not hmac.compare_digest(given, self.expected) and not (
                in_query is not None and hmac.compare_digest(f"Bearer {in_query}".encode(), self.expected)
            ):
                if request.url.path == UI_PATH:
                    return unauthorized_page()
                return JSONResponse(
                    {"detail": "missing or wrong bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)


def create_app(
    sidecar: SidecarView, deployments: list[str], token: str | None = None, max_body_bytes: int = 65_536
) -> FastAPI:
    """The FastAPI application serving one sidecar."""
    app = FastAPI(
        title="driftgate",
        summary="Canary-versus-live model monitoring with go / no-go verdicts.",
        version="0.1.0",
    )
    registry = CollectorRegistry(auto_describe=True)
    registry.register(SidecarCollector(sidecar, deployments))
    for collector in sidecar.collectors():  # the attachments' own (Elasticsearch sink, webhooks)
        registry.register(collector)
    known = set(deployments)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    if token:
        app.add_middleware(BearerToken, token=token)

    @app.exception_handler(DriftgateError)
    async def driftgate_error(request: Request, error: DriftgateError) -> JSONResponse:
        # The one place errors become status codes (monitor.errors.HTTP_STATUS); anything else is a 500.
        return JSONResponse({"detail": str(error)}, status_code=http_status(error))

    def verdict_of(name: str) -> Verdict:
        if name not in known:
            raise UnknownDeploymentError(name)
        return sidecar.verdicts[name]

    @app.get("/v1/deployments", summary="The configured deployments with their current verdicts", responses=GUARDED)
    def list_deployments() -> dict[str, Any]:
        return {
            "deployments": [
                {"name": name, "verdict": sidecar.verdicts[name].verdict,
                 "canary_version": sidecar.verdicts[name].canary_version}
                for name in deployments
            ]
        }

    @app.get("/v1/deployments/{name}/verdict", summary="The verdict object of a deployment",
             responses={**GUARDED, **UNKNOWN})
    def get_verdict(name: str) -> dict[str, Any]:
        return verdict_of(name).to_dict()

    @app.get("/v1/deployments/{name}/gate", summary="For Argo Rollouts and other pollers: always 200",
             responses={**GUARDED, **UNKNOWN})
    def get_gate(name: str) -> dict[str, Any]:
        return verdict_of(name).to_dict()

    @app.get("/v1/deployments/{name}/metrics", summary="The current metric snapshot", responses={**GUARDED, **UNKNOWN})
    def get_metrics(name: str) -> Response:
        verdict_of(name)
        return Response(as_json(sidecar.snapshot(name)), media_type="application/json")

    @app.get("/v1/deployments/{name}/report", summary="Evidently report: the reference against recent traffic",
             responses={200: {"content": {"text/html": {}}, "description": "The report, one HTML page"},
                        **GUARDED, **UNKNOWN,
                        409: {"model": ErrorBody, "description": "Too little sampled yet for a report"}})
    def get_report(name: str, role: Literal["canary", "live"] = "canary") -> Response:
        verdict_of(name)
        return HTMLResponse(sidecar.actions.report(name, role))  # ReportError: 409

    @app.get("/v1/deployments/{name}/reference-profile",
             summary="A reference profile taken from live traffic of the current comparison (token required)",
             responses={**GUARDED, **UNKNOWN,
                        403: {"model": ErrorBody, "description": "No api.token is configured"},
                        409: {"model": ErrorBody, "description": "No live features yet"}})
    def get_reference_profile(name: str) -> Any:
        verdict_of(name)
        if not token:
            # It copies what live traffic looked like (a sample of rows included): only for a known caller.
            return JSONResponse({"detail": "set api.token (or DRIFTGATE_API_TOKEN) to take profiles"}, status_code=403)
        return sidecar.actions.live_profile(name)  # ReportError: 409

    @app.get("/v1/deployments/{name}/spotcheck", summary="Disagreements waiting for a human label",
             responses={**GUARDED, **UNKNOWN})
    def get_spotcheck(name: str) -> dict[str, Any]:
        verdict_of(name)
        return {"deployment": name, "cases": sidecar.actions.review_queue(name)}

    @app.post(
        "/v1/deployments/{name}/labels",
        summary="Label a queued request (sent as spot-check feedback)",
        responses={**GUARDED, **UNKNOWN, **BODY_REFUSED, 202: {"description": "Label accepted and sent"},
                   503: {"model": ErrorBody, "description": "The label cannot be sent now"}},
    )
    def post_label(name: str, body: LabelRequest) -> JSONResponse:
        verdict_of(name)
        answer = sidecar.actions.submit_label(name, body.request_id, body.label)  # LabelError: 422, NotReadyError: 503
        return JSONResponse(answer, status_code=202 if answer["sent"] else 200)

    def flagger_answer(body: FlaggerRequest, hook: str) -> JSONResponse:
        name = body.metadata.get("deployment") or body.name
        verdict = verdict_of(name)
        allowed = {
            "rollout": verdict.verdict != "no_go",
            "confirm-promotion": verdict.verdict == "go",
            "pre-rollout": verdict.verdict == "go",
            "rollback": verdict.verdict == "no_go",
        }[hook]
        # 403 rather than 5xx: Flagger treats a 4xx as a failed check without retrying it.
        return JSONResponse(verdict.to_dict(), status_code=200 if allowed else 403)

    @app.post("/v1/gates/flagger", summary="Flagger confirm-promotion gate: 200 only on go",
              responses={**GUARDED, **UNKNOWN, **BODY_REFUSED, **GATE_CLOSED})
    def flagger_gate(body: FlaggerRequest) -> JSONResponse:
        return flagger_answer(body, "confirm-promotion")

    @app.post("/v1/gates/flagger/{hook}", summary="Flagger gate with the meaning of the given hook type",
              responses={**GUARDED, **UNKNOWN, **BODY_REFUSED, **GATE_CLOSED})
    def flagger_hook(hook: str, body: FlaggerRequest) -> JSONResponse:
        if hook not in FLAGGER_HOOKS:
            return JSONResponse(
                {"detail": f"unknown Flagger hook {hook[:64]!r}; one of {', '.join(FLAGGER_HOOKS)}"},
                status_code=404,
            )
        return flagger_answer(body, hook)

    mount_ui(app, sidecar, deployments)

    @app.get("/healthz", summary="200 while the process lives")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", summary="200 once every input partition is assigned", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "Not ready, and why"}})
    def readyz() -> JSONResponse:
        ready, reason = sidecar.ready()
        return JSONResponse(
            {"status": "ready" if ready else "not_ready", "reason": reason}, status_code=200 if ready else 503
        )

    @app.get("/metrics", summary="Prometheus exposition", response_class=PlainTextResponse)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app
