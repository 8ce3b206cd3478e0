"""The agent's tools in a real local sandbox: bash, the editor script, submit, invalid calls."""

from __future__ import annotations

import ast
import re
import shutil
from importlib import resources
from pathlib import Path

import pytest

from oec.agent.actions import FormatError, ToolCall, parse_action
from oec.agent.tools import NO_OUTPUT, TOOL_DOCS, TOOLS, InvalidToolCall, PatchTooLarge, ToolBox
from oec.env import LocalSandbox, SandboxConfig
from oec.tasks.gitrepo import apply_patch, commit_all

APP = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    repo = tmp_path_factory.mktemp("snapshot")
    (repo / "src").mkdir()
    (repo / "src" / "app.py").write_text(APP)
    (repo / "src" / "deep").mkdir()
    (repo / "src" / "deep" / "deeper").mkdir()
    (repo / "src" / "deep" / "deeper" / "hidden_by_depth.py").write_text("")
    (repo / ".hidden").write_text("")
    (repo / "old.txt").write_text("to be deleted\n")
    return str(repo), commit_all(repo, "base")


@pytest.fixture
def config(tmp_path: Path) -> SandboxConfig:
    return SandboxConfig(timeout_s=20, parent_dir=str(tmp_path))


@pytest.fixture
def box(snapshot, config):
    with LocalSandbox(*snapshot, config) as sandbox:
        yield ToolBox(sandbox, config)


def edit(box: ToolBox, **arguments: str) -> str:
    return box.execute(ToolCall("str_replace_editor", arguments)).observation


def read(box: ToolBox, path: str) -> str:
    return Path(box.sandbox.workdir, path).read_text()


def test_bash_observations(box):
    assert box.execute(ToolCall("bash", {"command": "echo hi; echo err >&2"})).observation == "hi\nerr\n"
    assert box.execute(ToolCall("bash", {"command": "true"})).observation == NO_OUTPUT
    failed = box.execute(ToolCall("bash", {"command": "grep -q nothing src/app.py"}))
    assert failed.observation == "Your command did not produce any output and exited with status 1."
    assert not failed.submitted


def test_bash_timeout_observation(snapshot, tmp_path):
    config = SandboxConfig(timeout_s=1, parent_dir=str(tmp_path))
    with LocalSandbox(*snapshot, config) as sandbox:
        call = ToolCall("bash", {"command": "echo partial; sleep 60"})
        observation = ToolBox(sandbox, config).execute(call).observation
    assert observation.startswith("partial\n")
    assert "timed out after 1 seconds" in observation


def test_view_file_and_range(box):
    full = edit(box, command="view", path="src/app.py")
    path = f"{box.sandbox.workdir}/src/app.py"
    assert full == f"Here's the result of running `cat -n` on {path}:\n" + "".join(
        f"{n:6}\t{line}\n" for n, line in enumerate(APP.splitlines(), 1)
    )
    ranged = edit(box, command="view", path=path, view_range="[5, -1]")
    assert ranged.splitlines()[1:] == ["     5\tdef sub(a, b):", "     6\t    return a - b"]
    assert "should be within the range" in edit(box, command="view", path="src/app.py", view_range="[0, 2]")
    assert "should be smaller than" in edit(box, command="view", path="src/app.py", view_range="[1, 99]")
    assert "list of two integers" in edit(box, command="view", path="src/app.py", view_range="[1]")


def test_view_directory_two_levels_without_hidden(box):
    listing = edit(box, command="view", path=".").splitlines()
    root = box.sandbox.workdir
    assert (
        listing[0]
        == f"Here's the files and directories up to 2 levels deep in {root}, excluding hidden items:"
    )
    assert f"{root}/src/app.py" in listing and f"{root}/src/deep" in listing
    assert not any(".hidden" in line or ".git" in line or "deeper/" in line for line in listing)


def test_missing_paths_and_directories(box):
    assert "does not exist" in edit(box, command="view", path="nope.py")
    assert "does not exist" in edit(box, command="str_replace", path="nope.py", old_str="x", new_str="y")
    assert "only the `view` command" in edit(box, command="insert", path="src", insert_line="0", new_str="x")


