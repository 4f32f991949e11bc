"""The madoguchi command: ``main(argv)`` in this process (torch loads once, not per call),
and as a real process where the point is the process itself (its umask, its environment)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys

import pytest

from assistant.operations.cli import main
from knowledge.store import SCHEMA_VERSION
from tests.conftest import STARTER, STARTER_COUNT


def madoguchi_process(settings, *args: str) -> subprocess.CompletedProcess:
    """``madoguchi ARGS`` as a process of its own (it loads torch: ~10 s a search)."""
    env = {
        **os.environ,
        "MADOGUCHI_HOME": str(settings.home),
        "MADOGUCHI_ENCODER": str(settings.encoder_path),
        "HF_HUB_OFFLINE": "1",
    }
    return subprocess.run(
        [sys.executable, "-m", "assistant.operations.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_import_then_export_jsonl(settings, tmp_path, madoguchi):
    result = madoguchi(settings, "kb", "import", str(STARTER), "--format", "yaml", "--publish")
    assert result.returncode == 0, result.stderr
    assert f"created {STARTER_COUNT}, updated 0, unchanged 0, rejected 0" in result.stdout
    # Publishing brought the index up to date: the next search does not rebuild it.
    assert f"index: {STARTER_COUNT} entries" in result.stdout
    assert re.search(r"out of scope: \d+ of \d+ examples used \(\d+ left out", result.stdout)
    assert re.search(
        rf"question texts: median \d+ per entry, \d+ of {STARTER_COUNT} entries", result.stdout
    )
    search = madoguchi(settings, "search", "粗大ごみを出したい")
    assert search.returncode == 0 and "rebuilding" not in search.stderr, search.stderr
    out = tmp_path / "kb.jsonl"
    assert madoguchi(settings, "kb", "export", str(out), "--format", "jsonl").returncode == 0
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert [line["id"] for line in lines] == sorted(p.stem for p in STARTER.glob("*.yaml"))
    assert set(lines[0]) >= {"id", "title", "questions", "answer", "department"}


def test_strict_import_of_a_bad_file_fails_with_the_line_and_changes_nothing(
    settings, tmp_path, madoguchi
):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "title": "t", "questions": ["q"], "answer": "a"}\n{oops\n')
    result = madoguchi(settings, "kb", "import", str(bad), "--format", "jsonl", "--strict")
    assert result.returncode == 1
    assert "bad.jsonl:2: not valid JSON" in result.stderr
    assert "nothing was changed" in result.stderr


def test_unknown_format_is_a_usage_error(settings, tmp_path, madoguchi):
    result = madoguchi(settings, "kb", "import", str(tmp_path), "--format", "xml")
    assert result.returncode == 2
    assert "invalid choice: 'xml'" in result.stderr


def test_search_json_and_batch(starter_settings, tmp_path, madoguchi):
    result = madoguchi(starter_settings, "search", "粗大ごみを出したい", "--json", "--top-k", "3")
    assert result.returncode == 0, result.stderr
    single = json.loads(result.stdout)
    assert single["decision"] == "answer"
    assert single["results"][0]["entry_id"] == "sodai-gomi"
    assert len(single["results"]) == 3

    batch = tmp_path / "q.jsonl"
    batch.write_text(
        '{"id": "q2", "text": "明日の天気は？"}\n{"id": 7, "text": "粗大ごみを出したい"}\n', "utf-8"
    )
    result = madoguchi(starter_settings, "search", "--batch", str(batch), "--top-k", "2")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["q2", 7]
    assert [r["decision"] for r in rows] == ["handoff", "answer"]
    assert rows[1]["results"][0] == {**single["results"][0]}
    assert set(rows[1]) == {"id", "decision", "confidence", "results"}


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"id": 1, "text": "a"}\nnot json\n', "q.jsonl:2: not valid JSON"),
        ('{"id": 1}\n', 'q.jsonl:1: "text" is required'),
        ('{"text": "住民票"}\n', 'q.jsonl:1: "id" is required'),
        ('["id", "text"]\n', "q.jsonl:1: each line must be an object"),
        ('{"id": 1, "text": "' + "あ" * 2001 + '"}\n', "limit 2000"),
    ],
)
def test_batch_rejects_bad_lines(starter_settings, tmp_path, madoguchi, content, message):
    batch = tmp_path / "q.jsonl"
    batch.write_text(content, "utf-8")
    result = madoguchi(starter_settings, "search", "--batch", str(batch))
    assert result.returncode == 1
    assert message in result.stderr
    assert result.stdout == ""


def test_search_needs_text_or_batch(starter_settings, madoguchi):
    result = madoguchi(starter_settings, "search")
    assert result.returncode == 1
    assert "give either TEXT or --batch FILE" in result.stderr


def test_bad_setting_is_named(settings):
    """A process of its own: the environment it starts with, its exit status."""
    env_settings = settings
    result = subprocess.run(
        [sys.executable, "-m", "assistant.operations.cli", "search", "x"],
        env={
            **os.environ,
            "MADOGUCHI_HOME": str(env_settings.home),
            "MADOGUCHI_ANSWER_THRESHOLD": "high",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "MADOGUCHI_ANSWER_THRESHOLD='high' is not a number" in result.stderr


def test_missing_encoder_says_how_to_build_it(settings, tmp_path, madoguchi):
    result = madoguchi(
        settings, "search", "住民票", env={"MADOGUCHI_ENCODER": str(tmp_path / "none")}
    )
    assert result.returncode == 1
    assert "madoguchi encoder build" in result.stderr


def test_validate_passes_on_the_starter_entries_and_fails_naming_entry_and_field(
    settings, tmp_path, madoguchi
):
    ok = madoguchi(settings, "kb", "validate", str(STARTER), "--format", "yaml")
    assert ok.returncode == 0, ok.stderr
    assert f"{STARTER_COUNT} entries are valid" in ok.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"id": "a", "title": "t", "questions": ["q"], "answer": "a", '
        '"valid_from": "2027-04-01", "valid_until": "2027-01-01"}\n',
        "utf-8",
    )
    result = madoguchi(settings, "kb", "validate", str(bad), "--format", "jsonl")
    assert result.returncode == 1
    assert "bad.jsonl:1: entry 'a', field 'valid_until': 2027-01-01 is before" in result.stderr


def test_history_archive_and_rollback(starter_settings, madoguchi):
    archived = madoguchi(starter_settings, "kb", "archive", "sodai-gomi", "--user", "suzuki")
    assert archived.returncode == 0, archived.stderr
    again = madoguchi(starter_settings, "kb", "archive", "sodai-gomi")
    assert again.returncode == 1
    assert "has no published revision to archive" in again.stderr
    rolled = madoguchi(starter_settings, "kb", "rollback", "sodai-gomi", "--to", "1")
    assert "revision 1 published again as revision 2" in rolled.stdout
    history = madoguchi(starter_settings, "kb", "history", "sodai-gomi")
    lines = history.stdout.splitlines()
    assert lines[0].startswith("r1  archived")
    assert lines[1].startswith("r2  published")
    assert any("suzuki" in line and "archive" in line for line in lines)


# A city's FAQ list as it publishes it: Shift_JIS from Excel, its own headings, no ids,
# markers for line breaks, entries twice, a few broken rows. Run in process (main(argv)).
CITY_FAQ = """\
番号,分類,質問,回答,担当課
,届出・証明,住民票の写しはどこで取れますか,市民課の窓口で取れます。<br>本人確認書類をお持ちください。,市民課
,届出・証明,住民票の写しはどこで取れますか,市民課の窓口で取れます。＜改＞本人確認書類をお持ちください。,市民課
,届出・証明,印鑑登録の手続きは,本人が窓口で申請してください。\\n登録は即日です。,市民課
,届出・証明,戸籍謄本を郵送で取りたい,本籍地の市区町村に請求します。,市民課
,届出・証明,戸籍謄本を郵送で取りたい,本籍地の市区町村に請求します。手数料は450円です。,市民課
,税金,市県民税の納期はいつですか,6月、8月、10月、1月の末日です。<BR />口座振替が便利です。,税務課
,税金,軽自動車税の納付方法,納付書でコンビニでも納められます。,税務課
,税金,固定資産税の評価額を知りたい,,税務課
,保険,国民健康保険に加入したい,会社を辞めたら14日以内に届け出てください。,保険年金課
,保険,国民健康保険料の計算方法,所得割と均等割の合計です。<改>詳しくは保険年金課へ。,保険年金課
,保険,後期高齢者医療の保険証,75歳の誕生月に郵送します。,保険年金課
,子育て,児童手当はいつ振り込まれますか,6月、10月、2月に振り込みます。,こども課
,子育て,児童手当はいつ振り込まれますか,公務員の方は勤務先から支給されます。,こども課
,子育て,保育園の申し込み,入園希望月の前月10日までに申し込みます。,こども課
,ごみ,粗大ごみの出し方,事前の申し込みが必要です。<br/>電話かインターネットで受け付けます。,環境課
,ごみ,ごみの分別がわからない,分別辞典をご覧ください。<script>alert(1)</script>,環境課
,ごみ,家電リサイクル品の処分,購入した店に引き取りを依頼してください。,環境課
,くらし,水道の使用開始,水道局に3日前までに連絡してください。,水道課,余分
,くらし,犬の登録をしたい,飼い始めて30日以内に登録してください。,環境課
,くらし,マイナンバーカードの受け取り,通知が届いたら予約して受け取ります。,市民課

