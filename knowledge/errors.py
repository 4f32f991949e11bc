"""The knowledge library's errors as data: each problem has a stable code, its
parameters, and its Japanese message, written here once.

The English text of an error (``str(error)``) stays what the CLI, the logs and API
clients have always read; ``message`` is what a console shows a person. The API turns
an error into a response in one place (``api/errors.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_CONTROL = "使えない文字（制御文字や見えない書式文字）が含まれています。"
_HTML = "HTMLタグ（<script> など）は使えません。文章か、使える書式で入力してください。"
_PERSONAL = (
    "マイナンバーやカード番号のような番号が含まれています。"
    "エントリは公開されるため、個人の番号は書けません。"
)
_REPLY_FIELDS = {"text": "返信", "note": "対応メモ"}
_SUGGESTION_FIELDS = {"text": "言い回し", "reason": "却下の理由"}
_DECIDED = {"accepted": "採用", "rejected": "却下"}


def _placeholder(params: Mapping[str, Any]) -> str:
    allowed = " ".join("{{" + name + "}}" for name in params["allowed"])
    return "差し込み {{" + params["name"] + "}} は使えません。使えるのは " + allowed + " です。"


def _not_found(params: Mapping[str, Any]) -> str:
    if params.get("revision") is None:
        return f"エントリ {params['entry_id']} が見つかりません。"
    return f"エントリ {params['entry_id']} の第{params['revision']}版が見つかりません。"


def _reply(text: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda params: text.format(what=_REPLY_FIELDS[params["field"]], **params)


def _suggestion(text: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda params: text.format(what=_SUGGESTION_FIELDS[params["field"]], **params)


def _decided(params: Mapping[str, Any]) -> str:
    done = _DECIDED.get(params["status"], params["status"])
    return (
        f"提案 #{params['suggestion_id']} はすでに{done}されています。"
        "最新の状態を表示しましたので、確認してください。"
    )


# code -> its Japanese message: a template filled from the parameters, or a function of them.
MESSAGES: dict[str, str | Callable[[Mapping[str, Any]], str]] = {
    # One problem of an entry (InvalidEntry.problems), shown under the field it names.
    "entry.not_object": "エントリは項目名と値の組（オブジェクト）で書いてください。",
    "field.unknown": "この項目名は使えません。",
    "id.pattern": "半角英小文字・数字・ハイフンの80文字以内で、英小文字か数字で始めてください。",
    "id.taken": "このIDはすでに使われています。別のIDを入力してください。",
    "text.not_text": "文字で入力してください。",
    "text.required": "入力してください。",
    "text.too_long": "{length}文字あります。{limit}文字以内にしてください。",
    "text.lone_surrogate": "使えない文字が含まれています。",
    "text.control_characters": _CONTROL,
    "text.html": _HTML,
    "text.personal_number": _PERSONAL,
    "list.not_list": "文字の一覧で入力してください。",
    "list.required": "1行以上入力してください。",
    "list.too_many": "{count}件あります。{limit}件以内にしてください。",
    "item.empty": "{item}行目が空です。",
    "item.too_long": "{item}行目が{length}文字あります。{limit}文字以内にしてください。",
    "item.lone_surrogate": "{item}行目に使えない文字が含まれています。",
    "item.control_characters": "{item}行目に" + _CONTROL,
    "item.html": "{item}行目：" + _HTML,
    "item.personal_number": "{item}行目：" + _PERSONAL,
    "item.multiline": "{item}行目：1行で入力してください。",
    "item.phrasing_taken": (
        "{item}行目「{question}」は、エントリ {other_entry} の「{other_question}」と"
        "同じ言い回しです。言い回しは1つのエントリにだけ登録できます。"
    ),
    "date.with_time": "日付（YYYY-MM-DD）だけを入力してください。時刻は付けられません。",
    "date.invalid": "日付を正しく入力してください。",
    "date.before_from": "終了日が施行日より前になっています。",
    "answer.unknown_placeholder": _placeholder,
    "answer.unsafe_link": (
        "リンク先「{target}」は http://、https://、mailto:、tel: のいずれかで始めてください。"
    ),
    "source_url.scheme": "http:// または https:// で始まるURLを入力してください。",
    # Errors.
    "entry.invalid": "入力内容を確認してください。",
    "entry.not_found": _not_found,
    "workflow.wrong_status": (
        "この版の状態が変わっています。最新の状態を表示しましたので、もう一度お試しください。"
    ),
    "workflow.self_approval": (
        "ご自身が作成した版は承認できません。別の編集者に承認を依頼してください。"
    ),
    "workflow.nothing_to_archive": "公開中の版がないため、公開を停止できません。",
    "workflow.proposal_id_taken": (
        "エントリ {entry_id} はすでにあります。提案は新しいエントリになります。"
        "IDを空にするか、使われていないIDを入力してください。"
    ),
    "ticket.not_found": "問い合わせ #{ticket_id} が見つかりません。",
    "ticket.closed": "問い合わせ #{ticket_id} はすでに対応済みです。",
    "reply.empty": _reply("{what}を入力してください。"),
    "reply.too_long": _reply("{what}が{length}文字あります。{limit}文字以内にしてください。"),
    "reply.control_characters": _reply("{what}に" + _CONTROL),
    "reply.html": _reply("{what}にHTMLタグは使えません。文章で入力してください。"),
    "suggestion.empty": _suggestion("{what}を入力してください。"),
    "suggestion.too_long": _suggestion(
        "{what}が{length}文字あります。{limit}文字以内にしてください。"
    ),
    "suggestion.control_characters": _suggestion("{what}に" + _CONTROL),
    "suggestion.html": _suggestion("{what}にHTMLタグは使えません。文章で入力してください。"),
    "suggestion.unknown_entry": (
        "エントリ {entry_id} は見つからないか、まだ公開されたことがありません。"
        "公開中のエントリを選んでください。"
    ),
    "suggestion.not_found": "提案 #{suggestion_id} が見つかりません。",
    "suggestion.decided": _decided,
    "suggestion.nothing_selected": "提案を1つ以上選んでください。",
    "suggestion.unknown_status": (
        "提案の状態は open（未対応）、accepted（採用済み）、rejected（却下済み）の"
        "いずれかで指定してください。"
    ),
    "suggestion.same_as_phrasing": (
        "「{wording}」は、エントリ {entry_id} の言い回し「{question}」と同じです。"
        "言い回しは1つのエントリにだけ登録できます。"
    ),
    "suggestion.changes_answer": (
        "「{wording}」を加えると、エントリ {entry_id} の言い回し「{question}」への"
        "回答が変わります。内容を確かめてから採用してください。"
    ),
    "login.failed": "ユーザー名またはパスワードが違います。",
    "login.throttled": "ログインの失敗が続いたため、一時的にログインできません。",
    "session.not_found": "このセッションは見つかりません。すでに終了している可能性があります。",
    "schema.too_new": (
        "データベースがこのプログラムより新しい版で作られているため、サービスを提供できません。"
        "管理者は Madoguchi を新しい版に更新してください。"
    ),
}


def message_for(code: str, params: Mapping[str, Any]) -> str:
    """The Japanese message of ``code`` with ``params`` filled in."""
    text = MESSAGES[code]
    return text(params) if callable(text) else text.format(**params)


class KnowledgeError(Exception):
    """Base class of the knowledge library's errors. Those a console can meet carry a
    ``code``, its ``params`` and the Japanese ``message``; ``str()`` is the English text."""

    code: str | None = None

    def __init__(self, text: str, *, code: str | None = None, **params: Any):
        super().__init__(text)
        self.code = code or type(self).code
        self.params = params
        self.message = message_for(self.code, params) if self.code else text


class Problem(tuple):
    """One problem of an entry: ``(entry id, field, reason)`` as before (the English
    reason, so it unpacks and compares like the plain tuple), and its code, params and
    Japanese message."""

    code: str
    params: dict[str, Any]
    message: str

    def __new__(cls, entry_id: str, field: str, reason: str, code: str, **params: Any):
        problem = super().__new__(cls, (entry_id, field, reason))
        problem.code = code
        problem.params = params
        problem.message = message_for(code, params)
        return problem

    def __reduce__(self):
        return _problem, (*self, self.code, self.params)


def _problem(entry_id: str, field: str, reason: str, code: str, params: dict) -> Problem:
    return Problem(entry_id, field, reason, code, **params)
