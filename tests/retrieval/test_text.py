from assistant.retrieval.text import analyze, char_grams, content_terms, normalize_text


def test_offsets_index_the_original_text():
    text = "住民票を\n取りたい😀 ＡＢＣ https://example.jp"
    for word in analyze(text):
        assert text[word.start : word.end] == word.surface


def test_normalized_forms_fold_width_and_case():
    assert content_terms("ＭＹナンバー") == content_terms("myナンバー")


def test_function_words_and_generic_words_are_not_content():
    assert content_terms("住民票をください") == ["住民", "票"]
    assert content_terms("転居届の出し方を教えてください") == ["転居", "届け", "出す"]


def test_whitespace_only_and_empty_give_no_words():
    assert analyze("") == []
    assert analyze(" \u3000\n\t") == []


def test_long_text_is_analyzed_in_chunks_with_correct_offsets():
    text = "保険料" * 3000  # 9,000 characters, beyond one Sudachi call
    words = analyze(text)
    assert words[-1].end == len(text)
    assert all(text[w.start : w.end] == w.surface for w in words)


def test_char_grams_skip_punctuation_and_hiragana_only_pieces():
    assert char_grams("国保料（こくほ）を払う！") == ["国保", "保料", "を払", "払う"]
    assert char_grams("ＥＬＴＡＸ") == ["el", "lt", "ta", "ax"]  # NFKC, lower case
    assert char_grams("です。ます") == []


def test_interjections_are_not_content():
    assert content_terms("こんにちは、住民票を取りたい") == content_terms("住民票を取りたい")


def test_normalize_text():
    assert normalize_text("  住民票　ＡＢＣ\n ") == "住民票 abc"
