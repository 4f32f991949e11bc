"""Personal data in what residents and staff type: found and masked before anything is
stored (tickets, chat messages, feedback, Rasa's trackers, logs, the audit log).

What is masked, in whatever width, separators and grouping it is typed:
- e-mail addresses, spaces around ``@`` included (``a @ example.jp``);
- card numbers: 14 to 19 digits that pass the Luhn check (Amex has 15, Diners 14);
- phone numbers: 10 or 11 digits starting with 0 (mobile ``090-1234-5678``, landlines
  ``03-1234-5678``, ``(090)1234-5678``), and international forms (``+81 90-1234-5678``,
  ``+81 (0)3 1234 5678``, any ``+`` and 8 to 15 digits);
- My Numbers (個人番号): 12 digits in any grouping (4-4-4, 6+6, one digit at a time).

Matching runs on a normalised copy of the text: NFKC (full-width digits and ``＠``),
then the whole family of dashes (``-‐‑‒–—―ー－−``), every space (U+3000, doubled), dots
and slashes count as one separator. Only the matched spans of the original text are
replaced, so the rest of the message stays byte for byte as it was typed.

Not masked, by design: dates (2026-12-02), postal codes (〒000-0000: an address is not
a number that identifies a person on its own, and staff need it), fees (1,000円), times
(8:30〜17:15), entry ids and short numbers. Twelve digits in a row are masked even
when they are something else (a 12-digit reference number): a false mask costs a
question to the resident, a missed one a My Number in the database.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

EMAIL = "メールアドレス"
CARD = "カード番号"
PHONE = "電話番号"
MY_NUMBER = "個人番号"

_DASHES = "-‐‑‒–—―ー－−ｰ﹣"
_DOTS = ".．"  # not 「・」: it separates list items (コード11・12・21)
_SLASHES = "/／"
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+ {0,2}@ {0,2}[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+", re.ASCII)
# Digit groups joined by up to three separators or brackets: one run of a number.
_RUN = re.compile(r"[0-9]+(?:[ \-./()]{1,3}[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
_MAX_DIGITS = 19


def _normalised(text: str) -> tuple[str, list[int]]:
    """``text`` for matching, and for each of its characters the index it came from."""
    chars: list[str] = []
    origin: list[int] = []
    for index, ch in enumerate(text):
        if ch.isascii() and ch not in "\t\n\r\x0b\x0c":
            folded = ch
        else:
            folded = unicodedata.normalize("NFKC", ch)
        for part in folded:
            if part in _DASHES:
                part = "-"
            elif part in _DOTS:
                part = "."
            elif part in _SLASHES:
                part = "/"
            elif part.isspace():
                part = " "
            chars.append(part)
            origin.append(index)
    return "".join(chars), origin


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, digit in enumerate(reversed(digits)):
        value = int(digit) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _kind(digits: str, international: bool) -> str | None:
    """Which personal number ``digits`` (separators removed) is, if any."""
    if international:
        national = digits[2:].removeprefix("0") if digits.startswith("81") else digits
        if digits.startswith("81") and 9 <= len(national) <= 10:
            return PHONE
        return PHONE if 8 <= len(digits) <= 15 and not digits.startswith("81") else None
    if 14 <= len(digits) <= 19 and luhn_valid(digits):
        return CARD
    if digits.startswith("0") and len(digits) in (10, 11):
        return PHONE
    if len(digits) == 12:
        return MY_NUMBER
    return None


def _number_spans(normal: str, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """Spans of ``normal`` holding a personal number, outside the ``taken`` spans.

    In each run of digit groups, from each group on, the longest stretch of whole
    groups that is a personal number wins; the search goes on after it.
    """
    found = []
    for run in _RUN.finditer(normal):
        if any(start < run.end() and run.start() < end for start, end in taken):
            continue
        groups = [(m.start() + run.start(), m.end() + run.start()) for m in _GROUP.finditer(run[0])]
        i = 0
        while i < len(groups):
            lead = groups[i][0]
            international = normal[max(0, lead - 2) : lead].endswith(("+", "+("))
            best = None
            digits = ""
            for j in range(i, len(groups)):
                digits += normal[groups[j][0] : groups[j][1]]
                if len(digits) > _MAX_DIGITS:
                    break
                kind = _kind(digits, international)
                if kind:
                    best = (j, kind)
            if best is None:
                i += 1
                continue
            j, kind = best
            start = lead
            while start > 0 and normal[start - 1] in "+(" and lead - start < 2:
                start -= 1
            end = groups[j][1]
            if normal[start:lead].endswith("(") and normal[end : end + 1] == ")":
                end += 1  # "(090)": the bracket closes after a group
            found.append((start, end, kind))
            i = j + 1
    return found


def find_personal_data(text: str) -> list[tuple[int, int, str]]:
    """(start, end, kind) of each personal number in ``text``, in order, by index of
    ``text`` itself."""
    normal, origin = _normalised(text)
    spans = [(m.start(), m.end(), EMAIL) for m in _EMAIL.finditer(normal)]
    spans += _number_spans(normal, [(s, e) for s, e, _ in spans])
    return sorted((origin[s], origin[e - 1] + 1, kind) for s, e, kind in spans)


def mask_found(text: str) -> tuple[str, list[str]]:
    """``text`` with each personal number replaced by ［its kind］, and the kinds found
    (each once, in order of first appearance)."""
    spans = find_personal_data(text)
    if not spans:
        return text, []
    pieces, kinds, last = [], [], 0
    for start, end, kind in spans:
        pieces += [text[last:start], f"［{kind}］"]
        last = end
        if kind not in kinds:
            kinds.append(kind)
    pieces.append(text[last:])
    return "".join(pieces), kinds


def mask_personal_data(text: str) -> str:
    """Replace e-mail addresses, card numbers, phone numbers and My Numbers."""
    return mask_found(text)[0]


def mask_turns(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversation turns as a ticket stores them: each turn's text masked."""
    return [{**turn, "text": mask_personal_data(str(turn.get("text", "")))} for turn in turns]


_QUERY = re.compile(r"[?#]")


def clean_page(page: str) -> str:
    """The page a chat was opened on, as staff may see it: without its query string and
    fragment (a search form or a tracking link can carry what the resident typed), and
    with personal numbers in the path masked."""
    return mask_personal_data(_QUERY.split(page, maxsplit=1)[0])[:500]
