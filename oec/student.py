"""The one description of the student model (the ``model`` Hydra group), read by every stage.

Training builds the model it fine-tunes from it, the in-process policy serves a checkpoint with
it, and a served policy counts its prompt tokens with its tokenizer: all three use the same
tokenizer rule, chat template, attention kernel, precision, context length and history view.
What differs between them is only *which weights*: training starts from ``name_or_path``, a
rollout policy serves ``student.model`` (e.g. the BC-trained export).

This module imports neither torch nor transformers, so configs validate without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from oec.config import AtLeast, NonEmpty

TINY = "tiny"
"""``name_or_path`` of the random-init tiny Qwen2 (oec/modeling.py), the CPU twin of the student."""

Precision = Literal["32-true", "bf16-true", "bf16-mixed", "16-mixed"]
Attention = Literal["auto", "flash_attention_2", "sdpa", "eager"]
ChatTemplate = Literal["qwen2.5"]
"""Chat templates oec/chat.py renders (each marks assistant spans with ``{% generation %}``)."""


def is_checkpoint_dir(path: str | Path) -> bool:
    """Whether ``path`` is a local Hugging Face checkpoint folder (a directory with ``config.json``)."""
    return Path(path).is_dir() and (Path(path) / "config.json").is_file()


@dataclass(frozen=True)
class StudentModel:
    """The student at one scale: what it is, how it reads text, and what it sees."""

    name_or_path: Annotated[str, NonEmpty()]
    """``tiny`` (random init, CPU) or a local checkpoint folder: the weights training starts from.
    Nothing is ever downloaded."""
    tag: Annotated[str, NonEmpty()]
    """Short name of the scale (``tiny``, ``7b``, ``32b``); stores and runs are grouped by it."""
    hub_id: str | None = None
    """The Hugging Face repository ``name_or_path`` is a copy of (named in error messages)."""
    tokenizer: str | None = None
    """A tokenizer folder; null: the served or trained checkpoint's own files (the bundled Qwen2.5
    files for ``tiny``). See :meth:`tokenizer_dir`."""
    chat_template: ChatTemplate = "qwen2.5"
    """The template conversations are rendered with, at inference and in training (oec/chat.py)."""
    attn_implementation: Attention = "auto"
    """``auto``: flash-attention 2 with CUDA and the flash_attn package, else SDPA (the reason is logged)."""
    precision: Precision = "32-true"
    """Lightning precision of training (``bf16-true``: weights, gradients and AdamW states in bf16);
    inference runs in bf16 on CUDA for the bf16 settings, float16 for ``16-mixed``, else float32."""
    max_seq_len: Annotated[int, AtLeast(2)] = 32768
    """Context length: the longest training example (longer ones are cut after the last supervised
    turn that fits) and the longest prompt at inference (a longer one ends the episode with
    ``context_limit``). Paper: 32k input tokens."""
    last_n_observations: Annotated[int, AtLeast(0)] | None = 5
    """Tool observations the student sees in full, counting back from the newest; older ones become
    a one-line note (SWE-agent's history processor; paper: 5). null shows all. See oec/chat.py."""
    gradient_checkpointing: bool = False
    """Training: recompute decoder layers in the backward pass (HF, non-reentrant)."""
    loss_chunk_size: Annotated[int, AtLeast(1)] = 1024
    """Training: supervised positions per LM-head chunk (bounds the logits' memory)."""
    vocab: Literal["full", "data"] = "full"
    """Training: ``data`` (random init only) keeps zero rows for every id the training split does not
    use and computes the exact loss over the used ids alone (oec/sft/vocab.py); ``full``: all rows."""

    def __post_init__(self) -> None:
        if self.vocab == "data" and not self.is_tiny:
            raise ValueError(
                "vocab: 'data' zeroes the rows of every id the training data does not use, which only "
                f"suits a random-init model (name_or_path=tiny), not {self.name_or_path!r}; use 'full'"
            )

    @property
    def is_tiny(self) -> bool:
        return self.name_or_path == TINY

    @property
    def load_dtype(self) -> str:
        """Dtype training loads the weights in: bf16 for pure-bf16 training, fp32 otherwise."""
        return "bfloat16" if self.precision == "bf16-true" else "float32"

    def inference_dtype(self, device_type: str) -> str:
        """Dtype a policy serves the weights in on ``device_type`` (CPUs lack fast half kernels)."""
        if device_type != "cuda":
            return "float32"
        return "float16" if self.precision == "16-mixed" else "bfloat16"

    def tokenizer_dir(self, weights: str | None = None) -> str | None:
        """THE tokenizer rule: ``tokenizer`` if set, else the checkpoint being used (``weights``, or
        ``name_or_path`` when training), else None: the bundled Qwen2.5 files of ``tiny``."""
        if self.tokenizer is not None:
            return self.tokenizer
        source = weights or self.name_or_path
        return None if source == TINY else source
