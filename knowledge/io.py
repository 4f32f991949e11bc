"""Import and export of entries as JSONL or YAML.

JSONL: one entry per line, ``{"id", "title", "questions": [...], "answer"}`` plus the
optional fields of :data:`knowledge.model.SCHEMA_FIELDS`.
YAML: a directory with one ``<id>.yaml`` file per entry (how the starter entries are
kept and reviewed), or a single file holding a list of entries.

Imports are all or nothing: every entry is validated first, and one bad entry rejects
the whole file with every problem listed, leaving the database untouched.
Exports are deterministic: entries by id, fields in schema order, fixed formatting.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import sqlite_utils
import yaml

from knowledge.model import Entry, InvalidEntry, KnowledgeError, entry_from_mapping
from knowledge.store import (
    all_entries,
    bump_knowledge_revision,
    find_entry,
    save_entry,
    write_transaction,
)

FORMATS = ("jsonl", "yaml")


class ImportFailed(KnowledgeError):
    """The import was rejected; nothing was written. ``problems`` holds one line each."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"import of {source} rejected, nothing was changed:\n{listed}")


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {len(self.created)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, rejected 0"
        )


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise KnowledgeError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def read_records(path: Path, fmt: str) -> list[tuple[str, Any]]:
    """Raw records with where each came from (``file:line`` or file name)."""
    _check_format(fmt)
    path = Path(path)
    if not path.exists():
        raise KnowledgeError(f"{path} does not exist")
    if fmt == "jsonl":
        if path.is_dir():
            raise KnowledgeError(f"{path} is a directory; JSONL import needs a file")
        return _read_jsonl(path)
    return _read_yaml(path)


def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    records, problems = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(str(path), [f"{path}: not UTF-8 text ({error.reason})"]) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path.name}:{number}", json.loads(line)))
        except json.JSONDecodeError as error:
            problems.append(
                f"{path.name}:{number}: not valid JSON ({error.msg} at column {error.colno})"
            )
    if problems:
        raise ImportFailed(str(path), problems)
    return records


def _read_yaml(path: Path) -> list[tuple[str, Any]]:
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    records, problems = [], []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8-sig"))
        except (yaml.YAMLError, UnicodeDecodeError) as error:
            problems.append(f"{file.name}: not valid YAML ({str(error).splitlines()[0]})")
            continue
        if path.is_dir():
            records.append((file.name, data))
            if isinstance(data, dict) and data.get("id") != file.stem:
                problems.append(f"{file.name}: id {data.get('id')!r} must match the file name")
        elif isinstance(data, list):
            records.extend((f"{file.name} item {n}", item) for n, item in enumerate(data, 1))
        else:
            problems.append(f"{file.name}: a YAML import file must hold a list of entries")
    if problems:
        raise ImportFailed(str(path), problems)
    return records


def validate_records(records: list[tuple[str, Any]], source: str, status: str) -> list[Entry]:
    entries, problems, seen = [], [], {}
    for where, record in records:
        try:
            entry = entry_from_mapping(record, status=status)
        except InvalidEntry as error:
            problems.extend(
                f"{where}: entry {e!r}, field {f!r}: {why}" for e, f, why in error.problems
            )
            continue
        if entry.id in seen:
            problems.append(
                f"{where}: entry {entry.id!r}, field 'id': duplicate of {seen[entry.id]}"
            )
            continue
        seen[entry.id] = where
        entries.append(entry)
    if problems:
        raise ImportFailed(source, problems)
    return entries


def import_entries(
    db: sqlite_utils.Database,
    path: Path,
    fmt: str,
    *,
    publish: bool = False,
    progress: Callable[[Iterable[Entry]], Iterable[Entry]] = lambda items: items,
) -> ImportReport:
    """Validate everything in ``path``, then write it in one transaction.

    New and changed entries are stored as ``published`` with ``publish``, else as drafts.
    """
    status = "published" if publish else "draft"
    entries = validate_records(read_records(path, fmt), str(path), status)
    report = ImportReport()
    with write_transaction(db):
        for entry in progress(entries):
            current = find_entry(db, entry.id)
            if current is None:
                save_entry(db, _with_revision(entry, 1))
                report.created.append(entry.id)
            elif current.content() == entry.content() and current.status == entry.status:
                report.unchanged.append(entry.id)
            else:
                save_entry(db, _with_revision(entry, current.revision + 1))
                report.updated.append(entry.id)
        if report.created or report.updated:
            bump_knowledge_revision(db)
    return report


def _with_revision(entry: Entry, revision: int) -> Entry:
    return replace(entry, revision=revision)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line text as ``|`` blocks, so exported answers read like the originals."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _represent_str)


def _dump_yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_BlockDumper, allow_unicode=True, sort_keys=False, width=1000, indent=2
    )


def export_entries(db: sqlite_utils.Database, path: Path, fmt: str) -> int:
    """Write every entry to ``path``; returns the number written.

    YAML goes to a directory of ``<id>.yaml`` files unless ``path`` ends in .yaml/.yml.
    """
    _check_format(fmt)
    path = Path(path)
    entries = all_entries(db)
    if fmt == "jsonl":
        lines = (json.dumps(e.content(), ensure_ascii=False, sort_keys=False) for e in entries)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif path.suffix in (".yaml", ".yml"):
        path.write_text(_dump_yaml([e.content() for e in entries]), encoding="utf-8")
    else:
        path.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            (path / f"{entry.id}.yaml").write_text(_dump_yaml(entry.content()), encoding="utf-8")
    return len(entries)
