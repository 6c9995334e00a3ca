"""The `driftgate` command line (docs/contract.md §5): run, gate, demo; dashboards push; reference build and report."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from monitor.cli.gate import EXIT_UNREACHABLE, parse_duration, wait_for_verdict
from monitor.config import TOKEN_ENV, load_config
from monitor.embedded.simulator import SCENARIOS
from monitor.errors import ConfigError, DriftgateError
from monitor.logs import configure_logging

app = typer.Typer(
    name="driftgate",
    help="Compare a canary model with the live one on Kafka traffic and say go or no-go.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# Messages are never wrapped by rich: in a pipe or a file (CI logs) one message stays one line, and a
# terminal wraps long lines itself.
err = Console(stderr=True, soft_wrap=True)


@app.command()
def run(config: Annotated[Path, typer.Option("--config", "-c", help="The YAML config file.")]) -> None:
    """Run the sidecar: consume, evaluate verdicts, serve the API until SIGTERM."""
    try:
        settings = load_config(config)
    except ConfigError as error:
        err.print(f"[red]config refused:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(2) from None
    configure_logging(settings.log.level, settings.log.format)
    from monitor.server import run as serve

    serve(settings)


@app.command()
def gate(
    url: Annotated[str, typer.Option(help="Base URL of the sidecar, e.g. http://driftgate:8080.")],
    deployment: Annotated[str, typer.Option(help="The deployment to wait for.")],
    wait: Annotated[str, typer.Option(help="How long to wait for a decision, e.g. 90s, 10m.")] = "0s",
    token: Annotated[str | None, typer.Option(help=f"API token (default: ${TOKEN_ENV}).")] = None,
    poll: Annotated[float, typer.Option(help="Seconds between polls.")] = 2.0,
) -> None:
    """For CI: exit 0 go, 1 no_go, 2 inconclusive or still pending, 3 cannot reach or read the service."""
    try:
        wait_s = parse_duration(wait)
    except ValueError as error:
        err.print(f"[red]--wait:[/red] {escape(str(error))}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    token = token or os.environ.get(TOKEN_ENV)

    def progress(verdict: dict[str, Any] | None, remaining: float) -> None:
        state = verdict["verdict"] if verdict else "unreachable"
        samples = verdict["samples"] if verdict else {}
        err.print(
            f"{deployment}: {state} (canary {samples.get('canary', 0)}, live {samples.get('live', 0)}), "
            f"{remaining:.0f}s left",
            highlight=False,
        )

    outcome = wait_for_verdict(url, deployment, wait_s, token=token, poll_s=poll, on_poll=progress)
    if outcome.error:
        err.print(f"[red]cannot read the verdict:[/red] {escape(str(outcome.error))}")
    if outcome.verdict is not None:
        verdict = outcome.verdict
        print(f"{verdict['verdict']}: {deployment} canary {verdict.get('canary_version')}")
        for reason in verdict.get("reasons", []):
            print(f"  - {reason}")
    raise typer.Exit(outcome.exit_code)


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help=f"The canary: {', '.join(SCENARIOS)}.")] = "good",
    rate: Annotated[float, typer.Option(help="Simulated requests per second.")] = 200.0,
    port: Annotated[int, typer.Option(help="Port of the API (0: any free port).")] = 8080,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the simulated traffic.")] = 1,
    with_elasticsearch: Annotated[
        bool, typer.Option("--with-elasticsearch", help="Also start an Elasticsearch-compatible server (noida-db) "
                           "on loopback and index windows, verdicts and spot-check cases into it.")
    ] = False,
    with_prometheus: Annotated[
        bool, typer.Option("--with-prometheus", help="Also run Prometheus and Alertmanager with the alert rules.")
    ] = False,
) -> None:
    """Everything on one machine: an embedded broker, the sidecar and simulated traffic."""
    if scenario not in SCENARIOS:
        err.print(f"[red]--scenario:[/red] {scenario!r} is not one of {', '.join(SCENARIOS)}")
        raise typer.Exit(2)
    configure_logging("warning", "text" if sys.stderr.isatty() else "json")
    from monitor.embedded.demo import DemoOptions, run_demo

    try:
        final = run_demo(DemoOptions(scenario, rate, port, duration, seed, with_elasticsearch, with_prometheus))
    except DriftgateError as error:
        err.print(f"[red]demo failed:[/red] {escape(str(error))}")
        raise typer.Exit(1) from None
    err.print(f"last verdict: {final}")


dashboards_app = typer.Typer(help="The shipped Grafana and Kibana dashboards.", no_args_is_help=True)
push_app = typer.Typer(help="Import the dashboards into a server, replacing earlier versions.", no_args_is_help=True)
dashboards_app.add_typer(push_app, name="push")
app.add_typer(dashboards_app, name="dashboards")
# push: 0 imported, 1 the server refused, 2 nothing (valid) to push, 3 the server cannot be reached
PUSH_EXIT_CODES = {"refused": 1, "bad_input": 2, "unreachable": EXIT_UNREACHABLE}


@push_app.command("grafana")
def push_grafana(
    url: Annotated[str, typer.Option(help="Grafana's base URL, e.g. https://grafana.example.")],
    token: Annotated[str, typer.Option(envvar="GRAFANA_TOKEN", help="A service account token (or $GRAFANA_TOKEN).")],
    folder: Annotated[str | None, typer.Option(help="Folder title to import into (created if missing).")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Where the *.json dashboards are.")] = None,
) -> None:
    """Import dashboards/grafana/*.json into Grafana (overwrite)."""
    from monitor.cli.dashboards import push_grafana as push

    _report_push("Grafana", lambda: push(url, token, folder, directory))


@push_app.command("kibana")
def push_kibana(
    url: Annotated[str, typer.Option(help="Kibana's base URL, e.g. https://kibana.example:5601.")],
    space: Annotated[str | None, typer.Option(help="Kibana space to import into (default: the default space).")] = None,
    api_key: Annotated[str | None, typer.Option(envvar="KIBANA_API_KEY", help="API key ($KIBANA_API_KEY).")] = None,
    directory: Annotated[Path | None, typer.Option("--dir", help="Where the *.ndjson saved objects are.")] = None,
) -> None:
    """Import dashboards/kibana/*.ndjson through Kibana's saved-objects import API (overwrite)."""
    from monitor.cli.dashboards import push_kibana as push

    _report_push("Kibana", lambda: push(url, space, api_key, directory))


def _report_push(server: str, push: Callable[[], Any]) -> None:
    from monitor.errors import PushError

    try:
        result = push()
    except PushError as error:
        err.print(f"[red]push to {server} failed:[/red] {escape(str(error))}", highlight=False)
        raise typer.Exit(PUSH_EXIT_CODES[error.kind]) from None
    for line in result.imported:
        print(f"{server}: imported {line}")


reference_app = typer.Typer(help="Reference profiles: what live and canary traffic are compared with.",
                            no_args_is_help=True)
app.add_typer(reference_app, name="reference")


@reference_app.command("build")
def reference_build(
    deployment: Annotated[str, typer.Option(help="The deployment the profile is for (as in the config).")],
    source: Annotated[Path, typer.Option("--from", help="The reference data: .csv, .parquet or .jsonl.")],
    out: Annotated[Path, typer.Option(help="Where to write the profile (JSON).")],
    bins: Annotated[int, typer.Option(min=2, max=10_000, help="Bins per numeric column (at its quantiles).")] = 100,
    sample_rows: Annotated[int, typer.Option(min=0, max=100_000, help="Rows kept in the profile for reports.")] = 5000,
) -> None:
    """Profile a reference data set (the test set, or predictions recorded earlier) for drift checks."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from monitor.core.profile import build_profile
    from monitor.errors import ReferenceFileError
    from monitor.reports.profile_file import write_profile
    from monitor.reports.reference_file import read_reference

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeRemainingColumn(), console=err) as progress:
        task = progress.add_task(f"reading {source.name}", total=None)
        try:
            table = read_reference(source, lambda done, total: progress.update(task, completed=done, total=total))
        except ReferenceFileError as error:
            progress.stop()
            err.print(f"[red]reference refused:[/red] {escape(str(error))}")
            raise typer.Exit(2) from None
        progress.update(task, description=f"profiling {table.rows:,} rows", completed=0, total=1)
        profile = build_profile(deployment, table.labels, table.columns(), bins=bins, source=source.name,
                                sample=table.sample(sample_rows))
        progress.update(task, completed=1)
    try:
        write_profile(profile, out)
    except OSError as error:
        err.print(f"[red]cannot write {out}:[/red] {error.strerror}")
        raise typer.Exit(2) from None
    kinds = [spec.kind for spec in profile.layout.columns.values()]
    err.print(
        f"{out}: {profile.rows:,} rows, {len(profile.class_counts)} classes, "
        f"{kinds.count('numeric')} numeric and {kinds.count('categorical')} categorical columns "
        f"(scores included); point deployments[].reference.profile of {deployment!r} at it",
        highlight=False, soft_wrap=True,
    )


@app.command()
def report(
    deployment: Annotated[str, typer.Option(help="The deployment to report on.")],
    out: Annotated[Path, typer.Option(help="Where to write the HTML report.")],
    url: Annotated[str, typer.Option(help="Base URL of the sidecar.")] = "http://127.0.0.1:8080",
    role: Annotated[str, typer.Option(help="The recent traffic reported on: canary or live.")] = "canary",
    token: Annotated[str | None, typer.Option(help=f"API token (default: ${TOKEN_ENV}).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the report.")] = 300.0,
) -> None:
    """An Evidently report (data drift, classification quality) of the reference against recent traffic."""
    import httpx

    token = token or os.environ.get(TOKEN_ENV)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    address = f"{url.rstrip('/')}/v1/deployments/{deployment}/report"
    try:
        with err.status(f"making the report of {deployment} ({role})"):
            answer = httpx.get(address, params={"role": role}, headers=headers, timeout=timeout)
    except httpx.HTTPError as error:
        err.print(f"[red]cannot reach {escape(url)}:[/red] {escape(str(error))}")
        raise typer.Exit(EXIT_UNREACHABLE) from None
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text
        err.print(f"[red]no report ({answer.status_code}):[/red] {escape(str(detail))}")
        raise typer.Exit(1)
    try:
        out.write_text(answer.text, encoding="utf-8")
    except OSError as error:
        err.print(f"[red]cannot write {out}:[/red] {error.strerror}")
        raise typer.Exit(2) from None
    err.print(f"{out}: report of {deployment} ({role}) against its reference", highlight=False, soft_wrap=True)


def main() -> None:
    app()
