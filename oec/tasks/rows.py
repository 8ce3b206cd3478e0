"""How a row of SWE-bench, SWE-Gym or SWE-smith becomes a :class:`~oec.types.Task`.

Every row format yields the same Task; what a container runtime and the grader need beyond the
Task's own fields lives in ``Task.metadata`` under the keys below, read through the accessors here:

- ``image`` (:func:`image_of`): the task's image. A row's own image (swebench 5.x ``image``, SWE-smith
  ``image_name``) is kept as written, never recomputed; a row without one gets the source's
  ``image_template`` when set, else the source's published naming: SWE-bench
  ``swebench/sweb.eval.x86_64.<id, __ -> _1776_>``, SWE-Gym ``xingyaoww/sweb.eval.x86_64.<id, __ -> _s_>``,
  SWE-smith ``jyangballin/swesmith.x86_64.<owner>_1776_<repo>.<commit8>`` (lower case, as Docker
  requires). The generic ``file`` source has no published naming: without a template such a row has
  no image and only the local runtime can run it.
- ``workdir`` (:func:`workdir_of`): the repository inside the image (``/testbed``).
- ``eval_script`` and ``log_parser``: swebench 5.x columns, kept as given. With an ``eval_script`` the
  verifier runs it as swebench's harness does; without one it runs the listed tests with pytest.
  ``log_parser`` names a parser in swebench's registry (:func:`oec.verify.grade.parser_name_for`).
- ``grading`` (:func:`grading_of`): ``swebench`` (strict: a listed test the log does not mention
  failed) for SWE-bench and SWE-Gym rows, ``swesmith`` (a listed test the log does not mention
  passed, as SWE-smith's harness grades) for SWE-smith rows (:mod:`oec.verify.grade`).
- ``bug_patch`` (:func:`bug_patch_of`): SWE-smith only. A SWE-smith row's ``patch`` *introduces* the
  bug and its instance lives on a branch of a GitHub mirror, which is unreachable offline. So the
  Task's gold ``patch`` is that patch reversed, and the runtime starts from the clean repository the
  image holds at ``/testbed`` (the mirror's commit, ``commit8`` in the image name; the Task's
  ``base_commit`` is ``HEAD``, and a row's own ``base_commit``, the instance branch's commit that is
  not in the image, is kept as ``instance_commit``), applies ``bug_patch`` there and commits it
  (:func:`oec.tasks.swesmith.apply_bug_patch`): that commit is the base the agent works from and
  ``submit`` diffs against.
- ``row_format``: ``swe-bench``, ``swe-gym`` or ``swe-smith``, the mapping used.

The row's other columns (``hints_text``, ``created_at``, ``environment_setup_commit``...) go to
``metadata`` as they are.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
import string
from pathlib import Path
from typing import Any, Literal

from oec.types import SchemaError, Task

RowFormat = Literal["swe-bench", "swe-gym", "swe-smith"]
Grading = Literal["swebench", "swesmith"]
DEFAULT_WORKDIR = "/testbed"
CLEAN_BASE = "HEAD"
"""``base_commit`` of a SWE-smith task: the clean repository as its image (or a local mirror's
default branch) holds it, to which the bug patch is then applied."""
TEMPLATE_FIELDS = ("instance_id", "owner", "name", "commit8")
"""Fields an ``image_template`` may use."""
GRADING: dict[RowFormat, Grading] = {"swe-bench": "swebench", "swe-gym": "swebench", "swe-smith": "swesmith"}

TASK_FIELDS = frozenset(f.name for f in dataclasses.fields(Task))
_SMITH_MIRROR = re.compile(
    r"^(?:[^/]+/)?(?P<owner>[^/_]+(?:_[^/_]+)*?)__(?P<name>[^/]+)\.(?P<commit8>[0-9a-f]{7,40})$"
)
"""A SWE-smith mirror's name: ``swesmith/<owner>__<repo>.<commit>``."""


def image_of(task: Task) -> str | None:
    """The image the task runs in, or None (a task only the local runtime can run)."""
    return task.metadata.get("image")


def workdir_of(task: Task) -> str:
    """The repository's directory inside the task's image."""
    return str(task.metadata.get("workdir") or DEFAULT_WORKDIR)


