"""Export trained weights as a Hugging Face checkpoint folder that transformers and vLLM load.

Every strategy ends the same way: ``trainer.save_checkpoint`` writes full weights (DDP and FSDP with
``state_dict_type="full"`` write one file; DeepSpeed writes a folder of ZeRO shards that is
consolidated here), and global rank 0 turns that checkpoint into ``save_pretrained`` output
(safetensors, config, generation config), the tokenizer files and the chat template. The model is
rebuilt on the meta device and the weights are assigned, so no second copy is allocated.

The folder is written under a hidden temporary name next to its destination and renamed only once
everything, including ``oec_export.json`` (the manifest), is on disk: a folder named like the
destination is always complete, and an interrupted export leaves only a ``.NAME.partial-*`` folder.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from transformers import AutoModelForCausalLM, GenerationConfig, PretrainedConfig, PreTrainedTokenizerBase

MANIFEST = "oec_export.json"
_MODULE_PREFIX = "model."  # SFTModule keeps the Hugging Face model in its ``model`` attribute


def load_checkpoint_weights(checkpoint: str | Path) -> dict[str, Tensor]:
    """The Hugging Face state dict in a Lightning checkpoint written by :class:`~oec.sft.module.SFTModule`."""
    path = Path(checkpoint)
    if path.is_dir():
        # DeepSpeed checkpoints are folders of ZeRO shards; consolidate them into one file first.
        from lightning.pytorch.utilities.deepspeed import convert_zero_checkpoint_to_fp32_state_dict

        consolidated = path / "consolidated.ckpt"
        convert_zero_checkpoint_to_fp32_state_dict(str(path), str(consolidated))
        path = consolidated
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)["state_dict"]
    weights = {k.removeprefix(_MODULE_PREFIX): v for k, v in state.items() if k.startswith(_MODULE_PREFIX)}
    if not weights:
        raise ValueError(
            f"checkpoint {path} holds no '{_MODULE_PREFIX}*' weights; was it written by SFTModule?"
        )
    return weights


def _swap_into_place(partial: Path, destination: Path) -> None:
    old = None
    if destination.exists():
        old = destination.with_name(f".{destination.name}.old-{uuid.uuid4().hex[:8]}")
        destination.rename(old)
    partial.rename(destination)
    if old is not None:
        shutil.rmtree(old)


def export_pretrained(
    weights: dict[str, Tensor],
    config: PretrainedConfig,
    tokenizer: PreTrainedTokenizerBase,
    destination: str | Path,
    generation_config: GenerationConfig | None = None,
    dtype: torch.dtype | None = None,
    manifest: dict[str, Any] | None = None,
) -> Path:
    """Write ``weights`` as a complete Hugging Face model folder at ``destination``; returns it.

    ``dtype`` casts the weights (default: as they are). An existing ``destination`` is replaced only
    after the new folder is complete. ``manifest`` entries are added to ``oec_export.json``.
    """
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial-{uuid.uuid4().hex[:8]}")
    try:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        if dtype is not None:
            weights = {k: v.to(dtype) for k, v in weights.items()}
        # Tied output embeddings may be missing from or duplicated in the state dict; tie_weights fixes both.
        result = model.load_state_dict(weights, strict=False, assign=True)
        model.tie_weights()
        state = model.state_dict()
        missing = [k for k in result.missing_keys if state[k].is_meta]
        if missing or result.unexpected_keys:
            raise ValueError(
                f"weights do not fit {type(model).__name__}: missing {missing[:5]}, "
                f"unexpected {result.unexpected_keys[:5]}"
            )
        if generation_config is not None:
            model.generation_config = generation_config
        model.save_pretrained(partial, safe_serialization=True)
        tokenizer.save_pretrained(partial)
        record = {
            "format": "huggingface",
            "architecture": type(model).__name__,
            "dtype": str(next(iter(weights.values())).dtype).removeprefix("torch."),
            "num_parameters": sum(p.numel() for p in model.parameters()),
            "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(manifest or {}),
        }
        (partial / MANIFEST).write_text(json.dumps(record, indent=2) + "\n")
        _fsync_tree(partial)
        _swap_into_place(partial, destination)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    return destination


def is_complete_export(folder: str | Path) -> bool:
    """True for a folder :func:`export_pretrained` finished (it carries the manifest)."""
    return (Path(folder) / MANIFEST).is_file()


def _fsync_tree(folder: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    for path in folder.iterdir():
        # Some writers create private (0600) files; a served model is often read by another account.
        path.chmod(0o666 & ~umask)
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
