"""Iterative OEC rounds: ``python -m oec.loop +exp=NAME [loop.rounds=R ...]``.

Round r collects rollouts on the train split with the current student (the expert takes over at
the switch), trains the model config's initial weights on the stores of rounds 0..r
(``loop.aggregate=all``, DAgger's aggregation) or of round r alone (``last``), and evaluates the
new student alone on the held-out split; that student collects round r+1. With
``loop.initial_student=bc`` (the default, as in the paper) round 0 is expert-only (``switch=always``),
so that the first student is behaviour-cloned. ``loop.switch_shift_per_round`` moves the switch
later each round, and ``loop.round_overrides`` sets anything per round.

Every stage is a subprocess of ``python -m oec.collect|train|evaluate`` (:mod:`oec.stages`) with the
overrides the loop was given; ``config`` (the ``loop`` group), ``rounds`` (the stages of a round and
where they write), ``lineage`` (``lineage.json``: which student collected which store, what each
round trained on, its model and evaluation, overrides and wall times) and ``summary`` (the table and
``summary.json``). Rerunning the same command resumes: finished stages are skipped.
"""
