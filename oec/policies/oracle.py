"""A scripted, privileged expert: it knows the gold patch and acts like a careful agent.

The oracle stands in for a strong expert (Claude in the paper) on the embedded tasks, so the whole
OEC pipeline runs without any model. It writes replies in the student's exact format (a short
thought and one tool call, :func:`oec.agent.actions.render_action`) and works the way a good agent
does: check the working tree, reproduce the bug with a test, look at the code, edit it with
``str_replace_editor``, re-run the test, clean up and submit.

It can take over from ANY state a student leaves behind. When it enters a conversation that already
has assistant turns (or, by seed, even a fresh one) it first reads ``git status`` and
``git diff HEAD`` and keeps a change only if it is exactly part of the gold fix: every changed block
of the file belongs to a gold edit (a run of nearby changed lines) and each gold edit is wholly
applied or wholly absent. Anything else (unrelated edits, broken files, stray new files,
half-applied edits) is reverted before it edits. Decisions read state from observations rather
than guessing: ``old_str`` is made unique against the file content the oracle has viewed, a failed
edit leads to a fresh view and a retry, and a failing test run leads to a new look at the diff and
a repair.

Seeded variation (``random.Random`` over seed and task id): thought phrasing, reproducing before or
after reading the code, grep or view first, view window sizes, how much context ``old_str`` carries,
running the failing tests or the whole test file, and optional extra checks (a fresh-start state
check, a broader test run, a final diff review).

Reproduction: SWE-bench keeps the FAIL_TO_PASS tests out of the agent's checkout (they arrive with
the ``test_patch`` at grading time). When the test patch only adds top-level tests, the oracle
writes them into a temporary copy of the test file (``tests/test_x.py`` -> ``tests/test_x_issue.py``),
runs them there and deletes the copy before submitting, so the submitted patch never touches tests.
Otherwise it runs the existing test files named by FAIL_TO_PASS.

Usage: the oracle calls no model; it reports rough token counts (characters / 4) so rollout
statistics keep the same shape as with model policies.
"""

from __future__ import annotations

import random
import re
import shlex
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field

import unidiff

from oec.agent.actions import Action, ToolCall, render_action
from oec.agent.prompts import OBSERVATION_PREFIX
from oec.policies.base import Reply
from oec.types import Author, Message, Task, Usage

DEFAULT_MAX_STEPS = 40
"""The oracle's own cap on tool calls; its last allowed call is a submit."""

Block = tuple[int, tuple[str, ...], tuple[str, ...]]
"""One run of changed lines: (line in the base file where it starts, removed lines, added lines)."""

Script = Generator[Action, str, None]
"""The oracle's plan as a coroutine: it yields actions and receives each action's observation."""


def _text(line: unidiff.patch.Line) -> str:
    value = line.value
    return value[:-1] if value.endswith("\n") else value


MERGE_GAP = 2
"""Changed-line runs of a hunk at most this many unchanged lines apart form one edit, the way an
agent changes neighbouring lines with a single ``str_replace``."""


@dataclass(frozen=True)
class GoldEdit:
    """A ``str_replace``-sized piece of the gold fix: a run of changed lines of one hunk (with the
    unchanged lines between them), old and new side, and the base-file blocks it consists of."""

    path: str
    index: int
    start: int
    """Line of the base file where the edit begins."""
    old: tuple[str, ...]
    new: tuple[str, ...]
    section: str
    blocks: frozenset[Block]

    @property
    def key(self) -> tuple[str, int]:
        return (self.path, self.index)

    @property
    def delta(self) -> int:
        return len(self.new) - len(self.old)


Segment = str | int
"""A piece of a gold hunk: an unchanged line (its text) or an edit (its index in the file)."""


@dataclass(frozen=True)
class GoldFile:
    path: str
    kind: str
    """``modify``, ``add`` or ``delete``."""
    edits: tuple[GoldEdit, ...] = ()
    hunks: tuple[tuple[Segment, ...], ...] = ()
    """Each hunk as unchanged lines and edits in order; edits take their context from it."""
    content: str = ""
    """Full content of an added file."""


