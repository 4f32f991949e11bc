"""Import and export of entries as JSONL, YAML or CSV.

JSONL: one entry per line, ``{"id", "title", "questions": [...], "answer"}`` plus the
optional fields of :data:`knowledge.model.SCHEMA_FIELDS`.
YAML: a directory with one ``<id>.yaml`` file per entry (how the starter entries are
kept and reviewed), or a single file holding a list of entries.
CSV: for Excel. Exported as UTF-8 with a byte-order mark, CRLF line ends, one column per
field in schema order; list fields (questions, documents, tags) hold one item per line
inside their cell (:data:`CSV_LIST_SEPARATOR`). Imported CSV and JSONL may be UTF-8
(with or without the mark) or CP932 (Shift_JIS), told apart by decoding. A cell that a
spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return; a resident's question can reach an entry through a staff proposal) is
written with a leading ``'``, which Excel shows as text and hides; import takes that
``'`` off again. A cell that itself starts with ``'`` before such a character gets one
more, so every cell comes back from a round trip exactly as it was.

A city's file is taken as it is (:mod:`knowledge.intake`: its column names, no ids, one
question per entry, line-break markers; :mod:`knowledge.duplicates`: entries twice).
The whole file is checked in one pass and every problem is reported. A record that
cannot be an entry (unparsable, invalid) is rejected and the rest is imported, in one
transaction; with ``strict`` one rejected record refuses the whole file. Nothing is
written on a hard error: a file that cannot be read, an unknown format or column, a
duplicate under ``on_duplicate="error"``, or every record rejected.
Exports are deterministic: entries by id, fields in schema order, fixed formatting.
"""

from __future__ import annotations

import codecs
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

from knowledge.duplicates import ON_DUPLICATE, Candidate, resolve
from knowledge.intake import canonical_field, derived_id, line_text, prepare
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


@dataclass
class Rejected:
    """A record that was refused: where it was, what it held, and why."""

    position: int
    where: str
    record: Any
    reasons: list[str]

    def as_json(self) -> dict[str, Any]:
        return {"where": self.where, "reasons": self.reasons, "record": self.record}


class ImportFailed(KnowledgeError):
    """The import was rejected; nothing was written. ``problems`` holds one line each;
    ``rejected`` the records refused on their own (for a rejects file)."""

    def __init__(self, source: str, problems: list[str], rejected: Iterable[Rejected] = ()):
        self.problems = problems
        self.rejected = list(rejected)
        listed = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"import of {source} rejected, nothing was changed:\n{listed}")


@dataclass
class Record:
    """One record as read: ``data`` to validate, or ``problems`` if it could not be read."""

    position: int
    where: str
    raw: Any
    data: Any = None
    problems: list[str] = field(default_factory=list)


@dataclass
class Checked:
    """What a file holds once checked: the entries to write and what became of the rest."""

    entries: list[Entry] = field(default_factory=list)
    sources: dict[str, Candidate] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    merged: int = 0
    skipped: int = 0

    def reject(self, candidate: Candidate, reasons: list[str]) -> None:
        self.rejected.append(Rejected(candidate.position, candidate.where, candidate.raw, reasons))
        self.rejected.sort(key=lambda rejected: rejected.position)
        self.entries = [e for e in self.entries if e.id != candidate.entry.id]
        del self.sources[candidate.entry.id]

    def problems(self) -> list[str]:
        return [reason for rejected in self.rejected for reason in rejected.reasons]


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    merged: int = 0
    skipped: int = 0
    warnings: list[str] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"created {len(self.created)}, updated {len(self.updated)}, "
            f"unchanged {len(self.unchanged)}, rejected {len(self.rejected)}, "
            f"merged {self.merged}, skipped {self.skipped}, warned {len(self.warnings)}"
        )


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise KnowledgeError(f"unknown format {fmt!r}; use one of: {', '.join(FORMATS)}")


