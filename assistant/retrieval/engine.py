"""The one call every path answers through: ``Engine.search(query, as_of) -> Decision``.

Resident chat (through the Rasa action), staff lookup, the CLI and the editor preview all
call this, so the same question and knowledge revision give the same entry and text.

The index holds every published revision, today's and scheduled ones; a search picks,
per entry, the revision in force on ``as_of``. So answers switch on an effective date by
themselves. Before each search the engine compares the database's knowledge revision
with its own and applies what changed (add, replace, remove revisions), so a publish in
one process reaches every other process's next question, with no restart.

Ranking (assistant.retrieval.ranking): for each entry, the transformer's best cosine between the
query and its title, phrasings or answer passages; the word vectors' best cosine; and
BM25 over words and over two-character pieces, each relative to the best entry's.

Deciding uses absolute evidence about the best entry: its cosine, its lead over the
runner-up and the share of the query's words it covers give the estimated probability
that it answers (the decision's confidence) and that one of the first three does. The
engine answers when the first is high, offers the first three when the second is, and
hands off otherwise, or when the question is closer to an out-of-scope example. Relative
BM25 is 1.0 for the best entry of any query: it orders entries, it cannot tell whether
the best one answers.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import logging
import threading
from dataclasses import replace
from pathlib import Path

import numpy as np
import sqlite_utils

from assistant.operations.config import Settings
from assistant.retrieval.errors import IndexUnavailable
from assistant.retrieval.index import DenseIndex
from assistant.retrieval.lexical import LexicalIndex
from assistant.retrieval.out_of_scope import load_examples
from assistant.retrieval.ranking import (
    FOREIGN_WORD_IDF,
    OUT_OF_SCOPE_NEIGHBOURS,
    WORD_VECTOR_KIND_WEIGHT,
    Candidate,
    Decision,
    Evidence,
    Thresholds,
    answer_probability,
    decide,
    entry_texts,
    lexical_texts,
    out_of_scope_closeness,
    question_texts,
    rank_score,
    transformer_texts,
)
from assistant.retrieval.text import char_grams, content_terms
from assistant.retrieval.vectors import Encoder
from knowledge.city import CityProfile
from knowledge.model import Entry, EntryNotFound, revision_in_force
from knowledge.store import knowledge_revision, open_db, published_revisions

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 2000
# How many entries from each side (dense, lexical) get a full score.
SHORTLIST = 50
# A follow-up with at most this many content words is read in the previous topic.
FOLLOW_UP_WORDS = 2
# Revisions encoded together while indexing.
INDEX_BATCH = 64
# Where the word vectors' index is saved, inside the index directory.
WORD_VECTORS_DIR = "word-vectors"
# An out-of-scope example this close to one of the entries' own questions says nothing
# about being out of scope in this knowledge base (a city that answers 「パスポート」
# questions itself): it is left out.
OUT_OF_SCOPE_PRUNE = 0.93
QUESTION_KINDS = ("title", "question")

__all__ = ["Candidate", "Decision", "Engine", "Evidence", "decide", "thresholds"]


def thresholds(settings: Settings) -> Thresholds:
    return Thresholds(
        answer=settings.answer_threshold,
        choices=settings.clarify_threshold,
        floor=settings.clarify_floor,
        out_of_scope_margin=settings.out_of_scope_margin,
    )


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
        encoder: Encoder,
        dense: DenseIndex,
        city: CityProfile,
        word_vectors: tuple[Encoder, DenseIndex] | None = None,
    ):
        self.settings = settings
        self.db = db
        self.encoder = encoder  # the transformer
        self.dense = dense  # its vectors of every published revision's texts
        # chiVe word vectors and their index: a second dense signal (None: not used)
        self.word_encoder, self.word_dense = word_vectors or (None, None)
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
        # During a preview, each question's vectors by (encoder, text): it is asked twice.
        self._query_memo: dict[tuple[int, str], np.ndarray] | None = None
        self.out_of_scope = load_examples(settings.out_of_scope_path)
        self._all_out_of_scope = encoder.encode(self.out_of_scope, "query")
        self._all_out_of_scope_terms = [frozenset(content_terms(e)) for e in self.out_of_scope]
        self._out_of_scope_terms = self._all_out_of_scope_terms  # less those pruned (sync)
        self._out_of_scope_vectors = self._all_out_of_scope  # less those pruned (sync)
        # What the knowledge base's own texts said about the decision (sync): reported by
        # the index commands and /api/health.
        self.calibration: dict[str, int] = {}

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
        encoder = Encoder(settings.encoder_path)
        fingerprint, dimension = encoder.fingerprint, encoder.dimension
        words = Encoder(settings.word_vectors_path) if settings.word_vectors_path else None
        word_dense = None
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
                if words is not None:
                    word_dense = DenseIndex.load(settings.index_dir / WORD_VECTORS_DIR)
                    if word_dense.encoder_fingerprint != words.fingerprint:
                        raise IndexUnavailable(
                            f"word-vector index was built with {word_dense.encoder_fingerprint}; "
                            f"the configured word vectors are {words.fingerprint}"
                        )
                    word_dense.set_nprobe(settings.nprobe)
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
                dense = word_dense = None
        if words is not None and (dense is None or word_dense is None):
            dense = None
            word_dense = DenseIndex.empty(words.dimension, -1, words.fingerprint)
        engine = cls(
            settings,
            db,
            encoder,
            dense or DenseIndex.empty(dimension, -1, fingerprint),
            CityProfile.load(settings.city_path),
            (words, word_dense) if words is not None else None,
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
                for index in self._dense_indexes():
                    index.remove(key)
            pending: list[str] = []
            for key in progress(fresh) if progress else fresh:
                pending.append(key)
                if len(pending) == INDEX_BATCH:
                    self._index([(k, published[k]) for k in pending])
                    pending = []
            self._index([(k, published[k]) for k in pending])
            converted = False
            for index in self._dense_indexes():
                if not index.approximate and len(index.rows) >= self.settings.approximate_from:
                    log.info("index: %d vectors, switching to IVF search", len(index.rows))
                    index.to_approximate(self.settings.nprobe)
                    converted = True
            changed = bool(stale or fresh or converted) or self.dense.knowledge_revision != revision
            for index in self._dense_indexes():
                index.knowledge_revision = revision
            self._set_revisions(published)
            if stale or fresh or self._out_of_scope_vectors is self._all_out_of_scope:
                self._prune_out_of_scope()
            if stale or fresh:
                log.info(
                    "index: +%d -%d revisions (knowledge revision %d)",
                    len(fresh),
                    len(stale),
                    revision,
                )
            return changed

    def _dense_indexes(self) -> list[DenseIndex]:
        return [self.dense] + ([self.word_dense] if self.word_dense is not None else [])

    def _index(self, items: list[tuple[str, Entry]]) -> None:
        """Add revisions to every index."""
        self._index_dense_many(items)
        for key, entry in items:
            for lexical in (self.lexical, self.chars):
                lexical.add(key, *lexical_texts(entry))

    def _index_dense_many(self, items: list[tuple[str, Entry]]) -> None:
        """Add revisions to the dense indexes; their texts are encoded together (a batch
        is much faster than one text at a time), each role in one call."""
        if not items:
            return
        texts = [transformer_texts(entry) for _, entry in items]
        flat = [row for rows in texts for row in rows]
        vectors = np.zeros((len(flat), self.encoder.dimension), dtype="float32")
        for role in ("query", "passage"):
            at = [i for i, (_, r, _) in enumerate(flat) if r == role]
            if at:
                vectors[at] = self.encoder.encode([flat[i][2] for i in at], role)
        self._add_per_key(self.dense, items, [[k for k, _, _ in rows] for rows in texts], vectors)
        if self.word_dense is not None:
            pairs = [entry_texts(entry) for _, entry in items]
            word_vectors = self.word_encoder.encode(
                [t for rows in pairs for _, t in rows], "passage"
            )
            kinds = [[k for k, _ in rows] for rows in pairs]
            self._add_per_key(self.word_dense, items, kinds, word_vectors)

    @staticmethod
    def _add_per_key(index: DenseIndex, items, kinds: list[list[str]], vectors) -> None:
        """Each revision's rows, which lie one after another in ``vectors``."""
        start = 0
        for (key, _), row_kinds in zip(items, kinds, strict=True):
            index.add(key, row_kinds, vectors[start : start + len(row_kinds)])
            start += len(row_kinds)

    def _prune_out_of_scope(self) -> None:
        """Leave out the out-of-scope examples that this knowledge base answers: those
        close to one of its own questions. ``self.calibration`` records what was found.

        Leaving out also the examples the knowledge base would answer directly (answer
        probability >= 0.8) was measured and not kept: FAQ served 0.768 -> 0.793, but an
        example is often there to guard exactly such a near miss (「パスポートの申請」
        against the ID-documents entry), and the starter set lost one (0.883 -> 0.867)."""
        examples = self._all_out_of_scope
        keep = np.array(
            [
                max(
                    (
                        score
                        for row, score in self.dense.search(vector, 20)
                        if row.kind in QUESTION_KINDS
                    ),
                    default=-1.0,
                )
                < OUT_OF_SCOPE_PRUNE
                for vector in examples
            ],
            dtype=bool,
        )
        if not keep.all():
            log.info(
                "out of scope: %d of %d examples left out, as close to an entry's own text",
                int((~keep).sum()),
                len(keep),
            )
        self._out_of_scope_vectors = examples[keep]
        self._out_of_scope_terms = [
            t for t, k in zip(self._all_out_of_scope_terms, keep, strict=True) if k
        ]
        self.calibration = {
            "knowledge_revision": self.dense.knowledge_revision,
            "out_of_scope_examples": len(keep),
            "left_out_close_to_an_entry": int((~keep).sum()),
            "out_of_scope_examples_used": int(keep.sum()),
            **self._phrasings_report(),
        }

    def _phrasings_report(self) -> dict[str, int]:
        """How many question texts the entries in force have: what ranking.phrasing_bonus
        reads (a one-question FAQ list is read with the full bonus)."""
        in_force = self._in_force(self.city.today())
        counts = sorted(question_texts(self.revisions[k]) for k in in_force)
        return {
            "entries": len(counts),
            "entries_with_one_question": sum(1 for n in counts if n <= 1),
            "median_question_texts": counts[len(counts) // 2] if counts else 0,
        }

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
            if self.word_dense is not None:
                self.word_dense.save(self.settings.index_dir / WORD_VECTORS_DIR)
            return self.dense.save(self.settings.index_dir)

    # -- searching ------------------------------------------------------------------

    def encode(self, texts: list[str], role: str = "query") -> np.ndarray:
        """Normalized embeddings of ``texts`` with the engine's transformer."""
        return self.encoder.encode(texts, role)

    def search(self, query: str, *, as_of: dt.date | None = None, top_k: int = 5) -> Decision:
        """Rank the entries answered on ``as_of`` (default today) and decide."""
        as_of = as_of or self.city.today()
        # A lone surrogate ("\ud800" in JSON) cannot be analysed: it becomes "?".
        query = query[:MAX_QUERY_CHARS].encode("utf-8", "replace").decode("utf-8")
        terms = content_terms(query)
        with self._lock:
            self.sync()
            in_force = self._in_force(as_of)
            vector = self._query_vector(self.encoder, query)
            limit = max(200, top_k * 20)
            dense = self._best_per_entry(self.dense.search(vector, limit), in_force)
            word_dense: dict[str, float] = {}
            if self.word_dense is not None:
                word_dense = self._best_per_entry(
                    self.word_dense.search(self._query_vector(self.word_encoder, query), limit),
                    in_force,
                    WORD_VECTOR_KIND_WEIGHT,
                )
            weights = self.lexical.query_weights(terms)
            words = self.lexical.hits(terms, self._in_force_mask)
            chars = self.chars.hits(char_grams(query), self._in_force_chars)
            # Full scores only for the best few on each side: a search stays
            # proportional to what it returns, not to the knowledge base.
            shortlist = set(sorted(dense, key=dense.__getitem__, reverse=True)[:SHORTLIST])
            shortlist.update(
                sorted(word_dense, key=word_dense.__getitem__, reverse=True)[:SHORTLIST]
            )
            shortlist.update(words.top(SHORTLIST))
            shortlist.update(chars.top(SHORTLIST))
            scored = []
            for key in shortlist:
                dense_score = max(0.0, dense.get(key, 0.0))
                coverage = self.lexical.coverage(weights, key)
                score = rank_score(
                    dense_score,
                    word_dense.get(key, 0.0),
                    words.relative(key),
                    chars.relative(key),
                    question_texts(self.revisions[key]),
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
                    coverage=round(coverage, 6),
                    phrasings=question_texts(self.revisions[key]),
                )
                for score, key, dense_score, coverage in scored[:top_k]
            ]
            revision = self.dense.knowledge_revision
            similarities = self._out_of_scope_vectors @ vector
            foreign = bool(scored) and self._foreign_words(terms, similarities, scored[0][1])
        out_of_scope = out_of_scope_closeness(similarities)
        # Ties are broken by id (above) so equal scores never reorder between processes.
        known = bool(words.top(1)) or not terms
        return self._decide(candidates, revision, out_of_scope, len(set(terms)), known, foreign)

    def _query_vector(self, encoder, query: str) -> np.ndarray:
        """``encoder.query(query)``; inside a preview, once per text (a question is encoded
        alone, so the vector is the same either way)."""
        memo = self._query_memo
        if memo is None:
            return encoder.query(query)
        key = (id(encoder), query)
        if key not in memo:
            memo[key] = encoder.query(query)
        return memo[key]

    def _foreign_words(self, terms: list[str], similarities: np.ndarray, best: str) -> bool:
        """Whether the question has a word that the closest out-of-scope examples have,
        the best entry (revision key ``best``) lacks, and few entries have
        (ranking.FOREIGN_WORD_IDF)."""
        if not len(similarities):
            return False
        closest = np.argsort(-similarities, kind="stable")[:OUT_OF_SCOPE_NEIGHBOURS]
        near = frozenset().union(*(self._out_of_scope_terms[int(i)] for i in closest))
        entry = self.lexical.terms(best)
        return any(
            t in near and t not in entry and self.lexical.idf(t) >= FOREIGN_WORD_IDF
            for t in set(terms)
        )

    @staticmethod
    def _best_per_entry(hits, in_force, kind_weight=None) -> dict[str, float]:
        """Each revision in force: its best (kind-weighted) cosine among the hits."""
        best: dict[str, float] = {}
        for row, score in hits:
            if kind_weight:
                score *= kind_weight.get(row.kind, 1.0)
            if row.key in in_force and score > best.get(row.key, -1.0):
                best[row.key] = score
        return best

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
        if not context_entry_id:
            return plain
        # A short follow-up (two words or fewer: 「コンビニでも払える？」) is read in the
        # topic first; a longer question that answers by itself is a new topic.
        elliptic = len(set(content_terms(query))) <= FOLLOW_UP_WORDS
        if plain.kind == "answer" and not elliptic:
            return plain
        try:
            context = self.entry(context_entry_id, as_of=as_of)
        except EntryNotFound:
            return plain
        framed = self.search(f"{context.title} {query}", as_of=as_of, top_k=top_k)
        if framed.kind == "answer" or plain.kind == "answer":
            return framed if framed.kind == "answer" else plain
        # Neither answers: the choices within the topic, if there are any.
        return framed if framed.kind == "clarify" else plain

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
            self._query_memo = {}
            try:
                return self._preview(queries, draft, as_of)
            finally:
                self._query_memo = None

    def _preview(
        self, queries: list[str], draft: Entry | None, as_of: dt.date
    ) -> tuple[list[Decision], list[Decision | None]]:
        """``preview``'s work, under the engine's lock."""
        now = [self.search(q, as_of=as_of) for q in queries]
        if draft is None:
            return now, [None] * len(queries)
        staged = replace(draft, status="published", revision=0)
        key = f"preview:{revision_key(staged)}"
        original = self.revisions
        published = {k: e for k, e in original.items() if e.id != draft.id}
        published[key] = staged
        self._index_dense_many([(key, staged)])
        self._previewing = True
        try:
            self._set_revisions(published)
            after = [self.search(q, as_of=as_of) for q in queries]
        finally:
            for index in self._dense_indexes():
                index.remove(key)
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

    def _decide(
        self,
        candidates: list[Candidate],
        revision: int,
        out_of_scope: float,
        words: int = 2,
        known: bool = True,
        foreign: bool = False,
    ) -> Decision:
        if not candidates:
            return Decision("handoff", 0.0, (), revision, out_of_scope, words, known, foreign)
        evidence = Evidence.of(candidates, out_of_scope, words, known, foreign)
        kind = str(decide(evidence, thresholds(self.settings)))
        confidence = round(float(answer_probability(evidence)), 6)
        return Decision(
            kind, confidence, tuple(candidates), revision, out_of_scope, words, known, foreign
        )

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
