"""A tiny random-weight llama model in GGUF, with a SentencePiece tokenizer trained here: nothing downloaded.

`build_model(directory)` trains a byte-fallback BPE tokenizer (as Llama's own) on the seeded text of
`tests.llamacpp.text`, then writes a 2-layer llama whose metadata carries that vocabulary and a
ChatML chat template, so llama.cpp counts with a tokenizer that is not o200k and applies a real
template. The weights are random: answers are garbage, but never empty and never stopped early,
because the output layer keeps special and byte tokens out of reach (see `_weights`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
import sentencepiece as spm

from tests.llamacpp.text import corpus

NAME = "tiny-sp-llama"
VOCAB_SIZE = 800  # 256 of them byte tokens: small enough that counts run well above o200k's
EMBED, LAYERS, HEADS, FEED_FORWARD = 64, 2, 4, 128
TRAIN_CONTEXT = 2048
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    + IM_START
    + "{{ message['role'] }}\n{{ message['content'] }}"
    + IM_END
    + "\n{% endfor %}{% if add_generation_prompt %}"
    + IM_START
    + "assistant\n{% endif %}"
)


@dataclass(frozen=True, slots=True)
class Vocabulary:
    tokens: list[bytes]
    scores: list[float]
    types: list[int]


def train_tokenizer(seed: int = 0) -> spm.SentencePieceProcessor:
    """A Llama-style tokenizer: BPE, byte fallback, no normalisation, digits split, in memory."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(seed)),
        model_writer=model,
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        byte_fallback=True,
        character_coverage=0.99,  # rarer characters fall back to bytes, as in real vocabularies
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        user_defined_symbols=[IM_START, IM_END],
        num_threads=1,
        minloglevel=2,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


def vocabulary(sp: spm.SentencePieceProcessor) -> Vocabulary:
    """Pieces, scores and token types as llama.cpp's SPM vocabulary expects them."""
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        piece = sp.id_to_piece(i)
        kind = gguf.TokenType.NORMAL
        if sp.is_unknown(i):
            kind = gguf.TokenType.UNKNOWN
        elif sp.is_control(i):
            kind = gguf.TokenType.CONTROL
        elif sp.is_byte(i):
            kind = gguf.TokenType.BYTE
        elif piece in (IM_START, IM_END):
            kind = gguf.TokenType.USER_DEFINED
        tokens.append(piece.encode("utf-8"))
        scores.append(sp.get_score(i))
        types.append(int(kind))
    return Vocabulary(tokens, scores, types)


def _weights(vocab: Vocabulary, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random weights, shaped as numpy sees them (GGUF stores the dimensions reversed).

    Every token embedding has a large constant in dimension 0, which survives the layers; the output
    row of each special or byte token is strongly negative there, so sampling never picks them: no
    early end of text, no stray half-characters.
    """

    def normal(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.02, shape).astype(np.float32)

    embed = normal(len(vocab.tokens), EMBED)
    embed[:, 0] = 1.0
    output = normal(len(vocab.tokens), EMBED)
    output[:, 0] = 0.0
    for i, kind in enumerate(vocab.types):
        if kind != gguf.TokenType.NORMAL:
            output[i, 0] = -5.0
    ones = np.ones(EMBED, dtype=np.float32)
    tensors = {"token_embd.weight": embed, "output_norm.weight": ones, "output.weight": output}
    for layer in range(LAYERS):
        block = f"blk.{layer}"
        tensors |= {
            f"{block}.attn_norm.weight": ones,
            f"{block}.attn_q.weight": normal(EMBED, EMBED),
            f"{block}.attn_k.weight": normal(EMBED, EMBED),
            f"{block}.attn_v.weight": normal(EMBED, EMBED),
            f"{block}.attn_output.weight": normal(EMBED, EMBED),
            f"{block}.ffn_norm.weight": ones,
            f"{block}.ffn_gate.weight": normal(FEED_FORWARD, EMBED),
            f"{block}.ffn_up.weight": normal(FEED_FORWARD, EMBED),
            f"{block}.ffn_down.weight": normal(EMBED, FEED_FORWARD),
        }
    return tensors


def write_gguf(path: Path, vocab: Vocabulary, seed: int = 0) -> Path:
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(NAME)
    writer.add_context_length(TRAIN_CONTEXT)
    writer.add_embedding_length(EMBED)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FEED_FORWARD)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(HEADS)
    writer.add_rope_dimension_count(EMBED // HEADS)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab.tokens)
    writer.add_token_scores(vocab.scores)
    writer.add_token_types(vocab.types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in _weights(vocab, np.random.default_rng(seed)).items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_model(directory: Path) -> Path:
    """Train the tokenizer and write `<directory>/tiny-sp-llama.gguf` (a second or two, under 1 MB)."""
    return write_gguf(directory / f"{NAME}.gguf", vocabulary(train_tokenizer()))


if __name__ == "__main__":
    import sys

    print(build_model(Path(sys.argv[1] if len(sys.argv) > 1 else ".")))
