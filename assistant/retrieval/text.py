"""Japanese text analysis shared by the Rasa tokenizer, the encoder and the lexical index.

Every component that turns Japanese text into words goes through :func:`analyze`, so the
Rasa NLU pipeline, the dense encoder and the lexical index agree on what a word is.
This module imports only SudachiPy; it must load in the Rasa environment too.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from sudachipy import Dictionary, SplitMode

# Bump when what analyze() or is_content returns changes: encoders and indexes built
# with another version are stale (it is part of the encoder fingerprint).
ANALYSIS_VERSION = 3

# Parts of speech that carry no topic: particles, auxiliaries, symbols, whitespace,
# interjections (「こんにちは」「ありがとう」「あのー」: a greeting before a question is
# not part of what it asks about).
# They stay in the Rasa tokens (DIET benefits from them) but are dropped from retrieval.
_FUNCTION_POS = frozenset({"助詞", "助動詞", "補助記号", "記号", "空白", "感動詞"})

# Normalized forms that appear in questions about anything (「教えてください」「いいですか」
# 「ことはできますか」): they say how a resident asks, not what about.
_GENERIC_WORDS = frozenset(
    "為る 遣る 居る 有る 成る 出来る 下さる 呉れる 貰う 頂く 致す 済む 御座る "
    "教える 知る 分かる 聞く 思う 言う 良い 欲しい 宜しい "
    "こと 物 もの 時 とき 方 ほう 所 ところ 様 よう 何 なに 如何 どう "
    "此れ 其れ これ それ 此の 其の この その".split()
)

# SudachiPy tokenizers are not thread-safe; FastAPI and the action server call us from
# thread pools, so each thread gets its own tokenizer over one shared dictionary.
_local = threading.local()


@dataclass(frozen=True, slots=True)
class Word:
    """One morpheme: its surface text, character offsets and normalized form."""

    surface: str
    start: int
    end: int
    normalized: str
    pos: str

    @property
    def is_content(self) -> bool:
        return self.pos not in _FUNCTION_POS and self.normalized not in _GENERIC_WORDS


@lru_cache(maxsize=1)
def _dictionary() -> Dictionary:
    return Dictionary(dict="core")


def _tokenizer():
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _dictionary().create(mode=SplitMode.A)
        _local.tokenizer = tokenizer
    return tokenizer


def normalize_text(text: str) -> str:
    """NFKC, lower case, collapsed whitespace: the canonical form of a question."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


@lru_cache(maxsize=65536)
def _normal_form(raw: str) -> str:
    return unicodedata.normalize("NFKC", raw).lower()


# Sudachi rejects inputs above about 49,000 bytes; we analyze longer text in pieces.
_MAX_CHUNK_CHARS = 4000


# A search analyses its query twice (lexical terms, then the encoder's tokenizer), and
# indexing an entry analyses each answer paragraph twice (its vector, then its words,
# one right after the other): recent texts are remembered. Short ones in a large cache,
# long ones (up to one Sudachi chunk) in a small one. Words are immutable, so sharing
# them is safe.
_CACHED_CHARS = 256


@lru_cache(maxsize=2048)
def _analyze_short(text: str) -> tuple[Word, ...]:
    return tuple(_analyze(text))


@lru_cache(maxsize=64)
def _analyze_long(text: str) -> tuple[Word, ...]:
    return tuple(_analyze(text))


def analyze(text: str) -> list[Word]:
    """Split ``text`` into morphemes with offsets into the original string.

    Whitespace-only morphemes are dropped. Offsets always index ``text`` itself, so
    entity annotations in Rasa stay aligned whatever full-width characters, emoji or
    line breaks the text holds.
    """
    if len(text) <= _CACHED_CHARS:
        return list(_analyze_short(text))
    if len(text) <= _MAX_CHUNK_CHARS:
        return list(_analyze_long(text))
    return _analyze(text)


def _analyze(text: str) -> list[Word]:
    words: list[Word] = []
    tokenizer = _tokenizer()
    for offset in range(0, len(text), _MAX_CHUNK_CHARS):
        chunk = text[offset : offset + _MAX_CHUNK_CHARS]
        for morpheme in tokenizer.tokenize(chunk):
            surface = morpheme.surface()
            if not surface.strip():
                continue
            pos = morpheme.part_of_speech()[0]
            words.append(
                Word(
                    surface=surface,
                    start=offset + morpheme.begin(),
                    end=offset + morpheme.end(),
                    normalized=_normal_form(morpheme.normalized_form()),
                    pos=pos,
                )
            )
    return words


def content_terms(text: str) -> list[str]:
    """Normalized forms of the words that carry meaning, in order (for retrieval)."""
    return [word.normalized for word in analyze(text) if word.is_content]


# What char_grams splits at (after NFKC): spaces, punctuation and brackets.
_GRAM_BREAKS = re.compile(r"[\s、。,.!?・「」『』()\[\]【】〈〉《》\-―~〜:;/\"'“”‘’…]+")
_HIRAGANA_ONLY = re.compile(r"^[\u3041-\u309f\u30fc]+$")


def char_grams(text: str) -> list[str]:
    """Overlapping two-character pieces of ``text`` (NFKC, lower case), for a second
    lexical index that does not depend on where Sudachi puts word boundaries.

    「国保料」 and 「国民健康保険料」 share 「保険」 only as words, but 「料」 endings,
    katakana spellings and compounds split differently in a question and an answer still
    share their pieces. Pieces of hiragana alone (「して」「ます」) are endings and
    particles, and are left out.
    """
    pieces: list[str] = []
    for run in _GRAM_BREAKS.split(normalize_text(text)):
        pieces.extend(
            gram for i in range(len(run) - 1) if not _HIRAGANA_ONLY.match(gram := run[i : i + 2])
        )
    return pieces
