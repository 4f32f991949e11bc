"""The pages in a real browser: Debian's chromium driven by Playwright, against the whole
stack (real Rasa, action server, API, SQLite) started as ``make run`` starts it.

Residents, staff and editors each use their own browser context (their own cookies).
Screenshots of every page go to ``test-artifacts/screenshots/`` (git-ignored); a
console error or an uncaught exception on any page fails the test that caused it.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from assistant.conversation.dialogue import HANDOFF_KEPT, HANDOFF_REASONS, REPHRASE
from assistant.operations.config import PROJECT_ROOT
from knowledge.city import CityProfile
from knowledge.store import get_entry, open_db
from knowledge.tickets import find_open_ticket, get_ticket
from tests.conftest import PASSWORD, account, bearer, running_stack
from tests.test_e2e import hand_off, say

pytestmark = [pytest.mark.e2e, pytest.mark.browser]
playwright_api = pytest.importorskip("playwright.sync_api")

SHOTS = PROJECT_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine reaches no Google service: without these, chromium keeps trying.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# The browser logs every API answer of 4xx (401 before logging in, 422 for a form with
# errors, 404 for a free entry id): the pages expect those. A missing page asset is not.
API_REFUSAL = re.compile(r"status of 4\d\d ")
NONE_OF_THESE = "どれにも当てはまらない"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    home = tmp_path_factory.mktemp("browser") / "home"
    with running_stack(home) as (settings, client, _):
        account(settings, "sato", "staff")
        account(settings, "suzuki", "editor")
        account(settings, "tanaka", "editor")
        yield settings, client


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium") or "/usr/bin/chromium"
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def base(stack) -> str:
    return str(stack[1].base_url).rstrip("/")


class Console:
    """Errors a page logged or threw; checked at the end of each test."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def watch(self, page, label: str) -> None:
        def message(entry) -> None:
            url = (entry.location or {}).get("url", "")
            expected = "/api/" in url and API_REFUSAL.search(entry.text)
            if entry.type == "error" and not expected:
                self.problems.append(f"{label}: console error: {entry.text}")

        page.on("console", message)
        page.on("pageerror", lambda error: self.problems.append(f"{label}: {error}"))


@pytest.fixture
def console() -> Iterator[Console]:
    watcher = Console()
    yield watcher
    assert watcher.problems == []


@contextmanager
def person(browser, console: Console, label: str, **options):
    """One person's browser (own cookies), Japanese, in Japan's time zone."""
    context = browser.new_context(
        locale="ja-JP",
        timezone_id="Asia/Tokyo",
        viewport=options.pop("viewport", {"width": 1280, "height": 900}),
        **options,
    )
    context.set_default_timeout(20_000)
    page = context.new_page()
    console.watch(page, label)
    try:
        yield page
    finally:
        context.close()


def shot(page, name: str, full_page: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


def log_in(page, base: str, name: str, to: str) -> None:
    page.goto(f"{base}{to}")
    page.wait_for_url(re.compile(r"/login"))
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url(re.compile(re.escape(to) + r"$"))


def until(page, script: str, timeout_s: float = 20.0) -> None:
    """Wait until ``script`` is true in the page. (Playwright's wait_for_function
    evaluates strings with eval, which the pages' Content-Security-Policy forbids.)"""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(script):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout_s} s: {script}")
        time.sleep(0.1)


class Replies:
    """The assistant's messages that answered one question."""

    def __init__(self, page, start: int):
        messages = page.locator("#log li.msg.assistant")
        self.first = messages.nth(start)
        self.text = "\n".join(messages.all_inner_texts()[start:])


def ask(page, question: str) -> Replies:
    """Type a question and send it with Enter, as a resident does."""
    before = page.locator("#log li.msg.assistant").count()
    page.fill("#message", question)
    page.press("#message", "Enter")
    until(page, f"document.querySelectorAll('#log li.msg.assistant').length > {before}")
    return Replies(page, before)


def visible_lines(markdown: str) -> list[str]:
    """The lines of an answer as the page shows them (list markers become bullets)."""
    lines = []
    for line in markdown.splitlines():
        line = re.sub(r"^\s*(?:[-*]|\d+\.)\s+", "", line).strip()
        line = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", line).replace("**", "")
        if line:
            lines.append(line)
    return lines


def staff_answer(stack, question: str) -> dict:
    settings, client = stack
    response = client.get(
        "/api/answers", params={"q": question}, headers=bearer(settings, "sato", "staff")
    )
    response.raise_for_status()
    return response.json()


def test_a_resident_asks_and_gets_the_same_answer_staff_see(stack, base, browser, console):
    question = "粗大ごみを出したい"
    expected = staff_answer(stack, question)
    assert expected["decision"] == "answer"
    entry = expected["results"][0]
    with person(browser, console, "resident") as page:
        page.goto(base + "/")
        assert page.locator("#privacy-note").is_visible()
        ask(page, question)
        shown = page.locator("#log li.msg.assistant").first.inner_text()
        for line in visible_lines(entry["answer"]):
            assert line in shown
        # Feedback buttons come with the answer.
        assert page.get_by_role("button", name="解決した").is_visible()
        shot(page, "chat")

    # Staff: the same entry and byte-identical text, copied with the copy button.
    with person(
        browser, console, "staff", permissions=["clipboard-read", "clipboard-write"]
    ) as staff:
        log_in(staff, base, "sato", "/staff")
        staff.fill("#q", question)
        first = staff.locator("#results article.result").first
        first.wait_for()
        assert first.get_attribute("data-entry-id") == entry["entry_id"]
        until(
            staff, "document.querySelector('#summary').textContent.includes('この回答を返します')"
        )
        first.locator("button.copy").click()
        until(
            staff,
            "document.querySelector('#results article.result .copy-status')"
            ".textContent.includes('コピーしました')",
        )
        assert staff.evaluate("navigator.clipboard.readText()") == entry["answer"]
        shot(staff, "staff-lookup")


