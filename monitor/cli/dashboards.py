"""Pushing the shipped dashboards to a team's Grafana (grafana-client) and Kibana (saved-objects import).

``dashboards/grafana/*.json`` are Grafana dashboard models, imported with overwrite so a
push replaces the previous version; ``dashboards/kibana/*.ndjson`` are Kibana saved
objects, imported through ``POST /api/saved_objects/_import?overwrite=true``. Every
failure becomes a :class:`PushError` that says whether the server could not be reached
(``unreachable``) or answered with a refusal, and what it said.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from monitor.errors import PushError

# Beside the package in a source checkout; in the container image, where its Dockerfile puts them.
SHIPPED_DIRS = (Path(__file__).resolve().parents[2] / "dashboards", Path("/usr/share/driftgate/dashboards"))
TIMEOUT_S = 10.0
# Kibana refuses state-changing API calls without this header (cross-site request forgery guard).
KIBANA_XSRF = {"kbn-xsrf": "true"}


UNREACHABLE = "unreachable"  # no answer came back at all
REFUSED = "refused"  # the server answered, and not with success
BAD_INPUT = "bad_input"  # nothing (valid) to push (PushError's default kind)


@dataclass
class PushResult:
    """What a push imported: one entry per file, with the server's own id or count for it."""

    target: str
    imported: list[str] = field(default_factory=list)


def dashboard_files(directory: Path, suffix: str) -> list[Path]:
    """The files to push, sorted; a missing or empty directory is an error naming it."""
    files = sorted(directory.glob(f"*{suffix}")) if directory.is_dir() else []
    if not files:
        raise PushError(f"no *{suffix} files in {directory}")
    return files


def load_grafana_dashboard(path: Path) -> dict[str, Any]:
    """The dashboard model in ``path``, checked to be one (an object with a title and panels)."""
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise PushError(f"{path}: not a readable JSON file: {error}") from None
    if not isinstance(model, dict) or not isinstance(model.get("title"), str) or "panels" not in model:
        raise PushError(f"{path}: not a Grafana dashboard (an object with a title and panels)")
    return model


def grafana_payload(model: dict[str, Any], folder_uid: str | None) -> dict[str, Any]:
    """The body of ``POST /api/dashboards/db``: matched by uid, replacing what is there."""
    # The numeric id is the server's own; a file carrying one would clash on another server.
    dashboard = {**model, "id": None}
    payload: dict[str, Any] = {"dashboard": dashboard, "overwrite": True, "message": "pushed by driftgate"}
    if folder_uid is not None:
        payload["folderUid"] = folder_uid
    return payload


def shipped_dir(kind: str, candidates: tuple[Path, ...] = SHIPPED_DIRS) -> Path:
    """Where the shipped dashboards of ``kind`` (grafana, kibana) are: the first place that has them."""
    for base in candidates:
        if (base / kind).is_dir():
            return base / kind
    return candidates[0] / kind  # dashboard_files then says it found nothing there


def push_grafana(url: str, token: str, folder: str | None = None, directory: Path | None = None) -> PushResult:
    """Import every dashboard of ``directory`` (default ``dashboards/grafana``) into Grafana at ``url``."""
    from grafana_client.api import GrafanaApi

    files = dashboard_files(directory or shipped_dir("grafana"), ".json")
    models = [(path, load_grafana_dashboard(path)) for path in files]
    api = GrafanaApi.from_url(url, credential=token, timeout=TIMEOUT_S)
    result = PushResult(url)
    with _grafana_errors(url):
        folder_uid = _grafana_folder(api, folder) if folder else None
        for path, model in models:
            answer = api.dashboard.update_dashboard(grafana_payload(model, folder_uid))
            result.imported.append(f"{path.name} -> {answer.get('url') or answer.get('uid')}")
    return result


def _grafana_folder(api: Any, title: str) -> str:
    """The uid of the folder called ``title``, created when there is none."""
    for found in api.folder.get_all_folders():
        if found.get("title") == title:
            return str(found["uid"])
    created = api.folder.create_folder(title)
    return str(created["uid"])


@contextmanager
def _grafana_errors(url: str) -> Iterator[None]:
    """Translates grafana-client's and its HTTP library's errors into PushError."""
    from grafana_client.client import GrafanaException

    try:
        yield
    except GrafanaException as error:
        # status 0: the client's own code for "no HTTP answer" (a timeout or a transport error)
        if error.status_code == 0:
            raise PushError(f"cannot reach Grafana at {url}: {error.message}", UNREACHABLE) from None
        said = error.response.get("message") if isinstance(error.response, dict) else None
        raise PushError(
            f"refused by Grafana at {url}: HTTP {error.status_code}: {said or error.message}", REFUSED
        ) from None
    except OSError as error:  # the HTTP library's connection errors are OSErrors
        raise PushError(f"cannot reach Grafana at {url}: {error}", UNREACHABLE) from None


def kibana_import_url(url: str, space: str | None) -> str:
    """The saved-objects import endpoint, in ``space`` when one is given."""
    base = url.rstrip("/")
    prefix = f"/s/{space}" if space and space != "default" else ""
    return f"{base}{prefix}/api/saved_objects/_import"


def push_kibana(
    url: str, space: str | None = None, api_key: str | None = None, directory: Path | None = None
) -> PushResult:
    """Import every saved-objects file of ``directory`` (default ``dashboards/kibana``) into Kibana."""
    files = dashboard_files(directory or shipped_dir("kibana"), ".ndjson")
    headers = dict(KIBANA_XSRF)
    if api_key:
        headers["Authorization"] = f"ApiKey {api_key}"
    endpoint = kibana_import_url(url, space)
    result = PushResult(url)
    with httpx.Client(timeout=TIMEOUT_S, headers=headers) as client:
        for path in files:
            count = _import_ndjson(client, endpoint, path)
            result.imported.append(f"{path.name} -> {count} saved objects")
    return result


def _import_ndjson(client: httpx.Client, endpoint: str, path: Path) -> int:
    """Send one NDJSON file; returns how many objects Kibana imported."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise PushError(f"{path}: cannot read: {error}") from None
    try:
        response = client.post(
            endpoint, params={"overwrite": "true"}, files={"file": (path.name, content, "application/ndjson")}
        )
    except httpx.HTTPError as error:
        raise PushError(f"cannot reach Kibana at {endpoint}: {error}", UNREACHABLE) from None
    if response.status_code >= 400:
        raise PushError(f"Kibana refused {path.name}: HTTP {response.status_code}: {response.text[:500]}", REFUSED)
    try:
        answer = response.json()
    except ValueError:
        raise PushError(f"Kibana answered {path.name} with no JSON: {response.text[:200]}", REFUSED) from None
    if not answer.get("success", False):
        problems = [
            f"{e.get('type')}/{e.get('id')}: {e.get('error', {}).get('type', e.get('error'))}"
            for e in answer.get("errors", [])
        ]
        raise PushError(f"Kibana did not import all of {path.name}: {'; '.join(problems) or answer}", REFUSED)
    return int(answer.get("successCount", 0))
