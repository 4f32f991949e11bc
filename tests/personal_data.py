"""The masking table (personal numbers as residents and staff really type them), the
forms that must stay as they are, and a scan of a Madoguchi home for any of them.

Used by tests/test_privacy.py (the table against the masking function), by the
end-to-end scans (everything a conversation stored) and by anything else that must
show a personal number went nowhere. Each number is distinct, so a hit names its form.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from pathlib import Path

from knowledge.privacy import CARD, EMAIL, MY_NUMBER, PHONE

# (what is typed, what it is). The ids in the comments are how a finding names them.
MASKED_FORMS: list[tuple[str, str]] = [
    # My Numbers: 12 digits, any width, separator and grouping.
    ("1234 5678 9012", MY_NUMBER),  # 4-4-4 spaces
    ("123456789012", MY_NUMBER),  # no separator
    ("2345-6789-0123", MY_NUMBER),  # ASCII hyphens
    ("３４５６　７８９０　１２３４", MY_NUMBER),  # full width, ideographic spaces
    ("４５６７－８９０１－２３４５", MY_NUMBER),  # full width, full-width hyphens
    ("5678－9012－3456", MY_NUMBER),  # full-width hyphens around ASCII digits
    ("6789ー0123ー4567", MY_NUMBER),  # katakana long vowel mark
    ("7890‐1234‐5678", MY_NUMBER),  # U+2010 hyphen
    ("8901−2345−6789", MY_NUMBER),  # U+2212 minus
    ("9012–3456–7890", MY_NUMBER),  # en dash
    ("0123—4567—8901", MY_NUMBER),  # em dash
    ("1357.2468.0246", MY_NUMBER),  # dots
    ("2468/1357/9753", MY_NUMBER),  # slashes
    ("3579  1357  2468", MY_NUMBER),  # doubled spaces
    ("4 6 8 0 2 4 6 8 1 3 5 7", MY_NUMBER),  # one digit at a time
    ("５ ７ ９ １ ３ ５ ７ ９ ２ ４ ６ ８", MY_NUMBER),  # one full-width digit at a time
    ("135792 468024", MY_NUMBER),  # 6+6
    ("２４６８１３ ５７９０２４", MY_NUMBER),  # 6+6 full width
    ("9753 1864 2086", MY_NUMBER),  # 4-4-4 again, another number
    # Phones: mobile, landlines, +81, (090), full width.
    ("090-1234-5678", PHONE),
    ("08023456789", PHONE),
    ("070 3456 7890", PHONE),
    ("03-1234-5679", PHONE),  # Tokyo landline
    ("0466-12-3456", PHONE),  # a four-digit area code
    ("0120-123-457", PHONE),  # free dial
    ("+81-90-2345-6789", PHONE),
    ("+81 80 3456 7891", PHONE),
    ("＋８１　９０－４５６７－８９０２", PHONE),  # full-width plus and digits
    ("+81 (0)3 2345 6780", PHONE),
    ("+819056789013", PHONE),
    ("(090)6789-0124", PHONE),
    ("（０９０）７８９０－１２３５", PHONE),  # full-width brackets
    ("０９０－８９０１－２３４６", PHONE),  # full-width hyphens
    ("090ー9012ー3457", PHONE),  # long vowel marks
    ("090‐0123‐4568", PHONE),  # U+2010 hyphens
    # Cards: 14 to 19 digits that pass the Luhn check.
    ("4111 1111 1111 1111", CARD),  # 16, Visa test number
    ("5555-5555-5555-4444", CARD),  # 16, Mastercard test number
    ("3782 822463 10005", CARD),  # 15, Amex 4-6-5
    ("378282246310005", CARD),  # 15, Amex without separators
    ("3056 9309 0259 04", CARD),  # 14, Diners
    ("6011 0009 9013 9424", CARD),  # 16, Discover
    ("4111 1111 1111 1111 003", CARD),  # 19
    ("３５３０　１１１３　３３３０　００００", CARD),  # 16, full width (JCB test)
    # E-mail addresses.
    ("taro.yamada@example.jp", EMAIL),
    ("hanako @ example.jp", EMAIL),  # spaces around @
    ("ｊｉｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", EMAIL),  # full width
    ("saburo+city@mail.example.co.jp", EMAIL),
]

# Numbers that must stay as they are (why, in the comment).
KEPT_FORMS: list[str] = [
    "2026-12-02",  # a date
    "2026/12/02",
    "２０２６年１２月２日",
    "令和8年4月1日",
    "1,000円",  # a fee
    "１，５００円",
    "8:30〜17:15",  # office hours
    "〒000-0000",  # a postal code: an address, not a number of a person (documented)
    "〒123-4567",
    "sodai-gomi",  # an entry id
    "juminhyo-2",
    "2通",  # short numbers
    "第3子",
    "11・12・21・22・31・32",  # a list of codes
    "1234567890123",  # 13 digits: no personal number has 13 (a corporate number does)
    "4111111111111112",  # 16 digits in one group failing the Luhn check
    "12345678901",  # 11 digits not starting with 0
    "100分の30",
]


def needles(form: str) -> set[str]:
    """What a stored copy of ``form`` would look like: as typed, its NFKC form, and its
    digits alone (or, for an address, without spaces)."""
    normal = unicodedata.normalize("NFKC", form)
    found = {form, normal}
    if "@" in normal:
        found.add(normal.replace(" ", ""))
    else:
        found.add("".join(ch for ch in normal if ch.isdigit()))
    return found


def _unescaped(value: object) -> str:
    """Text as stored, with JSON (Rasa's events are ASCII-escaped JSON) unescaped."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return text
    return text + "\n" + json.dumps(parsed, ensure_ascii=False)


def _sqlite_texts(path: Path) -> list[str]:
    """Every value of every table, read with SQLite (the -wal is read with the file)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        texts = []
        for table in tables:
            for row in connection.execute(f'SELECT * FROM "{table}"'):
                texts.extend(_unescaped(value) for value in row if value is not None)
        return texts
    finally:
        connection.close()


def _file_texts(path: Path) -> list[str]:
    raw = path.read_bytes()
    if raw.startswith(b"SQLite format 3\x00"):
        return _sqlite_texts(path)
    text = raw.decode("utf-8", "replace")
    return [text] + [_unescaped(line) for line in text.splitlines() if line.startswith(("{", "["))]


def scan(home: Path, forms: list[str] | None = None) -> list[str]:
    """Where any personal number of the table (or ``forms``) is stored under ``home``:
    one line per finding, empty when there is none. Model and index files hold no text
    anyone typed and are left out, as are SQLite's -shm files (no content)."""
    wanted = {form: needles(form) for form in forms or [f for f, _ in MASKED_FORMS]}
    findings = []
    for path in sorted(home.rglob("*")):
        if not path.is_file() or "models" in path.parts or "encoder" in path.parts:
            continue
        if path.suffix in (".bin", ".faiss", ".npy") or path.name.endswith("-shm"):
            continue
        if path.name.endswith("-wal"):  # read through its database
            continue
        texts = _file_texts(path)
        for form, forms_of in wanted.items():
            for needle in forms_of:
                if any(needle in text for text in texts):
                    findings.append(f"{form!r} stored as {needle!r} in {path}")
                    break
    return findings