def grading_of(task: Task) -> Grading:
    """The grading rule of the task's source (``swebench`` unless the row is SWE-smith's)."""
    return "swesmith" if task.metadata.get("grading") == "swesmith" else "swebench"


def bug_patch_of(task: Task) -> str | None:
    """The patch that turns the clean repository of the image into the task's base (SWE-smith)."""
    return task.metadata.get("bug_patch") or None


def infer_row_format(row: dict[str, Any]) -> RowFormat:
    """The layout of a row of unknown origin: SWE-smith rows name an image and have no test patch."""
    return "swe-smith" if "image_name" in row and "test_patch" not in row else "swe-bench"


def check_image_template(template: str) -> None:
    """Raise ValueError naming a field the template uses that :data:`TEMPLATE_FIELDS` lacks."""
    for _, field_name, _, _ in string.Formatter().parse(template):
        if field_name is not None and field_name not in TEMPLATE_FIELDS:
            raise ValueError(f"unknown field {{{field_name}}}; the fields are {', '.join(TEMPLATE_FIELDS)}")


def _template_fields(row_format: RowFormat, data: dict[str, Any]) -> dict[str, str]:
    instance_id, repo = str(data["instance_id"]), str(data.get("repo") or "")
    match = _SMITH_MIRROR.match(repo) if row_format == "swe-smith" else None
    if match:
        owner, name, commit8 = match.group("owner"), match.group("name"), match.group("commit8")[:8]
    else:
        owner, _, name = repo.partition("/")
        commit8 = str(data.get("base_commit") or "")[:8]
    fields = {"instance_id": instance_id, "owner": owner, "name": name, "commit8": commit8}
    return {key: value.lower() for key, value in fields.items()}


def published_image(row_format: RowFormat, data: dict[str, Any]) -> str:
    """The image name the row's benchmark publishes for it; SchemaError naming the field it needs."""
    key = str(data["instance_id"]).lower()
    if row_format == "swe-bench":
        return f"swebench/sweb.eval.x86_64.{key.replace('__', '_1776_')}"
    if row_format == "swe-gym":
        return f"xingyaoww/sweb.eval.x86_64.{key.replace('__', '_s_')}"
    repo = data.get("repo")
    match = _SMITH_MIRROR.match(repo) if isinstance(repo, str) else None
    if not match:
        raise SchemaError(
            f"task {data['instance_id']!r}: field 'repo' must name a SWE-smith mirror "
            f"(swesmith/<owner>__<repo>.<commit>) when the row has no 'image_name', got {repo!r}"
        )
    fields = _template_fields(row_format, data)
    return f"jyangballin/swesmith.x86_64.{fields['owner']}_1776_{fields['name']}.{fields['commit8']}"


def _row_image(row_format: RowFormat, data: dict[str, Any], template: str | None, named: bool) -> str | None:
    where = f"task {data['instance_id']!r}"
    for column in ("image", "image_name"):
        value = data.get(column)
        if value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise SchemaError(f"{where}: field '{column}' must be a non-empty string, got {value!r}")
        return value
    if template is not None:
        return template.format(**_template_fields(row_format, data))
    return published_image(row_format, data) if named else None


_HUNK = re.compile(r"^@@ -(\S+) \+(\S+) @@(.*)$")
_SWAPPED_HEADERS = (
    ("new file mode ", "deleted file mode "),
    ("old mode ", "new mode "),
    ("rename from ", "rename to "),
    ("copy from ", "copy to "),
)


