"""Training throughput of the tiny student on this machine: full logits vs supervised-only chunked logits.

One forward + backward of a ``--seq-len``-token sequence in which a ``--supervised`` fraction of the
tokens are targets (expert turns are a minority of an agent trajectory: observations dominate).
"full" computes logits at every position, as ``model(...).logits`` does, and masks the loss;
"chunked" is what training uses (:func:`oec.sft.loss.masked_lm_loss_sum`): logits only where a
target is, ``--chunk-size`` rows at a time. Prints the median step time and tokens per second.

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


def full_logits_loss(model, batch):
    logits = model(input_ids=batch["input_ids"]).logits
    targets = batch["loss_mask"][:, 1:]
    return F.cross_entropy(
        logits[:, :-1][targets].float(), batch["input_ids"][:, 1:][targets], reduction="sum"
    )


def time_steps(step, model, steps: int) -> float:
    times = []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        step().backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--supervised", type=float, default=0.25, help="fraction of tokens that are targets")
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()

    model = build_model("tiny", attn_implementation="sdpa").train()
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 151_000, (1, args.seq_len), generator=generator)
    mask = torch.rand(1, args.seq_len, generator=generator) < args.supervised
    batch = {"input_ids": ids, "loss_mask": mask}
    vocab = model.config.vocab_size
    print(
        f"tiny Qwen2 ({sum(p.numel() for p in model.parameters()) / 1e6:.0f}M parameters), "
        f"{torch.get_num_threads()} threads, {args.seq_len} tokens, "
        f"{int(mask[:, 1:].sum())} targets ({args.supervised:.0%})"
    )
    modes = {
        "full": (lambda: full_logits_loss(model, batch), args.seq_len),
        "chunked": (
            lambda: masked_lm_loss_sum(model, batch, args.chunk_size)[0],
            min(args.chunk_size, int(mask.sum())),
        ),
    }
    for name, (step, rows) in modes.items():
        seconds = time_steps(step, model, args.steps)
        print(
            f"{name:8s} {seconds:7.2f} s/step  {args.seq_len / seconds:8.0f} tokens/s  "
            f"largest fp32 logits tensor {rows * vocab * 4 / 2**20:6.0f} MiB"
        )


if __name__ == "__main__":
    main()
