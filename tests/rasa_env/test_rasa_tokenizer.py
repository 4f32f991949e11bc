"""The Rasa tokenizer component, run in the Rasa environment (Python 3.10, rasa 3.6)."""

from __future__ import annotations

import pytest
from rasa.nlu.constants import TOKENS_NAMES
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message

from assistant.conversation.rasa_tokenizer import SudachiTokenizer


@pytest.fixture
def tokenizer() -> SudachiTokenizer:
    return SudachiTokenizer(SudachiTokenizer.get_default_config())


def tokens_of(tokenizer: SudachiTokenizer, text: str):
    message = Message({TEXT: text})
    tokenizer.process([message])
    return message.get(TOKENS_NAMES[TEXT])


def test_japanese_is_split_with_lemmas(tokenizer):
    tokens = tokens_of(tokenizer, "住民票を取りたい")
    assert [t.text for t in tokens] == ["住民", "票", "を", "取り", "たい"]
    assert [t.lemma for t in tokens][3] == "取る"


@pytest.mark.parametrize(
    "text",
    [
        "ＡＢＣの全角と abc の半角",
        "保険料😀を払いたい👍",
        "詳しくは https://example.jp/a?b=1 を見て",
        "一行目\n二行目\r\n三行目",
        "  前後に空白  ",
    ],
)
def test_offsets_match_the_original_text(tokenizer, text):
    tokens = tokens_of(tokenizer, text)
    assert tokens
    for token in tokens:
        assert text[token.start : token.end] == token.text


def test_full_width_letters_get_a_folded_lemma(tokenizer):
    tokens = tokens_of(tokenizer, "ＡＢＣ")
    assert tokens[0].text == "ＡＢＣ" and tokens[0].lemma == "abc"


def test_empty_and_whitespace_only_text(tokenizer):
    assert tokens_of(tokenizer, "") == []
    assert tokens_of(tokenizer, " \u3000 ") == []


def test_emoji_only_is_one_token(tokenizer):
    tokens = tokens_of(tokenizer, "😀")
    assert [(t.text, t.start, t.end) for t in tokens] == [("😀", 0, 1)]
