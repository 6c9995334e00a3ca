"""The /ui page in-process: one self-contained document, nothing from elsewhere, the token rules."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
from typing import Any

import httpx
import orjson
import pytest

from monitor.api.app import create_app
from monitor.api.ui import asset, build_page
from monitor.config import Settings, parse_config
from monitor.core.records import Record
from monitor.embedded.simulator import TrafficSimulator
from monitor.sidecar.service import Sidecar, Sink, Source

TOKEN = "ui-s3cret-token"
CLASSES = ["invoice", "contract", "other"]
REFERENCE = {"invoice": 0.5, "contract": 0.3, "other": 0.2}


def _unused_source() -> Source:
    raise AssertionError("these tests feed records directly")


def _unused_sink() -> Sink:
    raise AssertionError("these tests feed records directly")


def settings() -> Settings:
    return parse_config(
        {
            "deployments": [
                {"name": "docs", "classes": CLASSES, "reference": {"class_distribution": REFERENCE},
                 "topics": {"live": "d.live", "canary": "d.canary", "feedback": "d.feedback"}},
                {"name": "other-model", "topics": {"live": "o.live", "canary": "o.canary", "feedback": "o.feedback"}},
            ],
        },
        {},
    )


@pytest.fixture(scope="module")
def sidecar() -> Sidecar:
    sidecar = Sidecar(settings(), _unused_source, _unused_sink)
    offsets = {"live": 0, "canary": 0, "feedback": 0}
    records = []
    for event in TrafficSimulator("good", deployment="docs", seed=3).stream(600, 1_800_000_000.0, 10):
        records.append(Record(f"d.{event.role}", 0, offsets[event.role], event.key.encode(),
                              orjson.dumps(event.payload)))
        offsets[event.role] += 1
    sidecar.ingest.process(records, now=1_800_000_000.0)
    sidecar.evaluate_verdicts()
    return sidecar


def names(sidecar: Sidecar) -> list[str]:
    return [d.name for d in sidecar.settings.deployments]


def call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://driftgate") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def inline(document: str, tag: str) -> list[str]:
    """The text of every <tag> element without attributes (the inline style and script)."""
    return re.findall(rf"<{tag}>(.*?)</{tag}>", document, flags=re.S)


def config_block(document: str) -> Any:
    found = re.search(r'<script type="application/json" id="driftgate-config">(.*?)</script>', document, re.S)
    assert found is not None
    return json.loads(found.group(1))


def csp_hash(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_page_is_html_with_the_style_and_script_inside(sidecar: Sidecar) -> None:
    response = call(create_app(sidecar, names(sidecar)), "GET", "/ui")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    document = response.text
    assert document.startswith("<!doctype html>")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in document
    [style] = inline(document, "style")
    [script] = inline(document, "script")
    assert style == asset("style.css") and script == asset("app.js")
    assert "@media (max-width: 760px)" in style  # a phone-sized layout
    for marker in ("/*STYLE*/", "/*SCRIPT*/", "/*CONFIG*/"):
        assert marker not in document


def test_nothing_comes_from_another_host(sidecar: Sidecar) -> None:
    document = call(create_app(sidecar, names(sidecar)), "GET", "/ui").text
    # no absolute or protocol-relative URL in a src, href, action or CSS url()
    assert not re.search(r"""\b(?:src|href|action)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", document, re.I)
    assert not re.search(r"""url\(\s*["']?\s*(?:[a-z]+:)?//""", document, re.I)
    assert not re.search(r"@import", document, re.I)
    assert "http://" not in document and "https://" not in document
    # the script only talks to the API next to the page
    script = asset("app.js")
    for requested in re.findall(r"""api\(\s*([^,)]+)""", script):
        assert "//" not in requested
    assert "fetch(path" in script


