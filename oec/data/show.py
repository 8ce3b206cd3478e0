"""``python -m oec.data.show STORE --index I``: print one training example with its supervised tokens.

The trajectory at position ``I`` of the store (in read order, rejected ones included) is rendered
exactly as training renders it (:func:`oec.data.render.render`) and printed with the supervised
target tokens highlighted, so a mask can be checked by eye. ``--json`` prints
``{"input_ids": [...], "loss_mask": [...]}`` (``loss_mask`` as 0/1) instead.
"""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console
from rich.text import Text
from transformers import PreTrainedTokenizerBase

from oec.chat import load_tokenizer
from oec.data.mix import MixError, read_store
from oec.data.render import MASK_POLICIES, Example, RenderError, render
from oec.types import Trajectory

SUPERVISED = "bold black on green"
OPEN, CLOSE = "⟦", "⟧"
CONTEXT_TURN = "yellow"


def highlighted(example: Example, tokenizer: PreTrainedTokenizerBase, marks: bool = False) -> Text:
    """The decoded example; supervised tokens and unsupervised assistant turns are styled.

    ``marks`` also wraps supervised runs in ``⟦...⟧``, for output without colours.
    """
    ids = example.input_ids.tolist()
    styles = [""] * len(ids)
    for span in example.spans:
        for t in range(span.start, span.end):
            styles[t] = SUPERVISED if example.loss_mask[t] else CONTEXT_TURN
    text = Text()
    start = 0
    # Decode runs of equally styled tokens, never single tokens: a character can span several tokens.
    for end in range(1, len(ids) + 1):
        if end == len(ids) or styles[end] != styles[start]:
            piece = tokenizer.decode(ids[start:end], skip_special_tokens=False)
            if marks and styles[start] == SUPERVISED:
                piece = f"{OPEN}{piece}{CLOSE}"
            text.append(piece, style=styles[start])
            start = end
    return text


def header(trajectory: Trajectory, example: Example, marks: bool = False) -> Text:
    text = Text()
    text.append(f"{example.name}", style="bold")
    text.append(
        f"  mode={trajectory.mode} accepted={trajectory.accepted} exit={trajectory.exit_status} "
        f"switch_step={trajectory.switch_step} handover_turn={trajectory.handover_turn}\n"
        f"mask={example.mask}: {example.num_supervised} supervised of {example.num_tokens} tokens, "
        f"{sum(s.supervised for s in example.spans)} of {len(example.spans)} assistant turns supervised"
    )
    if example.dropped_turns:
        text.append(f", {example.dropped_turns} supervised turns cut by max_seq_len", style="red")
    text.append("\nlegend: ")
    text.append("supervised target", style=SUPERVISED)
    text.append("  ")
    text.append("assistant turn kept as context", style=CONTEXT_TURN)
    text.append("  other context")
    if marks:
        text.append(f"  (no colours: supervised runs are wrapped in {OPEN} {CLOSE})")
    text.append("\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m oec.data.show", description=__doc__.splitlines()[0])
    parser.add_argument("store", help="trajectory store directory")
    parser.add_argument("--index", type=int, required=True, help="trajectory position in the store")
    parser.add_argument("--mask", choices=MASK_POLICIES, default="expert", help="loss mask policy")
    parser.add_argument("--max-seq-len", type=int, default=None, help="apply the over-long policy")
    parser.add_argument("--tokenizer", default=None, help="tokenizer folder (default: bundled Qwen2.5)")
    parser.add_argument("--json", action="store_true", help="print input_ids and loss_mask as JSON")
    args = parser.parse_args(argv)
    errors = Console(stderr=True)
    try:
        trajectories = read_store(args.store, "STORE")
    except MixError as err:
        errors.print(f"error: {err}", markup=False)
        return 2
    if not 0 <= args.index < len(trajectories):
        errors.print(
            f"error: index {args.index} is out of range: {args.store} holds {len(trajectories)} trajectories",
            markup=False,
        )
        return 2
    trajectory = trajectories[args.index]
    tokenizer = load_tokenizer(args.tokenizer)
    try:
        example = render(trajectory, tokenizer, mask=args.mask, max_seq_len=args.max_seq_len)
    except RenderError as err:
        errors.print(f"refused ({err.reason}): {err}", markup=False)
        return 1
    if args.json:
        print(
            json.dumps(
                {"input_ids": example.input_ids.tolist(), "loss_mask": example.loss_mask.astype(int).tolist()}
            )
        )
        return 0
    console = Console()
    marks = console.color_system is None
    console.print(header(trajectory, example, marks))
    console.print(highlighted(example, tokenizer, marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
