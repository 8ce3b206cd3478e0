"""The apptainer runtime (oec/env/apptainer.py). Apptainer is not installable on this project's
machines, so the fast tests check what needs no binary (the command lines, the config, the errors);
the last test runs a real instance of an embedded task's image (``docker-daemon://``, from the local
docker daemon after `make images`) and skips, saying why, where no apptainer is on PATH."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from oec.config import ConfigError, parse
from oec.env import ApptainerConfig, EnvConfig, SandboxInfraError, make_sandbox
from oec.env.apptainer import (
    _instances,
    _orphaned,
    exec_argv,
    image_source,
    instance_name,
    overlay_argv,
    start_argv,
)
from oec.env.container import _ENV
from oec.tasks import load_tasks
from oec.types import Task

REPO = Path(__file__).resolve().parents[1]
ENV_FLAGS = [arg for key, value in _ENV.items() for arg in ("--env", f"{key}={value}")]


@pytest.fixture(scope="module")
def task() -> Task:
    [task] = [t for t in load_tasks("embedded").tasks if t.instance_id == "oec-embedded__cronlite-001"]
    return task


def test_the_config_group_parses_and_rejects_bad_fields() -> None:
    node = OmegaConf.load(REPO / "conf" / "env" / "apptainer.yaml")
    assert parse(EnvConfig, node, "env") == ApptainerConfig()
    with pytest.raises(ConfigError, match=r"env\.memory_mb: belongs to runtime='(docker|podman)'"):
        parse(EnvConfig, OmegaConf.create({"runtime": "apptainer", "memory_mb": 512}), "env")
    for template in ("/sif/ubuntu.sif", "/sif/{name}.sif", "/sif/{image"):
        with pytest.raises(ConfigError, match=r"env\.image: "):
            parse(EnvConfig, OmegaConf.create({"runtime": "apptainer", "image": template}), "env")
    with pytest.raises(ConfigError, match=r"env\.writable: "):
        parse(EnvConfig, OmegaConf.create({"runtime": "apptainer", "writable": "sandbox"}), "env")


def test_the_instance_command_lines() -> None:
    config = ApptainerConfig()
    assert start_argv(config, "apptainer", "docker://img:1", "oec-1-2-ab", "/tmp/oec-1-2-ab.img") == [
        "apptainer", "instance", "start", "--contain", "--cleanenv", "--fakeroot", *ENV_FLAGS,
        "--overlay", "/tmp/oec-1-2-ab.img", "--net", "--network", "none", "docker://img:1", "oec-1-2-ab",
    ]  # fmt: skip
    tmpfs = start_argv(dataclasses.replace(config, network="on"), "apptainer", "/s.sif", "n", None)
    assert tmpfs[-3:] == ["--writable-tmpfs", "/s.sif", "n"]
    assert "--net" not in tmpfs and "--overlay" not in tmpfs
    no_netns = dataclasses.replace(config, network_namespace=False)
    assert "--net" not in start_argv(no_netns, "apptainer", "/s.sif", "n", None)
    assert overlay_argv(config, "apptainer", "/o/x.img") == [
        "apptainer", "overlay", "create", "--fakeroot", "--sparse", "--size", "4096", "/o/x.img",
    ]  # fmt: skip
    own_user = dataclasses.replace(config, fakeroot=False, overlay_mb=512)
    assert "--fakeroot" not in start_argv(own_user, "apptainer", "/s.sif", "n", None)
    assert overlay_argv(own_user, "apptainer", "/o/x.img")[3:] == ["--sparse", "--size", "512", "/o/x.img"]
    assert exec_argv("apptainer", "n", "/testbed") == [
        "apptainer", "exec", "--cleanenv", "--pwd", "/testbed", *ENV_FLAGS, "instance://n",
    ]  # fmt: skip


def test_images_come_from_the_template_and_a_missing_file_is_an_infra_error(
    task: Task, tmp_path: Path
) -> None:
    image = task.metadata["image"]
    assert image_source(ApptainerConfig(), task) == f"docker://{image}"
    sif = tmp_path / (image.replace("/", "_").replace(":", "_") + ".sif")
    config = ApptainerConfig(image=f"{tmp_path}/{{image_file}}.sif")
    with pytest.raises(SandboxInfraError, match=f"image '{sif}'.*does not exist"):
        image_source(config, task)
    sif.touch()
    assert image_source(config, task) == str(sif)


def test_a_missing_client_is_an_infra_error_naming_it(task: Task) -> None:
    config = ApptainerConfig(binary="apptainer-not-installed")
    with pytest.raises(SandboxInfraError, match=r"env\.binary: 'apptainer-not-installed' is not installed"):
        make_sandbox(config, task)


def test_instance_names_tell_a_live_owner_from_a_dead_one() -> None:
    assert not _orphaned(instance_name())
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert _orphaned(f"oec-{gone.pid}-1-ab12")
    assert not _orphaned("someone-elses-instance")


def _apptainer_problem(task: Task) -> str | None:
    binary = shutil.which("apptainer") or shutil.which("singularity")
    if binary is None:
        return "no apptainer or singularity on PATH (not installable here: not in Debian)"
    image = task.metadata["image"]
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        return f"the embedded image {image} is not in the local docker daemon (`make images`)"
    return None


@pytest.mark.slow
def test_a_real_instance_runs_commands_and_goes_away(task: Task, tmp_path: Path) -> None:
    problem = _apptainer_problem(task)
    if problem is not None:
        pytest.skip(problem)
    config = ApptainerConfig(image="docker-daemon://{image}", timeout_s=30, overlay_dir=str(tmp_path))
    with make_sandbox(config, task) as sandbox:
        name = sandbox.name
        assert name in _instances(sandbox._resources.binary)
        assert [p.name for p in tmp_path.iterdir()] == [f"{name}.img"]
        result = sandbox.run("pwd; git rev-parse HEAD")
        assert result.output.split() == ["/testbed", task.base_commit]
        assert sandbox.run("cat > /oec/x && cat /oec/x", stdin="héllo\n").output == "héllo\n"
        assert sandbox.run("exit 3").exit_code == 3
        long = sandbox.run("seq 1 100000", timeout=10)
        assert long.truncated and long.output.endswith("100000\n")
        started = time.monotonic()
        slow = sandbox.run("echo before; sleep 100", timeout=2)
        assert slow.timed_out and slow.output == "before\n" and time.monotonic() - started < 8
        assert "sleep 100" not in sandbox.run("ps -eo args").output
        assert sandbox.run("git status --porcelain").output == ""
    assert name not in _instances(sandbox._resources.binary) and list(tmp_path.iterdir()) == []
