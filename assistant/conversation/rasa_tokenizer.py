"""Rasa 3.6 tokenizer component for Japanese, on SudachiPy.

Named in ``training_data/config.yml`` as ``assistant.conversation.rasa_tokenizer.SudachiTokenizer``.
It runs inside the Rasa environment (Python 3.10), so it imports only Rasa and
:mod:`assistant.retrieval.text`. Each token's ``lemma`` is Sudachi's normalized form, which the
count-vector featurizers use (``use_lemma``), and its offsets index the original text.
"""

from __future__ import annotations

from typing import Any

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.nlu.tokenizers.tokenizer import Token, Tokenizer
from rasa.shared.nlu.training_data.message import Message

from assistant.retrieval.text import analyze


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=False)
class SudachiTokenizer(Tokenizer):
    """Splits Japanese text into Sudachi morphemes (split mode A)."""

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "intent_tokenization_flag": False,
            "intent_split_symbol": "_",
            "token_pattern": None,
            "prefix_separator_symbol": None,
        }

    @staticmethod
    def supported_languages() -> list[str] | None:
        return ["ja"]

    @staticmethod
    def required_packages() -> list[str]:
        return ["sudachipy"]

    def tokenize(self, message: Message, attribute: str) -> list[Token]:
        text = message.get(attribute) or ""
        tokens = [
            Token(word.surface, word.start, word.end, data={"pos": word.pos}, lemma=word.normalized)
            for word in analyze(text)
        ]
        if not tokens and text.strip():
            # Nothing Sudachi keeps (rare): the whole text as one token, as Rasa's own
            # tokenizers do, so featurizers always see something.
            stripped = text.strip()
            start = text.index(stripped)
            tokens = [Token(stripped, start, start + len(stripped))]
        return self._apply_token_pattern(tokens)
