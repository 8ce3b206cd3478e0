"""The local sandbox with real git and real processes: fresh copies, timeouts, limits, cleanup."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from oec.config import ConfigError, parse
from oec.env import LocalSandbox, ResourceLimits, SandboxConfig, SandboxError, make_sandbox
from oec.env.files import read_file
from oec.env.local import DEFAULT_TASK_ENV, NetworkIsolation, network_isolation, probe_network_isolation
from oec.env.output import OutputCapture
from oec.tasks.gitrepo import git
from oec.types import Task
from tests.sandbox_helpers import all_gone, make_snapshot, sleep_tag

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return make_snapshot(tmp_path_factory.mktemp("snapshot"))


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(timeout_s=20, parent_dir=str(tmp_path / "sandboxes"))


def test_fresh_copy_at_base_commit_without_future_history(snapshot, config):
    path, base = snapshot
    with LocalSandbox(path, "v1", config) as sandbox:
        assert sandbox.base_commit == base
        assert Path(sandbox.workdir, "a.txt").read_text() == "base\n"
        assert sandbox.workdir.startswith(config.parent_dir)
        assert not sandbox.tool_dir.startswith(sandbox.workdir)
        history = sandbox.run("git log --all --format=%s; git tag; git remote").output
        assert history.split() == ["base", "v1"]


def test_edits_do_not_leak_between_sandboxes(snapshot, config):
    path, base = snapshot
    with LocalSandbox(path, base, config) as first, LocalSandbox(path, base, config) as second:
        assert first.workdir != second.workdir
        first.run("echo changed > a.txt && git commit -qam edit && touch new.txt")
        assert Path(second.workdir, "a.txt").read_text() == "base\n"
        assert not Path(second.workdir, "new.txt").exists()
    assert git(Path(path), "log", "--format=%s") == "future\nbase\n"


def test_run_merges_output_and_reports_exit_code(snapshot, config):
    with LocalSandbox(*snapshot, config) as sandbox:
        result = sandbox.run("pwd; echo out; echo err >&2; exit 3")
        assert result.output == f"{sandbox.workdir}\nout\nerr\n"
        assert (result.exit_code, result.timed_out, result.truncated) == (3, False, False)
        assert sandbox.run("cat", stdin="in put\n").output == "in put\n"
        assert sandbox.run("cat").output == ""  # no stdin: reads EOF at once


def test_environment_is_clean(snapshot, config, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://proxy:3128")
    monkeypatch.setenv("SECRET_TOKEN", "x")
    with LocalSandbox(*snapshot, config) as sandbox:
        env = dict(line.split("=", 1) for line in sandbox.run("env").output.splitlines() if "=" in line)
        assert "http_proxy" not in env and "SECRET_TOKEN" not in env
        assert env["HOME"].startswith(sandbox.root) and env["TMPDIR"].startswith(sandbox.root)
        assert (env["PAGER"], env["GIT_PAGER"], env["TERM"]) == ("cat", "cat", "dumb")
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        python = sandbox.run("command -v python").output.strip()
        assert os.path.dirname(python) == str(DEFAULT_TASK_ENV / "bin")
        assert sandbox.run("git commit -q --allow-empty -m x && git log -1 --format=%an").exit_code == 0


def test_timeout_kills_the_whole_process_group(snapshot, config):
    tag = sleep_tag()
    with LocalSandbox(*snapshot, config) as sandbox:
        result = sandbox.run(f"echo started; sleep {tag} & sleep 100", timeout=1)
        assert result.timed_out and result.exit_code == -9
        assert result.output == "started\n"
        assert result.duration_s < 5
        assert all_gone(tag)


def test_timeout_kills_processes_that_left_the_group(snapshot, config):
    tag = sleep_tag()
    with LocalSandbox(*snapshot, config) as sandbox:
        result = sandbox.run(f"setsid sleep {tag} & sleep 100", timeout=1)
        assert result.timed_out and result.duration_s < 5
        assert all_gone(tag)


def test_background_jobs_end_with_their_command(snapshot, config):
    tag = sleep_tag()
    with LocalSandbox(*snapshot, config) as sandbox:
        result = sandbox.run(f"sleep {tag} & sleep 0.2; kill -0 $! && echo started")
        assert result.output == "started\n" and result.duration_s < 3
        assert all_gone(tag)


def test_close_removes_the_root_and_refuses_commands(snapshot, config):
    sandbox = LocalSandbox(*snapshot, config)
    sandbox.run("echo x > new.txt")
    sandbox.close()
    sandbox.close()
    assert not os.path.exists(sandbox.root)
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run("true")


def test_output_is_truncated_keeping_head_and_tail(snapshot, config):
    with LocalSandbox(*snapshot, replace(config, max_output_chars=1000)) as sandbox:
        result = sandbox.run("seq 1 100000")
    assert result.truncated and result.exit_code == 0
    assert result.output.startswith("1\n2\n3\n")
    assert result.output.endswith("99999\n100000\n")
    assert "characters omitted" in result.output
    assert len(result.output) < 1300


def test_read_file_gets_a_file_the_output_limit_would_cut(snapshot, config):
    text = "".join(f"line {i}: héllo\n" for i in range(2000))  # ~34 kB, many times the limit
    with LocalSandbox(*snapshot, replace(config, max_output_chars=1000)) as sandbox:
        path = f"{sandbox.tool_dir}/big.log"
        sandbox.run(f"cat > {path}", stdin=text)
        assert sandbox.run(f"cat {path}").truncated
        assert read_file(sandbox, path, max_bytes=None, timeout=20) == text  # chunks halve to fit
        tail = read_file(sandbox, path, max_bytes=100, timeout=20, chunk_bytes=600)
        assert text.encode().endswith(tail.encode()) and len(tail.encode()) == 100
        sandbox.run(f": > {path}.empty; printf 'ok\\377' > {path}.bin")
        assert read_file(sandbox, f"{path}.empty", max_bytes=None, timeout=20) == ""
        assert read_file(sandbox, f"{path}.bin", max_bytes=None, timeout=20) == "ok\ufffd"
        with pytest.raises(SandboxError, match=r"cannot read .*/missing\.log in the sandbox"):
            read_file(sandbox, f"{sandbox.tool_dir}/missing.log", max_bytes=None, timeout=20)


def test_output_capture_is_exact_below_the_limit_and_utf8_safe():
    capture = OutputCapture(10)
    for byte in "héllo wörld".encode()[:12]:  # split multi-byte characters across feeds
        capture.feed(bytes([byte]))
    assert capture.result() == ("héllo wörl", False)
    capture = OutputCapture(4)
    capture.feed(b"abcdefgh")
    text, truncated = capture.result()
    assert truncated and text.startswith("ab") and text.endswith("gh") and "4 characters omitted" in text


def test_resource_limits(snapshot, config):
    limits = ResourceLimits(address_space_mb=2048, file_size_mb=1, processes=None)
    with LocalSandbox(*snapshot, replace(config, limits=limits)) as sandbox:
        assert sandbox.run("ulimit -v; ulimit -f").output.split() == [str(2048 * 1024), "1024"]
        result = sandbox.run("head -c 2000000 /dev/zero > big.bin")
        assert result.exit_code != 0
        assert os.path.getsize(Path(sandbox.workdir, "big.bin")) <= 1024 * 1024
        assert sandbox.run("python -c pass && git status --short").exit_code == 0


def test_default_limits_leave_room_for_pytest(snapshot, config):
    test = "def test_ok():\n    assert sum(range(10)) == 45\n"
    with LocalSandbox(*snapshot, config) as sandbox:
        Path(sandbox.workdir, "test_ok.py").write_text(test)
        # Plugin autoload would import the project venv's hydra/anyio plugins: seconds, not the point here.
        result = sandbox.run(
            "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python -m pytest -q -p no:cacheprovider test_ok.py"
        )
    assert result.exit_code == 0, result.output
    assert "1 passed" in result.output


@pytest.mark.skipif(network_isolation() is None, reason="this machine cannot create network namespaces")
def test_network_off_leaves_only_loopback(snapshot, config):
    probe = textwrap.dedent(
        """
        import socket
        server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
        socket.create_connection(server.getsockname(), timeout=2).sendall(b"ping")
        print(server.accept()[0].recv(4).decode())
        """
    )
    with LocalSandbox(*snapshot, config) as sandbox:
        interfaces = sandbox.run("tail -n +3 /proc/net/dev | cut -d: -f1").output.split()
        assert interfaces == ["lo"]
        assert sandbox.run(f"python -c '{probe}'").output == "ping\n"


def test_network_on_uses_the_host_namespace(snapshot, config):
    host = Path("/proc/net/dev").read_text().splitlines()[2:]
    with LocalSandbox(*snapshot, replace(config, network="on")) as sandbox:
        inside = sandbox.run("tail -n +3 /proc/net/dev").output.splitlines()
    assert [line.split(":")[0] for line in inside] == [line.split(":")[0] for line in host]


def test_missing_isolation_warns_and_runs_without(caplog):
    with caplog.at_level(logging.WARNING, logger="oec.env.local"):
        candidates = [NetworkIsolation(("false",)), NetworkIsolation(("no-such-tool",))]
        assert probe_network_isolation(candidates) is None
    assert len(caplog.records) == 1 and "can reach the network" in caplog.records[0].getMessage()


def test_bad_snapshot_or_commit_fails_clearly_and_leaves_nothing(snapshot, config):
    path, _ = snapshot
    with pytest.raises(SandboxError, match="does not exist"):
        LocalSandbox(path + "-missing", "HEAD", config)
    with pytest.raises(SandboxError, match="deadbeef"):
        LocalSandbox(path, "deadbeef", config)
    assert os.listdir(config.parent_dir) == []


def test_cleanup_on_exception(snapshot, config):
    with pytest.raises(RuntimeError, match="boom"), LocalSandbox(*snapshot, config) as sandbox:
        root = sandbox.root
        raise RuntimeError("boom")
    assert not os.path.exists(root)


def test_cleanup_when_the_process_crashes(snapshot, tmp_path):
    script = textwrap.dedent(
        f"""
        from oec.env import LocalSandbox, SandboxConfig
        sandbox = LocalSandbox({snapshot[0]!r}, {snapshot[1]!r}, SandboxConfig(parent_dir={str(tmp_path)!r}))
        print(sandbox.root, flush=True)
        raise SystemExit("crash")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    root = result.stdout.strip()
    assert root.startswith(str(tmp_path)) and result.returncode == 1
    assert not os.path.exists(root)