def _blocks(lines: Sequence[unidiff.patch.Line], line_no: int) -> list[Block]:
    """Changed-line runs of hunk lines starting at base line ``line_no``, in base-file coordinates,
    so that a working-tree diff and the gold patch compare equal whatever their context size."""
    blocks: list[Block] = []
    start, removed, added = line_no, [], []
    for line in lines:
        if line.is_context:
            if removed or added:
                blocks.append((start, tuple(removed), tuple(added)))
            line_no += 1
            start, removed, added = line_no, [], []
        elif line.is_removed or line.is_added:
            if not removed and not added:
                start = line_no
            (removed if line.is_removed else added).append(_text(line))
            line_no += line.is_removed
    if removed or added:
        blocks.append((start, tuple(removed), tuple(added)))
    return blocks


def _hunk_lines(hunk: unidiff.Hunk) -> list[unidiff.patch.Line]:
    return [line for line in hunk if line.is_context or line.is_removed or line.is_added]


def _split_hunk(path: str, hunk: unidiff.Hunk, first_index: int) -> tuple[list[GoldEdit], list[Segment]]:
    lines = _hunk_lines(hunk)
    changed = [i for i, line in enumerate(lines) if not line.is_context]
    groups: list[list[int]] = []
    for i in changed:
        if groups and i - groups[-1][-1] - 1 <= MERGE_GAP:
            groups[-1].append(i)
        else:
            groups.append([i])
    base_line = [hunk.source_start]
    for line in lines:
        base_line.append(base_line[-1] + (not line.is_added))
    edits: list[GoldEdit] = []
    segments: list[Segment] = []
    position = 0
    for group in groups:
        first, last = group[0], group[-1] + 1
        segments.extend(_text(line) for line in lines[position:first])
        part = lines[first:last]
        edit = GoldEdit(
            path=path,
            index=first_index + len(edits),
            start=base_line[first],
            old=tuple(_text(line) for line in part if not line.is_added),
            new=tuple(_text(line) for line in part if not line.is_removed),
            section=hunk.section_header.strip(),
            blocks=frozenset(_blocks(part, base_line[first])),
        )
        segments.append(edit.index)
        edits.append(edit)
        position = last
    segments.extend(_text(line) for line in lines[position:])
    return edits, segments


def parse_gold_patch(patch: str, instance_id: str) -> tuple[GoldFile, ...]:
    """The gold patch as per-file edits; raises ValueError naming the task when it cannot be read."""
    try:
        patch_set = unidiff.PatchSet(patch)
    except unidiff.UnidiffParseError as exc:
        raise ValueError(f"task {instance_id!r}: field 'patch' is not a unified diff: {exc}") from exc
    if not len(patch_set):
        raise ValueError(f"task {instance_id!r}: field 'patch' holds no file changes")
    files = []
    for patched in patch_set:
        if patched.is_added_file:
            lines = [_text(line) for hunk in patched for line in hunk if line.is_added]
            files.append(GoldFile(patched.path, "add", content="\n".join(lines) + "\n"))
        elif patched.is_removed_file:
            files.append(GoldFile(patched.path, "delete"))
        else:
            edits: list[GoldEdit] = []
            hunks = []
            for hunk in patched:
                hunk_edits, segments = _split_hunk(patched.path, hunk, len(edits))
                edits.extend(hunk_edits)
                hunks.append(tuple(segments))
            files.append(GoldFile(patched.path, "modify", edits=tuple(edits), hunks=tuple(hunks)))
    return tuple(files)


@dataclass(frozen=True)
class ReproCopy:
    """A temporary test file: ``source`` copied (or nothing, for a new file) plus ``code``."""

    original: str
    path: str
    code: str
    source: str | None


