"""Grade predictions with swebench's own harness (``python -m swebench.harness.run_evaluation``).

``python -m oec.evaluate ... evaluate.harness=swebench`` hands ``predictions.jsonl`` to swebench's
harness, which runs each prediction in a fresh container of the instance's image and grades it as
the leaderboard does. swebench 5.x reads everything from the instance rows (``image``,
``eval_script``, ``log_parser``, ``eval_type``, ``version``; its per-repo spec tables are gone), so
the evaluated tasks are written back as such rows (``swebench_instances.jsonl``) and passed as the
dataset: the harness sees exactly the tasks that were rolled out. The harness needs the docker
daemon and every image present locally (it would otherwise try to pull); :func:`unavailable_reason`
says why it cannot run, and the entry then keeps our own verdicts (our container sandbox and grader).

The harness writes its logs under ``logs/run_evaluation/<run_id>/<model>/<instance>/`` of its
working directory (here, next to the predictions) and a run report ``<model>.<run_id>.json``.
:func:`read_run_report` maps that report to our counts, per instance (sample 0 of each task):

- ``resolved``: ``resolved_ids``;
- ``infra_error``: ``error_ids`` whose instance log does not show the model patch failing to apply
  (no report: the container, the image or the harness failed), and the ``infra_failure_ids`` that
  swebench's log classifier attributes to the environment;
- ``unresolved``: the other ``unresolved_ids`` (swebench's "ambiguous" failures stay here), the
  ``empty_patch_ids``, and the errors where the patch did not apply (the agent's failure).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from swebench.harness.constants import APPLY_PATCH_FAIL, LOG_INSTANCE, RUN_EVALUATION_LOG_DIR, EvalType

from oec.eval_report import outcome_counts
from oec.types import Task

INSTANCES_FILE = "swebench_instances.jsonl"
HARNESS_FIELDS = ("image", "eval_script", "log_parser")
"""The swebench 5.x columns a task's metadata must hold for the harness to run it."""


class HarnessUnavailable(RuntimeError):
    """swebench's harness cannot grade these tasks here; the message says why."""


def instance_row(task: Task) -> dict[str, object]:
    """``task`` as the swebench 5.x instance row its harness reads; HarnessUnavailable naming a
    missing field (classic rows without ``image`` / ``eval_script`` / ``log_parser``)."""
    missing = [name for name in HARNESS_FIELDS if not task.metadata.get(name)]
    if missing:
        raise HarnessUnavailable(
            f"task {task.instance_id!r} has no {', '.join(repr(m) for m in missing)} "
            "(swebench 5.x rows carry them; its harness cannot run classic rows)"
        )
    return {
        "instance_id": task.instance_id,
        "repo": task.repo,
        "version": task.version or "",
        "base_commit": task.base_commit,
        "problem_statement": task.problem_statement,
        "patch": task.patch,
        "test_patch": task.test_patch,
        "FAIL_TO_PASS": task.FAIL_TO_PASS,
        "PASS_TO_PASS": task.PASS_TO_PASS,
        "image": task.metadata["image"],
        "eval_script": task.metadata["eval_script"],
        "log_parser": task.metadata["log_parser"],
        "eval_type": task.metadata.get("eval_type") or EvalType.PASS_AND_FAIL.value,
    }


def write_instances(tasks: list[Task], out_dir: Path) -> Path:
    """Write the tasks as swebench instance rows (JSONL, which the harness loads by its suffix)."""
    rows = [instance_row(task) for task in tasks]
    path = out_dir / INSTANCES_FILE
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def unavailable_reason(tasks: list[Task]) -> str | None:
    """Why swebench's harness cannot grade ``tasks`` here (rows, docker, images), or None."""
    try:
        rows = [instance_row(task) for task in tasks]
    except HarnessUnavailable as exc:
        return str(exc)
    images = sorted({str(row["image"]) for row in rows})
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, or a connection error underneath
        return f"the docker daemon is not reachable: {exc}"
    absent = []
    for image in images:
        try:
            client.images.get(image)
        except docker.errors.ImageNotFound:
            absent.append(image)
    if absent:
        return f"{len(absent)} of {len(images)} images are not present locally, e.g. {absent[0]}"
    return None


