"""Retrieval: from a resident's words to the engine's decision.

``text`` (normalization, Sudachi), ``encoder``/``e5``/``onnx_encoder`` (the sentence
encoders), ``vectors`` (the vector cache), ``index`` (faiss), ``lexical`` (BM25 and
coverage), ``ranking`` (the pure decision core: weights, evidence, thresholds),
``out_of_scope``, ``engine`` (which puts them together), ``evaluation`` (dev sets),
``learning`` (whether a suggested phrasing upsets another entry, by the preview) and
``replay`` (what learning from handoffs gains on a dev set).
Nothing here knows about Rasa or the API.
"""
