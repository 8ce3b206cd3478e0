"""Turn-wise covariate-shift analysis of stored trajectories: metrics, bootstrap bands, CSV and plots.

Reads trajectory stores only (``oec.store``), never a sandbox, and a model only where one embeds the
turns or scores actions (see below). Flow, one module each::

    turns.py           trajectories -> per-turn records (action category, format error, repeat, text)
    metrics.py         the metric protocol and the metrics: action JSD, per-group rates, embedding metrics
    gaussian.py        Gaussian fits, Frechet distance and Gaussian KL on arrays (numpy only)
    embedders.py       text -> vector callables for the embedding metrics (a model-free fallback, a loader)
    hidden_states.py   a causal LM's mean-pooled last hidden layer as the embedder (``--embedder-model``)
    turnwise.py        per-turn evaluation with a paired bootstrap over shared instances
    plots.py           PNGs per metric over three turn ranges, value over turns with its band
    covariate_shift.py the CLI: ``python -m analysis.covariate_shift --student S --expert E --out DIR``

``token_metrics.py`` loads models too: at the student's own states it scores the expert's action
with the student and queries the oracle (``python -m analysis.token_metrics``).
"""