def harness_command(
    instances: Path,
    predictions: Path,
    run_id: str,
    max_workers: int,
    timeout_s: int,
    python: str = sys.executable,
) -> list[str]:
    """The command line of swebench's harness on ``predictions`` against ``instances``; the run
    report lands in the working directory (``--report_dir .``)."""
    return [
        python,
        "-m",
        "swebench.harness.run_evaluation",
        "--dataset_name",
        str(instances),
        "--predictions_path",
        str(predictions),
        "--run_id",
        run_id,
        "--max_workers",
        str(max_workers),
        "--timeout",
        str(timeout_s),
        "--report_dir",
        ".",
    ]


def run_report_path(out_dir: Path, model: str, run_id: str) -> Path:
    """Where the harness, run in ``out_dir``, writes its run report (swebench's ``make_run_report``)."""
    return out_dir / f"{model.replace('/', '__')}.{run_id}.json"


@dataclass
class HarnessOutcome:
    """The run report of swebench's harness, in our categories (see the module docstring)."""

    resolved: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)
    infra_error: list[str] = field(default_factory=list)
    report_path: str = ""

    def counts(self) -> dict[str, object]:
        """The report fields :func:`oec.eval_report.write_results` takes as ``graded_by``."""
        return {
            "harness": "swebench",
            "harness_report": self.report_path,
            **outcome_counts(len(self.resolved), len(self.unresolved), len(self.infra_error)),
            "infra_error_ids": self.infra_error,
        }


def _patch_did_not_apply(log_dir: Path, model: str, run_id: str, instance_id: str) -> bool:
    log = log_dir / RUN_EVALUATION_LOG_DIR / run_id / model.replace("/", "__") / instance_id / LOG_INSTANCE
    return log.is_file() and APPLY_PATCH_FAIL in log.read_text(errors="replace")


def read_run_report(path: Path, model: str, run_id: str, log_dir: Path | None = None) -> HarnessOutcome:
    """Read the run report at ``path``; instance logs are looked up under ``log_dir`` (the harness's
    working directory, default: the report's folder)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise HarnessUnavailable(f"cannot read swebench's run report {path}: {exc}") from exc
    log_dir = log_dir or path.parent
    environment = set(report.get("infra_failure_ids", []))
    outcome = HarnessOutcome(resolved=sorted(report["resolved_ids"]), report_path=str(path))
    for instance_id in report["error_ids"]:
        if _patch_did_not_apply(log_dir, model, run_id, instance_id):
            outcome.unresolved.append(instance_id)
        else:
            outcome.infra_error.append(instance_id)
    for instance_id in report["unresolved_ids"]:
        (outcome.infra_error if instance_id in environment else outcome.unresolved).append(instance_id)
    outcome.unresolved += report.get("empty_patch_ids", [])
    outcome.unresolved.sort()
    outcome.infra_error.sort()
    return outcome


def grade_with_harness(
    tasks: list[Task],
    predictions: Path,
    model: str,
    run_id: str,
    max_workers: int,
    timeout_s: int,
) -> HarnessOutcome:
    """Run swebench's harness on ``predictions`` in their folder and read its run report; a harness
    that exits non-zero or writes no report is HarnessUnavailable with its output's tail."""
    out_dir = predictions.parent
    instances = write_instances(tasks, out_dir)
    command = harness_command(instances.resolve(), predictions.resolve(), run_id, max_workers, timeout_s)
    result = subprocess.run(command, cwd=out_dir, capture_output=True, text=True)
    report = run_report_path(out_dir, model, run_id)
    if result.returncode != 0 or not report.is_file():
        tail = (result.stdout + result.stderr)[-3000:]
        raise HarnessUnavailable(f"swebench's harness exited with status {result.returncode}: {tail}")
    return read_run_report(report, model, run_id, out_dir)
