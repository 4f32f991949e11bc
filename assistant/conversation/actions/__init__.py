"""Rasa custom actions, one module per feature. Served by ``python -m rasa_sdk
--actions assistant.conversation.actions`` in the main environment (where the engine lives)."""

from assistant.operations import logs

logs.configure_from_env("actions")