def test_create_writes_literally_and_refuses_to_overwrite(box):
    text = "echo \"$HOME\" `id` $(rm -rf /) 'quoted'\n\ttab\n"
    assert edit(box, command="create", path="pkg/new.sh", file_text=text).startswith(
        "File created successfully"
    )
    assert read(box, "pkg/new.sh") == text
    assert "File already exists" in edit(box, command="create", path="pkg/new.sh", file_text="x")
    assert read(box, "pkg/new.sh") == text


def test_str_replace_unique_ambiguous_and_missing(box):
    ambiguous = edit(box, command="str_replace", path="src/app.py", old_str="return a - b", new_str="x")
    assert "Multiple occurrences" in ambiguous and "[2, 6]" in ambiguous
    missing = edit(box, command="str_replace", path="src/app.py", old_str="return a * b", new_str="x")
    assert "did not appear verbatim" in missing
    assert read(box, "src/app.py") == APP
    done = edit(
        box,
        command="str_replace",
        path="src/app.py",
        old_str="def add(a, b):\n    return a - b",
        new_str="def add(a, b):\n    return a + b",
    )
    assert "has been edited" in done and "     2\t    return a + b" in done
    assert read(box, "src/app.py") == APP.replace("a - b", "a + b", 1)
    edit(box, command="str_replace", path="src/app.py", old_str="\n\ndef sub", new_str="\ndef sub")
    assert "\n\n\n" not in read(box, "src/app.py")


def test_insert_top_and_end(box):
    assert "has been edited" in edit(
        box, command="insert", path="src/app.py", insert_line="0", new_str="import os"
    )
    assert "has been edited" in edit(
        box, command="insert", path="src/app.py", insert_line="7", new_str="# end"
    )
    assert read(box, "src/app.py") == "import os\n" + APP + "# end\n"
    assert "within the range of lines of the file: [0, 8]" in edit(
        box, command="insert", path="src/app.py", insert_line="9", new_str="x"
    )
    assert "should be an integer" in edit(
        box, command="insert", path="src/app.py", insert_line="ten", new_str="x"
    )


def test_undo_edit_restores_each_state_in_turn(box):
    edit(box, command="str_replace", path="src/app.py", old_str="def add", new_str="def plus")
    edit(box, command="insert", path="src/app.py", insert_line="0", new_str="# header")
    assert "undone successfully" in edit(box, command="undo_edit", path="src/app.py")
    assert read(box, "src/app.py") == APP.replace("def add", "def plus")
    edit(box, command="undo_edit", path="src/app.py")
    assert read(box, "src/app.py") == APP
    assert "No edit history found" in edit(box, command="undo_edit", path="src/app.py")
    edit(box, command="create", path="made.py", file_text="x = 1\n")
    assert "was removed" in edit(box, command="undo_edit", path="made.py")
    assert not Path(box.sandbox.workdir, "made.py").exists()
    assert not list(Path(box.sandbox.workdir).rglob("history"))  # history stays outside the repo


def test_submit_returns_a_patch_that_applies(box, snapshot, tmp_path):
    edit(
        box,
        command="str_replace",
        path="src/app.py",
        old_str="def add(a, b):\n    return a - b",
        new_str="def add(a, b):\n    return a + b",
    )
    edit(box, command="create", path="src/new.py", file_text="NEW = 'é'\n")
    box.execute(ToolCall("bash", {"command": "rm old.txt && printf '\\x00\\x01\\xff' > blob.bin"}))
    assert box.execute(ToolCall("submit", {})).submitted
    patch = box.current_patch(max_bytes=1 << 20)
    for name in ("src/app.py", "src/new.py", "old.txt", "blob.bin"):
        assert f"diff --git a/{name} b/{name}" in patch
    assert "GIT binary patch" in patch
    clone = tmp_path / "clone"
    shutil.copytree(snapshot[0], clone)
    apply_patch(clone, patch)
    assert (clone / "src/new.py").read_text() == "NEW = 'é'\n"
    assert (clone / "blob.bin").read_bytes() == b"\x00\x01\xff"
    assert not (clone / "old.txt").exists()


