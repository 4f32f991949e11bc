"""The one call every path answers through: ``Engine.search(query, as_of) -> Decision``.

Resident chat (through the Rasa action), staff lookup, the CLI and the editor preview all
call this, so the same question and knowledge revision give the same entry and text.

The index holds every published revision, today's and scheduled ones; a search picks,
per entry, the revision in force on ``as_of``. So answers switch on an effective date by
themselves. Before each search the engine compares the database's knowledge revision
with its own and applies what changed (add, replace, remove revisions), so a publish in
one process reaches every other process's next question, with no restart.

Ranking: for each entry, the best cosine between the query and any of its phrasings or
answer paragraphs (dense), the share of the query's words the entry covers (coverage),
and BM25 over words and over two-character pieces, each relative to the best entry's.

Deciding uses only absolute evidence about the best entry: its cosine is the decision's
confidence (answer / clarify / handoff thresholds), and to answer, the entry must also
cover enough of the query's words and lead the runner-up clearly. So a question that
merely sounds like city business, or shares one common word, is not answered. Relative
BM25 is 1.0 for the best entry of any query: it orders entries, it cannot tell whether
the best one answers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from assistant.config import Settings
from assistant.encoder import encoder_fingerprint, load_encoder
from assistant.errors import IndexUnavailable
from assistant.index import DenseIndex
from assistant.lexical import LexicalIndex
from assistant.out_of_scope import load_examples
from assistant.text import char_grams, content_terms
from knowledge.city import CityProfile
from knowledge.model import Entry, EntryNotFound, revision_in_force
from knowledge.store import knowledge_revision, open_db, published_revisions

log = logging.getLogger(__name__)

# The ranking score. Measured on the dev set and on an FAQ-style copy of the starter
# entries (one question and the answer each): adding BM25 over words and two-character
# pieces to the cosine and the coverage raised Hit@1 by 5-6 points on both (README of
# assistant/eval).
RANK_WEIGHTS = {"dense": 0.5, "coverage": 0.2, "words": 0.15, "chars": 0.15}
# Each row kind counts a little differently: a matching phrasing is the best evidence.
KIND_WEIGHT = {"question": 1.0, "title": 0.97, "answer": 0.9, "passage": 0.9}
MAX_QUERY_CHARS = 2000
# How many entries from each side (dense, lexical) get a full score.
SHORTLIST = 50


@dataclass(frozen=True)
class Candidate:
    entry_id: str
    revision: int
    title: str
    score: float  # the ranking score
    dense: float  # best cosine with one of the entry's phrasings or paragraphs
    lexical: float  # share of the query's words (by IDF) the entry covers


@dataclass(frozen=True)
class Decision:
    kind: str  # "answer" | "clarify" | "handoff"
    confidence: float
    candidates: tuple[Candidate, ...] = field(default=())
    knowledge_revision: int = 0
    # Cosine with the closest out-of-scope example (assistant.out_of_scope), 0 if none.
    out_of_scope: float = 0.0

    @property
    def best(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None


MAX_PASSAGES = 12


def answer_parts(answer: str) -> tuple[list[str], bool]:
    """The answer's paragraphs indexed on their own (split at blank lines; none when
    there is only one), and whether the whole answer must be indexed as well: when it is
    one paragraph, or has more than MAX_PASSAGES of them."""
    parts = [p.strip() for p in re.split(r"\n\s*\n", answer) if p.strip()]
    if len(parts) < 2:
        return [], True
    return parts[:MAX_PASSAGES], len(parts) > MAX_PASSAGES


def entry_texts(entry: Entry) -> list[tuple[str, str]]:
    """(kind, text) pairs indexed for an entry. A long answer is indexed paragraph by
    paragraph, as one mean-pooled vector of a whole page says little of its parts (and
    the whole answer's vector added nothing on top of its paragraphs' on the dev set)."""
    parts, whole = answer_parts(entry.answer)
    return (
        [("title", entry.title)]
        + [("question", q) for q in entry.questions]
        + ([("answer", entry.answer)] if whole else [])
        + [("passage", p) for p in parts]
    )


def lexical_texts(entry: Entry) -> tuple[list[str], list[str]]:
    """(head, body) for the lexical indexes: title and phrasings; the answer, given by
    paragraph when the dense side has just analysed them (one analysis, not two)."""
    parts, whole = answer_parts(entry.answer)
    return [entry.title, *entry.questions], ([entry.answer] if whole else parts)


@dataclass(frozen=True)
class Evidence:
    """What the decision rests on; fields are floats, or arrays for many questions at
    once (``assistant.evaluation.tune`` tries thresholds on a whole dev set)."""

    confidence: Any  # the best entry's cosine with the question
    coverage: Any  # the share of the question's words the best entry covers
    lead: Any  # the best entry's ranking score minus the runner-up's
    out_of_scope: Any  # cosine with the closest out-of-scope example

    @classmethod
    def of(cls, candidates: list[Candidate], out_of_scope: float) -> Evidence:
        best = candidates[0]
        runner_up = candidates[1].score if len(candidates) > 1 else 0.0
        return cls(best.dense, best.lexical, best.score - runner_up, out_of_scope)


def decide(evidence: Evidence, s: Settings) -> np.ndarray:
    """ "answer", "clarify" or "handoff" (an array of them for array evidence).

    Hand off when the question is closer to an out-of-scope example than to the best
    entry (less the margin). Answer when the entry is close, covers the question's words
    and clearly leads the runner-up; offer choices when it is fairly close; else hand off.
    """
    e = evidence
    rejected = np.asarray(e.out_of_scope) - e.confidence > s.out_of_scope_margin
    answer = (
        ~rejected
        & (np.asarray(e.confidence) >= s.answer_threshold)
        & (np.asarray(e.coverage) >= s.answer_coverage)
        & (np.asarray(e.lead) >= s.tie_margin)
    )
    clarify = ~rejected & ~answer & (np.asarray(e.confidence) >= s.clarify_threshold)
    return np.where(answer, "answer", np.where(clarify, "clarify", "handoff"))


def revision_key(entry: Entry) -> str:
    """Identifies a revision's indexed content; a restored database with other content
    under the same revision number gets other keys, so nothing stale survives."""
    digest = hashlib.sha256(
        json.dumps(entry.content(), ensure_ascii=False, sort_keys=True).encode()
    ).hexdigest()[:12]
    return f"{entry.id}@{entry.revision}#{digest}"


class Engine:
    def __init__(
        self,
        settings: Settings,
        db: sqlite_utils.Database,
        encoder,
        dense: DenseIndex,
        city: CityProfile,
    ):
        self.settings = settings
        self.db = db
        self.encoder = encoder
        self.dense = dense
        self.city = city
        self.lexical = LexicalIndex()
        self.chars = LexicalIndex("chars")
        self.revisions: dict[str, Entry] = {}  # key -> published revision
        self.by_entry: dict[str, list[Entry]] = {}  # entry id -> its published revisions
        self.key_of: dict[tuple[str, int], str] = {}
        # (day, keys of the revisions in force that day): most searches ask about today.
        self._in_force_cache: tuple[dt.date, frozenset[str]] | None = None
        self._in_force_mask = None  # the same keys as a filter for LexicalIndex.hits
        self._in_force_chars = None  # ... for the character index
        self._lock = threading.RLock()  # one connection, one FAISS index: serialize access
        self.rebuilt_because: str | None = None  # why load() rebuilt the index, if it did
        self._rendered: dict[str, Entry] = {}  # key -> the revision with placeholders filled
        self._previewing = False  # while True, sync() leaves the index alone
        self.out_of_scope = load_examples(settings.out_of_scope_path)
        self._out_of_scope_vectors = (
            self.encode(self.out_of_scope)
            if self.out_of_scope
            else np.zeros((0, encoder.get_embedding_dimension()), dtype="float32")
        )

    # -- loading and keeping in step ------------------------------------------------

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        rebuild_if_stale: bool = True,
        force_rebuild: bool = False,
        progress=None,
    ) -> Engine:
        """Open the database, encoder and index, and bring the index up to date.

        A missing or unreadable index file, or one built with another encoder, is
        rebuilt (``engine.rebuilt_because`` says why); one from an older knowledge
        revision is updated entry by entry. Processes starting together (the API and the
        action server) take turns: the second waits and loads what the first saved.
        """
        settings.home.mkdir(parents=True, exist_ok=True)
        with open(settings.home / "index.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                return cls._load(settings, rebuild_if_stale, force_rebuild, progress)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @classmethod
    def _load(cls, settings: Settings, rebuild_if_stale: bool, force_rebuild: bool, progress):
        db = open_db(settings.database_path)
        encoder = load_encoder(settings.encoder_path)
        fingerprint = encoder_fingerprint(settings.encoder_path)
        dimension = encoder.get_embedding_dimension()
        dense = None
        rebuilt_because = "rebuild requested" if force_rebuild else None
        if not force_rebuild:
            try:
                dense = DenseIndex.load(settings.index_dir)
                if dense.encoder_fingerprint != fingerprint or dense.dimension != dimension:
                    raise IndexUnavailable(
                        f"index was built with encoder {dense.encoder_fingerprint}; "
                        f"the configured one is {fingerprint}"
                    )
                dense.set_nprobe(settings.nprobe)
                current = knowledge_revision(db)
                if not rebuild_if_stale and dense.knowledge_revision != current:
                    raise IndexUnavailable(
                        f"index is from knowledge revision {dense.knowledge_revision}; "
                        f"the database is at {current}"
                    )
            except IndexUnavailable as error:
                if not rebuild_if_stale:
                    raise
                log.warning("rebuilding the index: %s", error)
                rebuilt_because = str(error)
                dense = None
        engine = cls(
            settings,
            db,
            encoder,
            dense or DenseIndex.empty(dimension, -1, fingerprint),
            CityProfile.load(settings.city_path),
        )
        engine.rebuilt_because = rebuilt_because
        saved_lexical = LexicalIndex.load(settings.index_dir) if dense is not None else None
        if saved_lexical is not None:
            engine.lexical = saved_lexical[0]  # sync() fixes any difference, key by key
        saved_chars = LexicalIndex.load(settings.index_dir, "chars") if dense is not None else None
        if saved_chars is not None:
            engine.chars = saved_chars[0]
        if (
            engine.sync(progress=progress, force=True)
            or saved_lexical is None
            or saved_chars is None
        ):
            engine.save()
        return engine

    def sync(self, *, progress=None, force: bool = False) -> bool:
        """Apply what changed in the database since the last sync. Returns True if the
        index changed. Cheap when nothing did: one read of the knowledge revision."""
        with self._lock:
            if self._previewing:
                return False
            revision = knowledge_revision(self.db)
            if not force and revision == self.dense.knowledge_revision:
                return False
            published = {revision_key(e): e for e in published_revisions(self.db)}
            indexed = self.dense.keys()
            stale = indexed - published.keys()
            fresh = sorted(published.keys() - indexed)
            for key in stale:
                self.dense.remove(key)
            for key in progress(fresh) if progress else fresh:
                self._index(key, published[key])
            converted = (
                not self.dense.approximate
                and len(self.dense.rows) >= self.settings.approximate_from
            )
            if converted:
                log.info("index: %d vectors, switching to IVF search", len(self.dense.rows))
                self.dense.to_approximate(self.settings.nprobe)
            changed = bool(stale or fresh or converted) or self.dense.knowledge_revision != revision
            self.dense.knowledge_revision = revision
            self._set_revisions(published)
            if stale or fresh:
                log.info(
                    "index: +%d -%d revisions (knowledge revision %d)",
                    len(fresh),
                    len(stale),
                    revision,
                )
            return changed

    def _index(self, key: str, entry: Entry) -> None:
        """Add one revision to all three indexes (its texts are analysed once: the
        lexical side reuses what the encoder's tokenizer just analysed)."""
        pairs = entry_texts(entry)
        self.dense.add(key, [kind for kind, _ in pairs], self.encode([t for _, t in pairs]))
        for lexical in (self.lexical, self.chars):
            lexical.add(key, *lexical_texts(entry))

    def _set_revisions(self, published: dict[str, Entry]) -> None:
        for lexical in (self.lexical, self.chars):
            indexed = lexical.keys()
            for key in indexed - published.keys():
                lexical.remove(key)
            for key in sorted(published.keys() - indexed):
                lexical.add(key, *lexical_texts(published[key]))
        self.revisions = published
        self._rendered = {k: v for k, v in self._rendered.items() if k in published}
        self.key_of = {(entry.id, entry.revision): key for key, entry in published.items()}
        self._in_force_cache = None
        by_entry: dict[str, list[Entry]] = {}
        for entry in published.values():
            by_entry.setdefault(entry.id, []).append(entry)
        self.by_entry = by_entry

    def save(self) -> Path:
        with self._lock:
            self.lexical.save(self.settings.index_dir, self.dense.knowledge_revision)
            self.chars.save(self.settings.index_dir, self.dense.knowledge_revision)
            return self.dense.save(self.settings.index_dir)

    # -- searching ------------------------------------------------------------------

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalized embeddings of ``texts`` with the engine's encoder."""
        return np.asarray(
            self.encoder.encode(texts, normalize_embeddings=True, show_progress_bar=False),
            dtype="float32",
        )

    def search(self, query: str, *, as_of: dt.date | None = None, top_k: int = 5) -> Decision:
        """Rank the entries answered on ``as_of`` (default today) and decide."""
        as_of = as_of or self.city.today()
        # A lone surrogate ("\ud800" in JSON) cannot be analysed: it becomes "?".
        query = query[:MAX_QUERY_CHARS].encode("utf-8", "replace").decode("utf-8")
        terms = content_terms(query)
        with self._lock:
            self.sync()
            in_force = self._in_force(as_of)
            vector = self.encode([query])[0]
            dense: dict[str, float] = {}
            for row, score in self.dense.search(vector, limit=max(200, top_k * 20)):
                weighted = score * KIND_WEIGHT.get(row.kind, 1.0)
                if row.key in in_force and weighted > dense.get(row.key, -1.0):
                    dense[row.key] = weighted
            weights = self.lexical.query_weights(terms)
            words = self.lexical.hits(terms, self._in_force_mask)
            chars = self.chars.hits(char_grams(query), self._in_force_chars)
            # Full scores only for the best few on each side: a search stays
            # proportional to what it returns, not to the knowledge base.
            shortlist = set(sorted(dense, key=dense.__getitem__, reverse=True)[:SHORTLIST])
            shortlist.update(words.top(SHORTLIST))
            shortlist.update(chars.top(SHORTLIST))
            w = RANK_WEIGHTS
            scored = []
            for key in shortlist:
                dense_score = max(0.0, dense.get(key, 0.0))
                coverage = self.lexical.coverage(weights, key)
                score = (
                    w["dense"] * dense_score
                    + w["coverage"] * coverage
                    + w["words"] * words.relative(key)
                    + w["chars"] * chars.relative(key)
                )
                scored.append((round(score, 6), key, dense_score, coverage))
            scored.sort(key=lambda item: (-item[0], self.revisions[item[1]].id))
            candidates = [
                Candidate(
                    entry_id=self.revisions[key].id,
                    revision=self.revisions[key].revision,
                    title=self.revisions[key].title,
                    score=score,
                    dense=round(dense_score, 6),
                    lexical=round(coverage, 6),
                )
                for score, key, dense_score, coverage in scored[:top_k]
            ]
            revision = self.dense.knowledge_revision
        examples = self._out_of_scope_vectors
        out_of_scope = round(float((examples @ vector).max()), 6) if len(examples) else 0.0
        # Ties are broken by id (above) so equal scores never reorder between processes.
        return self._decide(candidates, revision, out_of_scope)

    def search_in_context(
        self,
        query: str,
        context_entry_id: str | None,
        *,
        as_of: dt.date | None = None,
        top_k: int = 5,
    ) -> Decision:
        """Search a follow-up in the light of the entry the resident was just given.

        「いつまでに払えばいい？」 after an answer about premiums says too little alone. If
        the question by itself does not lead to an answer, it is asked again prefixed with
        the previous entry's title, and that is used if it does. A question that answers
        by itself (a new topic) is never bent towards the previous entry.
        """
        plain = self.search(query, as_of=as_of, top_k=top_k)
        if plain.kind == "answer" or not context_entry_id:
            return plain
        try:
            context = self.entry(context_entry_id, as_of=as_of)
        except EntryNotFound:
            return plain
        framed = self.search(f"{context.title} {query}", as_of=as_of, top_k=top_k)
        return framed if framed.kind == "answer" else plain

    def preview(
        self, queries: list[str], draft: Entry | None, *, as_of: dt.date | None = None
    ) -> tuple[list[Decision], list[Decision | None]]:
        """Each query's decision now, and as it would be with ``draft`` published in place
        of its entry's revisions (an editor's preview; nothing is saved).

        The draft is indexed exactly as publishing would index it, searched, and taken
        out again, all under the engine's lock; it appears as revision 0. The index after
        a preview ranks exactly as before it (BM25 statistics are integer counts).
        """
        as_of = as_of or self.city.today()
        with self._lock:
            self.sync()
            now = [self.search(q, as_of=as_of) for q in queries]
            if draft is None:
                return now, [None] * len(queries)
            staged = replace(draft, status="published", revision=0)
            key = f"preview:{revision_key(staged)}"
            original = self.revisions
            published = {k: e for k, e in original.items() if e.id != draft.id}
            published[key] = staged
            pairs = entry_texts(staged)
            self.dense.add(key, [kind for kind, _ in pairs], self.encode([t for _, t in pairs]))
            self._previewing = True
            try:
                self._set_revisions(published)
                after = [self.search(q, as_of=as_of) for q in queries]
            finally:
                self.dense.remove(key)
                self._set_revisions(original)
                self._previewing = False
        return now, after

    def _in_force(self, as_of: dt.date) -> frozenset[str]:
        if self._in_force_cache is None or self._in_force_cache[0] != as_of:
            keys = frozenset(
                self.key_of[(chosen.id, chosen.revision)]
                for revisions in self.by_entry.values()
                if (chosen := revision_in_force(revisions, as_of)) is not None
            )
            self._in_force_cache = (as_of, keys)
            self._in_force_mask = self.lexical.mask(keys)
            self._in_force_chars = self.chars.mask(keys)
        return self._in_force_cache[1]

    def _decide(self, candidates: list[Candidate], revision: int, out_of_scope: float) -> Decision:
        if not candidates:
            return Decision("handoff", 0.0, (), revision, out_of_scope)
        evidence = Evidence.of(candidates, out_of_scope)
        kind = str(decide(evidence, self.settings))
        confidence = evidence.confidence
        return Decision(kind, confidence, tuple(candidates), revision, out_of_scope)

    def entry(
        self, entry_id: str, revision: int | None = None, as_of: dt.date | None = None
    ) -> Entry:
        """A published revision as residents see it (city placeholders filled in): the
        given ``revision``, else the one in force on ``as_of``. Every path shows this."""
        with self._lock:
            revisions = self.by_entry.get(entry_id, [])
            if revision is None:
                chosen = revision_in_force(revisions, as_of or self.city.today())
            else:
                chosen = next((r for r in revisions if r.revision == revision), None)
            if chosen is None:
                raise EntryNotFound(entry_id, revision)
            # Rendered once per revision (a revision's content never changes; replace()
            # re-validates the whole entry, which a staff lookup did five times a request).
            key = self.key_of[(chosen.id, chosen.revision)]
            rendered = self._rendered.get(key)
            if rendered is None:
                rendered = replace(chosen, answer=self.city.render(chosen.answer))
                self._rendered[key] = rendered
            return rendered