def test_an_unknown_question_goes_to_staff_who_reply_into_the_chat(stack, base, browser, console):
    tries = ["飼い犬が死んだときの届け出は？", "犬の死亡届を出したいです", "犬が亡くなりました"]
    reply_text = (
        "お問い合わせありがとうございます。犬の死亡届は、死亡した日から30日以内に届け出てください。"
    )
    with (
        person(browser, console, "resident") as resident,
        person(browser, console, "staff") as staff,
    ):
        resident.goto(base + "/")
        for question in tries:  # until the assistant hands over
            ask(resident, question)
            failed = question  # the card shows the last question before the handoff
            offered = resident.locator("#log .choices button:enabled", has_text=NONE_OF_THESE)
            if offered.count():
                count = resident.locator("#log li.msg").count()
                offered.last.click()
                until(resident, f"document.querySelectorAll('#log li.msg').length > {count + 1}")
            if resident.locator("#handoff-state").is_visible():
                break
        resident.locator("#handoff-state").wait_for(state="visible")
        shot(resident, "chat-handoff")

        log_in(staff, base, "sato", "/staff")
        staff.click("#inbox-views button[data-view='new']")
        ticket = staff.locator("#tickets li", has_text=failed).first
        ticket.locator("button.open-ticket").click()
        staff.locator("#ticket").wait_for(state="visible")
        assert tries[0] in staff.locator("#transcript").inner_text()
        staff.click("#claim")
        until(staff, "document.querySelector('#ticket-meta').textContent.includes('sato')")
        staff.fill("#reply-text", reply_text)
        staff.click("#reply-send")
        until(
            staff,
            f"document.querySelector('#transcript').textContent.includes({json.dumps(reply_text)})",
        )
        shot(staff, "staff-ticket")

        # Without reloading, the resident sees the reply (the page polls).
        resident.locator("#log li.msg.staff", has_text=reply_text).wait_for(timeout=15_000)
        shot(resident, "chat-staff-reply")

        staff.fill("#resolve-note", "死亡届の期限と窓口を案内した。")
        staff.click("#resolve")
        resident.locator("#handoff-state").wait_for(state="hidden", timeout=15_000)


def test_an_editor_publishes_a_changed_answer_and_residents_get_it_at_once(
    stack, base, browser, console
):
    question = "引っ越しで住所が変わったら何をすればいいですか"
    before = staff_answer(stack, question)
    assert before["decision"] == "answer"
    entry_id = before["results"][0]["entry_id"]
    added = "【お知らせ】12月28日から1月3日までは窓口での受付を休止します。"
    with person(browser, console, "suzuki") as writer:
        log_in(writer, base, "suzuki", "/editor")
        writer.locator("#entries").wait_for()
        shot(writer, "editor-list")
        writer.goto(f"{base}/editor#entry={entry_id}")
        writer.locator("#f-answer").wait_for()
        until(writer, "document.querySelector('#f-answer').value.length > 0")
        answer = writer.input_value("#f-answer")
        writer.fill("#f-answer", answer + "\n\n" + added)
        writer.fill("#preview-questions", question)
        writer.click("#preview-run")
        writer.locator("#preview-results", has_text=added).wait_for()
        writer.locator("#preview-results").scroll_into_view_if_needed()
        shot(writer, "editor-preview")
        writer.click("#save-draft")
        until(writer, "document.querySelector('#entry-status').textContent.includes('下書き')")
        writer.click("#submit-review")
        until(writer, "document.querySelector('#entry-status').textContent.includes('確認待ち')")
        # History shows the change as an inserted line.
        writer.locator("#history ins", has_text=added).first.wait_for()
    with person(browser, console, "tanaka") as reviewer:
        log_in(reviewer, base, "tanaka", "/editor")
        reviewer.goto(f"{base}/editor#entry={entry_id}")
        reviewer.locator("#approve:enabled").wait_for()
        reviewer.click("#approve")
        until(reviewer, "document.querySelector('#entry-status').textContent.includes('公開中')")
        shot(reviewer, "editor-entry")
    with person(browser, console, "resident") as resident:
        resident.goto(base + "/")
        assert added in ask(resident, question).text
    after = staff_answer(stack, question)["results"][0]
    assert after["entry_id"] == entry_id and after["answer"].endswith(added)


def test_the_chat_works_with_the_keyboard_alone(stack, base, browser, console):
    with person(browser, console, "keyboard") as page:
        page.goto(base + "/")
        seen = []
        for _ in range(8):  # the question box is among the first stops
            page.keyboard.press("Tab")
            seen.append(
                page.evaluate("document.activeElement.id || document.activeElement.tagName")
            )
            if seen[-1] == "message":
                break
        assert seen[-1] == "message", seen
        page.keyboard.type("印鑑登録をしたい")  # close to 印鑑登録の廃止: choices
        page.keyboard.press("Enter")
        page.locator("#log li.msg.assistant").first.wait_for()
        assert page.evaluate("document.activeElement.id") == "message"
        choices = page.locator("#log .choices button")
        choices.first.wait_for()
        for _ in range(12):  # back from the question box to the choices
            page.keyboard.press("Shift+Tab")
            if page.evaluate("document.activeElement.closest('.choices') !== null"):
                break
        assert page.evaluate("document.activeElement.closest('.choices') !== null")
        # That is the last choice (「どれにも当てはまらない」); go on to the first one.
        while page.evaluate("document.activeElement.previousElementSibling !== null"):
            page.keyboard.press("Shift+Tab")
        focused = page.evaluate("document.activeElement.textContent")
        assert focused != NONE_OF_THESE
        page.keyboard.press("Enter")
        page.locator("#log li.msg.resident", has_text=focused).last.wait_for()
        page.get_by_role("button", name="解決した").wait_for()
        shot(page, "chat-keyboard")