,,,,
"""


def _city_csv(tmp_path):
    path = tmp_path / "faq.csv"
    path.write_bytes(CITY_FAQ.replace("\n", "\r\n").encode("cp932"))
    return path


@pytest.fixture
def run_cli(settings, madoguchi):
    """``madoguchi ARGV`` in this process over ``settings``: (exit status, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        result = madoguchi(settings, *argv)
        return result.returncode, result.stdout, result.stderr

    return run


def _rows(settings) -> list[tuple]:
    db = sqlite3.connect(settings.database_path)
    return [
        db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("revisions", "audit")
    ]


def test_a_citys_messy_faq_file_imports_as_it_is(settings, tmp_path, run_cli):
    path, rejects = _city_csv(tmp_path), tmp_path / "rejects.jsonl"
    code, out, err = run_cli(
        "kb", "import", str(path), "--format", "csv", "--rejects", str(rejects)
    )
    assert code == 0, err
    assert "faq.csv: read as CP932 (Shift_JIS)\n15 entries without an id" in out
    assert "created 15, updated 0, unchanged 0, rejected 3, merged 2, skipped 0, warned 3" in out
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert [w.split(": ", 2)[1] for w in warnings] == ["faq.csv:3", "faq.csv:6", "faq.csv:14"]
    assert "merged into it" in warnings[0]
    assert "keeping this longer answer (faq.csv:6)" in warnings[1]
    assert "imported as a separate entry, with the new id" in warnings[2]
    refused = [json.loads(line) for line in rejects.read_text("utf-8").splitlines()]
    assert [r["where"] for r in refused] == ["faq.csv:9", "faq.csv:17", "faq.csv:19"]
    assert refused[0]["record"]["質問"] == "固定資産税の評価額を知りたい"
    assert refused[0]["reasons"][0].endswith("field 'answer': is required and must not be empty")
    assert "must not contain HTML" in refused[1]["reasons"][0]
    assert refused[2]["reasons"] == ["faq.csv:19: has 6 cells; the header has 5"]

    exported = tmp_path / "out.jsonl"
    assert main(["kb", "export", str(exported), "--format", "jsonl"]) == 0
    entries = {e["title"]: e for e in map(json.loads, exported.read_text("utf-8").splitlines())}
    assert entries["住民票の写しはどこで取れますか"]["answer"] == (
        "市民課の窓口で取れます。\n本人確認書類をお持ちください。"
    )
    assert (
        entries["印鑑登録の手続きは"]["answer"]
        == "本人が窓口で申請してください。\n登録は即日です。"
    )
    assert entries["戸籍謄本を郵送で取りたい"]["answer"].endswith("手数料は450円です。")
    assert entries["国民健康保険料の計算方法"]["questions"] == ["国民健康保険料の計算方法"]
    assert entries["粗大ごみの出し方"]["department"] == "環境課"
    assert sum(e["title"] == "児童手当はいつ振り込まれますか" for e in entries.values()) == 1
    assert len(entries) == 14  # 15 entries, two of them under one question

    # The same file again: every entry found under the same id, nothing written.
    before = _rows(settings)
    code, out, _ = run_cli("kb", "import", str(path), "--format", "csv")
    assert code == 0 and "created 0, updated 0, unchanged 15, rejected 3" in out
    assert _rows(settings) == before


@pytest.mark.parametrize("option", [["--strict"], ["--on-duplicate", "error"]])
def test_a_refused_city_file_changes_nothing(settings, tmp_path, run_cli, option):
    path, rejects = _city_csv(tmp_path), tmp_path / "rejects.jsonl"
    first = tmp_path / "first.jsonl"
    first.write_text(
        '{"id": "a", "title": "t", "questions": ["q"], "answer": "a"}\n', encoding="utf-8"
    )
    run_cli("kb", "import", str(first), "--format", "jsonl")
    before = _rows(settings)
    code, _, err = run_cli(
        "kb", "import", str(path), "--format", "csv", "--rejects", str(rejects), *option
    )
    assert code == 1
    assert "nothing was changed" in err
    assert "faq.csv:9: entry" in err  # every problem listed, the rejected ones too
    assert _rows(settings) == before
    assert len(rejects.read_text("utf-8").splitlines()) == 3


def test_validate_lists_warnings_and_rejected_records(settings, tmp_path, run_cli):
    code, out, err = run_cli("kb", "validate", str(_city_csv(tmp_path)), "--format", "csv")
    assert code == 1
    assert err.count("warning: ") == 3
    assert "faq.csv:19: has 6 cells; the header has 5" in err


def test_cli_commands_leave_every_file_under_the_home_private(settings, tmp_path):
    """Regression: the database, its -wal/-shm and the index were 0644 in 0755 folders."""
    old = os.umask(0o022)
    try:
        settings.home.mkdir(parents=True)
        settings.home.chmod(0o755)
        loose = settings.home / "left-by-an-older-version.txt"
        loose.write_text("x")
        loose.chmod(0o644)
    finally:
        os.umask(old)
    # Processes of their own: the umask they run with is theirs (assistant.operations.files).
    result = madoguchi_process(
        settings, "kb", "import", str(STARTER), "--format", "yaml", "--publish"
    )
    assert result.returncode == 0, result.stderr
    assert "private to this user" in result.stderr  # the tightening is logged
    backup = madoguchi_process(settings, "backup", str(tmp_path / "backups"))
    assert backup.returncode == 0, backup.stderr
    for root in (settings.home, tmp_path / "backups"):
        modes = {
            str(path.relative_to(root)): path.stat().st_mode & 0o777
            for path in [root, *root.rglob("*")]
        }
        assert all(not mode & 0o077 for mode in modes.values()), modes
    assert settings.home.stat().st_mode & 0o777 == 0o700
    assert (settings.home / "madoguchi.db").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("command", [["kb", "history", "dog"], ["search", "犬の登録"]])
def test_a_database_newer_than_the_program_is_an_error_line(settings, madoguchi, command):
    """It was a traceback (a bare RuntimeError the CLI did not translate)."""
    settings.home.mkdir(parents=True)
    with sqlite3.connect(settings.database_path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    result = madoguchi(settings, *command)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: database schema version {SCHEMA_VERSION + 1} is newer than this program's"
    ), result.stderr
    assert "Traceback" not in result.stderr


def suggested(settings, text: str, entry_id: str = "sodai-gomi", source: str = "staff") -> int:
    from knowledge.store import open_db
    from knowledge.suggestions import suggest

    db = open_db(settings.database_path)
    try:
        return suggest(db, entry_id=entry_id, text=text, source=source, actor="sato")
    finally:
        db.close()


def test_suggestions_list_accept_and_reject(starter_settings, madoguchi):
    bed = suggested(starter_settings, "でかい家具をほかしたい")
    futon = suggested(starter_settings, "押し入れの布団を手放したい", source="resident")
    shop = suggested(starter_settings, "家具屋の連絡先")
    listed = madoguchi(starter_settings, "suggestions", "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "sodai-gomi  粗大ごみの出し方",
        f"  #{bed:<6} staff 1  resident 0  against 0  でかい家具をほかしたい",
        f"  #{shop:<6} staff 1  resident 0  against 0  家具屋の連絡先",
        f"  #{futon:<6} staff 0  resident 1  against 0  押し入れの布団を手放したい",
    ]
    assert "3 open wordings for 1 entries" in listed.stderr
    rejected = madoguchi(starter_settings, "suggestions", "reject", "--id", str(shop))
    assert rejected.returncode == 0 and "rejected 1 suggestions" in rejected.stdout
    accepted = madoguchi(starter_settings, "suggestions", "accept", "sodai-gomi", "--all")
    assert accepted.returncode == 0, accepted.stderr
    assert "2 wordings added to draft revision 2" in accepted.stdout
    done = json.loads(
        madoguchi(starter_settings, "suggestions", "list", "--status", "accepted", "--json").stdout
    )
    assert [w["text"] for w in done[0]["wordings"]] == [
        "でかい家具をほかしたい",
        "押し入れの布団を手放したい",
    ]
    assert {w["revision"] for w in done[0]["wordings"]} == {2}
    history = madoguchi(starter_settings, "kb", "history", "sodai-gomi").stdout
    assert history.splitlines()[1].startswith("r2  draft")
    nothing = madoguchi(starter_settings, "suggestions", "accept", "sodai-gomi", "--all")
    assert nothing.returncode == 1 and "has no open suggestions" in nothing.stderr


def test_a_conflicting_suggestion_is_refused_unless_forced(starter_settings, madoguchi):
    taken = suggested(starter_settings, "ペットボトルって何ごみ")
    refused = madoguchi(starter_settings, "suggestions", "accept", "sodai-gomi", "--id", str(taken))
    assert refused.returncode == 1
    assert "is the same as the phrasing 「ペットボトルって何ごみ？」" in refused.stderr
    assert "nothing accepted" in refused.stderr
    forced = madoguchi(
        starter_settings, "suggestions", "accept", "sodai-gomi", "--id", str(taken), "--force"
    )
    assert forced.returncode == 1 and "gomi-bunbetsu" in forced.stderr  # still another's
    unknown = madoguchi(starter_settings, "suggestions", "reject", "--id", "999")
    assert unknown.returncode == 1 and "no suggestion with id 999" in unknown.stderr
    usage = madoguchi(starter_settings, "suggestions", "accept", "sodai-gomi")
    assert usage.returncode == 2
