"""Fixtures shared by the whole suite.

- ``broker``: one embedded Kafka-protocol broker (Tansu) for the test session, stopped at
  its end. Its storage is memory: topics live as long as the session does, so every test
  makes its own topics (``topic_name``) instead of sharing any.
- ``elasticsearch_server``: one Elasticsearch-compatible server (``noida-db``) for the session,
  on a free loopback port with its data in the session's temp dir; a test may stop and start
  it again (same port, same data), and must leave it running. Tests use their own index prefix.
- ``topic_name``: a fresh, unique topic name per test (not created: tests create what they need).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from monitor.embedded.broker import EmbeddedBroker
from monitor.embedded.elasticsearch import EmbeddedElasticsearch


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A running embedded broker on a free loopback port; its log is in the session's temp dir."""
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as running:
        yield running


@pytest.fixture(scope="session")
def elasticsearch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedElasticsearch]:
    """A running noida-db answering as Elasticsearch 8.15 on a free loopback port."""
    with EmbeddedElasticsearch(data_dir=tmp_path_factory.mktemp("elasticsearch")) as running:
        yield running


@pytest.fixture
def topic_name(request: pytest.FixtureRequest) -> str:
    """A topic name no other test uses: the test's name (for reading logs) plus a random suffix."""
    stem = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60].strip("-")
    return f"t-{stem}-{uuid.uuid4().hex[:12]}"
