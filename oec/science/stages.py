"""The testbed's stages and the scheduler that runs them, ``jobs`` at a time, as their inputs land.

Every model-touching stage is a subprocess of a real entry point (``python -m oec.collect``,
``oec.train``, ``oec.evaluate``, ``analysis.token_metrics``, ``analysis.covariate_shift``), so what
runs here is what a user runs by hand: an :class:`oec.stages.Stage` with the stages it needs; the
token budget is the one in-process stage. A stage recorded in ``timings.json`` whose ``done`` file
exists is skipped (:func:`oec.stages.finished`), so rerunning with the same ``--run-dir`` resumes
(collection and evaluation stores also resume rollout by rollout).

Layout under the run directory::

    stores/<store>                      bc, oec_early, oec_late, on_policy (training tasks)
    stores/expert_heldout               the expert on the held-out tasks (covariate-shift reference)
    budget.json                         the supervised-token budget of every arm
    train/<arm>/seed<s>/model           one student per arm and seed
    eval/<arm>/seed<s>/{train,heldout}  its fresh rollouts and report.json
    metrics/<arm>/seed<s>               token metrics at its own in-distribution states
    analysis/<arm>                      turn-wise covariate shift of its in-distribution rollouts
    logs/<stage>.log                    every stage's output
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from oec.progress import stdout_console as console
from oec.science.design import STORE_MODES, TestbedConfig, task_overrides
from oec.stages import Stage as CommandStage
from oec.stages import finished as is_finished
from oec.store import load_manifest

BASE_STORES = ("oec_early", "oec_late", "on_policy")
"""The stores the base student collects."""


@dataclass(frozen=True)
class Stage(CommandStage):
    """A driver's stage (a command, or with ``run`` an in-process function and no ``argv``) that
    starts once the stages it ``needs`` are done."""

    run: Callable[[], None] | None = None
    needs: tuple[str, ...] = ()
    unready: Callable[[], str | None] | None = None
    """Checked when the needs are done: a reason the stage cannot run (e.g. its arm has no data), in
    which case it and every stage that needs it are skipped, and the reason is recorded."""


def model_dir(run: Path, arm: str, seed: int) -> Path:
    return run / "train" / arm / f"seed{seed}" / "model"


def eval_dir(run: Path, arm: str, seed: int, split: str) -> Path:
    return run / "eval" / arm / f"seed{seed}" / split


def _quoted(path: Path) -> str:
    return "'" + str(path).replace("'", "\\'") + "'"


def plan(run: Path, design: TestbedConfig, budget: Callable[[], None]) -> list[Stage]:
    """Every stage of the design in dependency order; ``budget`` writes ``<run>/budget.json``."""
    py = [sys.executable, "-m"]
    common = [
        f"+exp={design.exp}",
        f"paths.root={run}",
        f"paths.stores={run / 'stores'}",
        f"model={design.model}",
        f"student.max_new_tokens={design.max_new_tokens}",
        f"agent.limits.max_calls={design.max_calls}",
        "collect.num_workers=1",
        "evaluate.num_workers=1",
        *design.overrides,
    ]
    stages: list[Stage] = []
    coll = design.collection

    def collect(
        store: str, split: str, tasks: int | list[str], samples: int, *overrides: str, needs=()
    ) -> None:
        path = run / "stores" / store
        argv = [*py, "oec.collect", *common, f"name={store}", f"seed={design.base_seed}"]
        argv += [f"collect.store={path}", f"tasks.split={split}", *task_overrides(tasks)]
        argv += [f"collect.samples_per_task={samples}", *overrides, f"hydra.run.dir={run / 'logs' / store}"]
        stages.append(Stage(f"collect {store}", argv, path / "manifest.json", needs=needs))

    def train(arm_name: str, seed: int) -> Stage:
        model = model_dir(run, arm_name, seed)
        argv = [*py, "oec.train", *common, f"name={arm_name}", f"seed={seed}", f"data.seed={seed}"]
        argv += [
            f"mask={design.arms[arm_name].mask}",
            "data.val_fraction=0",
            f"trainer.max_steps={design.steps}",
        ]
        argv += ["logger=local", "train.resume=true", f"hydra.run.dir={model.parent}"]
        # The data sources are added from budget.json when the stage starts (with_sources).
        stores = tuple(f"collect {s.store}" for s in design.arms[arm_name].sources)
        return Stage(
            f"train {arm_name} seed{seed}",
            argv,
            model / "oec_export.json",
            needs=("budget", *stores),
            unready=lambda: no_data(run, design, arm_name),
        )

    needed = {share.store for arm in design.selected_arms.values() for share in arm.sources}
    collect("bc", "train", design.train_tasks, coll.expert_samples_per_task, "switch=always")
    collect("expert_heldout", "test", design.heldout_tasks, coll.expert_samples_per_task, "switch=always")
    stages.append(Stage("budget", [], run / "budget.json", run=budget, needs=("collect bc",)))
    base_train = train("bc", design.base_seed)
    if needed & set(BASE_STORES) and "bc" not in design.selected_arms:
        stages.append(base_train)
    student = [
        f"student.model={model_dir(run, 'bc', design.base_seed)}",
        f"student.temperature={coll.temperature}",
    ]
    windows = {"oec_early": coll.early, "oec_late": coll.late}
    for store in (s for s in BASE_STORES if s in needed):
        if store in windows:
            w, handover = windows[store], coll.handover_after_format_errors
            switch = ["switch=uniform", f"switch.lo={w.lo}", f"switch.hi={w.hi}"]
            switch.append(f"switch.handover_after_format_errors={'null' if handover is None else handover}")
        else:
            switch = ["switch=never"]
        collect(
            store,
            "train",
            design.train_tasks,
            coll.samples_per_task,
            *student,
            *switch,
            needs=(base_train.name,),
        )

    for arm_name in design.selected_arms:
        for seed in design.seeds:
            model = model_dir(run, arm_name, seed)
            stages.append(train(arm_name, seed))
            for split, tasks, samples, temperature in (
                (
                    "train",
                    design.train_tasks,
                    design.evaluation.samples_per_task,
                    design.evaluation.temperature,
                ),
                ("heldout", design.heldout_tasks, design.evaluation.heldout_samples_per_task, 0.0),
            ):
                out = eval_dir(run, arm_name, seed, split)
                argv = [
                    *py,
                    "oec.evaluate",
                    *common,
                    f"name={arm_name}",
                    f"seed={design.evaluation.seed_offset + seed}",
                ]
                argv += [f"evaluate.split={'train' if split == 'train' else 'test'}", *task_overrides(tasks)]
                argv += [f"evaluate.samples_per_task={samples}", f"student.model={model}"]
                argv += [f"student.temperature={temperature}", f"evaluate.store={out}"]
                argv.append(f"hydra.run.dir={run / 'logs' / f'eval_{arm_name}_seed{seed}_{split}'}")
                stages.append(
                    Stage(
                        f"evaluate {arm_name} seed{seed} {split}",
                        argv,
                        out / "report.json",
                        needs=(f"train {arm_name} seed{seed}",),
                    )
                )
            if design.evaluation.token_metrics:
                out = run / "metrics" / arm_name / f"seed{seed}"
                argv = [*py, "analysis.token_metrics", "--store", str(eval_dir(run, arm_name, seed, "train"))]
                argv += [
                    "--out",
                    str(out),
                    "--student",
                    str(model),
                    "--modes",
                    "on_policy",
                    "--min-samples",
                    "1",
                ]
                argv += ["--model", design.model, "--max-new-tokens", str(design.max_new_tokens)]
                argv += ["--bootstrap", "100", "--seed", str(seed)]
                stages.append(
                    Stage(
                        f"metrics {arm_name} seed{seed}",
                        argv,
                        out / "summary.json",
                        needs=(f"evaluate {arm_name} seed{seed} train",),
                    )
                )
    for arm_name in design.selected_arms:
        out = run / "analysis" / arm_name
        students = [str(eval_dir(run, arm_name, seed, "train")) for seed in design.seeds]
        argv = [*py, "analysis.covariate_shift", "--student", *students, "--student-author", "student"]
        argv += ["--expert", str(run / "stores" / "bc"), "--out", str(out), "--min-samples", "2"]
        needs = tuple(f"evaluate {arm_name} seed{seed} train" for seed in design.seeds)
        stages.append(Stage(f"analyse {arm_name}", argv, out / "turnwise.csv", needs=("collect bc", *needs)))
    names = {stage.name for stage in stages}
    unknown = sorted({n for stage in stages for n in stage.needs} - names)
    assert not unknown, f"stages need stages the plan lacks: {unknown}"
    return stages


def no_data(run: Path, design: TestbedConfig, arm_name: str) -> str | None:
    """Why ``arm_name`` cannot be trained: none of its stores holds an accepted trajectory (e.g. the
    base student resolved none of its on-policy rollouts); None when it can."""
    stores = [share.store for share in design.arms[arm_name].sources]
    accepted = {store: load_manifest(run / "stores" / store)["counts"]["accepted"] for store in stores}
    if any(accepted.values()):
        return None
    return f"no accepted trajectory in {', '.join(stores)}: arm {arm_name} has no training data"


def with_sources(stage: Stage, run: Path, design: TestbedConfig) -> list[str]:
    """A training stage's argv with its data sources: the arm's shares of the budget in budget.json."""
    arm = design.arms[stage.name.split()[1]]
    budget = json.loads((run / "budget.json").read_text())["budget_tokens"]
    sources = []
    for share in arm.sources:
        entry = f"arm:{STORE_MODES[share.store]},store:{_quoted(run / 'stores' / share.store)}"
        entry += f",max_budget_tokens:{max(1, int(budget * share.share))}"
        sources.append("{" + entry + "}")
    return [*stage.argv, f"data.sources=[{','.join(sources)}]"]


def _execute(stage: Stage, argv: list[str], log_dir: Path, env: dict[str, str]) -> float:
    started = time.monotonic()
    if stage.run is not None:
        stage.run()
    else:
        log_file = log_dir / (stage.name.replace(" ", "_") + ".log")
        with log_file.open("w") as log:
            log.write(" ".join(argv) + "\n\n")
            log.flush()
            code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        if code != 0 or not stage.done.exists():
            tail = "".join(log_file.read_text(errors="replace").splitlines(keepends=True)[-15:])
            raise RuntimeError(f"stage '{stage.name}' failed (exit {code}); log {log_file}:\n{tail}")
    return time.monotonic() - started


def run_plan(stages: list[Stage], run: Path, design: TestbedConfig) -> dict[str, float]:
    """Run the stages not finished (:func:`oec.stages.finished`), ``design.jobs`` at a time, once
    their needs are done; returns every stage's wall seconds (earlier runs' from timings.json)."""
    log_dir = run / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    timings_file = run / "timings.json"
    timings: dict[str, float] = json.loads(timings_file.read_text()) if timings_file.exists() else {}
    env = {**os.environ, "WANDB_MODE": os.environ.get("WANDB_MODE", "offline")}
    if design.jobs > 1:
        env |= {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    finished = {s.name for s in stages if is_finished(s, timings)}
    pending = [s for s in stages if s.name not in finished]
    skipped = len(stages) - len(pending)
    if skipped:
        console.print(f"[green]skip[/] {skipped} finished stages")
    running: dict[Future[float], Stage] = {}
    failure: BaseException | None = None
    skipped: dict[str, str] = {}
    started_at = time.monotonic()
    with ThreadPoolExecutor(design.jobs) as pool:
        while pending or running:
            scan = failure is None
            while scan:  # a skipped stage makes the stages that need it ready: scan again
                scan = False
                for stage in [s for s in pending if all(n in finished or n in skipped for n in s.needs)]:
                    if len(running) >= design.jobs:
                        break
                    reason = next((f"needs {n}: {skipped[n]}" for n in stage.needs if n in skipped), None)
                    reason = reason or (stage.unready() if stage.unready else None)
                    if reason is not None:
                        skipped[stage.name] = reason
                        pending.remove(stage)
                        console.print(f"[yellow]skip[/] {stage.name}: {reason}")
                        scan = True
                        continue
                    argv = with_sources(stage, run, design) if stage.name.startswith("train ") else stage.argv
                    running[pool.submit(_execute, stage, argv, log_dir, env)] = stage
                    pending.remove(stage)
                    console.print(f"[bold]start[/] {stage.name}")
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                stage = running.pop(future)
                try:
                    seconds = future.result()
                except BaseException as exc:  # reported once the running stages finish
                    failure = failure or exc
                    console.print(f"[red]failed[/] {stage.name}")
                    continue
                finished.add(stage.name)
                timings[stage.name] = round(seconds, 1)
                timings_file.write_text(json.dumps(timings, indent=2) + "\n")
                elapsed = time.monotonic() - started_at
                console.print(
                    f"[green]done[/] {stage.name} in {seconds:.0f} s "
                    f"({len(finished)}/{len(stages)} stages, {elapsed / 60:.1f} min)"
                )
    (run / "skipped.json").write_text(json.dumps(skipped, indent=2) + "\n")
    if failure is not None:
        raise SystemExit(str(failure))
    if pending:
        names = ", ".join(s.name for s in pending)
        raise SystemExit(f"stages never became ready (a need is missing): {names}")
    return timings