@dataclass(frozen=True)
class Reproduction:
    """How the oracle reproduces the issue: copies to write, then which tests to run."""

    copies: tuple[ReproCopy, ...]
    failing: tuple[str, ...]
    """What to run to see the bug: the FAIL_TO_PASS node ids inside the copies, or without copies
    the existing test files that hold them."""
    files: tuple[str, ...]
    """The test files that hold them, for a broader run."""


def _issue_copy(path: str) -> str:
    stem, dot, ext = path.rpartition(".")
    return f"{stem}_issue.{ext}" if dot else f"{path}_issue"


def plan_reproduction(task: Task) -> Reproduction:
    """Top-level tests that the test patch adds are run from temporary copies of their files;
    any other kind of test patch falls back to running the existing test files."""
    failing_files = tuple(sorted({test.split("::")[0] for test in task.FAIL_TO_PASS if "::" in test}))
    # Without copies the FAIL_TO_PASS tests may not exist yet; their files do.
    fallback = Reproduction((), failing_files or tuple(task.FAIL_TO_PASS), failing_files)
    try:
        patched = list(unidiff.PatchSet(task.test_patch)) if task.test_patch.strip() else []
    except unidiff.UnidiffParseError:
        return fallback
    copies = []
    for test_file in patched:
        lines = [line for hunk in test_file for line in hunk]
        code = [_text(line) for line in lines if line.is_added]
        first = next((line for line in code if line.strip()), "")
        if any(line.is_removed for line in lines) or not first or first[0].isspace():
            return fallback
        source = None if test_file.is_added_file else test_file.path
        code_text = "\n".join(code).strip("\n")
        copies.append(ReproCopy(test_file.path, _issue_copy(test_file.path), code_text, source))
    renamed = {copy.original: copy.path for copy in copies}
    failing = []
    for test in task.FAIL_TO_PASS:
        file, sep, rest = test.partition("::")
        failing.append(f"{renamed.get(file, file)}{sep}{rest}")
    files = tuple(sorted({renamed.get(f, f) for f in failing_files}))
    return Reproduction(tuple(copies), tuple(failing), files)


@dataclass
class TreeState:
    """What a ``git status`` + ``git diff HEAD`` observation says about the working tree."""

    revert: list[str] = field(default_factory=list)
    """Tracked paths to restore from HEAD."""
    untracked: list[str] = field(default_factory=list)
    """Untracked paths to delete."""
    staged_new: list[str] = field(default_factory=list)
    """Paths added to the index that HEAD does not have, to delete with ``git rm``."""
    applied: set[tuple[str, int]] = field(default_factory=set)
    """Gold edits already in place, kept."""
    deleted: set[str] = field(default_factory=set)
    """Files the gold fix deletes that are already gone."""

    @property
    def dirty(self) -> list[str]:
        return self.revert + self.untracked + self.staged_new


_PORCELAIN = re.compile(r"^([ MADRCUT?!])([ MADRCUT?!]) (.+)$")


def _unquote(path: str) -> str:
    return path[1:-1] if len(path) > 1 and path.startswith('"') and path.endswith('"') else path


def read_tree_state(output: str, gold: Sequence[GoldFile], own: set[str]) -> TreeState:
    """Judge the working tree against the gold fix; ``own`` are files the oracle itself created."""
    head, marker, diff_text = output.partition("diff --git")
    file_blocks: dict[str, set[Block]] = {}
    readable = True
    if marker:
        try:
            for patched in unidiff.PatchSet(marker + diff_text):
                file_blocks[patched.path] = {
                    b for hunk in patched for b in _blocks(_hunk_lines(hunk), hunk.source_start)
                }
        except unidiff.UnidiffParseError:
            readable = False
    by_path = {g.path: g for g in gold}
    state = TreeState()
    for match in filter(None, map(_PORCELAIN.match, head.splitlines())):
        index_status, tree_status, raw = match.groups()
        if index_status == "R":
            old, _, new = raw.partition(" -> ")
            state.revert.append(_unquote(old))
            state.staged_new.append(_unquote(new))
            continue
        path = _unquote(raw)
        gold_file = by_path.get(path)
        if path in own:
            continue
        if index_status == "?":
            state.untracked.append(path)
        elif index_status == "A":
            state.staged_new.append(path)
        elif gold_file is not None and gold_file.kind == "delete" and "D" in (index_status, tree_status):
            state.deleted.add(path)
        elif gold_file is None or gold_file.kind != "modify" or not readable or not file_blocks.get(path):
            state.revert.append(path)
        else:
            blocks = file_blocks[path]
            whole = [e for e in gold_file.edits if e.blocks <= blocks]
            if blocks - set().union(*(e.blocks for e in whole)):
                state.revert.append(path)
            else:
                state.applied.update(e.key for e in whole)
    return state