def test_script_in_a_chat_message_is_shown_as_text(stack, base, browser, console):
    attack = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    with (
        person(browser, console, "resident") as resident,
        person(browser, console, "staff") as staff,
    ):
        resident.goto(base + "/")
        ask(resident, attack)
        mine = resident.locator("#log li.msg.resident").first
        assert attack in mine.inner_text()
        assert resident.locator("#log img, #log script").count() == 0
        ask(resident, "職員と話したい")  # so staff see it in a ticket too
        resident.locator("#handoff-state").wait_for(state="visible")
        assert resident.evaluate("window.__xss") is None

        log_in(staff, base, "sato", "/staff")
        # Markup is not a question: the card says none was asked (issue 17).
        card = staff.locator("#tickets li", has_text="具体的なご質問はありません").last
        card.locator("button.open-ticket").click()
        staff.locator("#transcript", has_text=attack).wait_for()
        assert staff.locator("#transcript img, #transcript script").count() == 0
        assert staff.evaluate("window.__xss") is None


def test_script_in_an_entry_answer_is_refused_and_never_runs(stack, base, browser, console):
    settings, _ = stack
    with person(browser, console, "suzuki") as writer:
        log_in(writer, base, "suzuki", "/editor")
        writer.goto(f"{base}/editor#new")
        writer.fill("#f-id", "xss-attempt")
        writer.fill("#f-title", "スクリプトの試験")
        writer.fill("#f-questions", "スクリプトの試験です")
        writer.fill("#f-answer", "<script>window.__xss=1</script>こんにちは")
        writer.click("#save-draft")
        writer.locator("#err-answer", has_text="HTML").wait_for()
        assert writer.evaluate("window.__xss") is None

    # Even an answer that got into the database some other way (an old import, a hand
    # edit) is only ever text on the page.
    hostile = (
        '<img src=x onerror="window.__xss=3">危険な回答の試験です。\n\n'
        "- [ここを押す](javascript:window.__xss=4)\n"
        '- <a href="javascript:window.__xss=5">リンク</a>'
    )
    with sqlite3.connect(settings.database_path) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(revisions)")]
        row = {name: "" for name in columns} | {
            "entry_id": "xss-stored",
            "revision": 1,
            "title": "保存された危険な回答の試験",
            "questions": json.dumps(["保存された危険な回答の試験を見せて"], ensure_ascii=False),
            "answer": hostile,
            "documents": "[]",
            "tags": "[]",
            "valid_from": None,
            "valid_until": None,
            "status": "published",
            "author": "test",
            "created_at": "2026-01-01T00:00:00+00:00",
        }
        conn.execute(
            f"INSERT INTO revisions ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
            list(row.values()),
        )
        conn.execute(
            "UPDATE kb_meta SET value = CAST(value AS INTEGER) + 1 WHERE key = 'knowledge_revision'"
        )
    with person(browser, console, "resident") as resident:
        resident.goto(base + "/")
        reply = ask(resident, "保存された危険な回答の試験を見せて").first
        assert "<img" in reply.inner_text() and "<a href" in reply.inner_text()
        links = reply.locator("a")
        for i in range(links.count()):
            assert not links.nth(i).get_attribute("href").lower().startswith("javascript")
        reply.get_by_text("ここを押す").click()
        assert resident.locator("#log img").count() == 0
        assert resident.evaluate("window.__xss") is None
        shot(resident, "chat-xss")


def test_the_widget_opens_the_chat_on_a_city_page(stack, base, browser, console):
    with person(browser, console, "city-page") as page:
        page.goto(base + "/widget-demo")
        launcher = page.locator("button.madoguchi-launcher")
        launcher.focus()
        page.keyboard.press("Enter")
        panel = page.locator("#madoguchi-panel")
        panel.wait_for(state="visible")
        chat = page.frame_locator("iframe.madoguchi-frame")
        chat.locator("#message").fill("児童手当の申請はどうすればいいですか")
        chat.locator("#message").press("Enter")
        # Generous: under the whole suite's load the first reply of a new conversation
        # (Rasa, then the action server) once took longer than the default 20 s.
        chat.locator("#log li.msg.assistant").first.wait_for(timeout=60_000)
        shot(page, "widget")
        page.keyboard.press("Escape")
        panel.wait_for(state="hidden")
        assert page.evaluate("document.activeElement.classList.contains('madoguchi-launcher')")


def test_pages_on_a_phone_and_at_200_percent_zoom(stack, base, browser, console):
    # 200 % zoom of a 1280 px window is a 640 px wide layout viewport.
    for name, size in (("phone", (390, 844)), ("zoom200", (640, 450))):
        with person(browser, console, name, viewport={"width": size[0], "height": size[1]}) as page:
            page.goto(base + "/")
            ask(page, "住民票の写しが欲しい")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name}: the page scrolls sideways by {overflow} px"
            shot(page, f"chat-{name}")
            log_in(page, base, "sato", "/staff")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name}: the staff console scrolls sideways by {overflow} px"
            shot(page, f"staff-{name}")
        with person(
            browser, console, f"editor-{name}", viewport={"width": size[0], "height": size[1]}
        ) as page:
            log_in(page, base, "suzuki", "/editor")
            page.locator("#entries").wait_for()
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 1, f"{name}: the editor console scrolls sideways by {overflow} px"
            shot(page, f"editor-{name}")


def test_login_and_unanswered_pages(stack, base, browser, console):
    with person(browser, console, "editor") as page:
        page.goto(base + "/login")
        page.fill("#name", "suzuki")
        page.fill("#password", "wrong password!")
        page.click("#login-submit")
        page.locator("#login-error", has_text="違います").wait_for()
        shot(page, "login")
        log_in(page, base, "suzuki", "/editor")
        page.goto(base + "/editor#unanswered")
        page.locator("#unanswered-groups li").first.wait_for()
        shot(page, "editor-unanswered")
        page.locator("#unanswered-groups .new-draft").first.click()
        until(page, "location.hash === '#new'")
        assert page.input_value("#f-questions").strip()


