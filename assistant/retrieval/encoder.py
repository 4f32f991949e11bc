"""The default sentence encoder, built offline from ja-ginza's chiVe word vectors.

The result is an ordinary sentence-transformers model directory:
``WordEmbeddings`` (20,000 x 300 rows) with :class:`SudachiWordTokenizer`, which maps the
~480,000 words ja-ginza knows onto those rows, then ``WordWeights`` (an IDF estimate per
row), mean pooling and normalization. Nothing is downloaded. Any other local
sentence-transformers directory can be configured instead (``MADOGUCHI_ENCODER``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402
from sentence_transformers.sentence_transformer.modules import (  # noqa: E402
    Normalize,
    Pooling,
    WordEmbeddings,
    WordWeights,
)
from sentence_transformers.sentence_transformer.modules.tokenizer import (  # noqa: E402
    WordTokenizer,
)
from tqdm import tqdm  # noqa: E402

from assistant.retrieval.errors import EncoderError  # noqa: E402
from assistant.retrieval.text import ANALYSIS_VERSION, analyze  # noqa: E402

TOKENIZER_FILE = "sudachi_word_tokenizer.json"


class SudachiWordTokenizer(WordTokenizer):
    """Turns Japanese text into vector-row ids through Sudachi's normalized forms.

    Particles, auxiliaries and symbols are dropped; a content word is looked up by its
    normalized form, then its surface. Words with no vector are skipped.
    """

    def __init__(self, word_to_row: dict[str, int]):
        self.word_to_row = word_to_row

    def set_vocab(self, vocab: Iterable[str]) -> None:
        self.word_to_row = {word: row for row, word in enumerate(vocab)}

    def get_vocab(self) -> dict[str, int]:
        return self.word_to_row

    def tokenize(self, text: str, **kwargs) -> list[int]:
        rows = []
        for word in analyze(text):
            if not word.is_content:
                continue
            row = self.word_to_row.get(word.normalized)
            if row is None:
                row = self.word_to_row.get(word.surface)
            if row is not None:
                rows.append(row)
        return rows

    def save(self, output_path: str) -> None:
        with open(os.path.join(output_path, TOKENIZER_FILE), "w", encoding="utf-8") as out:
            json.dump(self.word_to_row, out, ensure_ascii=False, sort_keys=True)

    @staticmethod
    def load(input_path: str) -> SudachiWordTokenizer:
        with open(os.path.join(input_path, TOKENIZER_FILE), encoding="utf-8") as source:
            return SudachiWordTokenizer(json.load(source))


def _ginza_vectors() -> tuple:
    """ja-ginza's vector table and its word -> row map (spaCy's on-disk format)."""
    import ja_ginza
    from spacy.strings import StringStore
    from spacy.vectors import Vectors

    package = Path(ja_ginza.__file__).parent
    vocab_dirs = sorted(package.glob("ja_ginza-*/vocab"))
    if not vocab_dirs:
        raise EncoderError(f"ja-ginza is installed at {package} but holds no vocab/ directory")
    vocab_dir = vocab_dirs[-1]
    vectors = Vectors().from_disk(vocab_dir)
    with open(vocab_dir / "strings.json", encoding="utf-8") as source:
        strings = StringStore(json.load(source))
    word_to_row = {strings[key]: int(row) for key, row in vectors.key2row.items() if key in strings}
    return vectors.data, word_to_row


def _row_weights(row_count: int) -> dict[str, float]:
    """An IDF estimate per row from its frequency rank.

    chiVe rows are ordered by corpus frequency, and under Zipf's law a word's document
    frequency falls roughly as 1/rank, so log(rank) tracks IDF without needing a corpus.
    """
    top = math.log(row_count + 2)
    return {str(row): math.log(row + 2) / top for row in range(row_count)}


def build_encoder(output_dir: Path) -> Path:
    """Build the default encoder into ``output_dir``, replacing it atomically."""
    steps = tqdm(total=4, desc="encoder", unit="step")
    steps.set_postfix_str("loading ja-ginza vectors")
    matrix, word_to_row = _ginza_vectors()
    steps.update()
    row_count, dimension = matrix.shape
    tokenizer = SudachiWordTokenizer(word_to_row)
    steps.set_postfix_str("assembling model")
    modules = [
        WordEmbeddings(tokenizer, matrix.astype("float32"), update_embeddings=False),
        WordWeights(
            vocab=[str(row) for row in range(row_count)],
            word_weights=_row_weights(row_count),
            unknown_word_weight=1.0,
        ),
        Pooling(dimension, pooling_mode="mean"),
        Normalize(),
    ]
    model = SentenceTransformer(modules=modules, device="cpu")
    steps.update()
    steps.set_postfix_str("saving")
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".encoder-", dir=output_dir.parent))
    model.save(str(staging))
    steps.update()
    if output_dir.exists():
        shutil.rmtree(output_dir)
    os.replace(staging, output_dir)
    steps.update()
    steps.close()
    return output_dir


def load_encoder(path: Path) -> SentenceTransformer:
    """Load a local sentence-transformers directory, never reaching for a model hub; a
    transformer exported for ONNX Runtime (assistant.retrieval.onnx_encoder) runs there."""
    from assistant.retrieval.onnx_encoder import OnnxSentenceEncoder, runs_with_onnx

    path = Path(path)
    if not (path / "modules.json").is_file():
        raise EncoderError(
            f"no encoder at {path} (modules.json missing): run `madoguchi encoder build` "
            "or set MADOGUCHI_ENCODER to a local sentence-transformers model directory"
        )
    if runs_with_onnx(path):
        return OnnxSentenceEncoder(path)
    return SentenceTransformer(
        str(path), device="cpu", trust_remote_code=True, local_files_only=True
    )


def encoder_fingerprint(path: Path, exclude: str | None = None) -> str:
    """A digest of every file in the encoder directory and of the text analysis version:
    changes when the model, or how text is split into words, does."""
    digest = hashlib.sha256(f"analysis-{ANALYSIS_VERSION}".encode())
    root = Path(path)
    for file in sorted(p for p in root.rglob("*") if p.is_file() and p.name != exclude):
        digest.update(str(file.relative_to(root)).encode())
        with open(file, "rb") as source:
            for block in iter(lambda: source.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
