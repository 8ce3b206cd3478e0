"""Parse and check ``specs/<project>.yaml``: the bugs and hidden tests of one embedded project.

The format is fixed (see the package docstring); this module turns a spec file into typed records
and rejects anything the builder could misread, naming the spec file, the task id and the key, so
that project authors get an actionable message instead of a wrong task.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

SPLITS = ("train", "test")
_TASK_KEYS = {"id", "split", "problem_statement", "bug", "tests", "FAIL_TO_PASS"}
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class SpecError(ValueError):
    """A spec file is malformed or does not fit its project; the message names file, task and key."""


@dataclass(frozen=True)
class Edit:
    """Replace the ``fixed`` text (clean source) by the ``buggy`` text in ``file``."""

    file: str
    fixed: str
    buggy: str


@dataclass(frozen=True)
class TestAddition:
    """Hidden test code appended to ``file`` (created when the project does not have it)."""

    file: str
    append: str


@dataclass(frozen=True)
class TaskSpec:
    id: str
    split: str
    problem_statement: str
    bug: tuple[Edit, ...]
    tests: tuple[TestAddition, ...]
    fail_to_pass: tuple[str, ...]


@dataclass(frozen=True)
class ProjectSpec:
    """One spec file: the project it belongs to, the Task.repo value and its tasks."""

    path: Path
    project: str
    repo: str
    project_dir: Path
    tasks: tuple[TaskSpec, ...]

    def instance_id(self, task: TaskSpec) -> str:
        return f"oec-embedded__{self.project}-{task.id}"


def _relative_file(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: must be a non-empty relative path")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise SpecError(f"{where}: {value!r} must be relative to the project root, without '..'")
    return path.as_posix()


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where}: must be a non-empty string")
    return value


def _mapping_list(value: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise SpecError(f"{where}: must be a non-empty list of mappings")
    return value


def _check_keys(data: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    missing = sorted(allowed - set(data))
    if unknown:
        raise SpecError(f"{where}: unknown key(s) {unknown} (allowed: {sorted(allowed)})")
    if missing:
        raise SpecError(f"{where}: missing key(s) {missing}")


def _parse_task(data: Any, index: int, spec_path: Path, project_dir: Path) -> TaskSpec:
    where = f"{spec_path}: tasks[{index}]"
    if not isinstance(data, dict):
        raise SpecError(f"{where}: must be a mapping")
    task_id = data.get("id")
    if not isinstance(task_id, str) or not _ID_PATTERN.match(task_id):
        raise SpecError(f"{where}: 'id' must be a quoted string such as \"001\", got {task_id!r}")
    where = f"{spec_path}: task {task_id!r}"
    _check_keys(data, _TASK_KEYS, where)
    if data["split"] not in SPLITS:
        raise SpecError(f"{where}: 'split' must be one of {SPLITS}, got {data['split']!r}")

    edits = []
    for i, item in enumerate(_mapping_list(data["bug"], f"{where}: 'bug'")):
        at = f"{where}: bug[{i}]"
        _check_keys(item, {"file", "fixed", "buggy"}, at)
        file = _relative_file(item["file"], f"{at}.file")
        if PurePosixPath(file).parts[0] == "tests" or PurePosixPath(file).name.startswith("test_"):
            raise SpecError(f"{at}.file: {file!r} is a test file; bugs live in non-test modules")
        if not (project_dir / file).is_file():
            raise SpecError(f"{at}.file: {file!r} does not exist in {project_dir}")
        fixed, buggy = _text(item["fixed"], f"{at}.fixed"), _text(item["buggy"], f"{at}.buggy")
        if fixed == buggy:
            raise SpecError(f"{at}: 'fixed' and 'buggy' are identical")
        edits.append(Edit(file=file, fixed=fixed, buggy=buggy))

    additions = []
    for i, item in enumerate(_mapping_list(data["tests"], f"{where}: 'tests'")):
        at = f"{where}: tests[{i}]"
        _check_keys(item, {"file", "append"}, at)
        additions.append(
            TestAddition(file=_relative_file(item["file"], f"{at}.file"), append=_text(item["append"], at))
        )
    overlap = {e.file for e in edits} & {t.file for t in additions}
    if overlap:
        raise SpecError(f"{where}: files {sorted(overlap)} appear in both 'bug' and 'tests'")

    f2p = data["FAIL_TO_PASS"]
    if not isinstance(f2p, list) or not f2p or not all(isinstance(t, str) and t for t in f2p):
        raise SpecError(f"{where}: 'FAIL_TO_PASS' must be a non-empty list of test ids")
    return TaskSpec(
        id=task_id,
        split=data["split"],
        problem_statement=_text(data["problem_statement"], f"{where}: 'problem_statement'"),
        bug=tuple(edits),
        tests=tuple(additions),
        fail_to_pass=tuple(f2p),
    )


def load_spec(spec_path: Path, projects_dir: Path) -> ProjectSpec:
    """Read one spec file and check it against ``projects_dir/<project>``."""
    try:
        data = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{spec_path}: invalid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{spec_path}: must be a mapping with keys project, repo, tasks")
    _check_keys(data, {"project", "repo", "tasks"}, str(spec_path))
    project = data["project"]
    if project != spec_path.stem:
        raise SpecError(f"{spec_path}: 'project' is {project!r} but the file is named {spec_path.name}")
    project_dir = projects_dir / project
    if not project_dir.is_dir():
        raise SpecError(f"{spec_path}: project directory {project_dir} does not exist")
    repo = _text(data["repo"], f"{spec_path}: 'repo'")
    tasks = [
        _parse_task(item, i, spec_path, project_dir)
        for i, item in enumerate(_mapping_list(data["tasks"], f"{spec_path}: 'tasks'"))
    ]
    seen: set[str] = set()
    for task in tasks:
        if task.id in seen:
            raise SpecError(f"{spec_path}: task id {task.id!r} appears twice")
        seen.add(task.id)
        files = {edit.file: (project_dir / edit.file).read_text(encoding="utf-8") for edit in task.bug}
        inject(files, task, f"{spec_path}: task {task.id!r}")
    return ProjectSpec(
        path=spec_path, project=project, repo=repo, project_dir=project_dir, tasks=tuple(tasks)
    )


def locate(source: str, snippet: str, where: str) -> tuple[int, int, str]:
    """Find the unique occurrence of ``snippet`` in ``source``: (start, end, indentation).

    The snippet is first matched verbatim. YAML block scalars strip the common indentation, so a
    multi-line snippet copied from an indented block does not occur verbatim; it is then matched
    at line starts re-indented by one uniform prefix, and that prefix is returned so the
    replacement can be re-indented the same way. Zero or several matches raise :class:`SpecError`.
    """
    count = source.count(snippet)
    if count == 1:
        start = source.index(snippet)
        return start, start + len(snippet), ""
    if count > 1:
        raise SpecError(f"{where}: snippet occurs {count} times; it must be unique:\n{snippet}")
    indents = {line[: len(line) - len(line.lstrip())] for line in source.splitlines()} - {""}
    matches = []
    for indent in sorted(indents):
        pattern = re.compile(r"^" + re.escape(textwrap.indent(snippet, indent)), re.MULTILINE)
        matches.extend((m.start(), m.end(), indent) for m in pattern.finditer(source))
    if len(matches) != 1:
        found = "not found" if not matches else f"found {len(matches)} times"
        raise SpecError(f"{where}: snippet {found}; it must occur exactly once:\n{snippet}")
    return matches[0]


def inject(sources: dict[str, str], task: TaskSpec, where: str) -> dict[str, str]:
    """Apply the bug edits of ``task`` to ``{file: clean text}``; return ``{file: buggy text}``.

    Edits apply in order, so a second edit of the same file sees the first one's result.
    """
    buggy = dict(sources)
    for i, edit in enumerate(task.bug):
        text = buggy[edit.file]
        start, end, indent = locate(text, edit.fixed, f"{where}: bug[{i}] in {edit.file}")
        lines = edit.buggy.splitlines(keepends=True)
        replacement = "".join(indent + line if line.strip() else line for line in lines)
        buggy[edit.file] = text[:start] + replacement + text[end:]
    return buggy