def test_staff_cannot_open_the_editor(stack, base, browser, console):
    with person(browser, console, "staff") as page:
        log_in(page, base, "sato", "/staff")
        page.goto(base + "/editor")
        # The message reads 「読み込み中…」 until the page has asked who is logged in.
        page.locator("#page-message", has_text="権限").wait_for(state="visible")
        response = page.request.get(base + "/api/entries")
        assert response.status == 403


# ---- issue 17, staff and editor side: the question that failed, no internal names on
# staff pages, [hidden] that hides, the author's approve button ----

# What staff must never read: intent and reason names, and command-line actors.
INTERNAL_NAMES = re.compile(
    r"\b(greet|goodbye|thanks|affirm|deny|bot_challenge|inquiry|request_human|out_of_scope|"
    r"choose_entry|none_of_these|feedback_positive|feedback_negative|nlu_fallback|"
    r"requested_human|negative_feedback|two_failed_turns|assistant_error)\b|cli:"
)
FAILED_QUESTION = "隣の家の木の枝がうちの庭に伸びてきて困っています"


def test_the_inbox_and_the_unanswered_queue_show_the_question_that_failed(
    stack, base, browser, console
):
    from knowledge.accounts import add_user
    from knowledge.store import get_entry, open_db
    from knowledge.workflow import save_draft

    settings, _ = stack
    entry_id = staff_answer(stack, "粗大ごみを出したい")["results"][0]["entry_id"]
    db = open_db(settings.database_path)
    try:
        add_user(db, "kimura", "staff", PASSWORD, display_name="木村")
        content = {**get_entry(db, entry_id).content(), "staff_notes": "コマンドから追記したメモ"}
        save_draft(db, content, actor="cli:operator")
    finally:
        db.close()

    with (
        person(browser, console, "resident") as resident,
        person(browser, console, "kimura") as staff,
    ):
        resident.goto(base + "/")
        ask(resident, "こんにちは")
        ask(resident, FAILED_QUESTION)
        ask(resident, "人と話したい")
        resident.locator("#handoff-state").wait_for(state="visible")

        log_in(staff, base, "kimura", "/staff")
        staff.click("#inbox-views button[data-view='new']")
        card = staff.locator("#tickets li", has_text=FAILED_QUESTION).first
        assert card.locator(".ticket-question").inner_text() == FAILED_QUESTION
        card.locator("button.open-ticket").click()
        staff.locator("#ticket").wait_for(state="visible")
        # The proposal form stays hidden until its button opens it, then starts from the
        # question that failed (not 「人と話したい」).
        assert not staff.locator("#propose-form").is_visible()
        staff.click("#propose")
        staff.locator("#propose-form").wait_for(state="visible")
        assert staff.input_value("#propose-question") == FAILED_QUESTION
        staff.click("#claim")
        until(staff, "document.querySelector('#ticket-meta').textContent.includes('木村')")
        transcript = staff.locator("#transcript").inner_text()
        assert "解釈：職員希望" in transcript and "解釈：挨拶" in transcript
        shot(staff, "staff-ticket-question")
        assert INTERNAL_NAMES.findall(staff.locator("main").text_content()) == []

    with person(browser, console, "editor") as editor:
        log_in(editor, base, "suzuki", "/editor")
        editor.goto(base + "/editor#unanswered")
        editor.locator("#unanswered-groups li").first.wait_for()
        queue = editor.locator("#unanswered-groups").text_content()
        assert FAILED_QUESTION in queue
        headings = editor.locator("#unanswered-groups h3").all_inner_texts()
        assert "人と話したい" not in headings
        assert INTERNAL_NAMES.findall(editor.locator("main").text_content()) == []
        # The history names the command line plainly.
        editor.goto(f"{base}/editor#entry={entry_id}")
        editor.locator("#history li.revision").first.wait_for()
        history = editor.locator("#history").text_content()
        assert "管理者（コマンド）" in history
        assert INTERNAL_NAMES.findall(history) == []


def test_the_author_cannot_approve_and_the_history_has_one_revision_in_force(
    stack, base, browser, console
):
    question = "住民票の写しがほしい"
    entry_id = staff_answer(stack, question)["results"][0]["entry_id"]
    added = "窓口が混み合う月曜の午前は、コンビニ交付もご利用ください。"
    with person(browser, console, "suzuki", viewport={"width": 1280, "height": 800}) as writer:
        log_in(writer, base, "suzuki", "/editor")
        writer.goto(f"{base}/editor#entry={entry_id}")
        until(writer, "document.querySelector('#f-answer').value.length > 0")
        # The buttons stay on screen while the top of the long form is read.
        writer.evaluate("window.scrollTo(0, 0)")
        box = writer.locator("#save-draft").bounding_box()
        assert box is not None and box["y"] + box["height"] <= 800
        writer.fill("#f-answer", writer.input_value("#f-answer") + "\n\n" + added)
        writer.fill("#preview-questions", question)
        writer.click("#preview-run")
        # The preview marks the sentence the draft adds.
        writer.locator("#preview-results .changed-sentences ins", has_text=added).wait_for()
        writer.click("#save-draft")
        until(writer, "document.querySelector('#entry-status').textContent.includes('下書き')")
        writer.click("#submit-review")
        until(writer, "document.querySelector('#entry-status').textContent.includes('確認待ち')")
        assert writer.locator("#approve").is_disabled()
        assert "別の編集者" in writer.locator("#action-note").inner_text()
        shot(writer, "editor-author-cannot-approve")
    with person(browser, console, "tanaka") as reviewer:
        log_in(reviewer, base, "tanaka", "/editor")
        reviewer.goto(f"{base}/editor#entry={entry_id}")
        reviewer.locator("#approve:enabled").click()
        until(reviewer, "document.querySelector('#entry-status').textContent.includes('公開中')")
        reviewer.locator("#history li.revision").nth(1).wait_for()
        badges = reviewer.locator("#history li.revision h4 .badge").all_inner_texts()
        assert badges.count("公開中") == 1 and badges[0] == "公開中"


