"""Supervised fine-tuning of the student: loss, Lightning module, trainer, loggers and HF export.

``config`` (typed ``model`` / ``trainer`` / ``train`` configs), ``loss`` (chunked CE on supervised
positions only), ``module`` (the LightningModule and the optimiser config), ``trainer`` (strategies,
checkpoints), ``loggers`` (local metrics file + W&B), ``export`` (Hugging Face folder, written
atomically) and ``run`` (one run, end to end). ``python -m oec.train`` is the entry point.
"""