def test_content_security_policy_allows_only_the_page_itself(sidecar: Sidecar) -> None:
    response = call(create_app(sidecar, names(sidecar)), "GET", "/ui")
    policy = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert policy["script-src"] == f"'{csp_hash(asset('app.js'))}'"
    assert policy["style-src"] == f"'{csp_hash(asset('style.css'))}'"
    assert policy["frame-ancestors"] == "'none'"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_page_knows_the_deployments_and_their_reference(sidecar: Sidecar) -> None:
    document = call(create_app(sidecar, names(sidecar)), "GET", "/ui").text
    assert config_block(document) == {"deployments": ["docs", "other-model"], "references": {"docs": REFERENCE}}


def test_config_block_cannot_end_its_script_element() -> None:
    page = build_page(["</script><script>alert(1)</script>", "a&b<!--"], {})
    document = page.body.decode()
    assert "alert(1)</script>" not in document
    assert "<!--" not in document
    assert config_block(document)["deployments"] == ["</script><script>alert(1)</script>", "a&b<!--"]


def test_page_asks_for_what_it_renders(sidecar: Sidecar) -> None:
    """The routes the script reads answer with the fields it uses."""
    app = create_app(sidecar, names(sidecar))
    script = asset("app.js")
    for route in ("/verdict", "/metrics", "/spotcheck", "/labels"):
        assert f'"{route}"' in script
    snapshot = call(app, "GET", "/v1/deployments/docs/metrics").json()
    feedback = snapshot["comparison"]["feedback"]
    assert set(feedback["live"]["precision"]) == set(CLASSES)
    assert {"estimate", "lower", "upper", "correct", "labelled"} <= set(feedback["canary"]["accuracy"])
    assert {"labelled_pairs", "spotcheck_share", "awaiting_spotcheck"} <= set(feedback)
    assert {"picked", "offered", "waiting"} <= set(snapshot["spotcheck"])
    cases = call(app, "GET", "/v1/deployments/docs/spotcheck").json()["cases"]
    assert cases, "the simulated traffic has disagreements picked for review"
    assert {"request_id", "live_label", "canary_label", "live_scores", "canary_scores", "features", "ts"} <= set(
        cases[0]
    )
    verdict = call(app, "GET", "/v1/deployments/docs/verdict").json()
    assert "spotcheck_labels" in verdict["samples"]


def test_page_needs_the_token_when_one_is_configured(sidecar: Sidecar) -> None:
    app = create_app(sidecar, names(sidecar), token=TOKEN)
    missing = call(app, "GET", "/ui")
    assert missing.status_code == 401
    assert missing.headers["content-type"].startswith("text/html")
    assert "?token=" in missing.text  # says how to open it
    wrong = call(app, "GET", "/ui?token=nope")
    assert wrong.status_code == 401 and "nope" not in wrong.text and TOKEN not in wrong.text
    by_query = call(app, "GET", f"/ui?token={TOKEN}&deployment=docs")
    assert by_query.status_code == 200
    assert TOKEN not in by_query.text and all(TOKEN not in value for value in by_query.headers.values())
    by_header = call(app, "GET", "/ui", headers={"Authorization": f"Bearer {TOKEN}"})
    assert by_header.status_code == 200


def test_token_in_the_query_opens_the_page_only(sidecar: Sidecar) -> None:
    app = create_app(sidecar, names(sidecar), token=TOKEN)
    for path in ("/v1/deployments", "/v1/deployments/docs/metrics", "/v1/deployments/docs/spotcheck",
                 "/ui/", "/uix", "/docs"):
        response = call(app, "GET", f"{path}?token={TOKEN}")
        assert response.status_code == 401, path
    posted = call(app, "POST", f"/v1/deployments/docs/labels?token={TOKEN}",
                  json={"request_id": "r-1", "label": "invoice"})
    assert posted.status_code == 401
    assert call(app, "POST", f"/ui?token={TOKEN}").status_code != 200


def test_without_a_token_the_page_is_open(sidecar: Sidecar) -> None:
    app = create_app(sidecar, names(sidecar))
    assert call(app, "GET", "/ui?deployment=other-model").status_code == 200
    assert call(app, "GET", "/ui?token=anything").status_code == 200