# ---------------------------------------------------------------- issue 17, resident side
# The chat as residents use it: a welcome with common topics, long answers on the page
# (not in an inner scroll box) with their feedback in reach, tap-to-call numbers, and a
# handoff that says how long and never contradicts itself.

# Where an element is in its window, and which inner box (if any) scrolls it.
GEOMETRY = """(element) => {
  const rect = element.getBoundingClientRect();
  let box = null;
  for (let node = element.parentElement; node && node !== document.body;
       node = node.parentElement) {
    const overflow = getComputedStyle(node).overflowY;
    if ((overflow === "auto" || overflow === "scroll") && node.scrollHeight > node.clientHeight + 1)
      box = node.id || node.className;
  }
  return {top: rect.top, bottom: rect.bottom, window: window.innerHeight, box};
}"""
LONG_QUESTION = "会社を辞めたら任意継続と国民健康保険のどちらがいいですか"


def city_profile(stack):
    return CityProfile.load(stack[0].city_path)


def test_the_empty_chat_welcomes_with_the_city_its_hours_and_topics_that_answer(
    stack, base, browser, console
):
    city = city_profile(stack)
    welcome = stack[1].get("/api/chat/welcome").json()
    topic = welcome["topics"][0]
    expected = staff_answer(stack, topic["question"])
    assert expected["decision"] == "answer"
    assert expected["results"][0]["entry_id"] == topic["entry_id"]
    with person(browser, console, "welcome", viewport={"width": 1280, "height": 800}) as page:
        page.goto(base + "/")
        topics = page.locator("#topics button")
        topics.first.wait_for()
        assert page.locator("h1").inner_text() == f"{city.name} お問い合わせチャット"
        assert page.title() == f"{city.name} お問い合わせチャット"
        assert page.locator("#welcome-text").inner_text() == city.welcome
        assert city.hours_text in page.locator("#welcome-hours").inner_text()
        assert topics.all_inner_texts() == [t["title"] for t in welcome["topics"]]
        assert len(welcome["topics"]) >= 3
        assert page.locator("#message-hint").is_visible()  # a keyboard and a mouse
        shot(page, "chat-welcome")
        topics.first.click()
        page.locator("#log li.msg.resident", has_text=topic["question"]).wait_for()
        page.get_by_role("button", name="解決した").wait_for()
        shown = page.locator("#log li.msg.assistant").first.inner_text()
        assert visible_lines(expected["results"][0]["answer"])[0] in shown
        assert page.locator("#welcome").is_hidden()
    touch = {"viewport": {"width": 390, "height": 844}, "has_touch": True, "is_mobile": True}
    with person(browser, console, "welcome-touch", **touch) as phone:
        phone.goto(base + "/")
        phone.locator("#topics button").first.wait_for()
        assert city.name in phone.locator("h1").inner_text()
        assert phone.locator("#message-hint").is_hidden()  # no Shift＋Enter on a phone
        phone.fill("#message", "1行目")
        phone.press("#message", "Enter")  # a new line; the 送信 button sends
        assert phone.input_value("#message") == "1行目\n"
        assert phone.locator("#log li.msg").count() == 0
        shot(phone, "chat-welcome-phone")


def check_long_answer(view, stack, label: str, take_shot) -> None:
    """Ask the long question in ``view`` (the page, or the widget's frame): the answer's
    start shows with the question above it, nothing scrolls in an inner box, the
    feedback buttons are reached by scrolling the page, and the phone number is a link."""
    expected = staff_answer(stack, LONG_QUESTION)
    assert expected["decision"] == "answer"
    replies = ask(view, LONG_QUESTION)
    solved = view.get_by_role("button", name="解決した").last
    solved.wait_for()
    answer = replies.first.evaluate(GEOMETRY)
    mine = view.locator("#log li.msg.resident").last.evaluate(GEOMETRY)
    assert answer["box"] is None, f"{label}: the answer scrolls in {answer['box']}"
    assert 0 <= mine["top"] < answer["top"] < answer["window"] / 2, (label, mine, answer)
    take_shot()
    assert solved.evaluate(GEOMETRY)["box"] is None
    solved.scroll_into_view_if_needed()
    feedback = solved.evaluate(GEOMETRY)
    assert 0 <= feedback["top"] and feedback["bottom"] <= feedback["window"], (label, feedback)
    phone = next(n for n in city_profile(stack).phones if n in expected["results"][0]["contact"])
    link = view.locator("#log a[href^='tel:']").last
    assert link.inner_text() == phone
    assert link.get_attribute("href") == "tel:" + re.sub(r"[^0-9]", "", phone)


@pytest.mark.parametrize("size", [(1280, 800), (390, 844)], ids=["laptop", "phone"])
def test_a_long_answer_shows_from_its_start_with_its_feedback_on_the_page(
    stack, base, browser, console, size
):
    viewport = {"width": size[0], "height": size[1]}
    with person(browser, console, f"long-{size[0]}", viewport=viewport) as page:
        page.goto(base + "/")
        check_long_answer(page, stack, f"page {size}", lambda: shot(page, f"chat-long-{size[0]}"))
    with person(browser, console, f"long-widget-{size[0]}", viewport=viewport) as page:
        page.goto(base + "/widget-demo")
        page.locator("button.madoguchi-launcher").click()
        frame = page.locator("iframe.madoguchi-frame").element_handle().content_frame()
        frame.locator("#topics button").first.wait_for()
        title = page.locator(".madoguchi-title").inner_text()
        assert title == f"{city_profile(stack).name} お問い合わせチャット"
        check_long_answer(
            frame, stack, f"widget {size}", lambda: shot(page, f"widget-long-{size[0]}")
        )
        # Readable: the frame is most of the window, and shows a good part of the answer.
        answer = frame.locator("#log li.msg.assistant").first
        answer.scroll_into_view_if_needed()
        seen = answer.evaluate(GEOMETRY)
        assert seen["window"] >= 0.75 * size[1] - 100, seen
        assert min(seen["bottom"], seen["window"]) - max(seen["top"], 0) >= 0.6 * min(
            seen["bottom"] - seen["top"], seen["window"]
        ), seen


