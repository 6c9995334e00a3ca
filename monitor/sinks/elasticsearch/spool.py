"""A bounded on-disk queue of documents waiting for Elasticsearch (SQLite, one file).

Documents are kept in the order they came, one row per (index, id): a document sent
again before the first copy left replaces it. The bound is a number of documents; when
it is passed, the oldest *window* documents go first, then the oldest spot-check cases;
verdicts are never dropped (there is one per verdict change, so they cannot fill a disk).
Dropped documents are returned to the caller to be counted and logged.

The spool also remembers which windows were handed over (``window_marks``), so a
restarted sidecar does not send its kept windows again.

Thread-safe: the sink's thread and a caller spilling a full hand-off may use it together.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import orjson

from monitor.sinks.elasticsearch.documents import Document, Kind

SPOOL_FILE = "elasticsearch-spool.sqlite"
# Which kinds go first when the bound is reached, in order; verdicts are not among them.
DROP_ORDER: tuple[Kind, ...] = ("window", "spotcheck")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    deployment TEXT NOT NULL,
    index_name TEXT NOT NULL,
    doc_id TEXT NOT NULL,
    body BLOB NOT NULL,
    UNIQUE (index_name, doc_id)
);
CREATE INDEX IF NOT EXISTS documents_kind ON documents (kind, seq);
CREATE TABLE IF NOT EXISTS window_marks (
    deployment TEXT NOT NULL,
    start REAL NOT NULL,
    signature TEXT NOT NULL,
    PRIMARY KEY (deployment, start)
);
"""


@dataclass(frozen=True, slots=True)
class Spooled:
    """A document read back from the spool, with its place in the queue."""

    seq: int
    document: Document


class DocumentSpool:
    """The queue. ``put`` adds, ``peek`` reads the oldest, ``remove`` takes delivered ones out."""

    def __init__(self, path: Path, max_documents: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_documents = max_documents
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a power cut may lose the last transactions, never corrupt the file.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._waiting: dict[tuple[str, str], int] = {}
        for deployment, kind, n in self._db.execute(
            "SELECT deployment, kind, COUNT(*) FROM documents GROUP BY deployment, kind"
        ):
            self._waiting[(deployment, kind)] = n

    def __len__(self) -> int:
        with self._lock:
            return sum(self._waiting.values())

    def waiting(self) -> dict[tuple[str, str], int]:
        """Documents waiting, by (deployment, kind)."""
        with self._lock:
            return dict(self._waiting)

    def put(self, documents: Sequence[Document]) -> list[Document]:
        """Add documents (replacing a waiting one of the same index and id); returns those dropped."""
        if not documents:
            return []
        rows = [(d.kind, d.deployment, d.index, d.doc_id, orjson.dumps(d.body)) for d in documents]
        with self._lock, self._transaction():
            for row in rows:
                replaced = self._db.execute(
                    "SELECT deployment, kind FROM documents WHERE index_name = ? AND doc_id = ?", (row[2], row[3])
                ).fetchone()
                if replaced is not None:
                    self._count(replaced[0], replaced[1], -1)
                self._db.execute(
                    "INSERT OR REPLACE INTO documents (kind, deployment, index_name, doc_id, body) "
                    "VALUES (?, ?, ?, ?, ?)",
                    row,
                )
                self._count(row[1], row[0], 1)
            return self._enforce_bound()

    def peek(self, limit: int) -> list[Spooled]:
        """The oldest ``limit`` documents, oldest first (they stay until removed)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, kind, deployment, index_name, doc_id, body FROM documents ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            Spooled(seq, Document(cast(Kind, kind), deployment, index, doc_id, orjson.loads(body)))
            for seq, kind, deployment, index, doc_id, body in rows
        ]

    def remove(self, items: Iterable[Spooled]) -> None:
        """Take delivered (or refused) documents out of the queue."""
        items = list(items)
        if not items:
            return
        with self._lock, self._transaction():
            for item in items:
                deleted = self._db.execute("DELETE FROM documents WHERE seq = ?", (item.seq,)).rowcount
                if deleted:
                    self._count(item.document.deployment, item.document.kind, -1)

    def window_marks(self) -> dict[str, dict[float, str]]:
        """Per deployment, the windows handed over: start -> signature of the counts sent."""
        with self._lock:
            rows = self._db.execute("SELECT deployment, start, signature FROM window_marks").fetchall()
        marks: dict[str, dict[float, str]] = {}
        for deployment, start, signature in rows:
            marks.setdefault(deployment, {})[float(start)] = signature
        return marks

    def mark_windows(self, deployment: str, marks: Mapping[float, str], keep_from: float) -> None:
        """Remember windows handed over, and forget those older than ``keep_from`` (no longer kept)."""
        with self._lock, self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO window_marks (deployment, start, signature) VALUES (?, ?, ?)",
                [(deployment, start, signature) for start, signature in marks.items()],
            )
            self._db.execute("DELETE FROM window_marks WHERE deployment = ? AND start < ?", (deployment, keep_from))

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- inside the lock ------------------------------------------------------------------------------

    def _transaction(self) -> sqlite3.Connection:
        # The connection as a context manager commits or rolls back; BEGIN makes it one transaction.
        self._db.execute("BEGIN")
        return self._db

    def _count(self, deployment: str, kind: str, n: int) -> None:
        key = (deployment, kind)
        left = self._waiting.get(key, 0) + n
        if left:
            self._waiting[key] = left
        else:
            self._waiting.pop(key, None)

    def _enforce_bound(self) -> list[Document]:
        over = sum(self._waiting.values()) - self.max_documents
        dropped: list[Document] = []
        for kind in DROP_ORDER:
            if over <= 0:
                break
            rows = self._db.execute(
                "SELECT seq, deployment, index_name, doc_id FROM documents WHERE kind = ? ORDER BY seq LIMIT ?",
                (kind, over),
            ).fetchall()
            self._db.executemany("DELETE FROM documents WHERE seq = ?", [(row[0],) for row in rows])
            for _, deployment, index, doc_id in rows:
                self._count(deployment, kind, -1)
                dropped.append(Document(kind, deployment, index, doc_id, {}))
            over -= len(rows)
        return dropped
