"""Training throughput and memory of one SFT step: full logits, chunked logits, used ids only.

One forward + backward of a ``--seq-len``-token sequence in which a ``--supervised`` fraction of the
tokens are targets (expert turns are a minority of an agent trajectory: observations dominate).
"full" is a plain Hugging Face step (``model(input_ids, labels=...)``: logits at every position);
"chunked" is what training uses (:func:`oec.sft.loss.masked_lm_loss_sum`): logits only where a
target is, ``--chunk-size`` rows at a time; "used-vocab" adds ``model.vocab=data`` (the tiny
default): logits over the ``--used-ids`` ids the data uses (:mod:`oec.sft.vocab`). Prints the median
step time (forward, backward and a fused AdamW step), tokens per second and, on CUDA, peak memory.

``--shape qwen2.5-coder-7b`` builds a random-init model of that architecture (bf16, activation
checkpointing, as ``model=qwen2.5-coder-7b`` trains it) on a CUDA device; "used-vocab" is skipped
there, since it only suits a model trained from scratch.

    python bench/train_throughput.py --seq-len 4096 --supervised 0.25
    python bench/train_throughput.py --shape qwen2.5-coder-7b --device cuda --seq-len 32768
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, Qwen2Config

from oec.modeling import TINY_QWEN2, build_model
from oec.sft.loss import masked_lm_loss_sum
from oec.sft.vocab import UsedVocab

# Qwen/Qwen2.5-Coder-7B-Instruct's config.json, architecture fields only.
QWEN25_CODER_7B = {
    "vocab_size": 152_064,
    "hidden_size": 3_584,
    "intermediate_size": 18_944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "max_position_embeddings": 32_768,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0},
    "tie_word_embeddings": False,
}
SHAPES = {"tiny": TINY_QWEN2, "qwen2.5-coder-7b": QWEN25_CODER_7B}


def build(shape: str, device: str):
    if shape == "tiny":
        return build_model("tiny", attn_implementation="sdpa").to(device).train()
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(
            Qwen2Config(**SHAPES[shape]), dtype=torch.bfloat16, attn_implementation="sdpa"
        )
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False
    return model.train()


def full_logits_loss(model, batch):
    """What a plain Hugging Face SFT step does: ``labels`` with -100 outside the targets, logits and
    their fp32 upcast at every position, loss averaged by the model (scaled back to a sum here)."""
    labels = batch["input_ids"].masked_fill(~batch["loss_mask"], -100)
    return model(input_ids=batch["input_ids"], labels=labels).loss * int(batch["loss_mask"][:, 1:].sum())


def time_steps(step, model, steps: int) -> tuple[float, float | None]:
    """Median seconds per step, and peak CUDA memory in GiB (None on a CPU)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    cuda = next(model.parameters()).is_cuda
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step().backward()
        optimizer.step()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    del optimizer
    return statistics.median(times[1:]), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--supervised", type=float, default=0.25, help="fraction of tokens that are targets")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--used-ids", type=int, default=3_000, help="distinct ids in the data (used-vocab)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    model = build(args.shape, args.device)
    generator = torch.Generator().manual_seed(0)
    used_ids = torch.randperm(151_000, generator=generator)[: args.used_ids]
    ids = used_ids[torch.randint(0, args.used_ids, (1, args.seq_len), generator=generator)]
    mask = torch.rand(1, args.seq_len, generator=generator) < args.supervised
    batch = {"input_ids": ids.to(args.device), "loss_mask": mask.to(args.device)}
    vocab = model.config.vocab_size
    where = (
        torch.cuda.get_device_name()
        if args.device.startswith("cuda")
        else f"{torch.get_num_threads()} threads"
    )
    print(
        f"{args.shape} Qwen2 ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters), "
        f"{where}, {args.seq_len} tokens, {int(mask[:, 1:].sum())} targets ({args.supervised:.0%})"
    )
    targets = int(mask[:, 1:].sum())
    chunk_rows = min(args.chunk_size, targets)
    used = UsedVocab(used_ids.tolist(), vocab).to(args.device)
    modes = {  # name: (loss of one step, elements of the largest logits tensor)
        "full": (lambda: full_logits_loss(model, batch), args.seq_len * vocab),
        "chunked": (lambda: masked_lm_loss_sum(model, batch, args.chunk_size)[0], chunk_rows * vocab),
        "used-vocab": (
            lambda: masked_lm_loss_sum(model, batch, args.chunk_size, used)[0],
            chunk_rows * (len(used) + 1),
        ),
    }
    if args.shape != "tiny":
        del modes["used-vocab"]
    for name, (step, logits_elements) in modes.items():
        if name == "used-vocab":
            used.zero_unused_rows(model)
        try:
            seconds, peak = time_steps(step, model, args.steps)
        except torch.OutOfMemoryError:
            print(f"{name:10s} out of memory")
            continue
        memory = f"  peak memory {peak:6.1f} GiB" if peak is not None else ""
        print(
            f"{name:10s} {seconds:7.2f} s/step  {args.seq_len / seconds:8.0f} tokens/s  "
            f"largest fp32 logits tensor {logits_elements * 4 / 2**20:6.0f} MiB{memory}"
        )


if __name__ == "__main__":
    main()
