"""Retrieval: from a resident's words to the engine's decision.

``text`` (normalization, Sudachi), ``encoder``/``e5``/``onnx_encoder`` (the sentence
encoders), ``vectors`` (the vector cache), ``index`` (faiss), ``lexical`` (BM25 and
coverage), ``ranking`` (the pure decision core: weights, evidence, thresholds),
``out_of_scope``, ``engine`` (which puts them together) and ``evaluation`` (dev sets).
Nothing here knows about Rasa or the API.
"""
