"""What learning from handoffs gains, measured (``madoguchi eval --replay``).

On a copy of the knowledge database (in a temporary folder; the live one is only read),
half of a dev set's in-scope questions are replayed through the library as handoffs
that staff resolve with the entry that answers them (the first of the best grade in the
qrels), so each becomes a suggested phrasing; one editor accepts every suggestion (or,
``careful``, only those the queue shows without a conflict, as a careful editor would),
another approves each draft. The other half, and the out-of-scope questions, are
evaluated before and after, with the same metrics as ``madoguchi eval``.

Which half a question is in depends only on its id (a hash), so every run, on every
machine, splits the set the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.operations.config import Settings
from assistant.retrieval.engine import Engine
from assistant.retrieval.evaluation import Report, answering, evaluate
from assistant.retrieval.learning import conflict_of
from knowledge.backup import backup
from knowledge.errors import KnowledgeError
from knowledge.model import InvalidEntry
from knowledge.store import open_db
from knowledge.suggestions import accept, list_suggestions
from knowledge.tickets import open_ticket, resolve_ticket
from knowledge.workflow import approve, submit_for_review

STAFF = "replay-staff"
EDITOR, REVIEWER = "replay-editor", "replay-reviewer"
Progress = Callable[[str, int, int], None]  # (step, done, total)


@dataclass(frozen=True)
class ReplayReport:
    taught: int  # questions replayed as resolved handoffs
    suggested: int  # of them, suggestions stored (not already a phrasing, not refused)
    accepted: int  # wordings accepted (and published)
    refused: int  # wordings the workflow refused (another entry's phrasing, too many)
    before: Report  # the asked half (and the out-of-scope questions) before learning
    after: Report  # and after
    skipped: int = 0  # careful: wordings left open because the queue showed a conflict

    def as_dict(self) -> dict:
        counts = {k: v for k, v in dataclasses.asdict(self).items() if isinstance(v, int)}
        return counts | {"before": self.before.as_dict(), "after": self.after.as_dict()}

    def lines(self) -> list[str]:
        counts = (
            f"taught {self.taught} questions: {self.suggested} suggested, "
            f"{self.accepted} wordings accepted, {self.refused} refused"
            + (f", {self.skipped} left open for a conflict" if self.skipped else "")
        )
        rows = [f"{'':<24} {'before':>8} {'after':>8}"]
        before, after = self.before.as_dict(), self.after.as_dict()
        rows += [f"{name:<24} {before[name]:>8} {after[name]:>8}" for name in before]
        return [counts, *rows]


def taught_half(query_id: str) -> bool:
    """Whether a question is replayed as a handoff (else it is asked): by its id alone."""
    return hashlib.sha256(query_id.encode("utf-8")).digest()[0] % 2 == 0


def split(
    queries: list[tuple[str, str]], qrels: dict[str, dict[str, int]]
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(taught, asked): the in-scope questions by ``taught_half``; the out-of-scope ones
    are all asked (learning must not make the assistant answer them)."""
    taught = [q for q in queries if qrels.get(q[0]) and taught_half(q[0])]
    chosen = {query_id for query_id, _ in taught}
    return taught, [q for q in queries if q[0] not in chosen]


def _copy_home(settings: Settings, folder: Path) -> Settings:
    """The database (a consistent snapshot) and the index, copied under ``folder``."""
    home = folder / "home"
    home.mkdir()
    backup(settings.database_path, home / settings.database_path.name)
    if settings.index_dir.is_dir():
        shutil.copytree(settings.index_dir, home / settings.index_dir.name)
    return dataclasses.replace(settings, home=home)


def _teach(db, taught, qrels, progress: Progress | None) -> int:
    """Each taught question as a handoff resolved with its entry; how many suggested."""
    for done, (query_id, text) in enumerate(taught, 1):
        best = answering(qrels[query_id])
        entry_id = next(e for e in qrels[query_id] if e in best)
        ticket = open_ticket(
            db,
            session_id=f"replay-{query_id}",
            reason="two_failed_turns",
            transcript=[{"role": "resident", "text": text}],
            candidates=[],
        )
        try:
            resolve_ticket(db, ticket.id, STAFF, entry_id=entry_id, question=text)
        except KnowledgeError:  # a question no phrasing can be (too long), an unknown entry
            resolve_ticket(db, ticket.id, STAFF)
        if progress:
            progress("teach", done, len(taught))
    return db.execute("SELECT count(*) FROM suggestions WHERE actor = ?", [STAFF]).fetchone()[0]


def _accept_all(
    db, progress: Progress | None, engine: Engine | None = None
) -> tuple[int, int, int]:
    """Every open wording accepted into a draft by one editor and published by another:
    (accepted, refused, skipped). A group the workflow refuses is tried one wording at a
    time. With ``engine``, a wording with a conflict (``learning.conflict_of``, checked
    as the queue shows it, after the groups before it are published) is left open."""
    groups = list_suggestions(db)
    accepted = refused = skipped = 0
    for done, group in enumerate(groups, 1):
        wordings = list(group.wordings)
        if engine is not None:
            clear = [w for w in wordings if conflict_of(db, engine, group.entry_id, w.text) is None]
            skipped += len(wordings) - len(clear)
            wordings = clear
        draft = None
        try:
            if wordings:
                draft = accept(db, group.entry_id, [(w.id, None) for w in wordings], actor=EDITOR)
                accepted += len(wordings)
        except InvalidEntry:
            for wording in wordings:
                try:
                    draft = accept(db, group.entry_id, [(wording.id, None)], actor=EDITOR)
                    accepted += 1
                except InvalidEntry:
                    refused += 1
        if draft is not None:
            submit_for_review(db, draft.id, draft.revision, actor=EDITOR)
            approve(db, draft.id, draft.revision, actor=REVIEWER)
        if progress:
            progress("accept", done, len(groups))
    return accepted, refused, skipped


def replay(
    settings: Settings,
    queries: list[tuple[str, str]],
    qrels: dict[str, dict[str, int]],
    *,
    progress: Progress | None = None,
    careful: bool = False,
) -> ReplayReport:
    """Learn from half of ``queries`` on a copy of ``settings``' database; measure the
    other half before and after. ``careful``: accept only wordings without a conflict."""
    taught, asked = split(queries, qrels)
    with tempfile.TemporaryDirectory(prefix="madoguchi-replay-") as folder:
        copy = _copy_home(settings, Path(folder))
        engine = Engine.load(copy)
        try:
            before = evaluate(asked, qrels, _search(engine, "before", len(asked), progress))
            db = open_db(copy.database_path)
            try:
                suggested = _teach(db, taught, qrels, progress)
                accepted, refused, skipped = _accept_all(db, progress, engine if careful else None)
            finally:
                db.close()
            after = evaluate(asked, qrels, _search(engine, "after", len(asked), progress))
        finally:
            engine.db.close()
    return ReplayReport(len(taught), suggested, accepted, refused, before, after, skipped)


def _search(engine: Engine, step: str, total: int, progress: Progress | None):
    done = 0

    def search(text: str):
        nonlocal done
        decision = engine.search(text, top_k=10)
        done += 1
        if progress:
            progress(step, done, total)
        return decision

    return search
