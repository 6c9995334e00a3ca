"""The on-disk spool, on a real temp directory: order, replacement, the bound and what it drops first."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sinks.elasticsearch.documents import Document, Kind
from monitor.sinks.elasticsearch.spool import DocumentSpool


def doc(kind: Kind, n: int, deployment: str = "d") -> Document:
    return Document(kind, deployment, f"p-{kind}-2027.01.15", f"{kind}-{n}", {"n": n})


def test_documents_come_back_oldest_first_until_removed(tmp_path: Path) -> None:
    spool = DocumentSpool(tmp_path / "s.sqlite", max_documents=100)
    spool.put([doc("window", 1), doc("verdict", 2), doc("spotcheck", 3)])
    first = spool.peek(2)
    assert [item.document.doc_id for item in first] == ["window-1", "verdict-2"]
    assert first[0].document.body == {"n": 1}
    spool.remove(first)
    assert [item.document.doc_id for item in spool.peek(10)] == ["spotcheck-3"]
    assert spool.waiting() == {("d", "spotcheck"): 1}


def test_the_same_document_sent_again_replaces_the_waiting_copy(tmp_path: Path) -> None:
    spool = DocumentSpool(tmp_path / "s.sqlite", max_documents=100)
    spool.put([doc("window", 1), doc("window", 2)])
    spool.put([Document("window", "d", "p-window-2027.01.15", "window-1", {"n": 10})])
    items = spool.peek(10)
    assert [(item.document.doc_id, item.document.body["n"]) for item in items] == [("window-2", 2), ("window-1", 10)]
    assert len(spool) == 2


def test_it_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    spool = DocumentSpool(path, max_documents=100)
    spool.put([doc("verdict", 1), doc("window", 2, deployment="e")])
    spool.mark_windows("d", {60.0: "3/3/3/0"}, keep_from=0.0)
    spool.close()
    again = DocumentSpool(path, max_documents=100)
    assert [item.document.doc_id for item in again.peek(10)] == ["verdict-1", "window-2"]
    assert again.waiting() == {("d", "verdict"): 1, ("e", "window"): 1}
    assert again.window_marks() == {"d": {60.0: "3/3/3/0"}}


def test_at_the_bound_the_oldest_windows_go_first_then_cases_never_verdicts(tmp_path: Path) -> None:
    spool = DocumentSpool(tmp_path / "s.sqlite", max_documents=4)
    assert spool.put([doc("window", 1), doc("verdict", 2), doc("spotcheck", 3), doc("window", 4)]) == []
    dropped = spool.put([doc("verdict", 5), doc("window", 6)])
    assert [d.doc_id for d in dropped] == ["window-1", "window-4"]
    assert [item.document.doc_id for item in spool.peek(10)] == ["verdict-2", "spotcheck-3", "verdict-5", "window-6"]
    dropped = spool.put([doc("verdict", 7), doc("verdict", 8)])
    assert [d.doc_id for d in dropped] == ["window-6", "spotcheck-3"]
    # only verdicts left: they stay even past the bound
    assert spool.put([doc("verdict", 9)]) == []
    assert [item.document.kind for item in spool.peek(10)] == ["verdict"] * 5


def test_marks_older_than_kept_are_forgotten(tmp_path: Path) -> None:
    spool = DocumentSpool(tmp_path / "s.sqlite", max_documents=10)
    spool.mark_windows("d", {0.0: "a", 10.0: "b"}, keep_from=0.0)
    spool.mark_windows("d", {20.0: "c"}, keep_from=10.0)
    assert spool.window_marks() == {"d": {10.0: "b", 20.0: "c"}}


kinds = st.sampled_from(["window", "verdict", "spotcheck"])


@settings(max_examples=40, deadline=None)
@given(batches=st.lists(st.lists(kinds, min_size=1, max_size=8), min_size=1, max_size=8),
       bound=st.integers(min_value=1, max_value=12))
def test_bound_invariants(batches: list[list[Kind]], bound: int) -> None:
    """Whatever arrives: no verdict is ever dropped; the spool is over the bound only with verdicts;
    what was dropped plus what waits is what came; drops are oldest first within a kind."""
    with tempfile.TemporaryDirectory() as directory:
        spool = DocumentSpool(Path(directory) / "s.sqlite", max_documents=bound)
        sent: list[Document] = []
        dropped: list[Document] = []
        for batch in batches:
            documents = [doc(kind, len(sent) + i) for i, kind in enumerate(batch)]
            sent.extend(documents)
            dropped.extend(spool.put(documents))
            waiting = [item.document for item in spool.peek(1000)]
            assert len(waiting) <= bound or all(d.kind == "verdict" for d in waiting)
        assert not [d for d in dropped if d.kind == "verdict"]
        assert sorted(d.doc_id for d in dropped + waiting) == sorted(d.doc_id for d in sent)
        for kind in ("window", "spotcheck"):
            gone = [int(d.doc_id.split("-")[1]) for d in dropped if d.kind == kind]
            kept = [int(d.doc_id.split("-")[1]) for d in waiting if d.kind == kind]
            assert not gone or not kept or max(gone) < min(kept)
        spool.close()
