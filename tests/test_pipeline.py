"""The whole pipeline through the real entry points, shrunk to two tasks per split and two steps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMALL = [
    "tasks.limit=2",
    "student.max_new_tokens=8",
    "trainer.max_steps=2",
    "data.val_fraction=0",
    "logger=local",
]


def test_make_run_pipeline_end_to_end(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    argv = [sys.executable, "-m", "oec.pipeline", "--run-dir", str(run), "--min-samples", "2", *SMALL]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    summary = json.loads((run / "summary.json").read_text())
    assert [row["arm"] for row in summary["arms"]] == ["bc", "bc_oec"]
    assert all(row["heldout_rollouts"] == 2 for row in summary["arms"])
    for store in ("bc", "expert_test", "oec"):
        assert (run / "stores" / store / "manifest.json").is_file()
    for arm in ("bc", "bc_oec"):
        assert (run / "train" / arm / "model" / "model.safetensors").is_file()
        report = json.loads((run / "eval" / arm / "report.json").read_text())
        assert report["rollouts"] == 2
        predictions = (run / "eval" / arm / "predictions.jsonl").read_text().splitlines()
        assert {json.loads(p)["model_name_or_path"] for p in predictions} == {"model"}
        assert (run / "analysis" / arm / "turnwise.csv").is_file()
    bc = json.loads((run / "stores" / "bc" / "manifest.json").read_text())
    assert bc["counts"]["resolved"] == 2
    assert "OEC demo, held-out split" in result.stdout

    # A rerun finds every stage complete and only reprints the summary.
    again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert again.stdout.count("skip") == 9