def test_make_sandbox_and_config_validation(snapshot, config):
    task = Task("t-1", "o/r", snapshot[1], "issue", "", "", ["test_x"], [], snapshot=snapshot[0])
    with make_sandbox(config, task) as sandbox:
        assert sandbox.run("cat a.txt").output == "base\n"
    with pytest.raises(SandboxError, match=r"'t-1'.*snapshot"):
        make_sandbox(config, replace(task, snapshot=None))
    with pytest.raises(ConfigError, match=r"^env\.runtime: 'docker' is not one of \['local'\]"):
        parse(SandboxConfig, {"runtime": "docker"}, "env")
    with pytest.raises(ConfigError, match=r"^env\.timeout_s: must be > 0"):
        parse(SandboxConfig, {"timeout_s": 0}, "env")
    with pytest.raises(ConfigError, match=r"^env\.limits\.file_size_mb: must be >= 1"):
        parse(SandboxConfig, {"limits": {"file_size_mb": -1}}, "env")
    with pytest.raises(ConfigError, match=r"env\.network"):
        parse(SandboxConfig, {"network": "maybe"}, "env")


def test_conf_env_local_yaml_is_the_default():
    assert parse(SandboxConfig, OmegaConf.load(ROOT / "conf/env/local.yaml"), "env") == SandboxConfig()
