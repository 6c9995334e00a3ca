"""The page a person looks at (docs/contract.md §3, ``GET /ui``).

One self-contained HTML document: the markup of ``monitor/api/ui/index.html`` with
``style.css`` and ``app.js`` written into it, and the deployments' names and reference
class shares as a JSON data block. Nothing is fetched from elsewhere (many clusters are
offline); the script reads everything else from the JSON API with the same token.

Why one document and not three files: when a token is configured every route needs it,
and a browser cannot put a header on the requests for a page's stylesheet and script. The
page alone accepts the token once as ``?token=`` (see :func:`token_in_query`); its script
keeps it in the tab's sessionStorage, drops it from the address bar and sends it as a
bearer header. The token is never written into the page.

A Content-Security-Policy with the hashes of the inline style and script lets nothing but
those run, and nothing but this origin be reached.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

UI_PATH = "/ui"
ASSETS = ("index.html", "style.css", "app.js")


def asset(name: str) -> str:
    """The text of one of the page's files (package data under ``monitor/ui/``)."""
    if name not in ASSETS:
        raise ValueError(f"no UI asset {name!r}")
    return (resources.files(__name__) / name).read_text(encoding="utf-8")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _json_for_html(data: Any) -> str:
    """JSON that cannot end the <script> element it sits in, nor open a comment."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


@dataclass(frozen=True)
class Page:
    """The assembled document and the headers it is served with."""

    body: bytes
    headers: dict[str, str]

    def response(self) -> Response:
        return Response(self.body, media_type="text/html; charset=utf-8", headers=self.headers)


def build_page(deployments: list[str], references: dict[str, dict[str, float]] | None = None) -> Page:
    """The page for these deployments (``references``: each one's configured reference class shares)."""
    style, script = asset("style.css"), asset("app.js")
    if "</style" in style.lower() or "</script" in script.lower():
        raise ValueError("a UI asset would end the element it is written into")
    config = {"deployments": deployments, "references": references or {}}
    document = (
        asset("index.html")
        .replace("/*STYLE*/", style)
        .replace("/*SCRIPT*/", script)
        .replace("/*CONFIG*/", _json_for_html(config))
    )
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src '{_sha256(script)}'",
            f"style-src '{_sha256(style)}'",
            "connect-src 'self'",
            "img-src 'self' data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    headers = {
        "Content-Security-Policy": policy,
        "Cache-Control": "no-store",
        # The first visit may carry ?token=: never send the address anywhere.
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
    }
    return Page(document.encode("utf-8"), headers)


def references_of(sidecar: Any, deployments: list[str]) -> dict[str, dict[str, float]]:
    """The configured reference class shares per deployment, when the sidecar has settings."""
    settings = getattr(sidecar, "settings", None)
    found: dict[str, dict[str, float]] = {}
    if settings is None:
        return found
    for name in deployments:
        deployment = settings.deployment(name)
        shares = deployment.reference.class_distribution if deployment is not None else None
        if shares:
            found[name] = dict(shares)
    return found


def token_in_query(request: Request) -> str | None:
    """The token a browser brings to the page itself as ``/ui?token=...`` (None anywhere else)."""
    if request.url.path != UI_PATH or request.method not in ("GET", "HEAD"):
        return None
    return request.query_params.get("token")


def unauthorized_page() -> HTMLResponse:
    """What a browser sees at /ui without the token: how to open it, and nothing else."""
    text = (
        "<!doctype html><html lang=en><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>driftgate: token needed</title>"
        "<h1>This page needs the API token</h1>"
        f"<p>Open <code>{html.escape(UI_PATH)}?token=&lt;your token&gt;</code> once; "
        "the page keeps the token for this browser tab and removes it from the address bar.</p>"
    )
    return HTMLResponse(
        text,
        status_code=401,
        headers={"WWW-Authenticate": "Bearer", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
                 "Content-Security-Policy": "default-src 'none'"},
    )


def mount_ui(app: FastAPI, sidecar: Any, deployments: list[str]) -> None:
    """Serve the page at ``GET /ui``."""
    page = build_page(deployments, references_of(sidecar, deployments))

    @app.get(UI_PATH, include_in_schema=False)
    def ui() -> Response:
        return page.response()