def test_patch_longer_than_the_output_limit_arrives_whole(snapshot, tmp_path):
    config = SandboxConfig(timeout_s=20, max_output_chars=1000, parent_dir=str(tmp_path))
    with LocalSandbox(*snapshot, config) as sandbox:
        box = ToolBox(sandbox, config)
        assert box.current_patch(max_bytes=1 << 20) == ""
        body = "".join(f"line {i}\n" for i in range(400))
        edit(box, command="create", path="long.txt", file_text=body)
        patch = box.current_patch(max_bytes=1 << 20)
    assert len(patch) > 4 * config.max_output_chars
    assert patch.endswith("+line 399\n")


def staged(box: ToolBox) -> str:
    return box.sandbox.run("git diff --cached --name-only").output


def test_new_files_over_the_bound_are_refused_before_git_add(box):
    """A new file bigger than the bound is never staged (``git add`` would hash all of it), whether
    it is untracked or the agent staged it, and gained bytes of tracked files count too."""
    box.sandbox.run("head -c 600 /dev/zero > big.bin")
    with pytest.raises(PatchTooLarge, match="the working copy adds 600 bytes, over the limit of 500"):
        box.current_patch(max_bytes=500)
    assert staged(box) == "", "nothing was staged"
    box.sandbox.run("git add big.bin && head -c 300 /dev/zero > more.bin")
    with pytest.raises(PatchTooLarge, match="adds 900 bytes"):
        box.current_patch(max_bytes=500)
    box.sandbox.run("rm big.bin more.bin && git reset -q && head -c 600 /dev/zero >> src/app.py")
    with pytest.raises(PatchTooLarge, match="adds 600 bytes"):
        box.current_patch(max_bytes=500)


def test_a_diff_over_the_bound_is_refused_before_it_is_read_back(box):
    # The same size rewritten: nothing is added, but the diff holds every old and new line.
    edit(
        box,
        command="str_replace",
        path="src/app.py",
        old_str="add(a, b):\n    return a - b",
        new_str="add(a, b):\n    return a + b",
    )
    patch = box.current_patch(max_bytes=1 << 20)
    assert 100 < len(patch) < 1000
    with pytest.raises(PatchTooLarge, match=rf"the patch has {len(patch)} bytes, over the limit of 100\b"):
        box.current_patch(max_bytes=100)
    assert box.current_patch(max_bytes=len(patch)) == patch, "a patch of exactly the bound is kept"


def test_ignored_files_count_for_nothing(box):
    box.sandbox.run("echo big.bin > .gitignore && head -c 5000 /dev/zero > big.bin")
    patch = box.current_patch(max_bytes=1000)
    assert "diff --git a/.gitignore b/.gitignore" in patch and "b/big.bin" not in patch


def test_invalid_tool_calls_are_format_errors(box):
    editor = "str_replace_editor"
    cases = [
        ("python", {"code": "1"}, "Unknown tool 'python'"),
        ("bash", {}, "missing its required parameter 'command'"),
        ("bash", {"command": "  "}, "is empty"),
        ("bash", {"command": "ls", "timeout": "5"}, "unexpected parameter(s): timeout"),
        ("submit", {"patch": "x"}, "It takes no parameters"),
        (editor, {"command": "delete", "path": "a"}, "Unknown str_replace_editor command 'delete'"),
        (editor, {"command": "create", "path": "a"}, "needs the parameter 'file_text'"),
        (editor, {"command": "view"}, "missing its required parameter 'path'"),
    ]
    for name, arguments, message in cases:
        with pytest.raises(InvalidToolCall, match=re.escape(message)):
            box.execute(ToolCall(name, arguments))
    assert issubclass(InvalidToolCall, FormatError)


def test_tool_docs():
    for tool in TOOLS:
        assert f"## {tool.name}" in TOOL_DOCS
        for param in tool.parameters:
            assert f"  - {param.name} ({'required' if param.required else 'optional'}): " in TOOL_DOCS
    example = TOOL_DOCS.split("Example:\n", 1)[1]
    assert parse_action(example).call.name == "str_replace_editor"
    assert "One of view, create, str_replace, insert, undo_edit." in TOOL_DOCS


def test_editor_script_parses_as_python_3_6():
    # The script runs on the sandbox's own interpreter, which for old repositories is old.
    source = resources.files("oec.agent").joinpath("editor.py").read_text(encoding="utf-8")
    ast.parse(source, feature_version=(3, 6))
