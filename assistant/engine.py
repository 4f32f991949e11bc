"""The one call every path answers through: ``Engine.search(query, as_of) -> Decision``.

Resident chat (through the Rasa action), staff lookup, the CLI and the editor preview all
call this, so the same question and knowledge revision give the same entry and text.

Scoring: for each entry, the best cosine between the query and any of its phrasings
(dense), and BM25 coverage of the query's words in the entry (lexical). The confidence
blends the two; it must be high on both sides to answer, so a question that merely
sounds like city business, or shares one common word, is not answered.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import sqlite_utils

from assistant.config import Settings
from assistant.encoder import encoder_fingerprint, load_encoder
from assistant.errors import IndexUnavailable
from assistant.index import DenseIndex
from assistant.lexical import LexicalIndex
from assistant.text import content_terms
from knowledge.model import Entry, EntryNotFound
from knowledge.store import all_entries, knowledge_revision, open_db

log = logging.getLogger(__name__)

DENSE_WEIGHT = 0.6
LEXICAL_WEIGHT = 0.4
# Each row kind counts a little differently: a matching phrasing is the best evidence.
KIND_WEIGHT = {"question": 1.0, "title": 0.97, "answer": 0.9}
MAX_QUERY_CHARS = 2000


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    revision: int
    title: str
    score: float
    dense: float
    lexical: float


@dataclass(frozen=True)
class Decision:
    kind: str  # "answer" | "clarify" | "handoff"
    confidence: float
    candidates: tuple[Candidate, ...] = field(default=())
    knowledge_revision: int = 0

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


def entry_texts(entry: Entry) -> list[tuple[str, str]]:
    """(kind, text) pairs indexed for an entry."""
    return (
        [("title", entry.title)]
        + [("question", q) for q in entry.questions]
        + [("answer", entry.answer)]
    )


class Engine:
    def __init__(self, settings: Settings, db: sqlite_utils.Database, encoder, dense: DenseIndex):
        self.settings = settings
        self.db = db
        self.encoder = encoder
        self.dense = dense
        self.entries: dict[str, Entry] = {}
        self.lexical = LexicalIndex()

    # -- building and loading -------------------------------------------------------

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        rebuild_if_stale: bool = True,
        force_rebuild: bool = False,
        progress=None,
    ) -> Engine:
        """Open the database, encoder and index; rebuild the index if it is missing,
        unreadable, or from another knowledge revision or encoder."""
        db = open_db(settings.database_path)
        encoder = load_encoder(settings.encoder_path)
        fingerprint = encoder_fingerprint(settings.encoder_path)
        revision = knowledge_revision(db)
        if force_rebuild:
            engine = cls(settings, db, encoder, None)
            engine.rebuild(fingerprint=fingerprint, revision=revision, progress=progress)
            engine.save()
            return engine
        try:
            dense = DenseIndex.load(settings.index_dir)
            stale = dense.knowledge_revision != revision or dense.encoder_fingerprint != fingerprint
            reason = (
                f"index is from knowledge revision {dense.knowledge_revision} and encoder "
                f"{dense.encoder_fingerprint}; current are {revision} and {fingerprint}"
            )
        except IndexUnavailable as error:
            if not rebuild_if_stale:
                raise
            stale, reason, dense = True, str(error), None
        engine = cls(settings, db, encoder, dense)
        if stale:
            if not rebuild_if_stale:
                raise IndexUnavailable(reason)
            log.warning("rebuilding the index: %s", reason)
            engine.rebuild(fingerprint=fingerprint, revision=revision, progress=progress)
            engine.save()
        else:
            engine._load_entries()
        return engine

    def _load_entries(self) -> None:
        self.entries = {e.id: e for e in all_entries(self.db) if e.status == "published"}
        for entry in self.entries.values():
            self.lexical.add(entry.id, [entry.title, *entry.questions], [entry.answer])

    def rebuild(
        self, *, fingerprint: str | None = None, revision: int | None = None, progress=None
    ):
        """Re-encode every published entry (``progress`` wraps the entry iterator)."""
        fingerprint = fingerprint or encoder_fingerprint(self.settings.encoder_path)
        revision = knowledge_revision(self.db) if revision is None else revision
        dimension = self.encoder.get_embedding_dimension()
        self.dense = DenseIndex.empty(dimension, revision, fingerprint)
        self.lexical = LexicalIndex()
        self._load_entries()
        entries = sorted(self.entries.values(), key=lambda e: e.id)
        for entry in progress(entries) if progress else entries:
            pairs = entry_texts(entry)
            vectors = self._encode([text for _, text in pairs])
            self.dense.add(entry.id, [kind for kind, _ in pairs], vectors)

    def save(self) -> Path:
        return self.dense.save(self.settings.index_dir)

    # -- searching ------------------------------------------------------------------

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(
            self.encoder.encode(texts, normalize_embeddings=True, show_progress_bar=False),
            dtype="float32",
        )

    def search(self, query: str, *, as_of: dt.date | None = None, top_k: int = 5) -> Decision:
        """Rank the entries in force on ``as_of`` (default today) and decide."""
        as_of = as_of or dt.date.today()
        query = query[:MAX_QUERY_CHARS]
        terms = content_terms(query)
        vector = self._encode([query])[0]
        dense: dict[str, float] = {}
        for row, score in self.dense.search(vector, limit=max(200, top_k * 20)):
            weighted = score * KIND_WEIGHT.get(row.kind, 1.0)
            if weighted > dense.get(row.entry_id, -1.0):
                dense[row.entry_id] = weighted
        bm25 = self.lexical.scores(terms)
        candidates = []
        for entry_id in set(dense) | set(bm25):
            entry = self.entries.get(entry_id)
            if entry is None or not entry.in_force(as_of):
                continue
            dense_score = max(0.0, dense.get(entry_id, 0.0))
            coverage = self.lexical.coverage(terms, entry_id)
            score = DENSE_WEIGHT * dense_score + LEXICAL_WEIGHT * coverage
            candidates.append(
                Candidate(
                    entry_id=entry_id,
                    revision=entry.revision,
                    title=entry.title,
                    score=round(score, 6),
                    dense=round(dense_score, 6),
                    lexical=round(coverage, 6),
                )
            )
        # Ties broken by id so that equal scores never reorder between processes.
        candidates.sort(key=lambda c: (-c.score, c.entry_id))
        candidates = candidates[:top_k]
        return self._decide(candidates)

    def _decide(self, candidates: list[Candidate]) -> Decision:
        revision = self.dense.knowledge_revision
        if not candidates:
            return Decision("handoff", 0.0, (), revision)
        best = candidates[0]
        confidence = best.score
        runner_up = candidates[1].score if len(candidates) > 1 else 0.0
        s = self.settings
        if confidence >= s.answer_threshold and confidence - runner_up >= s.tie_margin:
            kind = "answer"
        elif confidence >= s.clarify_threshold:
            kind = "clarify"
        else:
            kind = "handoff"
        return Decision(kind, confidence, tuple(candidates), revision)

    def entry(self, entry_id: str) -> Entry:
        """The entry as indexed: its text is what every path shows, byte for byte."""
        try:
            return self.entries[entry_id]
        except KeyError:
            raise EntryNotFound(entry_id) from None
