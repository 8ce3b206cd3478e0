"""The local sandbox as a boundary: each escape found by probing the old runtime, as a test.

Each test here failed on the runtime before bubblewrap (main at 83425dc): the project interpreter
and ``oec`` (gold patches, hidden tests) were reachable, the snapshot was writable through
``objects/info/alternates``, daemons outlived ``close()`` and a SIGKILLed collector, sandbox roots
of dead collectors stayed forever, host unix sockets answered with the network off, and root's
processes were not capped.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pytest

from oec.config import ConfigError, parse
from oec.env import LocalSandbox, ResourceLimits, SandboxConfig, cgroup
from oec.env.bwrap import bwrap_available
from oec.tasks.embedded import TASKS_FILE, default_cache_dir
from tests.sandbox_helpers import all_gone, appears, make_snapshot, sleep_tag

ROOT = Path(__file__).resolve().parents[1]

needs_bwrap = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap cannot run on this machine")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    return make_snapshot(tmp_path_factory.mktemp("snapshot"))


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(timeout_s=20, parent_dir=str(tmp_path / "sandboxes"))


@needs_bwrap
def test_oec_the_task_files_and_the_project_interpreter_are_unreachable(snapshot, config):
    with LocalSandbox(*snapshot, config) as sandbox:
        result = sandbox.run("python -c 'import oec'")
        assert result.exit_code == 1 and "No module named 'oec'" in result.output
        for path in (TASKS_FILE, default_cache_dir(), sys.executable, ROOT / "oec"):
            assert sandbox.run(f"ls {path}").exit_code != 0, path
        assert sandbox.run("python -m pytest --version").exit_code == 0


@needs_bwrap
def test_the_snapshot_cannot_be_written_through_the_borrowed_object_store(snapshot, config):
    plant = (
        "for objects in $(cat .git/objects/info/alternates); do "
        "echo planted > $objects/planted; "
        "echo evil | GIT_OBJECT_DIRECTORY=$objects git hash-object -w --stdin; done"
    )
    with LocalSandbox(*snapshot, config) as sandbox:
        sandbox.run(plant)
    evil = subprocess.run(["git", "hash-object", "--stdin"], input="evil\n", capture_output=True, text=True)
    objects = Path(snapshot[0], ".git", "objects")
    assert not (objects / "planted").exists()
    assert not (objects / evil.stdout[:2] / evil.stdout.strip()[2:]).exists()
    with LocalSandbox(*snapshot, config) as sandbox:
        assert sandbox.run(f"git cat-file -e {evil.stdout.strip()}").exit_code != 0


def test_a_daemon_that_clears_its_environment_dies_by_close(snapshot, config):
    tag = sleep_tag()
    sandbox = LocalSandbox(*snapshot, config)
    result = sandbox.run(
        f"setsid env -i sleep {tag} > /dev/null 2>&1 < /dev/null & sleep 0.2; kill -0 $! && echo up"
    )
    assert result.output == "up\n"
    sandbox.close()
    assert all_gone(tag)


def test_every_descendant_dies_with_a_killed_collector(snapshot, tmp_path):
    tag = sleep_tag()
    collector = textwrap.dedent(
        f"""
        from oec.env import LocalSandbox, SandboxConfig
        sandbox = LocalSandbox({snapshot[0]!r}, {snapshot[1]!r}, SandboxConfig(parent_dir={str(tmp_path)!r}))
        sandbox.run("setsid env -i sleep {tag} > /dev/null 2>&1 < /dev/null & sleep {tag}")
        """
    )
    process = subprocess.Popen([sys.executable, "-c", collector], cwd=ROOT)
    try:
        assert appears(tag, within_s=20)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert all_gone(tag, within_s=5)


def test_stale_roots_of_dead_collectors_are_removed_at_start_and_live_ones_kept(snapshot, tmp_path):
    parent = str(tmp_path / "sandboxes")

    def collector(then: str) -> subprocess.Popen:
        script = textwrap.dedent(
            f"""
            import sys
            from oec.env import LocalSandbox, SandboxConfig
            sandbox = LocalSandbox({snapshot[0]!r}, {snapshot[1]!r}, SandboxConfig(parent_dir={parent!r}))
            print(sandbox.root, sandbox._resources.cgroup, flush=True)
            {then}
            """
        )
        return subprocess.Popen(
            [sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    # The live one first: a collector's first sandbox sweeps the parent directory.
    live = collector("sys.stdin.read()")
    live_root = live.stdout.readline().split()[0]
    dead = collector("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
    dead_root, dead_cgroup = dead.stdout.readline().split()
    dead.wait()
    try:
        assert os.path.isdir(dead_root) and os.path.isdir(live_root)
        with LocalSandbox(*snapshot, replace(SandboxConfig(), parent_dir=parent)):
            assert not os.path.exists(dead_root)
            assert dead_cgroup == "None" or not os.path.exists(dead_cgroup)
            assert os.path.isdir(live_root)
    finally:
        live.kill()
        live.wait()


@needs_bwrap
def test_host_unix_sockets_and_tmp_are_out_of_reach_with_network_off(snapshot, config, tmp_path):
    path = str(tmp_path / "host.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    Path("/tmp", f"oec-host-{os.getpid()}").write_text("host")
    connect = f"import socket; socket.socket(socket.AF_UNIX).connect({path!r}); print('connected')"
    try:
        with LocalSandbox(*snapshot, config) as sandbox:
            result = sandbox.run(f'python -c "{connect}"')
            assert result.exit_code != 0 and "connected" not in result.output
            assert sandbox.run(f"cat /tmp/oec-host-{os.getpid()}").exit_code != 0
            assert sandbox.run("echo private > /tmp/mine && cat /tmp/mine").output == "private\n"
        assert not Path("/tmp/mine").exists()
    finally:
        server.close()
        os.remove(f"/tmp/oec-host-{os.getpid()}")


@pytest.mark.skipif(
    os.geteuid() != 0 or cgroup.pids_parent() is None, reason="needs root and a writable pids cgroup"
)
def test_the_process_limit_binds_root(snapshot, config):
    forks = textwrap.dedent(
        """
        import os, time
        started = 0
        for _ in range(300):
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            started += 1
        print(started)
        """
    )
    limited = replace(config, limits=ResourceLimits(processes=100))
    with LocalSandbox(*snapshot, limited) as sandbox:
        Path(sandbox.tool_dir, "forks.py").write_text(forks)
        result = sandbox.run(f"python {sandbox.tool_dir}/forks.py")
        assert result.exit_code == 0, result.output
        assert int(result.output) < 100


def test_without_bwrap_the_snapshot_is_copied_and_commands_still_run(snapshot, config):
    with LocalSandbox(*snapshot, replace(config, isolation="none")) as sandbox:
        assert not Path(sandbox.workdir, ".git", "objects", "info", "alternates").exists()
        assert sandbox.run("cat a.txt && python -m pytest --version").exit_code == 0


def test_a_missing_task_env_warns_once_and_leaves_the_system_python(snapshot, config, tmp_path, caplog):
    missing = replace(config, task_env=str(tmp_path / "no-env"))
    with caplog.at_level(logging.WARNING, logger="oec.env.local"):
        for _ in range(2):
            with LocalSandbox(*snapshot, missing) as sandbox:
                assert sandbox.run("command -v python3").output.strip() in ("/usr/bin/python3", "")
    warnings = [r.getMessage() for r in caplog.records if "env.task_env" in r.getMessage()]
    assert len(warnings) == 1 and "no-env" in warnings[0]
    with pytest.raises(ConfigError, match=r"env\.isolation"):
        parse(SandboxConfig, {"isolation": "docker"}, "env")
