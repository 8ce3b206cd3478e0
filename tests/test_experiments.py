"""Every experiment composes for every verb into typed settings, without loading a model or a sandbox.

Method arms (conf/exp/) and model scales (conf/model/) are orthogonal: each arm is composed at each
scale for ``collect``, ``train`` and ``evaluate``, and the demo's pipeline stages are composed as
``make run`` runs them. Outside the demo, what a real run must supply (the task source, the expert,
the student checkpoint) is mandatory and named when missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from oec.collect import CollectConfig
from oec.config import ConfigError, parse
from oec.evaluate import EvaluateConfig
from oec.pipeline import stages
from oec.policies import HFPolicyConfig, OpenAIPolicyConfig, OraclePolicyConfig
from oec.policies.anthropic_backend import AnthropicPolicyConfig
from oec.runner import load_rollout_config
from oec.switch import Always, Never, Uniform
from oec.tasks import EmbeddedTasks, FileTasks
from oec.train import load_settings

CONF = Path(__file__).resolve().parents[1] / "conf"
ARMS = sorted(p.stem for p in (CONF / "exp").glob("*.yaml") if p.stem != "demo")
SCALES = {"tiny": "tiny", "qwen2.5-coder-7b": "7b", "qwen2.5-coder-32b": "32b"}
MODES = {"bc": "bc", "on_policy": "on_policy", "dagger": "dagger"}
"""The rollout mode of each arm that is not OEC."""
MASKS = {"oec_no_mask": "assistant"}
"""The loss mask of each arm that does not train on the expert's turns only."""
STORES = {"bc_oec": ["bc", "oec"], "oec_no_mask": ["oec"]}
"""The stores an arm trains on, when not its own."""


@pytest.fixture(scope="module", autouse=True)
def hydra_conf():
    """Hydra is initialised once for the module; each test composes its own config."""
    with initialize_config_dir(str(CONF), version_base="1.3"):
        yield


