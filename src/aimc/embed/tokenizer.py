"""CLIP byte-pair tokenizer that works offline (MineCLIP's text side).

MineCLIP tokenizes through the HF hub at run time; aimc ships the CLIP BPE merge list
(`assets/bpe_simple_vocab_16e6.txt.gz`, MIT-licensed OpenAI CLIP vocabulary) so no network is needed.
Layout: [49406 (start), content tokens (at most 75), 49407 (end), 0-padding] = exactly 77 ids.
"""

from __future__ import annotations

import functools
import gzip
import html
import itertools
from pathlib import Path

import regex
import torch

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
START_ID = 49406
END_ID = 49407
PAD_ID = 0
_N_MERGES = VOCAB_SIZE - 256 * 2 - 2  # merges used by CLIP: vocab = bytes + bytes</w> + merges + 2 specials
_BPE_FILE = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
_WORD_RE = regex.compile(
    r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
    regex.IGNORECASE,
)


def _byte_alphabet() -> dict[int, str]:
    """Map each byte to a printable unicode char, so BPE works on text without whitespace/control bytes."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _clean(text: str) -> str:
    import ftfy

    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text)).strip()
    return regex.sub(r"\s+", " ", text).strip().lower()


class ClipTokenizer:
    """Text -> CLIP BPE ids; `__call__` returns the padded (N, 77) LongTensor MineCLIP expects."""

    def __init__(self, bpe_path: str | Path = _BPE_FILE) -> None:
        with gzip.open(bpe_path, "rt", encoding="utf-8") as f:
            lines = f.read().split("\n")[1 : _N_MERGES + 1]  # first line is a version header
        merges = [tuple(line.split()) for line in lines]
        self.byte_table = _byte_alphabet()
        symbols = list(self.byte_table.values())
        symbols += [s + "</w>" for s in symbols]
        symbols += ["".join(m) for m in merges]
        symbols += ["<|startoftext|>", "<|endoftext|>"]
        self.encoder = {s: i for i, s in enumerate(symbols)}
        self.decoder = {i: s for s, i in self.encoder.items()}
        self.ranks = {m: i for i, m in enumerate(merges)}
        if len(self.encoder) != VOCAB_SIZE:
            raise ValueError(
                f"CLIP BPE file {bpe_path} gives {len(self.encoder)} symbols, expected {VOCAB_SIZE}"
            )
        self._cache: dict[str, list[str]] = {}

    def _bpe(self, word: str) -> list[str]:
        """Greedy lowest-rank pair merging of one pre-tokenized word (last symbol carries '</w>')."""
        if word in self._cache:
            return self._cache[word]
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            pairs = set(itertools.pairwise(parts))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self._cache[word] = parts
        return parts

    def encode(self, text: str) -> list[int]:
        """Content ids only (no start/end/padding)."""
        ids: list[int] = []
        for word in _WORD_RE.findall(_clean(text)):
            mapped = "".join(self.byte_table[b] for b in word.encode("utf-8"))
            ids.extend(self.encoder[s] for s in self._bpe(mapped))
        return ids

    def decode(self, ids: list[int]) -> str:
        inverse = {c: b for b, c in self.byte_table.items()}
        specials = (START_ID, END_ID, PAD_ID)
        text = "".join(self.decoder[i] for i in ids if i not in specials)
        words = [
            bytearray(inverse[c] for c in w).decode("utf-8", errors="replace") for w in text.split("</w>")
        ]
        return " ".join(w for w in words if w)

    def __call__(self, texts: list[str] | str, context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
        """(N,) strings -> (N, 77) int64: start, content cut to 75 tokens, end, zero padding."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), context_length), PAD_ID, dtype=torch.long)
        for row, text in enumerate(texts):
            ids = [START_ID, *self.encode(text)[: context_length - 2], END_ID]
            out[row, : len(ids)] = torch.tensor(ids)
        return out


@functools.cache
def clip_tokenizer() -> ClipTokenizer:
    """Process-wide tokenizer (loading the 49k merges takes ~0.2 s)."""
    return ClipTokenizer()
