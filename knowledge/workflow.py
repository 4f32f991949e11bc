"""The editorial workflow: draft -> in review -> published, archive, rollback.

Each step is one transaction that also appends to the audit log (who, when, what, with
the diff) and, when what can be answered changes, bumps the knowledge revision so that
every running engine refreshes its index.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlite_utils

from knowledge.errors import Problem
from knowledge.model import (
    SCHEMA_FIELDS,
    Entry,
    EntryNotFound,
    InvalidEntry,
    WorkflowError,
    entry_from_mapping,
    question_key,
)
from knowledge.privacy import mask_personal_data
from knowledge.store import (
    all_revisions,
    bump_knowledge_revision,
    get_revision,
    insert_revision,
    latest_revision,
    now_iso,
    record_audit,
    revisions_of,
    set_status,
    write_transaction,
)
from knowledge.tickets import get_ticket, text_digest


@dataclass(frozen=True)
class Policy:
    """Rules a city can set. ``separate_approver``: nobody approves their own revision."""

    separate_approver: bool = True


# Fields whose values the audit log may hold as they are: they cannot carry free text.
_PLAIN_FIELDS = frozenset({"id", "valid_from", "valid_until"})


def _audited(name: str, value: Any) -> Any:
    if name in _PLAIN_FIELDS or value is None:
        return value
    text = "\n".join(value) if isinstance(value, list) else str(value)
    return text_digest(text) if text else ""


def diff(old: Entry | None, new: Entry) -> dict[str, dict[str, Any]]:
    """Changed content fields as the audit log keeps them: ``{field: {"from", "to"}}``,
    dates and ids as they are, text as its length and hash (the text itself is in the
    revisions; the append-only audit log must hold nothing that may need deleting)."""
    before = old.content() if old else {}
    after = new.content()
    return {
        name: {"from": _audited(name, before.get(name)), "to": _audited(name, after[name])}
        for name in SCHEMA_FIELDS
        if before.get(name) != after[name]
    }


def phrasing_problems(entries: Iterable[Entry], others: Iterable[Entry]) -> list[Problem]:
    """Phrasings that are the same (after normalization) as another entry's.

    A resident typing that phrasing could not be told which entry they mean, so each
    phrasing must belong to exactly one entry, unless the entries have the same title and
    different answers: the same question with different answers (two offices, two cases)
    is kept as two entries on purpose, and the engine offers both. The same question with
    the same answer is a duplicate (a second proposal from one ticket), and is refused.
    """
    owner: dict[str, tuple[str, str, str, str]] = {}
    for other in others:
        for question in other.questions:
            owner.setdefault(
                question_key(question), (other.id, question, other.title, other.answer)
            )
    problems = []
    for entry in entries:
        for position, question in enumerate(entry.questions, start=1):
            key = question_key(question)
            taken = owner.get(key)
            same_title = (
                taken
                and question_key(taken[2]) == question_key(entry.title)
                and " ".join(taken[3].split()) != " ".join(entry.answer.split())
            )
            if taken and taken[0] != entry.id and not same_title:
                problems.append(
                    Problem(
                        entry.id,
                        "questions",
                        f"item {position} 「{question}」 is the same as 「{taken[1]}」 "
                        f"of entry {taken[0]!r}",
                        "item.phrasing_taken",
                        item=position,
                        question=question,
                        other_entry=taken[0],
                        other_question=taken[1],
                    )
                )
            elif not taken:
                owner[key] = (entry.id, question, entry.title, entry.answer)
    return problems


def live_others(db: sqlite_utils.Database, excluding: set[str]) -> list[Entry]:
    """The latest non-archived revision of every other entry: whose phrasings are taken."""
    live = []
    for entry_id, revisions in all_revisions(db).items():
        if entry_id in excluding:
            continue
        current = [r for r in revisions if r.status != "archived"]
        if current:
            live.append(current[-1])
    return live


def check_phrasings(db: sqlite_utils.Database, entries: list[Entry]) -> None:
    problems = phrasing_problems(entries, live_others(db, {e.id for e in entries}))
    if problems:
        raise InvalidEntry(problems)


def add_revision(
    db: sqlite_utils.Database,
    entry: Entry,
    *,
    actor: str,
    action: str,
    publish: bool,
) -> tuple[Entry, bool]:
    """Store ``entry`` as the next revision unless it equals the latest one.

    Call inside a write transaction; the caller bumps the knowledge revision once for
    the whole transaction. Returns (the revision, whether it was new).
    """
    latest = latest_revision(db, entry.id)
    wanted = "published" if publish else "draft"
    if latest is not None and latest.content() == entry.content() and latest.status == wanted:
        return latest, False
    stamp = now_iso()
    revision = dataclasses.replace(
        entry,
        revision=(latest.revision if latest else 0) + 1,
        status=wanted,
        author=actor,
        created_at=stamp,
        reviewer=actor if publish else "",
        published_at=stamp if publish else "",
    )
    insert_revision(db, revision)
    record_audit(
        db,
        actor=actor,
        action=action,
        entry_id=revision.id,
        revision=revision.revision,
        detail={"status": wanted, "changes": diff(latest, revision)},
    )
    return revision, True


def save_draft(
    db: sqlite_utils.Database, data: Mapping[str, Any], *, actor: str, new: bool = False
) -> Entry:
    """Validate ``data`` (the import schema) and store it as a new draft revision.
    ``new``: the entry must not exist yet (an editor creating one, not changing another)."""
    entry = entry_from_mapping(data)
    with write_transaction(db):
        if new and latest_revision(db, entry.id) is not None:
            taken = Problem(entry.id, "id", "is already used by another entry", "id.taken")
            raise InvalidEntry([taken])
        check_phrasings(db, [entry])
        revision, _ = add_revision(db, entry, actor=actor, action="save_draft", publish=False)
    return revision


def _require(entry: Entry, *statuses: str) -> None:
    if entry.status not in statuses:
        raise WorkflowError(
            f"entry {entry.id!r} revision {entry.revision} is {entry.status}; "
            f"this needs it to be {' or '.join(statuses)}",
            code="workflow.wrong_status",
            entry_id=entry.id,
            revision=entry.revision,
            status=entry.status,
            needed=list(statuses),
        )


def submit_for_review(
    db: sqlite_utils.Database, entry_id: str, revision: int, *, actor: str
) -> Entry:
    with write_transaction(db):
        entry = get_revision(db, entry_id, revision)
        _require(entry, "draft")
        set_status(db, entry_id, revision, "in_review")
        record_audit(db, actor=actor, action="submit", entry_id=entry_id, revision=revision)
    return get_revision(db, entry_id, revision)


def approve(
    db: sqlite_utils.Database,
    entry_id: str,
    revision: int,
    *,
    actor: str,
    policy: Policy = Policy(),
) -> Entry:
    """Publish a revision in review. It is answered from its ``valid_from`` on."""
    with write_transaction(db):
        entry = get_revision(db, entry_id, revision)
        _require(entry, "in_review")
        if policy.separate_approver and actor == entry.author:
            raise WorkflowError(
                f"{actor!r} wrote entry {entry_id!r} revision {revision}; "
                "another editor must approve it",
                code="workflow.self_approval",
                entry_id=entry_id,
                revision=revision,
            )
        set_status(db, entry_id, revision, "published", reviewer=actor, published_at=now_iso())
        record_audit(
            db,
            actor=actor,
            action="publish",
            entry_id=entry_id,
            revision=revision,
            detail={"valid_from": entry.content()["valid_from"]},
        )
        bump_knowledge_revision(db)
    return get_revision(db, entry_id, revision)


def archive(db: sqlite_utils.Database, entry_id: str, *, actor: str, reason: str = "") -> None:
    """Withdraw an entry: none of its revisions is answered any more."""
    with write_transaction(db):
        revisions = revisions_of(db, entry_id)
        if not revisions:
            raise EntryNotFound(entry_id)
        published = [r for r in revisions if r.status == "published"]
        if not published:
            raise WorkflowError(
                f"entry {entry_id!r} has no published revision to archive",
                code="workflow.nothing_to_archive",
                entry_id=entry_id,
            )
        for entry in published:
            set_status(db, entry_id, entry.revision, "archived")
        record_audit(
            db,
            actor=actor,
            action="archive",
            entry_id=entry_id,
            revision=published[-1].revision,
            detail={
                "reason": mask_personal_data(reason),
                "revisions": [r.revision for r in published],
            },
        )
        bump_knowledge_revision(db)


def rollback(db: sqlite_utils.Database, entry_id: str, to_revision: int, *, actor: str) -> Entry:
    """Publish again the content of an earlier published revision, as a new revision."""
    with write_transaction(db):
        target = get_revision(db, entry_id, to_revision)
        _require(target, "published", "archived")
        restored, added = add_revision(
            db, target, actor=actor, action=f"rollback_to_{to_revision}", publish=True
        )
        if added:
            bump_knowledge_revision(db)
    return restored


def _free_id(db: sqlite_utils.Database, base: str) -> str:
    candidate, n = base, 1
    while latest_revision(db, candidate) is not None:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def propose_from_ticket(
    db: sqlite_utils.Database,
    ticket_id: int,
    *,
    actor: str,
    entry_id: str | None = None,
    title: str | None = None,
    question: str | None = None,
    answer: str | None = None,
) -> Entry:
    """A new draft entry for editors from a handoff: the resident's question and what
    staff answered, unless given, with personal numbers masked.

    A proposal never reads or builds on another entry's revisions (staff may not see
    drafts in review): an ``entry_id`` that is already taken is refused
    (:class:`WorkflowError`); editors merge a proposal into an entry themselves.
    """
    ticket = get_ticket(db, ticket_id)
    question = (question or ticket.question).replace("\n", " ").strip()
    if answer is None:
        answer = "\n\n".join(
            str(t["text"]).strip() for t in ticket.transcript if t.get("role") == "staff"
        )
    question, answer = mask_personal_data(question), mask_personal_data(answer)
    title = mask_personal_data((title or question[:40]).strip())
    with write_transaction(db):
        if entry_id and latest_revision(db, entry_id) is not None:
            raise WorkflowError(
                f"entry {entry_id!r} already exists; a proposal makes a new entry: "
                "leave the id empty or choose one that is not used",
                code="workflow.proposal_id_taken",
                entry_id=entry_id,
            )
        entry_id = entry_id or _free_id(db, f"ticket-{ticket_id}")
        note = f"問い合わせ #{ticket_id} への職員の回答から提案（{actor}）"
        entry = entry_from_mapping(
            {
                "id": entry_id,
                "title": title,
                "answer": answer,
                "questions": [question] if question else [],
                "staff_notes": note,
            }
        )
        check_phrasings(db, [entry])
        revision, _ = add_revision(
            db, entry, actor=actor, action="propose_from_ticket", publish=False
        )
        record_audit(
            db,
            actor=actor,
            action="ticket.propose",
            entry_id=revision.id,
            revision=revision.revision,
            detail={"ticket": ticket_id},
        )
    return revision
