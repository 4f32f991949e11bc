"""The conversation: what the assistant says and when a person takes over.

``dialogue`` turns a decision into replies; ``handoffs`` opens tickets, ``feedback_rule``
records verdicts and ``replies`` encodes the payload between the actions and the API,
each in one place. They are carried out by the Rasa actions (``actions``) or, while Rasa
is down, by ``degraded``; ``rasa_tokenizer``, ``rasa_channel``, ``rasa_server`` and
``action_server`` are Rasa's side.
"""