_VIEW_LINE = re.compile(r"^\s*(\d+)\t(.*)$")


def read_full_view(output: str) -> str | None:
    """File content from a whole-file ``cat -n`` style view, or None when it is partial or cut."""
    numbered = [(int(m.group(1)), m.group(2)) for m in map(_VIEW_LINE.match, output.splitlines()) if m]
    if not numbered or [n for n, _ in numbered] != list(range(1, len(numbered) + 1)):
        return None
    return "\n".join(text for _, text in numbered) + "\n"


def pytest_passed(output: str) -> bool:
    """Did a pytest run (any verbosity) pass at least one test with no failure or error?"""
    if re.search(r"\b\d+ (failed|errors?)\b|no tests ran|ERROR: (not found|file or directory)", output):
        return False
    return re.search(r"\b\d+ passed\b", output) is not None


def edit_applied(output: str) -> bool:
    """Did a ``str_replace`` observation report a successful edit (SWE-agent's wording)?"""
    return "has been edited" in output


def _failure_line(output: str) -> str | None:
    for line in output.splitlines():
        if line.startswith("E ") and line[1:].strip():
            text = line[1:].strip()
            return text if len(text) <= 100 else text[:97] + "..."
    return None


def _bash(thought: str, command: str) -> Action:
    return Action(thought, ToolCall("bash", {"command": command}))


def _editor(thought: str, **arguments: str) -> Action:
    return Action(thought, ToolCall("str_replace_editor", arguments))


def _heredoc(content: str) -> str:
    delimiter = "EOF"
    while delimiter in content.splitlines():
        delimiter += "_"
    return f"<<'{delimiter}'\n{content}\n{delimiter}"


def _quoted(paths: Sequence[str]) -> str:
    return " ".join(map(shlex.quote, paths))