def test_a_handoff_says_how_long_keeps_the_chat_and_leaves_no_contradictory_status(
    stack, base, browser, console
):
    settings, client = stack
    city = city_profile(stack)
    with person(browser, console, "handoff-wait", viewport={"width": 390, "height": 844}) as page:
        page.goto(base + "/")
        ask(page, "職員と話したい")
        banner = page.locator("#handoff-state")
        banner.wait_for(state="visible")
        told = page.locator("#log li.msg.assistant").last.inner_text()
        if city.is_open(city.now()):  # the test runs at whatever time it is in the city
            assert re.search(r"お返事まで[0-9]+(時間|分)[0-9分]*ほどかかる見込み", told), told
        else:
            assert "以降に、このチャットでお返事します" in told, told
        assert HANDOFF_KEPT in told
        newest = page.locator("#log li.msg").last.evaluate(GEOMETRY)
        shown = banner.evaluate(GEOMETRY)
        assert 0 <= newest["top"] and newest["bottom"] <= shown["top"], (newest, shown)
        assert shown["bottom"] <= shown["window"]
        shot(page, "chat-handoff-wait")
        page.fill("#message", "よろしくお願いします")
        page.press("#message", "Enter")
        page.locator("#status", has_text="職員にお伝えしました").wait_for()
        session = page.evaluate("sessionStorage.getItem('madoguchi-session')")
        # Closed and opened again (a new tab: its sessionStorage is empty): still there.
        context = page.context
        page.close()
        page = context.new_page()
        console.watch(page, "handoff-wait-again")
        page.goto(base + "/")
        page.locator("#handoff-state").wait_for(state="visible")
        assert "職員と話したい" in page.locator("#log").inner_text()
        page.fill("#message", "まだでしょうか")
        page.press("#message", "Enter")
        page.locator("#status", has_text="職員にお伝えしました").wait_for()

        ticket = find_open_ticket(open_db(settings.database_path), session)
        staff = bearer(settings, "sato", "staff")
        resolved = client.post(f"/api/tickets/{ticket.id}/resolve", json={}, headers=staff)
        assert resolved.status_code == 200, resolved.text
        page.locator("#log li.msg.system", has_text="職員との対応を終了しました").wait_for(
            timeout=15_000
        )
        page.locator("#handoff-state").wait_for(state="hidden")
        assert "職員にお伝えしました" not in page.locator("#status").inner_text()
        assert page.evaluate("localStorage.getItem('madoguchi-waiting')") is None
        shot(page, "chat-handoff-resolved")

    with person(browser, console, "two-misses") as page:
        page.goto(base + "/")
        assert REPHRASE in ask(page, "プールは何時まで泳げますか").text
        ask(page, "プールの更衣室にロッカーはありますか")
        told = page.locator("#log li.msg.assistant .body").last.inner_text()
        assert told.startswith(HANDOFF_REASONS["two_failed_turns"]), told
        page.locator("#handoff-state").wait_for(state="visible")


# ---- issue 19: staff say which entry answered; editors accept the wording ----

LEARNED_ENTRY = "shibo-todoke"
# The resident wrote their name: staff take it out before the wording is suggested.
WITH_NAME = "山田花子です。おばあちゃんが亡くなった"
LEARNED_QUESTION = "おばあちゃんが亡くなった"


def ticket_card(staff, question: str):
    staff.click("#inbox-views button[data-view='new']")
    card = staff.locator("#tickets li", has_text=question).first
    card.locator("button.open-ticket").click()
    staff.locator("#ticket").wait_for(state="visible")


def entry_title(stack, entry_id: str) -> str:
    settings, _ = stack
    db = open_db(settings.database_path)
    try:
        return get_entry(db, entry_id).title
    finally:
        db.close()


def suggestions_of(stack, entry_id: str) -> list[dict]:
    settings, client = stack
    response = client.get(
        "/api/suggestions", params={"status": "open"}, headers=bearer(settings, "suzuki")
    )
    response.raise_for_status()
    groups = [g for g in response.json()["data"] if g["entry_id"] == entry_id]
    return groups[0]["wordings"] if groups else []


def entry_status_is(page, label: str) -> None:
    until(page, f"document.querySelector('#entry-status').textContent.includes('{label}')")


def resolve_by_api(stack, question: str, entry_id: str, wording: str) -> int:
    """A handoff asking ``question``, resolved by sato with ``entry_id`` and ``wording``."""
    settings, client = stack
    ticket_id = hand_off(client, question)
    staff = bearer(settings, "sato", "staff")
    client.post(f"/api/tickets/{ticket_id}/claim", headers=staff).raise_for_status()
    body = {"note": "", "entry_id": entry_id, "question": wording}
    response = client.post(f"/api/tickets/{ticket_id}/resolve", json=body, headers=staff)
    assert response.status_code == 200, response.text
    return ticket_id


