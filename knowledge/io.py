"""Import and export of entries as JSONL or YAML.

JSONL: one entry per line, ``{"id", "title", "questions": [...], "answer"}`` plus the
optional fields of :data:`knowledge.model.SCHEMA_FIELDS`.
YAML: a directory with one ``<id>.yaml`` file per entry (how the starter entries are
kept and reviewed), or a single file holding a list of entries.
CSV: for Excel. UTF-8 with a byte-order mark, CRLF line ends, one column per field in
schema order; list fields (questions, documents, tags) hold one item per line inside
their cell (:data:`CSV_LIST_SEPARATOR`). A cell that a spreadsheet would read as a
formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return; a
resident's question can reach an entry through a staff proposal) is written with a
leading ``'``, which Excel shows as text and hides; import takes that ``'`` off again.
A cell that itself starts with ``'`` before such a character gets one more, so every
cell comes back from a round trip exactly as it was.

Imports are all or nothing: every entry is validated first, and one bad entry rejects
the whole file with every problem listed, leaving the database untouched.
Exports are deterministic: entries by id, fields in schema order, fixed formatting.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils
import yaml

from knowledge.model import (
    SCHEMA_FIELDS,
    Entry,
    InvalidEntry,
    KnowledgeError,
    entry_from_mapping,
)
from knowledge.store import bump_knowledge_revision, current_entries, write_transaction
from knowledge.workflow import add_revision, live_others, phrasing_problems

FORMATS = ("jsonl", "yaml", "csv")
CSV_LIST_SEPARATOR = "\n"
_CSV_LIST_FIELDS = ("questions", "documents", "tags")
# Cells a spreadsheet would run as a formula, after any apostrophes already there.
_FORMULA = re.compile(r"'*[=+\-@\t\r]")


def csv_cell(value: str) -> str:
    """``value`` safe to open in a spreadsheet: a formula becomes text (leading ``'``)."""
    return "'" + value if _FORMULA.match(value) else value


def csv_value(cell: str) -> str:
    """The value :func:`csv_cell` wrote: one leading ``'`` taken off a neutralised cell."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell) else cell


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
    if fmt in ("jsonl", "csv"):
        if path.is_dir():
            raise KnowledgeError(f"{path} is a directory; {fmt.upper()} import needs a file")
        return _read_jsonl(path) if fmt == "jsonl" else _read_csv(path)
    return _read_yaml(path)


def _read_csv(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(str(path), [f"{path.name}: not UTF-8 text ({error.reason})"]) from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as error:
        raise ImportFailed(str(path), [f"{path.name}:1: not valid CSV ({error})"]) from None
    problems = [
        f"{path.name}: unknown column {name!r}" for name in header if name not in SCHEMA_FIELDS
    ]
    problems += [
        f"{path.name}: required column {name!r} is missing"
        for name in ("id", "title", "questions", "answer")
        if name not in header
    ]
    if problems:
        raise ImportFailed(str(path), problems)
    records = []
    rows = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as error:  # a NUL byte, a cell over the csv module's size limit
        raise ImportFailed(
            str(path), [f"{path.name}:{reader.line_num}: not valid CSV ({error})"]
        ) from None
    for line, row in rows:
        record: dict[str, Any] = {}
        for name, cell in row.items():
            if name is None or cell is None:
                problems.append(f"{path.name}:{line}: wrong number of cells")
                continue
            value = csv_value(cell)
            if name in _CSV_LIST_FIELDS:
                record[name] = [item for item in value.split(CSV_LIST_SEPARATOR) if item.strip()]
            elif name in ("valid_from", "valid_until"):
                record[name] = value or None
            else:
                record[name] = value
        records.append((f"{path.name}:{line}", record))
    if problems:
        raise ImportFailed(str(path), problems)
    return records


def unreadable(error: ValueError | RecursionError) -> str:
    """What the JSON or YAML parser choked on, beyond a syntax error, in a few words."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).splitlines()[0].split(": value has")[0]


def _read_jsonl(path: Path) -> list[tuple[str, Any]]:
    records, problems = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise ImportFailed(str(path), [f"{path}: not UTF-8 text ({error.reason})"]) from None
    # Lines end at "\n" only: str.splitlines() also splits at U+0085 and U+2028, which
    # JSON strings may hold unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"{path.name}:{number}", json.loads(line)))
        except json.JSONDecodeError as error:
            problems.append(
                f"{path.name}:{number}: not valid JSON ({error.msg} at column {error.colno})"
            )
        except (ValueError, RecursionError) as error:
            problems.append(f"{path.name}:{number}: not valid JSON ({unreadable(error)})")
    if problems:
        raise ImportFailed(str(path), problems)
    return records


class _Loader(yaml.SafeLoader):
    """Safe loading, but a date that does not exist (2027-02-30) stays text, so that
    validation names the entry and the field instead of the parser failing."""


def _timestamp(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    try:
        return yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp)


def _read_yaml(path: Path) -> list[tuple[str, Any]]:
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    records, problems = [], []
    for file in files:
        try:
            data = yaml.load(file.read_text(encoding="utf-8-sig"), Loader=_Loader)
        except yaml.YAMLError as error:
            problems.append(f"{file.name}: not valid YAML ({str(error).splitlines()[0]})")
            continue
        except (ValueError, RecursionError) as error:  # bad UTF-8, !!int abc, deep nesting
            problems.append(f"{file.name}: not valid YAML ({unreadable(error)})")
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


def validate_records(records: list[tuple[str, Any]], source: str) -> list[Entry]:
    entries, problems, seen = [], [], {}
    for where, record in records:
        try:
            entry = entry_from_mapping(record)
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
    problems.extend(
        f"{seen[e]}: entry {e!r}, field {f!r}: {why}"
        for e, f, why in phrasing_problems(entries, [])
    )
    if problems:
        raise ImportFailed(source, problems)
    return entries


def validate_file(path: Path, fmt: str) -> list[Entry]:
    """Check a file as an import would, without a database; raise ImportFailed."""
    return validate_records(read_records(path, fmt), str(path))


def import_entries(
    db: sqlite_utils.Database,
    path: Path,
    fmt: str,
    *,
    publish: bool = False,
    actor: str = "import",
    progress: Callable[[Iterable[Entry]], Iterable[Entry]] = lambda items: items,
) -> ImportReport:
    """Validate everything in ``path``, then write it in one transaction.

    Each new or changed entry becomes a new revision: published with ``publish``, else a
    draft for review. Entries equal to their latest revision are left unchanged.
    """
    entries = validate_file(path, fmt)
    report = ImportReport()
    with write_transaction(db):
        others = live_others(db, {entry.id for entry in entries})
        clashes = phrasing_problems(entries, others)
        if clashes:
            raise ImportFailed(
                str(path), [f"entry {e!r}, field {f!r}: {why}" for e, f, why in clashes]
            )
        known = {row[0] for row in db.execute("SELECT DISTINCT entry_id FROM revisions")}
        for entry in progress(entries):
            _, added = add_revision(db, entry, actor=actor, action="import", publish=publish)
            if not added:
                report.unchanged.append(entry.id)
            elif entry.id in known:
                report.updated.append(entry.id)
            else:
                report.created.append(entry.id)
        if publish and (report.created or report.updated):
            bump_knowledge_revision(db)
    return report


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


def _csv_text(entries: list[Entry]) -> str:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(SCHEMA_FIELDS)
    for entry in entries:
        content = entry.content()
        writer.writerow(
            csv_cell(
                CSV_LIST_SEPARATOR.join(content[name])
                if name in _CSV_LIST_FIELDS
                else ("" if content[name] is None else content[name])
            )
            for name in SCHEMA_FIELDS
        )
    return "\ufeff" + out.getvalue()


def export_entries(
    db: sqlite_utils.Database, path: Path, fmt: str, as_of: dt.date | None = None
) -> int:
    """Write one revision per entry to ``path``: the one in force on ``as_of`` (default
    today), else the latest. Returns the number written.

    YAML goes to a directory of ``<id>.yaml`` files unless ``path`` ends in .yaml/.yml.
    """
    _check_format(fmt)
    path = Path(path)
    entries = current_entries(db, as_of)
    if fmt == "csv":
        path.write_bytes(_csv_text(entries).encode("utf-8"))
    elif fmt == "jsonl":
        lines = (json.dumps(e.content(), ensure_ascii=False, sort_keys=False) for e in entries)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    elif path.suffix in (".yaml", ".yml"):
        path.write_text(_dump_yaml([e.content() for e in entries]), encoding="utf-8")
    else:
        path.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            (path / f"{entry.id}.yaml").write_text(_dump_yaml(entry.content()), encoding="utf-8")
    return len(entries)
