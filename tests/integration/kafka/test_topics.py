"""Topic creation and partition lookup on the real broker."""

from __future__ import annotations

import pytest

from monitor.embedded.broker import EmbeddedBroker
from monitor.errors import DriftgateError
from monitor.kafka.topics import ensure_topics, topic_partitions


@pytest.mark.integration
def test_creates_only_missing_topics(broker: EmbeddedBroker, topic_name: str) -> None:
    first, second = f"{topic_name}-a", f"{topic_name}-b"
    assert ensure_topics(broker.bootstrap, [first]) == [first]
    assert ensure_topics(broker.bootstrap, [first, second, second]) == [second]
    assert ensure_topics(broker.bootstrap, [first, second]) == []
    assert topic_partitions(broker.bootstrap, first) == [0]


@pytest.mark.integration
def test_creates_topics_with_the_partitions_asked_for(broker: EmbeddedBroker, topic_name: str) -> None:
    assert ensure_topics(broker.bootstrap, [topic_name], partitions=3) == [topic_name]
    assert topic_partitions(broker.bootstrap, topic_name) == [0, 1, 2]
    # An existing topic is left as it is, whatever partition count is asked for now.
    assert ensure_topics(broker.bootstrap, [topic_name], partitions=5) == []
    assert topic_partitions(broker.bootstrap, topic_name) == [0, 1, 2]


@pytest.mark.integration
def test_unknown_topic_has_no_partitions(broker: EmbeddedBroker, topic_name: str) -> None:
    with pytest.raises(DriftgateError, match=topic_name):
        topic_partitions(broker.bootstrap, topic_name, timeout_s=5)
