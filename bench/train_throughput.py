"""Training throughput of the tiny student on this machine: full logits, chunked logits, used ids only.

One forward + backward of a ``--seq-len``-token sequence in which a ``--supervised`` fraction of the
tokens are targets (expert turns are a minority of an agent trajectory: observations dominate).
"full" computes logits at every position, as ``model(...).logits`` does, and masks the loss;
"chunked" is what training uses (:func:`oec.sft.loss.masked_lm_loss_sum`): logits only where a
target is, ``--chunk-size`` rows at a time; "used-vocab" adds ``model.vocab=data`` (the tiny
default): logits over the ``--used-ids`` ids the data uses (:mod:`oec.sft.vocab`). Prints the median
step time (forward, backward and a fused AdamW step) and tokens per second.

    python bench/train_throughput.py --seq-len 4096 --supervised 0.25
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from oec.modeling import build_model
from oec.sft.loss import masked_lm_loss_sum
from oec.sft.vocab import UsedVocab


def full_logits_loss(model, batch):
    logits = model(input_ids=batch["input_ids"]).logits
    targets = batch["loss_mask"][:, 1:]
    return F.cross_entropy(
        logits[:, :-1][targets].float(), batch["input_ids"][:, 1:][targets], reduction="sum"
    )


def time_steps(step, model, steps: int) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=True)
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        optimizer.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step().backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--supervised", type=float, default=0.25, help="fraction of tokens that are targets")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--used-ids", type=int, default=3_000, help="distinct ids in the data (used-vocab)")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    model = build_model("tiny", attn_implementation="sdpa").train()
    generator = torch.Generator().manual_seed(0)
    used_ids = torch.randperm(151_000, generator=generator)[: args.used_ids]
    ids = used_ids[torch.randint(0, args.used_ids, (1, args.seq_len), generator=generator)]
    mask = torch.rand(1, args.seq_len, generator=generator) < args.supervised
    batch = {"input_ids": ids, "loss_mask": mask}
    vocab = model.config.vocab_size
    print(
        f"tiny Qwen2 ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters), "
        f"{torch.get_num_threads()} threads, {args.seq_len} tokens, "
        f"{int(mask[:, 1:].sum())} targets ({args.supervised:.0%})"
    )
    targets = int(mask[:, 1:].sum())
    chunk_rows = min(args.chunk_size, targets)
    used = UsedVocab(used_ids.tolist(), vocab)
    modes = {  # name: (loss of one step, elements of the largest logits tensor)
        "full": (lambda: full_logits_loss(model, batch), args.seq_len * vocab),
        "chunked": (lambda: masked_lm_loss_sum(model, batch, args.chunk_size)[0], chunk_rows * vocab),
        "used-vocab": (
            lambda: masked_lm_loss_sum(model, batch, args.chunk_size, used)[0],
            chunk_rows * (len(used) + 1),
        ),
    }
    for name, (step, logits_elements) in modes.items():
        if name == "used-vocab":
            used.zero_unused_rows(model)
        seconds = time_steps(step, model, args.steps)
        print(
            f"{name:10s} {seconds:7.2f} s/step  {args.seq_len / seconds:8.0f} tokens/s  "
            f"largest fp32 logits tensor {logits_elements * 4 / 2**20:6.0f} MiB"
        )


if __name__ == "__main__":
    main()
