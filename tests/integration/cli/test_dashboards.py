"""The shipped Grafana dashboard, and `driftgate dashboards push` to Grafana and Kibana.

Grafana and Kibana servers cannot be installed on these machines, so the push commands
are tested against a small HTTP server on loopback that records each request (path, query,
headers, body) and answers as the real APIs document: Grafana's ``/api/folders`` and
``/api/dashboards/db``, Kibana's ``/api/saved_objects/_import``. The dashboard's queries
are run against a real Prometheus in tests/integration/alerts/test_prometheus_e2e.py.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from typer.testing import CliRunner

from monitor.cli.app import app
from monitor.cli.dashboards import SHIPPED_DIRS, grafana_payload, kibana_import_url, shipped_dir
from monitor.embedded.loopback import free_port

pytestmark = pytest.mark.integration  # talks HTTP to a server on loopback

runner = CliRunner()
DASHBOARDS_DIR = SHIPPED_DIRS[0]
DASHBOARD = DASHBOARDS_DIR / "grafana" / "driftgate.json"
NDJSON = (
    b'{"type":"index-pattern","id":"driftgate-windows","attributes":{"title":"driftgate-windows*"}}\n'
    b'{"type":"visualization","id":"driftgate-precision","attributes":{"title":"Precision"}}\n'
)


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Records requests; answers from ``routes`` ((method, path) -> (status, JSON body))."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    routes: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorded = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            split = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorded.requests.append(Request(self.command, split.path, parse_qs(split.query),
                                             {k.lower(): v for k, v in self.headers.items()}, body))
            status, answer = recorded.routes.get((self.command, split.path), (404, {"message": "Not found"}))
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    recorded.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield recorded
    server.shutdown()
    server.server_close()


# --- the dashboard itself -------------------------------------------------------------------


def test_dashboard_has_the_variables_and_panels_users_look_for() -> None:
    model = json.loads(DASHBOARD.read_text())
    assert model["schemaVersion"] >= 39 and model["uid"] == "driftgate"
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["deployment"]["definition"] == "label_values(driftgate_events_total, deployment)"
    panels = {p["title"]: p for p in model["panels"] if p["type"] != "row"}
    for title in ("Verdict", "Class divergence", "Disagreement rate", "Precision with 95% intervals",
                  "Feature drift", "Dead letters", "Throughput", "Consumer lag"):
        assert title in panels, title
    exprs = {t["expr"] for p in panels.values() for t in p["targets"]}
    assert any("driftgate_precision_interval" in e for e in exprs)
    assert any("rate(driftgate_events_total" in e for e in exprs)
    for panel in panels.values():
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        for target in panel["targets"]:
            # every query follows the deployment picker (the alerts table also shows alerts of no deployment)
            assert 'deployment=~"$deployment' in target["expr"], (panel["title"], target["expr"])
    ids = [p["id"] for p in model["panels"]]
    assert len(ids) == len(set(ids))


def test_dashboard_panels_do_not_overlap_on_the_grid() -> None:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_grafana_payload_overwrites_by_uid_and_drops_the_numeric_id() -> None:
    payload = grafana_payload({"uid": "driftgate", "id": 7, "title": "t", "panels": []}, "f1")
    assert payload["dashboard"]["id"] is None and payload["dashboard"]["uid"] == "driftgate"
    assert payload["overwrite"] is True and payload["folderUid"] == "f1"
    assert "folderUid" not in grafana_payload({"title": "t", "panels": []}, None)


def test_the_shipped_dashboards_are_found_in_a_checkout_or_where_the_image_puts_them(tmp_path: Path) -> None:
    image = tmp_path / "usr-share"
    (image / "kibana").mkdir(parents=True)
    assert shipped_dir("grafana") == DASHBOARDS_DIR / "grafana"
    assert shipped_dir("kibana", (tmp_path / "no-checkout", image)) == image / "kibana"
    assert shipped_dir("grafana", (tmp_path / "no-checkout", image)) == tmp_path / "no-checkout" / "grafana"


def test_kibana_import_url_honours_the_space() -> None:
    assert kibana_import_url("http://k:5601/", None) == "http://k:5601/api/saved_objects/_import"
    assert kibana_import_url("http://k:5601", "default") == "http://k:5601/api/saved_objects/_import"
    assert kibana_import_url("http://k:5601", "ml") == "http://k:5601/s/ml/api/saved_objects/_import"


# --- push grafana ---------------------------------------------------------------------------


def test_push_grafana_creates_the_folder_and_imports_with_overwrite(recorder: Recorder) -> None:
    recorder.routes[("GET", "/api/folders")] = (200, [{"uid": "other", "title": "Other"}])
    recorder.routes[("POST", "/api/folders")] = (200, {"uid": "ml-folder", "title": "ML releases"})
    recorder.routes[("POST", "/api/dashboards/db")] = (
        200, {"status": "success", "uid": "driftgate", "url": "/d/driftgate/driftgate", "version": 2}
    )
    result = runner.invoke(app, ["dashboards", "push", "grafana", "--url", recorder.url, "--token", "glsa_secret",
                                 "--folder", "ML releases"])
    assert result.exit_code == 0, result.output
    assert "imported driftgate.json -> /d/driftgate/driftgate" in result.output
    assert [(r.method, r.path) for r in recorder.requests] == [
        ("GET", "/api/folders"), ("POST", "/api/folders"), ("POST", "/api/dashboards/db")
    ]
    assert all(r.headers["authorization"] == "Bearer glsa_secret" for r in recorder.requests)
    assert json.loads(recorder.requests[1].body) == {"title": "ML releases"}
    payload = json.loads(recorder.requests[2].body)
    assert payload["overwrite"] is True and payload["folderUid"] == "ml-folder"
    shipped = json.loads(DASHBOARD.read_text())
    assert payload["dashboard"] == {**shipped, "id": None}


def test_push_grafana_reuses_an_existing_folder(recorder: Recorder) -> None:
    recorder.routes[("GET", "/api/folders")] = (200, [{"uid": "ml-folder", "title": "ML releases"}])
    recorder.routes[("POST", "/api/dashboards/db")] = (200, {"status": "success", "uid": "driftgate"})
    result = runner.invoke(app, ["dashboards", "push", "grafana", "--url", recorder.url, "--token", "t",
                                 "--folder", "ML releases"])
    assert result.exit_code == 0, result.output
    assert [(r.method, r.path) for r in recorder.requests] == [("GET", "/api/folders"), ("POST", "/api/dashboards/db")]
    assert json.loads(recorder.requests[1].body)["folderUid"] == "ml-folder"


def test_push_grafana_refused_exits_1_with_the_servers_message(recorder: Recorder) -> None:
    recorder.routes[("POST", "/api/dashboards/db")] = (403, {"message": "Permissions needed: dashboards:write"})
    result = runner.invoke(app, ["dashboards", "push", "grafana", "--url", recorder.url, "--token", "weak"])
    assert result.exit_code == 1
    assert "refused by Grafana" in result.output and "dashboards:write" in result.output


def test_push_grafana_bad_token_exits_1(recorder: Recorder) -> None:
    recorder.routes[("POST", "/api/dashboards/db")] = (401, {"message": "invalid API key"})
    result = runner.invoke(app, ["dashboards", "push", "grafana", "--url", recorder.url, "--token", "wrong"])
    assert result.exit_code == 1
    assert "invalid API key" in result.output


def test_push_grafana_unreachable_exits_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = runner.invoke(app, ["dashboards", "push", "grafana", "--url", url, "--token", "t"])
    assert result.exit_code == 3
    assert f"cannot reach Grafana at {url}" in result.output


def test_push_grafana_refuses_a_file_that_is_not_a_dashboard(tmp_path: Path, recorder: Recorder) -> None:
    (tmp_path / "broken.json").write_text('{"title": "no panels"}')
    result = runner.invoke(app, ["dashboards", "push", "grafana", "--url", recorder.url, "--token", "t",
                                 "--dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "broken.json: not a Grafana dashboard" in result.output
    assert recorder.requests == []  # nothing half-pushed


# --- push kibana ----------------------------------------------------------------------------


def _multipart_file(request: Request) -> tuple[str | None, bytes]:
    """(filename, content) of the ``file`` part of a multipart/form-data body."""
    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode() + request.body
    )
    (part,) = [p for p in message.iter_parts() if p.get_param("name", header="content-disposition") == "file"]
    content = part.get_payload(decode=True)
    assert isinstance(content, bytes)
    return part.get_filename(), content


def test_push_kibana_imports_every_ndjson_into_the_space(tmp_path: Path, recorder: Recorder) -> None:
    (tmp_path / "a.ndjson").write_bytes(NDJSON)
    (tmp_path / "b.ndjson").write_bytes(NDJSON[: NDJSON.index(b"\n") + 1])
    recorder.routes[("POST", "/s/ml/api/saved_objects/_import")] = (200, {"success": True, "successCount": 2})
    result = runner.invoke(app, ["dashboards", "push", "kibana", "--url", recorder.url, "--space", "ml",
                                 "--api-key", "a2V5", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert len(recorder.requests) == 2
    for request, name in zip(recorder.requests, ("a.ndjson", "b.ndjson"), strict=True):
        assert (request.method, request.path) == ("POST", "/s/ml/api/saved_objects/_import")
        assert request.query == {"overwrite": ["true"]}
        assert request.headers["kbn-xsrf"] == "true"
        assert request.headers["authorization"] == "ApiKey a2V5"
        assert request.headers["content-type"].startswith("multipart/form-data; boundary=")
        filename, content = _multipart_file(request)
        assert filename == name
        assert content == (tmp_path / name).read_bytes()
    assert "imported a.ndjson -> 2 saved objects" in result.output


def test_push_kibana_sends_the_shipped_saved_objects_by_default(recorder: Recorder) -> None:
    shipped = sorted((DASHBOARDS_DIR / "kibana").glob("*.ndjson"))
    assert shipped
    recorder.routes[("POST", "/api/saved_objects/_import")] = (200, {"success": True, "successCount": 9})
    result = runner.invoke(app, ["dashboards", "push", "kibana", "--url", recorder.url])
    assert result.exit_code == 0, result.output
    assert [_multipart_file(r) for r in recorder.requests] == [(p.name, p.read_bytes()) for p in shipped]


def test_push_kibana_reports_objects_kibana_did_not_import(tmp_path: Path, recorder: Recorder) -> None:
    (tmp_path / "a.ndjson").write_bytes(NDJSON)
    recorder.routes[("POST", "/api/saved_objects/_import")] = (200, {
        "success": False, "successCount": 1,
        "errors": [{"type": "visualization", "id": "driftgate-precision", "error": {"type": "missing_references"}}],
    })
    result = runner.invoke(app, ["dashboards", "push", "kibana", "--url", recorder.url, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "visualization/driftgate-precision: missing_references" in result.output
    assert "authorization" not in recorder.requests[0].headers


def test_push_kibana_refused_exits_1(tmp_path: Path, recorder: Recorder) -> None:
    (tmp_path / "a.ndjson").write_bytes(NDJSON)
    recorder.routes[("POST", "/api/saved_objects/_import")] = (401, {"message": "unauthorized"})
    result = runner.invoke(app, ["dashboards", "push", "kibana", "--url", recorder.url, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "Kibana refused a.ndjson: HTTP 401" in result.output


def test_push_kibana_unreachable_exits_3(tmp_path: Path) -> None:
    (tmp_path / "a.ndjson").write_bytes(NDJSON)
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["dashboards", "push", "kibana", "--url", url, "--dir", str(tmp_path)])
    assert result.exit_code == 3
    assert "cannot reach Kibana" in result.output


def test_push_kibana_with_nothing_to_push_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["dashboards", "push", "kibana", "--url", "http://127.0.0.1:1", "--dir",
                                 str(tmp_path)])
    assert result.exit_code == 2
    assert "no *.ndjson files" in result.output