def reverse_patch(patch: str) -> str:
    """The unified (git) diff that undoes ``patch``; SchemaError for a binary patch.

    Per file: the old and new names, modes and blob ids swap, each hunk's ranges swap and its
    ``+`` and ``-`` lines trade places (``git apply`` reads them in any order within a hunk).
    """
    out: list[str] = []
    lines = patch.splitlines(keepends=True)
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("GIT binary patch") or line.startswith("Binary files "):
            raise SchemaError("a binary patch cannot be reversed")
        if line.startswith("--- ") and index + 1 < len(lines) and lines[index + 1].startswith("+++ "):
            old, new = line[4:], lines[index + 1][4:]
            out += ["--- " + _swap_prefix(new, "b/", "a/"), "+++ " + _swap_prefix(old, "a/", "b/")]
            index += 2
            continue
        hunk = _HUNK.match(line.rstrip("\n"))
        if hunk:
            out.append(f"@@ -{hunk.group(2)} +{hunk.group(1)} @@{hunk.group(3)}\n")
        elif line.startswith("index "):
            blobs, _, mode = line[6:].partition(" ")
            old_blob, _, new_blob = blobs.rstrip("\n").partition("..")
            out.append(f"index {new_blob}..{old_blob}{' ' + mode if mode else chr(10)}")
        elif line.startswith("+") and not line.startswith("+++ "):
            out.append("-" + line[1:])
        elif line.startswith("-") and not line.startswith("--- "):
            out.append("+" + line[1:])
        else:
            out.append(_swap_header(line))
        index += 1
    return "".join(out)


def _swap_prefix(path: str, old: str, new: str) -> str:
    return new + path[len(old) :] if path.startswith(old) else path


def _swap_header(line: str) -> str:
    for first, second in _SWAPPED_HEADERS:
        if line.startswith(first):
            return second + line[len(first) :]
        if line.startswith(second):
            return first + line[len(second) :]
    if line.startswith("diff --git "):
        parts = line.rstrip("\n").split(" ")
        if len(parts) == 4 and parts[2].startswith("a/") and parts[3].startswith("b/"):
            return f"diff --git a/{parts[3][2:]} b/{parts[2][2:]}\n"
    return line


def _jsonable(value: Any) -> Any:
    """Parquet timestamps arrive as datetimes; metadata must stay JSON-serialisable."""
    if isinstance(value, datetime.date | datetime.datetime):
        return value.isoformat()
    return value


def _snapshot_in(repos_dir: Path, repo: str) -> str | None:
    for candidate in (repo.replace("/", "__"), repo, repo.rsplit("/", 1)[-1]):
        path = repos_dir / candidate
        if (path / ".git").exists() or (path / "HEAD").is_file():
            return str(path)
    return None


def task_from_row(
    row: Any,
    *,
    row_format: RowFormat | None = None,
    default_split: str | None = None,
    repos_dir: str | Path | None = None,
    image_template: str | None = None,
    workdir: str = DEFAULT_WORKDIR,
) -> Task:
    """Map one row to a Task (see the module docstring); raise SchemaError naming the bad field.

    ``row_format`` None infers the layout from the row's columns (:func:`infer_row_format`) and
    names no image the row does not carry, unless ``image_template`` is given.
    """
    if not isinstance(row, dict):
        raise SchemaError(f"row must be an object, got {type(row).__name__}")
    data = dict(row)
    if not isinstance(data.get("instance_id"), str):
        Task.from_dict(data)  # raises the error naming 'instance_id'
    where = f"task {data['instance_id']!r}"
    layout = row_format or infer_row_format(data)
    metadata = {k: _jsonable(v) for k, v in data.items() if k not in TASK_FIELDS}
    own = data.get("metadata") or {}
    if not isinstance(own, dict):
        raise SchemaError(f"{where}: field 'metadata' must be an object")
    if layout == "swe-smith":
        bug = data.get("patch")
        if not isinstance(bug, str) or not bug.strip():
            raise SchemaError(f"{where}: field 'patch' (the bug patch) must be a non-empty string")
        try:
            data["patch"] = reverse_patch(bug)
        except SchemaError as exc:
            raise SchemaError(f"{where}: field 'patch': {exc}") from None
        metadata["bug_patch"] = bug
        data["test_patch"] = data.get("test_patch") or ""
        if data.get("base_commit"):
            metadata["instance_commit"] = data["base_commit"]
        data["base_commit"] = CLEAN_BASE
    image = _row_image(layout, data, image_template, named=row_format is not None)
    if image is not None:
        metadata["image"] = image
    metadata |= {"workdir": workdir, "grading": GRADING[layout], "row_format": layout}
    metadata.update(own)
    data["metadata"] = metadata
    data["split"] = data.get("split") or default_split
    if not data.get("snapshot") and repos_dir is not None and isinstance(data.get("repo"), str):
        data["snapshot"] = _snapshot_in(Path(repos_dir), data["repo"])
    return Task.from_dict(data)
