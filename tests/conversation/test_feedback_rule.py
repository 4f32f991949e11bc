"""Which question an answer answered, read from the turns as either path keeps them
(assistant.conversation.feedback_rule.answered_question): Rasa's with intents, the
degraded chat's without."""

from __future__ import annotations

from assistant.conversation.dialogue import CLARIFY_PROMPT, FEEDBACK_PROMPT
from assistant.conversation.feedback_rule import answered_question


def resident(text: str, intent: str | None = None) -> dict:
    return {"role": "resident", "text": text} | ({"intent": intent} if intent else {})


def assistant(text: str) -> dict:
    return {"role": "assistant", "text": text}


ANSWER = [assistant("固定資産税は…"), assistant(FEEDBACK_PROMPT)]
SOLVED = resident('/feedback_positive{"entry_id":"x"}', "feedback_positive")


def test_a_button_pick_answers_the_question_before_the_choices():
    turns = [
        resident("こんにちは", "greet"),
        resident("税金を払いたい", "inquiry"),
        assistant(CLARIFY_PROMPT),
        resident('/choose_entry{"entry_id":"x"}', "choose_entry"),
        *ANSWER,
        SOLVED,
    ]
    assert answered_question(turns) == ("税金を払いたい", True)


def test_a_typed_pick_without_nlu_is_a_pick_too():
    turns = [resident("税金を払いたい"), assistant(CLARIFY_PROMPT), resident("2番目"), *ANSWER]
    assert answered_question(turns) == ("税金を払いたい", True)


def test_a_new_question_after_the_choices_is_answered_directly():
    turns = [
        resident("税金を払いたい"),
        assistant(CLARIFY_PROMPT),
        resident("固定資産税の納付方法を知りたいです"),
        *ANSWER,
        SOLVED,
    ]
    assert answered_question(turns) == ("固定資産税の納付方法を知りたいです", False)


def test_a_direct_answer_and_a_conversation_without_a_question():
    assert answered_question([resident("粗大ごみを出したい"), *ANSWER]) == (
        "粗大ごみを出したい",
        False,
    )
    assert answered_question([resident("こんにちは"), assistant("こんにちは。")]) == ("", False)
    assert answered_question([]) == ("", False)
