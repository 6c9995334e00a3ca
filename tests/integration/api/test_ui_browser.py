"""The /ui page in real headless Chromium against the real sidecar on the real broker.

`driftgate run` as a process reads simulated traffic with disagreements; the page, opened
once with ``?token=``, shows a queued case; a click on its class sends the label, which
must arrive on the feedback topic as ``source: spotcheck`` and move the page's count of
spot-check labels. Screenshots (desktop and phone size) go to ``test-artifacts/``.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright's Python package; the
test never downloads a browser. Without Chromium it tries ``apt-get install chromium`` and
skips, saying why, only when that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from integration.sidecar_process import fresh_topics, get_json, run_config, sidecar_process
from monitor.embedded.simulator import CLASSES, TrafficSimulator

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[3] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
TOKEN = "browser-test-token"
DEPLOYMENT = "docs"
REQUESTS = 1500
RATE_PER_S = 10.0  # 150 s of event time: the per-minute spot-check cap applies over three minutes
PHONE = {"width": 390, "height": 844}
VERDICT_WORDS = {"go": "Go", "no_go": "No go", "pending": "Pending", "inconclusive": "Inconclusive"}


def chromium() -> str:
    """Debian's Chromium; installed with apt-get when missing; the test skips only if that fails."""
    found = shutil.which("chromium") or (CHROMIUM if os.access(CHROMIUM, os.X_OK) else None)
    if found:
        return found
    why = "Chromium is not installed"
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, env=env, timeout=300)
            subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
                           check=True, capture_output=True, env=env, timeout=600)
        except (subprocess.SubprocessError, OSError) as error:
            why += f" and `apt-get install chromium` failed: {str(error)[:200]}"
        found = shutil.which("chromium")
        if found:
            return found
    else:
        why += " and cannot be installed here (needs root and apt-get)"
    pytest.skip(why)


@dataclass
class RunningSidecar:
    url: str
    topics: dict[str, str]
    simulator: TrafficSimulator
    user_feedback: set[str] = field(default_factory=set)


def _get(url: str, path: str) -> Any:
    return get_json(url, path, TOKEN)


@pytest.fixture(scope="module")
def running(broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSidecar]:
    run = fresh_topics(broker.bootstrap, "ui", (DEPLOYMENT, "idle"))
    topics = run.inputs[DEPLOYMENT]
    directory = tmp_path_factory.mktemp("ui-browser")
    config = run_config(broker.bootstrap, run, [{
        "name": DEPLOYMENT, "topics": topics, "classes": list(CLASSES),
        "reference": {"class_distribution": {"invoice": 0.5, "contract": 0.3, "other": 0.2}},
        "spotcheck": {"max_per_minute": 600, "priority": {"invoice": 2}},
    }, {
        # a second deployment without traffic: the page offers a selector
        "name": "idle", "topics": run.inputs["idle"],
    }], state={"dir": str(directory / "state")})
    with sidecar_process(config, directory, TOKEN) as process:
        url = process.url
        simulator = TrafficSimulator("good", deployment=DEPLOYMENT, seed=11)
        sidecar = RunningSidecar(url, topics, simulator)
        producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20})
        produced = 0
        for event in simulator.stream(REQUESTS, start_ts=1_800_000_000.0, rate_per_s=RATE_PER_S):
            producer.produce(topics[event.role], orjson.dumps(event.payload), event.key.encode())
            produced += 1
            if event.role == "feedback":
                sidecar.user_feedback.add(event.key)
        assert producer.flush(30) == 0
        deadline = time.monotonic() + 90
        while sum(_get(url, f"/v1/deployments/{DEPLOYMENT}/metrics")["events"].values()) < produced:
            assert time.monotonic() < deadline, "the sidecar did not read every produced event"
            time.sleep(0.3)
        yield sidecar
    assert TOKEN not in (directory / "sidecar.log").read_text(errors="replace")


