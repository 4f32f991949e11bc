"""Madoguchi's assistant, in three parts:

- ``assistant.retrieval``: Japanese text, the encoders, the indexes, the ranking core and
  the engine that decides (answer, choices, hand off), and the dev-set evaluation.
- ``assistant.conversation``: what is said for a decision (``dialogue``), handoffs,
  feedback and the reply payload written once each, carried out by the Rasa actions or,
  while Rasa is down, by the degraded chat; Rasa's tokenizer, channel and servers.
- ``assistant.operations``: settings, the CLI, the launcher and its supervisor, logs,
  the secret key, file permissions and the retention job.

Kept free of heavy imports (each package too) so that ``assistant.retrieval.text`` and
``assistant.conversation.rasa_tokenizer`` load in the Rasa environment, which has
neither torch nor faiss.
"""