def read_records(path: Path, fmt: str) -> tuple[list[Record], list[str]]:
    """The file's records, with where each came from (``file:line`` or file name), and
    notes on how it was read. A file that cannot be read at all raises."""
    _check_format(fmt)
    path = Path(path)
    if not path.exists():
        raise KnowledgeError(f"{path} does not exist")
    if fmt in ("jsonl", "csv"):
        if path.is_dir():
            raise KnowledgeError(f"{path} is a directory; {fmt.upper()} import needs a file")
        text, encoding = decode(path.read_bytes(), path.name)
        notes = [f"{path.name}: read as CP932 (Shift_JIS)"] if encoding == "cp932" else []
        records = _read_jsonl(text, path.name) if fmt == "jsonl" else _read_csv(text, path.name)
        return records, notes
    return _read_yaml(path), []


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode(data: bytes, name: str) -> tuple[str, str]:
    """The text and its encoding: UTF-8 (a byte-order mark dropped) if it decodes
    strictly, else CP932, the Shift_JIS of Windows and of Excel's Japanese CSV. Real
    Japanese text in one almost never decodes as the other. A file marked as UTF-8 is
    UTF-8 or broken."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8"
        except UnicodeDecodeError as error:
            offset = error.start + len(codecs.BOM_UTF8)
            raise ImportFailed(
                name,
                [
                    f"{name}: marked as UTF-8 but byte 0x{data[offset]:02x} at offset {offset} "
                    f"(line {_line_of(data, offset)}) is not UTF-8"
                ],
            ) from None
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8:
        try:
            return data.decode("cp932"), "cp932"
        except UnicodeDecodeError as cp932:
            raise ImportFailed(
                name,
                [
                    f"{name}: neither UTF-8 nor CP932 (Shift_JIS) text: byte "
                    f"0x{data[utf8.start]:02x} at offset {utf8.start} "
                    f"(line {_line_of(data, utf8.start)}) is not UTF-8, and byte "
                    f"0x{data[cp932.start]:02x} at offset {cp932.start} "
                    f"(line {_line_of(data, cp932.start)}) is not CP932"
                ],
            ) from None


def _csv_header(header: list[str], name: str) -> list[str | None]:
    """Each column's field (None: a column without a heading); unknown, doubled or
    missing columns raise, all listed."""
    fields: list[str | None] = []
    problems = []
    given: dict[str, str] = {}
    for heading in header:
        if not heading.strip():
            fields.append(None)
            continue
        column = canonical_field(heading)
        column = "questions" if column == "question" else column
        if column not in SCHEMA_FIELDS:
            problems.append(f"{name}: unknown column {heading!r}")
        elif column in given:
            problems.append(
                f"{name}: columns {given[column]!r} and {heading!r} are both {column!r}"
            )
        given.setdefault(column, heading)
        fields.append(column)
    if "answer" not in given:
        problems.append(f"{name}: required column 'answer' (回答) is missing")
    if not {"title", "questions"} & set(given):
        problems.append(f"{name}: a column 'title' or 'question' (質問) is required")
    if problems:
        raise ImportFailed(name, problems)
    return fields


def _csv_record(header: list[str], fields: list[str | None], row: list[str]) -> dict:
    record: dict[str, Any] = {}
    for heading, column, value in zip(header, fields, row, strict=False):
        if column is None:
            continue
        value = csv_value(value).replace("\r\n", "\n")
        if column in _CSV_LIST_FIELDS and canonical_field(heading) != "question":
            items = [item for item in value.split(CSV_LIST_SEPARATOR) if item.strip()]
            record[column] = items or None
        elif column == "questions":  # a city's one-question column: a wrapped line
            record[column] = [line_text(value, breaks=True)] if value.strip() else None
        else:
            record[column] = value if value.strip() else None
    return record


def _read_csv(text: str, name: str) -> list[Record]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, [])
    except csv.Error as error:
        raise ImportFailed(name, [f"{name}:1: not valid CSV ({error})"]) from None
    fields = _csv_header(header, name)
    records = []
    line = reader.line_num
    while True:
        start = line + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:  # a cell over the csv module's size limit
            line = reader.line_num
            where = f"{name}:{start}"
            records.append(
                Record(len(records), where, None, None, [f"{where}: not valid CSV ({error})"])
            )
            continue
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue  # a blank row (Excel leaves them at the end)
        where = f"{name}:{start}"
        raw = dict(zip(header, row, strict=False)) if len(row) <= len(header) else row
        problems = []
        extra = [cell for cell in row[len(header) :] if cell.strip()]
        if len(row) < len(header) or extra:
            problems.append(f"{where}: has {len(row)} cells; the header has {len(header)}")
        unnamed = [
            position
            for position, (column, cell) in enumerate(zip(fields, row, strict=False), start=1)
            if column is None and cell.strip()
        ]
        problems += [f"{where}: cell {n} has a value but its column no heading" for n in unnamed]
        records.append(Record(len(records), where, raw, _csv_record(header, fields, row), problems))
    return records


def unreadable(error: ValueError | RecursionError) -> str:
    """What the JSON or YAML parser choked on, beyond a syntax error, in a few words."""
    if isinstance(error, RecursionError):
        return "nested too deeply"
    return str(error).splitlines()[0].split(": value has")[0]


def _read_jsonl(text: str, name: str) -> list[Record]:
    records = []
    # Split at line feeds only: JSON text may hold U+2028 and other breaks unescaped.
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as error:
            why = f"not valid JSON ({error.msg} at column {error.colno})"
        except (ValueError, RecursionError) as error:
            why = f"not valid JSON ({unreadable(error)})"
        else:
            records.append(Record(len(records), where, data, data))
            continue
        records.append(Record(len(records), where, line, None, [f"{where}: {why}"]))
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


def _read_yaml(path: Path) -> list[Record]:
    """A directory: one record per file, a file that does not parse a rejected record.
    A single file: its list of entries, or nothing if it does not parse."""
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    records: list[Record] = []
    for file in files:
        text = data = why = None
        try:
            text = file.read_text(encoding="utf-8-sig")
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as error:
            why = f"{file.name}: not valid YAML ({str(error).splitlines()[0]})"
        except (ValueError, RecursionError) as error:  # bad UTF-8, !!int abc, deep nesting
            why = f"{file.name}: not valid YAML ({unreadable(error)})"
        if not path.is_dir():
            if why is None and not isinstance(data, list):
                why = f"{file.name}: a YAML import file must hold a list of entries"
            if why is not None:
                raise ImportFailed(str(path), [why])
            records.extend(
                Record(n, f"{file.name} item {n + 1}", item, item) for n, item in enumerate(data)
            )
        elif why is not None:
            records.append(Record(len(records), file.name, text, None, [why]))
        else:
            problems = []
            if isinstance(data, dict) and data.get("id") != file.stem:
                problems.append(f"{file.name}: id {data.get('id')!r} must match the file name")
            records.append(Record(len(records), file.name, data, data, problems))
    return records


def check_records(records: list[Record], source: str, on_duplicate: str = "warn") -> Checked:
    """Validate every record and settle duplicates; raise ImportFailed only for
    duplicates under ``on_duplicate="error"`` (listing every problem of the file)."""
    if on_duplicate not in ON_DUPLICATE:
        raise KnowledgeError(
            f"unknown --on-duplicate {on_duplicate!r}; use one of: {', '.join(ON_DUPLICATE)}"
        )
    checked = Checked()
    candidates = []
    for record in records:
        if record.problems:
            checked.rejected.append(
                Rejected(record.position, record.where, record.raw, record.problems)
            )
            continue
        data, problems = prepare(record.data)
        try:
            entry = entry_from_mapping(data)
        except InvalidEntry as error:
            problems = problems + error.problems
        if problems:
            checked.rejected.append(
                Rejected(
                    record.position,
                    record.where,
                    record.raw,
                    [f"{record.where}: entry {e!r}, field {f!r}: {why}" for e, f, why in problems],
                )
            )
            continue
        candidates.append(Candidate(record.position, record.where, record.raw, entry))
    resolution = resolve(candidates, on_duplicate)
    if resolution.problems:
        raise ImportFailed(source, checked.problems() + resolution.problems, checked.rejected)
    checked.warnings = resolution.warnings
    checked.merged, checked.skipped = resolution.merged, resolution.skipped
    checked.entries = [candidate.entry for candidate in resolution.kept]
    checked.sources = {candidate.entry.id: candidate for candidate in resolution.kept}
    _reject_taken_phrasings(checked, [])
    derived = sum(1 for e in checked.entries if e.id.startswith(derived_id(e.title)))
    if derived:
        checked.notes.append(f"{derived} entries without an id: ids derived from the question")
    return checked


def _reject_taken_phrasings(checked: Checked, others: list[Entry]) -> None:
    """An entry with a phrasing of another entry (earlier in the file, or in the
    knowledge base) is rejected: a resident typing it could not be told which is meant."""
    reasons: dict[str, list[str]] = {}
    for eid, name, why in phrasing_problems(checked.entries, others):
        where = checked.sources[eid].where
        reasons.setdefault(eid, []).append(f"{where}: entry {eid!r}, field {name!r}: {why}")
    for eid, lines in reasons.items():
        checked.reject(checked.sources[eid], lines)


def check_file(path: Path, fmt: str, on_duplicate: str = "warn") -> Checked:
    """Check a file as an import would, without a database. Raises ImportFailed on a
    hard error (every problem listed); rejected records are in the result."""
    records, notes = read_records(path, fmt)
    checked = check_records(records, str(path), on_duplicate)
    checked.notes = notes + checked.notes
    return checked


def validate_file(path: Path, fmt: str) -> list[Entry]:
    """The entries of a file that imports with no record rejected; else ImportFailed."""
    checked = check_file(path, fmt)
    if checked.rejected:
        raise ImportFailed(str(path), checked.problems(), checked.rejected)
    return checked.entries


def write_rejects(path: Path, rejected: Iterable[Rejected]) -> None:
    """One JSON line per refused record: where it was, why, and the record as read."""
    lines = (json.dumps(r.as_json(), ensure_ascii=False, default=str) + "\n" for r in rejected)
    Path(path).write_text("".join(lines), encoding="utf-8", errors="surrogateescape")


def import_entries(
    db: sqlite_utils.Database,
    path: Path,
    fmt: str,
    *,
    publish: bool = False,
    actor: str = "import",
    on_duplicate: str = "warn",
    strict: bool = False,
    progress: Callable[[Iterable[Entry]], Iterable[Entry]] = lambda items: items,
) -> ImportReport:
    """Check everything in ``path``, then write the entries accepted in one transaction.

    Each new or changed entry becomes a new revision: published with ``publish``, else a
    draft for review. Entries equal to their latest revision are left unchanged.
    Rejected records are reported; with ``strict``, or when no record is accepted, they
    refuse the import and nothing is written.
    """
    checked = check_file(path, fmt, on_duplicate)
    report = ImportReport(
        merged=checked.merged,
        skipped=checked.skipped,
        warnings=checked.warnings,
        notes=checked.notes,
    )
    with write_transaction(db):
        others = live_others(db, set(checked.sources))
        _reject_taken_phrasings(checked, others)
        report.rejected = checked.rejected
        if checked.rejected and (strict or not checked.entries):
            raise ImportFailed(str(path), checked.problems(), checked.rejected)
        known = {row[0] for row in db.execute("SELECT DISTINCT entry_id FROM revisions")}
        for entry in progress(checked.entries):
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
    the city's today, as in ``store.get_entry``), else the latest. Returns the number
    written.

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