def _find_label(bootstrap: str, topic: str, request_id: str, timeout_s: float = 30) -> dict[str, Any]:
    """The spot-check label for ``request_id`` on the feedback topic (every partition, from the start)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"ui-reader-{uuid.uuid4()}",
                         "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in consumer.consume(500, 0.5):
                if message.error() is not None or message.key() != request_id.encode():
                    continue
                payload: dict[str, Any] = orjson.loads(message.value())
                if payload.get("source") == "spotcheck":
                    return payload
    finally:
        consumer.close()
    raise AssertionError(f"no spot-check label for {request_id} on {topic}")


def _number(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_label_a_queued_case_in_chromium(running: RunningSidecar, broker: Any) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright's Python package is not installed")
    executable = chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
            page.goto(f"{running.url}/ui?token={TOKEN}&deployment={DEPLOYMENT}")
            # The token leaves the address bar at once; the deployment stays.
            page.wait_for_function("() => !location.search.includes('token')")
            assert "token" not in page.url and f"deployment={DEPLOYMENT}" in page.url

            page.wait_for_selector("#cases li.case", timeout=15_000)
            try:
                page.wait_for_selector("#checks li.check", timeout=15_000)
            except sync_api.TimeoutError:
                page.screenshot(path=str(ARTIFACTS / "ui-failure.png"), full_page=True)
                raise AssertionError(f"the page shows no checks: {page.inner_text('main')!r}; {problems}") from None
            # The verdict is said in words, whatever it is, and matches the API's.
            verdict = _get(running.url, f"/v1/deployments/{DEPLOYMENT}/verdict")
            assert page.locator("#verdict-panel").get_attribute("data-verdict") == verdict["verdict"]
            assert page.text_content("#verdict-word") == VERDICT_WORDS[verdict["verdict"]]
            assert page.locator("#checks li.check").count() >= 5
            assert page.locator("#distribution .class-group").count() == len(CLASSES)
            assert page.locator("#distribution [data-role=reference]").count() == len(CLASSES)
            assert page.locator("#precision .class-group").count() == len(CLASSES)
            # 1,500 requests sample fewer live rows than the 1,000 the feature bins are learned from
            assert "Learning the bins" in page.inner_text("#drift")
            received_before = _number(page.inner_text("#count-received"))
            waiting_before = _number(page.inner_text("#count-waiting"))
            assert waiting_before > 0

            # A case no user has given feedback on, so the spot-check label is what judges it.
            ids = [card.get_attribute("data-request-id") or "" for card in page.locator("#cases li.case").all()]
            request_id = next(rid for rid in ids if rid not in running.user_feedback)
            truth = running.simulator.truth_of(request_id)
            assert truth is not None
            card = page.locator(f'#cases li.case[data-request-id="{request_id}"]')
            assert card.locator(".features dt").count() == 3  # n_pages, lang, text_len
            assert card.locator(".answer.live .scores li").count() == len(CLASSES)
            buttons = [b.inner_text() for b in card.get_by_role("button").all()]
            assert buttons == [*CLASSES, "Unsure"]
            card.get_by_role("button", name=truth, exact=True).click()

            card.wait_for(state="detached", timeout=10_000)
            assert _number(page.inner_text("#count-sent")) == 1
            assert request_id in page.inner_text("#announce")

            label = _find_label(broker.bootstrap, running.topics["feedback"], request_id)
            assert label["label"] == truth and label["deployment"] == DEPLOYMENT and label["source"] == "spotcheck"

            page.wait_for_function(
                "(before) => Number(document.getElementById('count-received').textContent.replace(/,/g, '')) > before",
                arg=received_before, timeout=20_000,
            )
            assert _number(page.inner_text("#count-received")) == received_before + 1
            verdict = _get(running.url, f"/v1/deployments/{DEPLOYMENT}/verdict")
            assert verdict["samples"]["spotcheck_labels"] == received_before + 1
            # The sidecar read the label back and took the case off its queue: it stays gone.
            page.wait_for_function(
                "(before) => Number(document.getElementById('count-waiting').textContent.replace(/,/g, '')) < before",
                arg=waiting_before, timeout=20_000,
            )
            assert page.locator(f'#cases li.case[data-request-id="{request_id}"]').count() == 0
            # At most a page of cases at once; the rest one click away.
            shown = page.locator("#cases li.case").count()
            assert 0 < shown <= 12
            if _number(page.inner_text("#count-waiting")) > shown:
                page.get_by_role("button", name="Show").click()
                page.wait_for_function("(n) => document.querySelectorAll('#cases li.case').length > n", arg=shown)
            page.evaluate("() => window.scrollTo(0, 0)")
            page.screenshot(path=str(ARTIFACTS / "ui-desktop.png"))
            page.screenshot(path=str(ARTIFACTS / "ui-desktop-full.png"), full_page=True)

            # Several deployments: a selector; the choice goes to the address, the page follows it.
            page.select_option("#deployment", "idle")
            page.wait_for_function("() => document.querySelector('#checks .empty') !== null")
            assert "deployment=idle" in page.url and "token" not in page.url
            assert page.text_content("#verdict-word") == "Pending"
            assert page.locator("#cases li.case").count() == 0 and page.is_visible("#queue-empty")
            page.select_option("#deployment", DEPLOYMENT)
            page.wait_for_selector("#cases li.case")

            # Phone size: one column, no sideways scrolling, the buttons still there.
            phone = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
            small = phone.new_page()
            small.on("pageerror", lambda error: problems.append(f"page error (phone): {error}"))
            small.goto(f"{running.url}/ui?token={TOKEN}")
            small.wait_for_selector("#cases li.case", timeout=15_000)
            small.wait_for_selector("#checks li.check")
            width = small.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width} px wide on a {PHONE['width']} px screen"
            first = small.locator("#cases li.case").first
            box = first.get_by_role("button", name="Unsure").bounding_box()
            assert box is not None and box["height"] >= 44  # a finger-sized target
            small.screenshot(path=str(ARTIFACTS / "ui-phone.png"))
            small.screenshot(path=str(ARTIFACTS / "ui-phone-full.png"), full_page=True)

            # "Unsure" sends nothing and takes the case off the page.
            unsure_id = first.get_attribute("data-request-id")
            first.get_by_role("button", name="Unsure").click()
            small.locator(f'#cases li.case[data-request-id="{unsure_id}"]').wait_for(state="detached")
            assert _number(small.inner_text("#count-sent")) == 0
            phone.close()
        finally:
            browser.close()
    assert not problems, problems