def test_staff_resolve_with_the_entry_and_two_editors_publish_the_wording(
    stack, base, browser, console
):
    settings, client = stack
    assert staff_answer(stack, LEARNED_QUESTION)["decision"] == "handoff"
    title = entry_title(stack, LEARNED_ENTRY)
    ticket_id = hand_off(client, WITH_NAME)
    with person(browser, console, "sato") as staff:
        log_in(staff, base, "sato", "/staff")
        ticket_card(staff, WITH_NAME)
        staff.click("#claim")
        until(staff, "document.querySelector('#ticket-meta').textContent.includes('sato')")
        # Nothing is suggested unless staff choose an entry.
        assert staff.get_by_role("radio", name="該当する項目なし").is_checked()
        assert staff.locator("#answered-wording").is_hidden()
        assert staff.locator("#answered legend").inner_text() == "住民の質問に答えた項目"
        staff.get_by_role("radio", name=title).check()
        wording = staff.get_by_label("この言い回しを候補として編集者に送ります")
        assert wording.input_value() == WITH_NAME
        warning = staff.locator("#answered-warning")
        assert "氏名・住所・電話番号などは消してください" in warning.inner_text()
        assert wording.get_attribute("aria-describedby") == "answered-warning"
        wording.fill(LEARNED_QUESTION)
        staff.fill("#resolve-note", "死亡届の窓口を案内した。")
        staff.locator("#resolve-form").scroll_into_view_if_needed()
        shot(staff, "staff-resolve-entry")
        staff.click("#resolve")
        staff.locator("#ticket-status", has_text="言い回しの候補を編集者に送りました").wait_for()
        until(staff, "document.querySelector('#ticket-meta').textContent.includes('回答した項目')")
        assert title in staff.locator("#ticket-meta").inner_text()
        assert staff.evaluate("document.activeElement.id") == "ticket-heading"

    with person(browser, console, "suzuki") as writer:
        log_in(writer, base, "suzuki", "/editor")
        writer.click("#views-nav a[data-view='suggestions']")
        group = writer.locator(f"#suggestions-entries li[data-entry-id='{LEARNED_ENTRY}']")
        item = group.locator("li.wording", has_text=LEARNED_QUESTION)
        item.wait_for()
        assert WITH_NAME not in group.inner_text()
        assert "職員が対応 1件" in item.locator(".sources").inner_text()
        # Listed at once; the engine's check for conflicts follows entry by entry.
        writer.locator(f"li[data-entry-id='{LEARNED_ENTRY}'][data-checked='true']").wait_for()
        assert item.locator(".conflict").count() == 0
        assert title in group.locator("h3").inner_text()
        shot(writer, "editor-suggestions")
        item.get_by_role("button", name="採用", exact=True).click()
        result = writer.locator("#suggestions-result")
        result.locator("a.open-draft").wait_for()
        assert writer.evaluate("document.activeElement.id") == "suggestions-result"
        assert re.search(r"第[0-9]+版の下書きを作りました", result.inner_text())
        assert writer.locator("li.wording", has_text=LEARNED_QUESTION).count() == 0
        result.locator("a.open-draft").click()
        entry_status_is(writer, "下書き")
        assert LEARNED_QUESTION in writer.input_value("#f-questions").splitlines()
        writer.click("#submit-review")
        entry_status_is(writer, "確認待ち")
    with person(browser, console, "tanaka") as reviewer:  # another editor approves
        log_in(reviewer, base, "tanaka", "/editor")
        reviewer.goto(f"{base}/editor#entry={LEARNED_ENTRY}")
        reviewer.locator("#approve:enabled").click()
        entry_status_is(reviewer, "公開中")

    learned = staff_answer(stack, LEARNED_QUESTION)
    assert learned["decision"] == "answer"
    assert learned["results"][0]["entry_id"] == LEARNED_ENTRY
    assert get_ticket(open_db(settings.database_path), ticket_id).status == "resolved"


def test_staff_find_the_entry_by_lookup_and_a_rejected_wording_does_not_return(
    stack, base, browser, console
):
    question = "母が亡くなって何をすればいいか分からない"
    wording = "母が亡くなって何をすればいいか分からない"
    entry_id = "kokuho-sosaihi"
    title = entry_title(stack, entry_id)
    hand_off(stack[1], question)
    with person(browser, console, "sato-lookup") as staff:
        log_in(staff, base, "sato", "/staff")
        ticket_card(staff, question)
        staff.click("#claim")
        until(staff, "document.querySelector('#ticket-meta').textContent.includes('sato')")
        # With the keyboard: from 「該当する項目なし」 up to 「ほかの項目を検索」, then on
        # to its search box.
        staff.focus("input[name='answered-entry'][value='none']")
        staff.keyboard.press("ArrowUp")
        assert staff.get_by_role("radio", name="ほかの項目を検索").is_checked()
        staff.locator("#answered-search").wait_for()
        staff.keyboard.press("Tab")
        assert staff.evaluate("document.activeElement.id") == "answered-q"
        # The resident's words are ready to search; tabbing in selects them to type over.
        assert staff.input_value("#answered-q") == question
        staff.keyboard.type("葬祭費")
        assert staff.input_value("#answered-q") == "葬祭費"
        staff.keyboard.press("Enter")  # searches; does not resolve the ticket
        found = staff.locator("#answered-found").get_by_role("radio", name=re.escape(title))
        found.first.wait_for()
        assert staff.locator("#resolve-form").is_visible()
        found.first.check()
        assert staff.input_value("#answered-question") == question
        staff.click("#resolve")
        until(staff, "document.querySelector('#ticket-meta').textContent.includes('回答した項目')")
        assert title in staff.locator("#ticket-meta").inner_text()

    # Conflicts are shown: a wording that is another entry's phrasing cannot be accepted
    # as it is; one that would change another phrasing's answer needs a second yes.
    resolve_by_api(stack, "人と話したい", "tairyo-gomi", "古い自転車を処分したい")
    changes = "ごみ収集日カレンダーはどこでもらえるか知りたい"
    resolve_by_api(stack, "人と話したい", "gomi-shushubi", changes)
    with person(browser, console, "suzuki-reject") as editor:
        log_in(editor, base, "suzuki", "/editor")
        editor.goto(base + "/editor#suggestions")
        taken = editor.locator("li.wording", has_text="古い自転車を処分したい")
        taken.locator(".conflict").wait_for()
        assert "このままでは採用できません" in taken.locator(".conflict").inner_text()
        assert taken.locator("button.accept").count() == 0
        clash = editor.locator("li.wording", has_text=changes)
        assert "gomi-bunbetsu" in clash.locator(".conflict").inner_text()
        # Once every entry is checked, the status says how many wordings clash.
        editor.locator("#suggestions-status", has_text="件は、ほかの項目と衝突します").wait_for()
        clash.get_by_role("button", name="衝突を確認して採用").click()
        dialog = editor.locator("#confirm-dialog")
        dialog.wait_for()
        assert "衝突" in dialog.inner_text()
        shot(editor, "editor-suggestion-conflict")
        editor.click("#confirm-cancel")
        assert clash.is_visible()  # nothing was accepted
        assert editor.locator("#suggestions-result").inner_text() == ""
        clash.get_by_role("button", name="衝突を確認して採用").click()
        editor.click("#confirm-ok")  # the second, explicit yes: sent with force
        editor.locator("#suggestions-result a.open-draft").wait_for()
        assert editor.locator("li.wording", has_text=changes).count() == 0

        item = editor.locator("li.wording", has_text=wording)
        item.get_by_role("button", name="採用しない").click()
        editor.click("#confirm-ok")
        editor.locator("#suggestions-result", has_text="不採用にしました").wait_for()
        assert editor.locator("li.wording", has_text=wording).count() == 0
    assert [w for w in suggestions_of(stack, entry_id) if w["text"] == wording] == []

    # Sent again from another handoff, the rejected wording is not suggested again.
    resolve_by_api(stack, question, entry_id, wording)
    assert [w for w in suggestions_of(stack, entry_id) if w["text"] == wording] == []
    with person(browser, console, "suzuki-again") as editor:
        log_in(editor, base, "suzuki", "/editor")
        editor.goto(base + "/editor#suggestions")
        editor.locator("#suggestions-status", has_text="これまでに採用").wait_for()
        assert editor.locator("li.wording", has_text=wording).count() == 0
        assert "不採用 1件" in editor.locator("#suggestions-status").inner_text()


