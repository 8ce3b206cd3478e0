"""SFT data: trajectories -> token ids + loss masks -> data mixes -> planned, collated batches.

``render`` (the one function that makes loss masks), ``show`` (CLI: print an example with its
supervised tokens highlighted), ``config`` (typed ``data`` config), ``mix`` (sources, arms, caps,
weights, dedupe, split, summary), ``plan`` (the global batch plan and its batch sampler), ``collate``
(padded or packed batches), ``datamodule`` (the Lightning data module).
"""