class OraclePolicy:
    """The scripted expert for one rollout of ``task`` (see the module docstring).

    ``act`` advances a generator script by one tool call, sending it the observation of its previous
    call; the script starts on the first call and knows whether it is taking over a conversation.
    """

    def __init__(
        self,
        task: Task,
        seed: int = 0,
        *,
        author: Author = "expert",
        name: str = "oracle",
        max_steps: int = DEFAULT_MAX_STEPS,
    ) -> None:
        if max_steps < 2:
            raise ValueError(f"oracle max_steps must be >= 2, got {max_steps}")
        self.task = task
        self.author = author
        self.name = name
        self.max_steps = max_steps
        self.gold = parse_gold_patch(task.patch, task.instance_id)
        self.repro = plan_reproduction(task)
        self.rng = random.Random(f"{seed}:{task.instance_id}")
        self.steps = 0
        self._script: Script | None = None
        self._submitted = False
        self._applied: set[tuple[str, int]] = set()
        self._files_done: set[str] = set()
        self._known: dict[str, str] = {}
        self._created: set[str] = set()
        self._failure: str | None = None

    def act(self, messages: Sequence[Message], turn: int) -> Reply:
        if self._submitted or self.steps >= self.max_steps - 1:
            key = "submit_again" if self._submitted else "step_cap"
            action = Action(self._say(key), ToolCall("submit"))
        elif self._script is None:
            self._script = self._run(took_over=turn > 0)
            action = next(self._script)
        else:
            action = self._script.send(self._last_observation(messages))
        self._submitted = action.call.name == "submit"
        self.steps += 1
        content = render_action(action)
        prompt_chars = sum(len(m.content) for m in messages)
        return Reply(content, self.author, self.name, Usage(prompt_chars // 4, len(content) // 4))

    @staticmethod
    def _last_observation(messages: Sequence[Message]) -> str:
        """The tool output that answered the previous call; empty when there was none (the call was
        malformed, as the loop recorded it), so the script sees an edit not applied, a run not passed."""
        if not messages or messages[-1].kind != "observation":
            return ""
        return messages[-1].content.removeprefix(OBSERVATION_PREFIX)

    # -- the plan ------------------------------------------------------------------------------

    def _run(self, took_over: bool) -> Script:
        if took_over or self.rng.random() < 0.25:
            yield from self._survey("takeover" if took_over else "start")
        reproduce_first = self.rng.random() < 0.7
        if reproduce_first:
            yield from self._reproduce()
        for gold_file in self._pending_files():
            yield from self._inspect(gold_file)
        if not reproduce_first:
            yield from self._reproduce()
        for gold_file in self._pending_files():
            yield from self._fix(gold_file)
        yield from self._verify()
        yield from self._finish()

    def _pending_files(self) -> list[GoldFile]:
        return [g for g in self.gold if self._pending(g)]

    def _pending(self, gold_file: GoldFile) -> bool:
        if gold_file.kind == "modify":
            return any(e.key not in self._applied for e in gold_file.edits)
        return gold_file.path not in self._files_done

    def _file(self, path: str) -> GoldFile:
        return next(g for g in self.gold if g.path == path)

    def _context(self, edit: GoldEdit) -> tuple[list[str], list[str]]:
        """Lines of the edit's hunk before and after it, as they read now: neighbouring edits
        appear on their new side once applied."""
        gold_file = self._file(edit.path)
        segments = next(h for h in gold_file.hunks if edit.index in h)

        def lines(segment: Segment) -> list[str]:
            if isinstance(segment, str):
                return [segment]
            other = gold_file.edits[segment]
            return list(other.new if other.key in self._applied else other.old)

        at = segments.index(edit.index)
        before = [line for seg in segments[:at] for line in lines(seg)]
        after = [line for seg in segments[at + 1 :] for line in lines(seg)]
        return before, after

    def _where(self, edit: GoldEdit) -> str:
        """The nearest enclosing definition (from the context, else the @@ header), else the file."""
        before, _ = self._context(edit)
        for line in (*reversed(before), *edit.old, edit.section):
            match = re.match(r"\s*(?:async\s+)?(?:def|class)\s+(\w+)", line)
            if match:
                return match.group(1)
        return edit.path

    def _survey(self, reason: str) -> Script:
        """Read the working tree, then revert whatever is not part of the gold fix."""
        status = self.rng.choice(["git status --porcelain --untracked-files=all", "git status -s -uall"])
        output = yield _bash(self._say(f"survey_{reason}"), f"{status} && git diff HEAD")
        state = read_tree_state(output, self.gold, self._created)
        self._applied = state.applied
        self._files_done = state.deleted
        if not state.dirty:
            return
        for path in state.dirty:
            self._known.pop(path, None)
        commands = []
        if state.revert:
            commands.append(f"git checkout HEAD -- {_quoted(state.revert)}")
        if state.staged_new:
            commands.append(f"git rm -q -f -- {_quoted(state.staged_new)}")
        if state.untracked:
            commands.append(f"rm -f -- {_quoted(state.untracked)}")
        thought = self._say("clean", files=", ".join(state.dirty))
        kept = sorted({path for path, _ in state.applied})
        if kept:
            thought += " " + self._say("keep", files=", ".join(kept))
        yield _bash(thought, " && ".join(commands))

    def _reproduce(self) -> Script:
        if not self.repro.copies:
            output = yield _bash(self._say("run_existing"), self._pytest(self.repro.failing))
            self._failure = _failure_line(output)
            return
        writes = []
        for copy in self.repro.copies:
            if copy.path in self._created:
                continue
            target = shlex.quote(copy.path)
            if copy.source is None:
                writes.append(f"cat > {target} {_heredoc(copy.code)}")
            else:
                body = _heredoc(f"\n\n{copy.code}")
                writes.append(f"cp {shlex.quote(copy.source)} {target} && cat >> {target} {body}")
            self._created.add(copy.path)
        whole_files = self.repro.files and self.rng.random() < 0.3
        run = self._pytest(self.repro.files if whole_files else self.repro.failing)
        if writes and self.rng.random() < 0.5:
            yield _bash(self._say("write_test"), "\n".join(writes))
            output = yield _bash(self._say("run_test"), run)
        elif writes:
            output = yield _bash(self._say("write_and_run"), "\n".join([*writes, run]))
        else:
            output = yield _bash(self._say("run_test"), run)
        self._failure = _failure_line(output)

    def _pytest(self, args: Sequence[str]) -> str:
        flags = self.rng.choice(["-q", "-q", "-x -q", "--tb=short -q", "-q -p no:cacheprovider"])
        return f"python -m pytest {flags} {_quoted(args)}"

    def _inspect(self, gold_file: GoldFile) -> Script:
        """Look at the code the fix touches: grep, a window around the first edit or the whole file."""
        if gold_file.kind != "modify":
            return
        edit = next(e for e in gold_file.edits if e.key not in self._applied)
        where = self._where(edit)
        failure, self._failure = self._failure, None
        style = self.rng.choice(["grep_window", "grep_full", "full", "window"])
        if style.startswith("grep"):
            pattern = where if where != edit.path else next((s.strip() for s in edit.old if s.strip()), "")
            if pattern:
                thought = self._say("grep", where=where, failure=failure)
                failure = None
                yield _bash(thought, f"grep -n {shlex.quote(pattern)} {shlex.quote(gold_file.path)}")
        thought = self._say("view", where=where, failure=failure)
        if style.endswith("full"):
            yield from self._view_full(gold_file.path, thought)
        else:
            yield self._view_window(edit, thought)

    def _view_full(self, path: str, thought: str) -> Script:
        output = yield _editor(thought, command="view", path=path)
        content = read_full_view(output)
        if content is None:
            self._known.pop(path, None)
        else:
            self._known[path] = content

    def _position(self, edit: GoldEdit) -> int:
        """Current line where an edit begins: its base line shifted by applied edits above it."""
        edits = self._file(edit.path).edits
        return edit.start + sum(e.delta for e in edits[: edit.index] if e.key in self._applied)

    def _view_window(self, edit: GoldEdit, thought: str) -> Action:
        width = self.rng.choice([5, 8, 10, 15, 20])
        line = self._position(edit)
        content = self._known.get(edit.path)
        # The editor rejects a range past the end of the file; without the file's length, stop at
        # the last line of the edit's hunk, which exists.
        last = content.count("\n") if content else line + len(edit.old) + len(self._context(edit)[1]) - 1
        end = max(line, min(line + len(edit.old) + width, last))
        return _editor(thought, command="view", path=edit.path, view_range=f"[{max(1, line - width)}, {end}]")

    def _fix(self, gold_file: GoldFile) -> Script:
        if gold_file.kind == "add" and self._pending(gold_file):
            thought = self._say("create", where=gold_file.path)
            yield _editor(thought, command="create", path=gold_file.path, file_text=gold_file.content)
            self._files_done.add(gold_file.path)
        elif gold_file.kind == "delete" and self._pending(gold_file):
            yield _bash(self._say("delete", where=gold_file.path), f"rm {shlex.quote(gold_file.path)}")
            self._files_done.add(gold_file.path)
        first = True
        for edit in gold_file.edits:
            if edit.key in self._applied:
                continue
            if not first and self.rng.random() < 0.4:
                yield self._view_window(edit, self._say("next_edit", where=self._where(edit)))
            yield from self._edit(edit, "edit" if first else "edit_more")
            first = False

    def _edit(self, edit: GoldEdit, phrase: str) -> Script:
        """``str_replace`` one edit; when it fails, re-read the whole file and retry once."""
        for attempt in range(2):
            content = self._known.get(edit.path)
            old, new = self._choose_strings(edit, content)
            if content is not None and content.count(old) != 1:
                # The file is not in the state the fix expects: the test run that follows fails
                # and the repair path restores the file.
                return
            output = yield _editor(
                self._say(phrase if attempt == 0 else "edit_retry", where=self._where(edit)),
                command="str_replace",
                path=edit.path,
                old_str=old,
                new_str=new,
            )
            if edit_applied(output):
                self._applied.add(edit.key)
                if content is not None:
                    self._known[edit.path] = content.replace(old, new, 1)
                return
            if attempt == 0:
                yield from self._view_full(edit.path, self._say("reread", where=edit.path))

    def _choose_strings(self, edit: GoldEdit, content: str | None) -> tuple[str, str]:
        """``old_str``/``new_str``: a seeded amount of context, widened until ``old_str`` is unique in
        the viewed file; three lines each side (git's hunk context) when the file was not seen whole."""
        before_lines, after_lines = self._context(edit)
        if content is None:
            before, after = min(3, len(before_lines)), min(3, len(after_lines))
        else:
            before = self.rng.randint(0, min(3, len(before_lines)))
            after = self.rng.randint(0, min(3, len(after_lines)))
        if not any(line.strip() for line in edit.old) and not any(
            line.strip() for line in (*before_lines[len(before_lines) - before :], *after_lines[:after])
        ):
            # A pure insertion needs a non-blank anchor line to replace.
            before, after = min(len(before_lines), max(before, 1)), min(len(after_lines), max(after, 1))

        def strings(before: int, after: int) -> tuple[str, str]:
            lead = before_lines[len(before_lines) - before :] if before else []
            trail = after_lines[:after]
            return "\n".join([*lead, *edit.old, *trail]), "\n".join([*lead, *edit.new, *trail])

        full = (len(before_lines), len(after_lines))
        while True:
            old, new = strings(before, after)
            if content is None or content.count(old) == 1 or (before, after) == full:
                return old, new
            before, after = min(before + 1, full[0]), min(after + 1, full[1])

    def _verify(self) -> Script:
        """Re-run the failing tests; while they fail, look at the diff and repair it."""
        for attempt in range(3):
            key = ("rerun" if attempt == 0 else "rerun_again") if self.repro.copies else "run_again"
            thought = self._say(key)
            output = yield _bash(thought, self._pytest(self.repro.failing))
            if pytest_passed(output):
                return
            yield from self._survey("failed")
            if not self._pending_files():
                return
            yield from self._repair()

    def _repair(self) -> Script:
        self._known.clear()
        for gold_file in self._pending_files():
            yield from self._inspect(gold_file)
            yield from self._fix(gold_file)

    def _finish(self) -> Script:
        if self.repro.files and self.rng.random() < 0.5:
            yield _bash(self._say("broader"), self._pytest(self.repro.files))
        if self._created:
            yield _bash(self._say("cleanup"), f"rm -f {_quoted(sorted(self._created))}")
            self._created.clear()
        if self.rng.random() < 0.5:
            yield from self._survey("final")
            yield from self._repair()
        yield Action(self._say("submit"), ToolCall("submit"))

    def _say(self, key: str, **fields: str | None) -> str:
        failure = fields.pop("failure", None)
        text = self.rng.choice(_PHRASES[key]).format(**fields)
        if failure:
            text = self.rng.choice(_PHRASES["failure"]).format(failure=failure) + " " + text
        return text


_PHRASES: dict[str, list[str]] = {
    "failure": [
        "The test fails with `{failure}`.",
        "Reproduced: `{failure}`.",
        "The failure is `{failure}`.",
    ],
    "survey_takeover": [
        "Let me check what has been changed in the repository so far.",
        "Before doing anything, let me see the current state of the working tree.",
        "First I'll look at the existing changes in the repository.",
    ],
    "survey_start": [
        "Let me check the state of the repository first.",
        "I'll start by checking the working tree.",
    ],
    "survey_failed": [
        "The test still fails. Let me look at the current diff.",
        "Still failing. Let me check what the working tree contains now.",
    ],
    "survey_final": [
        "Let me review the final diff before submitting.",
        "A last look at the changes before I submit.",
    ],
    "clean": [
        "There are changes in {files} that are not part of a correct fix. I'll revert them first.",
        "The working tree has leftover changes ({files}) that don't fix the issue. Reverting them.",
        "I'll undo the unrelated or broken changes in {files} before fixing the issue.",
    ],
    "keep": [
        "The change in {files} is already right, so I keep it.",
        "I'll keep the correct part of the change in {files}.",
    ],
    "write_test": [
        "Let me write a test that reproduces the issue.",
        "I'll add a quick test for the reported behaviour next to the existing tests.",
        "First, a reproduction: I'll copy the test file and add a test for this case.",
    ],
    "run_test": [
        "Now let me run it.",
        "Let me run the new test.",
        "Running the reproduction test.",
    ],
    "write_and_run": [
        "Let me reproduce the issue with a small test and run it.",
        "I'll write a test for the reported behaviour and run it to confirm the bug.",
    ],
    "run_existing": [
        "Let me run the relevant tests first.",
        "I'll run the tests that cover this behaviour.",
    ],
    "run_again": [
        "Let me run the tests again.",
        "Re-running the tests.",
    ],
    "grep": [
        "Let me find `{where}`.",
        "Let me locate `{where}` in the code.",
        "The problem should be in `{where}`. Let me find it.",
    ],
    "view": [
        "Let me look at `{where}`.",
        "Let me read the code of `{where}`.",
        "Let me look at the implementation around `{where}`.",
    ],
    "next_edit": [
        "There is a related spot in `{where}`. Let me look at it.",
        "Let me also check `{where}`.",
    ],
    "edit": [
        "Found it: this is what causes the bug. Let me fix `{where}`.",
        "This is the faulty logic in `{where}`. I'll correct it.",
        "I see the problem in `{where}`. Fixing it.",
    ],
    "edit_more": [
        "There is also a problem in `{where}`. Fixing it too.",
        "Next, the fix in `{where}`.",
        "Now `{where}`: correcting it as well.",
    ],
    "edit_retry": [
        "Now with the right context, let me apply the fix to `{where}` again.",
        "Retrying the edit of `{where}` with the current file content.",
    ],
    "reread": [
        "The edit did not apply. Let me look at {where} again.",
        "That replacement failed; let me re-read {where}.",
    ],
    "create": ["The fix needs a new file, {where}. Creating it."],
    "delete": ["{where} should be removed as part of the fix."],
    "rerun": [
        "Now let me re-run the test to confirm the fix.",
        "Let me run the reproduction test again.",
        "Let me check that the test passes now.",
    ],
    "rerun_again": [
        "Let me run the test again.",
        "Running the test once more.",
    ],
    "broader": [
        "The test passes. Let me run the whole test file to check for regressions.",
        "Fixed. Let me also run the rest of the tests in this file.",
    ],
    "cleanup": [
        "Everything passes. Let me remove the temporary test file.",
        "The fix works. I'll delete the reproduction test before submitting.",
    ],
    "submit": [
        "The fix is complete. Submitting.",
        "Done, submitting the fix.",
        "The issue is fixed; submitting.",
    ],
    "submit_again": ["Submitting."],
    "step_cap": ["I'm out of steps; submitting the current state."],
}