def picked_and_helped(client, question: str) -> str:
    """A resident offered choices picks the first and says it helped: the entry."""
    offered = say(client, question)
    assert offered["decision"] == "clarify", offered
    session = offered["session_id"]
    chosen = say(client, offered["replies"][0]["buttons"][0]["payload"], session)
    assert chosen["decision"] == "answer", chosen
    say(client, chosen["replies"][-1]["buttons"][0]["payload"], session)  # 解決した
    return chosen["replies"][0]["entry_id"]


def test_an_editor_edits_one_wording_then_accepts_the_others_together(
    stack, base, browser, console
):
    entry_id = "kaden-recycle"
    wordings = ["洗濯機を処分したい", "古いテレビの捨て方", "エアコンの処分方法を知りたい"]
    for wording in wordings:
        resolve_by_api(stack, "人と話したい", entry_id, wording)
    # A resident's own pick is weaker evidence, and the page says so.
    typhoon = "台風のとき避難する場所はどこ"
    picked = picked_and_helped(stack[1], typhoon)
    edited = "古い洗濯機を処分したい"
    with person(browser, console, "suzuki-edit") as editor:
        log_in(editor, base, "suzuki", "/editor")
        editor.goto(base + "/editor#suggestions")
        group = editor.locator(f"#suggestions-entries li[data-entry-id='{entry_id}']")
        first = group.locator("li.wording", has_text=wordings[0])
        first.wait_for()
        theirs = editor.locator(f"#suggestions-entries li[data-entry-id='{picked}'] li.wording")
        resident = theirs.filter(has_text=typhoon)
        assert resident.locator(".source.resident").inner_text() == "利用者が選択（参考） 1件"
        assert resident.locator(".source.staff").count() == 0
        assert group.locator("button.bulk-accept").inner_text() == "3件をまとめて採用"
        edit = first.get_by_role("button", name="編集して採用")
        edit.click()
        assert edit.get_attribute("aria-expanded") == "true"
        box = first.get_by_label("採用する言い回し")
        assert editor.evaluate("document.activeElement.tagName") == "TEXTAREA"
        assert box.input_value() == wordings[0]
        box.fill(edited)
        first.get_by_role("button", name="この言い回しで採用").click()
        result = editor.locator("#suggestions-result")
        result.locator("a.open-draft").wait_for()
        one = int(re.search(r"第([0-9]+)版の下書き", result.inner_text()).group(1))
        assert group.locator("li.wording").count() == 2
        bulk = group.locator("button.bulk-accept")
        assert bulk.inner_text() == "2件をまとめて採用"
        bulk.click()
        shown = "document.querySelector('#suggestions-result').textContent"
        until(editor, f"!{shown}.includes('第{one}版')")
        assert "言い回しを2件加え" in result.inner_text()
        assert editor.locator(f"#suggestions-entries li[data-entry-id='{entry_id}']").count() == 0
        result.locator("a.open-draft").click()
        until(editor, "document.querySelector('#f-questions').value.length > 0")
        questions = editor.input_value("#f-questions").splitlines()
        assert {edited, *wordings[1:]} <= set(questions) and wordings[0] not in questions
        assert "下書き" in editor.locator("#entry-status").inner_text()


def test_screenshots_exist(stack):
    """Run last: every page has its screenshot (the README's images come from here)."""
    wanted = ["chat", "staff-lookup", "staff-ticket", "editor-list", "editor-preview", "widget"]
    wanted += ["staff-resolve-entry", "editor-suggestions"]  # issue 19
    missing = [name for name in wanted if not (SHOTS / f"{name}.png").is_file()]
    assert missing == []