def composed(*overrides: str):
    return compose("config", overrides=[*overrides, "train.run_dir=/unused"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    """A folder that passes the checkpoint-folder check (nothing is loaded from it)."""
    folder = tmp_path_factory.mktemp("checkpoint")
    (folder / "config.json").write_text("{}")
    return str(folder)


def real_run(checkpoint: str) -> list[str]:
    """What a real run supplies on the command line: tasks, an expert and the rollout student."""
    return [
        "tasks.path=rows.parquet",
        "policy@expert=hf",
        f"expert.model={checkpoint}",
        f"student.model={checkpoint}",
    ]


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("arm", ARMS)
def test_arm_and_scale_compose_for_train_and_collect(arm: str, scale: str, checkpoint: str):
    cfg = composed(f"+exp={arm}", f"model={scale}", "paths.root=/o", *real_run(checkpoint))
    tag = SCALES[scale]

    settings = load_settings(cfg)
    assert settings.name == arm and settings.model.tag == tag
    assert settings.trainer.strategy == ("auto" if scale == "tiny" else "fsdp")
    assert settings.data.mask == MASKS.get(arm, "expert")
    stores = [str(settings.data.store_path(s)) for s in settings.data.sources]
    assert stores == [f"/o/stores/{tag}/{name}" for name in STORES.get(arm, [arm])]
    if scale != "tiny":
        assert settings.model.hub_id == f"Qwen/Qwen2.5-Coder-{tag.upper()}-Instruct"
        assert settings.model.max_seq_len == 32768 and settings.model.precision == "bf16-true"

    config = load_rollout_config(cfg)
    parse(CollectConfig, cfg.collect, "collect")
    mode = MODES.get(arm, "oec")
    assert config.settings.switch.mode == mode
    assert isinstance(config.tasks, FileTasks) and config.tasks.path == "rows.parquet"
    roles = {"bc": ["expert"], "on_policy": ["student"]}.get(mode, ["student", "expert"])
    assert list(config.policies) == roles
    assert all(isinstance(p, HFPolicyConfig) and p.model == checkpoint for p in config.policies.values())
    assert config.student.tag == tag


@pytest.mark.parametrize("scale", ["qwen2.5-coder-7b", "qwen2.5-coder-32b"])
@pytest.mark.parametrize("expert", ["anthropic", "swe_agent_lm_32b"])
@pytest.mark.parametrize("arm", ["oec", "bc_oec", "oec_no_mask"])
def test_the_served_student_and_the_api_experts_compose_with_the_papers_arms(
    arm: str, expert: str, scale: str, monkeypatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    monkeypatch.setenv("VLLM_API_KEY", "served")
    cfg = composed(
        f"+exp={arm}",
        f"model={scale}",
        "tasks.path=rows.parquet",
        "policy@student=vllm_student",
        "student.model=/ckpt/bc/model",
        "student.base_url=http://node1:8000/v1",
        f"policy@expert={expert}",
    )
    config = load_rollout_config(cfg)
    student, expert_config = config.policies["student"], config.policies["expert"]
    assert isinstance(student, OpenAIPolicyConfig) and student.action_format == "xml"
    assert (student.model, student.base_url, student.api_key_env) == (
        "/ckpt/bc/model",
        "http://node1:8000/v1",
        "VLLM_API_KEY",
    )
    if expert == "anthropic":
        assert isinstance(expert_config, AnthropicPolicyConfig)
        assert expert_config.model == "claude-3-7-sonnet-20250219" and expert_config.temperature == 0
    else:
        assert isinstance(expert_config, OpenAIPolicyConfig) and expert_config.action_format == "native"
        assert expert_config.model == "SWE-bench/SWE-agent-LM-32B"
    assert config.student.tag == SCALES[scale]
    assert "claude-3-7-sonnet-20250219" in config.prices


@pytest.mark.parametrize("arm", ARMS)
def test_a_real_run_without_its_parts_names_every_missing_key(arm: str):
    with pytest.raises(ConfigError) as error:
        load_rollout_config(composed(f"+exp={arm}", "model=qwen2.5-coder-7b"))
    message = str(error.value)
    assert "tasks.path: missing mandatory value" in message
    mode = MODES.get(arm, "oec")
    assert ("student.model: missing mandatory value" in message) == (mode != "bc")
    assert ("expert: no value; choose its backend with policy@expert=" in message) == (mode != "on_policy")


@pytest.mark.slow
@pytest.mark.parametrize("entry_point", ["oec.collect", "oec.evaluate"])
def test_a_missing_tasks_file_ends_the_run_with_a_config_error(entry_point: str, tmp_path: Path):
    missing = tmp_path / "nope.jsonl"
    overrides = ["+exp=demo", "tasks=file", f"tasks.path={missing}", f"paths.root={tmp_path}"]
    run = subprocess.run(
        [sys.executable, "-m", entry_point, *overrides], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == f"config error: tasks.path: tasks file not found: {missing}"
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("scale", SCALES)
def test_evaluate_composes_the_student_alone(scale: str, checkpoint: str):
    cfg = composed("+exp=oec", f"model={scale}", *real_run(checkpoint))
    options = parse(EvaluateConfig, cfg.evaluate, "evaluate")
    config = load_rollout_config(cfg, switch=Never())
    assert list(config.policies) == ["student"] and options.split == "test"
    assert options.store.endswith(f"eval/{SCALES[scale]}/oec")


def test_the_demo_is_the_one_place_that_names_the_toy_parts():
    config = load_rollout_config(composed("+exp=demo"))
    student, expert = config.policies["student"], config.policies["expert"]
    assert isinstance(student, HFPolicyConfig) and student.model == "tiny"
    assert isinstance(expert, OraclePolicyConfig) and expert.model_name == "oracle"
    assert isinstance(config.tasks, EmbeddedTasks)
    assert config.student.is_tiny and config.student.max_seq_len == 2048
    switch = config.settings.switch
    assert isinstance(switch, Uniform) and (switch.hi, switch.handover_after_format_errors) == (8, 2)
    for path in (CONF / "exp").glob("*.yaml"):
        if path.stem != "demo":
            text = path.read_text()
            assert "oracle" not in text and "tiny" not in text and "embedded" not in text, path.name


def test_the_pipeline_stages_compose_for_their_verbs(tmp_path: Path):
    for arm in ("bc", "bc_oec"):  # the exports later stages serve, as checkpoint folders
        (tmp_path / "train" / arm / "model").mkdir(parents=True)
        (tmp_path / "train" / arm / "model" / "config.json").write_text("{}")
    for stage in stages(tmp_path, "demo", []):
        verb, *overrides = stage.argv[2:]
        overrides = [o for o in overrides if not o.startswith("hydra.")]
        if verb == "analysis.covariate_shift":
            continue
        cfg = composed(*overrides)
        if verb == "oec.train":
            settings = load_settings(cfg)
            assert all(
                settings.data.store_path(s).parent == tmp_path / "stores" for s in settings.data.sources
            )
        elif verb == "oec.evaluate":
            parse(EvaluateConfig, cfg.evaluate, "evaluate")
            config = load_rollout_config(cfg, switch=Never())
            assert config.policies["student"].model.endswith("/model")
        else:
            config = load_rollout_config(cfg)
            switch = config.settings.switch
            assert isinstance(switch, Always) == (stage.name in ("collect bc", "collect expert_test"))
            store = parse(CollectConfig, cfg.collect, "collect").store
            assert store == str(tmp_path / "stores" / stage.name.split()[1])
