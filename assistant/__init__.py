"""Madoguchi's engine: retrieval, decisions, Rasa actions and the Japanese tokenizer.

Kept free of heavy imports so that ``assistant.text`` and ``assistant.rasa_tokenizer``
load in the Rasa environment, which has neither torch nor faiss.
"""
