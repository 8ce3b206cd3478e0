"""What every test module shares: an offline environment (no model hub, W&B offline), the real Qwen2.5
tokenizer and the rendered SFT examples."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")

import pytest

from oec.chat import load_tokenizer
from oec.data.render import Example, render
from tests.sft_helpers import trajectory


@pytest.fixture(scope="session")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="session")
def examples(tokenizer) -> list[Example]:
    """Four OEC rollouts of two or three turns, rendered with the expert mask."""
    return [render(trajectory(i, turns=2 + i % 2), tokenizer, mask="expert") for i in range(4)]
