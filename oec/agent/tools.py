"""The agent's tools: ``bash``, ``str_replace_editor`` and ``submit``, executed in a sandbox.

Tools are declared once, as data (:data:`TOOLS`): the same declarations validate calls and render
the documentation the system prompt shows (:data:`TOOL_DOCS`). Everything reaches the sandbox
through ``Sandbox.run``: the editor script (:mod:`oec.agent.editor`) is copied in through stdin and
called with its arguments as JSON on stdin, so the tools work unchanged in any runtime and no
argument is ever interpolated into a shell command.

``submit`` ends the episode; the loop then takes :meth:`ToolBox.current_patch`: everything staged
(``git add -A``) and diffed with ``git diff --cached --binary`` against the base commit: new,
modified, deleted and binary files alike. Nothing is excluded, except what the repository's own
``.gitignore`` hides from ``git add``. A patch has a size bound, checked in the sandbox before anything
large is built or read back: first the bytes the working copy adds (:mod:`oec.agent.added_bytes`, one
``stat`` per changed path), then the size of the diff file; over the bound, :class:`PatchTooLarge`.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from importlib import resources

from oec.agent.actions import Action, FormatError, ToolCall, render_action
from oec.env import EnvConfig, ExecResult, Sandbox, SandboxError
from oec.env.files import read_file

EDITOR_SCRIPT = "str_replace_editor.py"
ADDED_BYTES_SCRIPT = resources.files("oec.agent").joinpath("added_bytes.py").read_text(encoding="utf-8")
PATCH_FILE = "submission.patch"
NO_OUTPUT = "Your command ran successfully and did not produce any output."


class PatchTooLarge(Exception):
    """The submission exceeds the size bound; the episode ends with ``patch_too_large``."""

    def __init__(self, size: int, max_bytes: int, what: str) -> None:
        super().__init__(
            f"{what} {size:,} bytes, over the limit of {max_bytes:,} (agent.limits.max_patch_bytes)"
        )
        self.size = size
        self.max_bytes = max_bytes


class InvalidToolCall(FormatError):
    """A call names an unknown tool or command, or lacks or adds parameters; shown to the model.

    A subclass of :class:`FormatError`, since the call is malformed rather than unsuccessful.
    """


@dataclass(frozen=True)
class Parameter:
    name: str
    description: str
    required: bool = False


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: tuple[Parameter, ...] = ()


EDITOR_COMMANDS: dict[str, tuple[str, ...]] = {
    "view": (),
    "create": ("file_text",),
    "str_replace": ("old_str",),
    "insert": ("insert_line", "new_str"),
    "undo_edit": (),
}
"""Each editor command and the parameters it needs beyond ``command`` and ``path``."""

TOOLS: tuple[Tool, ...] = (
    Tool(
        "bash",
        "Run a bash command in the repository root and return its output (stdout and stderr together). "
        "Every call starts a fresh shell in the repository root: `cd`, variables and background processes "
        "do not carry over to the next call. Commands cannot be interactive (stdin is empty), are killed "
        "after a timeout, and very long output is cut in the middle.",
        (Parameter("command", "The bash command to run.", required=True),),
    ),
    Tool(
        "str_replace_editor",
        "View, create and edit files. `view` shows a file with line numbers (like `cat -n`) or lists a "
        "directory two levels deep. `create` writes a new file and refuses to overwrite one. "
        "`str_replace` replaces `old_str` with `new_str`; `old_str` must match exactly one place in the "
        "file, whitespace included. `insert` adds `new_str` after line `insert_line` (0 inserts at the top). "
        "`undo_edit` reverts the last edit made to the file with this tool.",
        (
            Parameter(
                "command",
                "One of view, create, str_replace, insert, undo_edit.",
                required=True,
            ),
            Parameter(
                "path",
                "Path of the file or directory, absolute or relative to the repository root.",
                required=True,
            ),
            Parameter("file_text", "`create`: the content of the new file."),
            Parameter("old_str", "`str_replace`: the exact text to replace."),
            Parameter(
                "new_str", "`str_replace`: the replacement (omit it to delete); `insert`: the text to insert."
            ),
            Parameter("insert_line", "`insert`: the line number after which `new_str` goes."),
            Parameter(
                "view_range",
                "`view` of a file: [start, end], 1-based and inclusive; end -1 means the last line.",
            ),
        ),
    ),
    Tool(
        "submit",
        "Submit your changes and end the session: the diff of the repository against its original state is "
        "your solution. Call it once the fix is complete and checked.",
    ),
)

_BY_NAME = {tool.name: tool for tool in TOOLS}

_EXAMPLE = render_action(
    Action(
        thought="",
        call=ToolCall(
            "str_replace_editor",
            {
                "command": "str_replace",
                "path": "src/app.py",
                "old_str": "    return a - b",
                "new_str": "    return a + b",
            },
        ),
    )
)


def _render_docs() -> str:
    sections = []
    for tool in TOOLS:
        params = "".join(
            f"\n  - {p.name} ({'required' if p.required else 'optional'}): {p.description}"
            for p in tool.parameters
        )
        sections.append(f"## {tool.name}\n{tool.description}\nParameters:{params or ' none'}")
    return (
        "# Tools\n"
        "Call a tool with one <function=NAME> block holding one <parameter=NAME> block per parameter. "
        "Write values as plain text, without quotes or escaping; one newline right after the opening tag "
        "and one right before the closing tag are not part of the value.\n\n"
        + "\n\n".join(sections)
        + f"\n\nExample:\n{_EXAMPLE}"
    )


TOOL_DOCS = _render_docs()
"""The tool documentation the system prompts include."""


@dataclass(frozen=True)
class ToolResult:
    observation: str
    submitted: bool = False
    """Set by ``submit`` only: the episode ends, with :meth:`ToolBox.current_patch` as its patch."""


def validate(call: ToolCall) -> Tool:
    """The tool ``call`` names, or :class:`InvalidToolCall` saying what is wrong with the call."""
    tool = _BY_NAME.get(call.name)
    if tool is None:
        raise InvalidToolCall(f"Unknown tool '{call.name}'. The available tools are: {', '.join(_BY_NAME)}.")
    known = [p.name for p in tool.parameters]
    unexpected = [name for name in call.arguments if name not in known]
    if unexpected:
        takes = f"Its parameters are: {', '.join(known)}." if known else "It takes no parameters."
        raise InvalidToolCall(
            f"Tool '{tool.name}' got unexpected parameter(s): {', '.join(unexpected)}. {takes}"
        )
    for param in tool.parameters:
        if param.required and param.name not in call.arguments:
            raise InvalidToolCall(f"Tool '{tool.name}' is missing its required parameter '{param.name}'.")
    if tool.name == "bash" and not call.arguments["command"].strip():
        raise InvalidToolCall("Parameter 'command' of tool 'bash' is empty.")
    if tool.name == "str_replace_editor":
        command = call.arguments["command"].strip()
        if command not in EDITOR_COMMANDS:
            raise InvalidToolCall(
                f"Unknown str_replace_editor command '{command}'. Use one of: {', '.join(EDITOR_COMMANDS)}."
            )
        for name in EDITOR_COMMANDS[command]:
            if name not in call.arguments:
                raise InvalidToolCall(f"str_replace_editor command '{command}' needs the parameter '{name}'.")
    return tool


class ToolBox:
    """Runs validated tool calls in one sandbox; installs the editor script on creation."""

    docs = TOOL_DOCS

    def __init__(self, sandbox: Sandbox, config: EnvConfig) -> None:
        self.sandbox = sandbox
        self.timeout_s = config.timeout_s
        # Patch chunks travel as base64, which must fit one (untruncated) command output.
        self._chunk_bytes = max(3, config.max_output_chars // 4 * 3)
        self._editor = f"{sandbox.tool_dir}/{EDITOR_SCRIPT}"
        source = resources.files("oec.agent").joinpath("editor.py").read_text(encoding="utf-8")
        result = sandbox.run(
            f"mkdir -p {shlex.quote(sandbox.tool_dir)} && cat > {shlex.quote(self._editor)} "
            "&& { command -v python3 || command -v python; }",
            stdin=source,
        )
        if result.exit_code != 0 or not result.output.strip():
            raise SandboxError(
                "cannot install the str_replace_editor tool (it needs python3 or python on the PATH): "
                + (result.output.strip() or f"exit code {result.exit_code}")
            )
        # -S skips site-packages: the editor script needs only the standard library, and starts 3x faster.
        self._python = (result.output.strip().splitlines()[-1], "-S")

    def execute(self, call: ToolCall) -> ToolResult:
        """Run one call; raises :class:`InvalidToolCall` for a malformed one."""
        tool = validate(call)
        if tool.name == "bash":
            return ToolResult(
                self._observe(self.sandbox.run(call.arguments["command"], timeout=self.timeout_s))
            )
        if tool.name == "str_replace_editor":
            # Stray whitespace around a command or a path is never meant (e.g. a newline too many).
            arguments = {
                **call.arguments,
                "command": call.arguments["command"].strip(),
                "path": call.arguments["path"].strip(),
            }
            result = self.sandbox.run(
                shlex.join([*self._python, self._editor]),
                timeout=self.timeout_s,
                stdin=json.dumps(arguments),
            )
            return ToolResult(self._observe(result))
        return ToolResult(observation="Submitted.", submitted=True)

    def _observe(self, result: ExecResult) -> str:
        if result.timed_out:
            partial = f"{result.output}\n\n" if result.output else ""
            return (
                f"{partial}The command timed out after {self.timeout_s:g} seconds and was killed, with every "
                "process it started. Run something that finishes sooner (e.g. a subset of the tests)."
            )
        if result.output:
            return result.output
        if result.exit_code == 0:
            return NO_OUTPUT
        return f"Your command did not produce any output and exited with status {result.exit_code}."

    def current_patch(self, max_bytes: int) -> str:
        """The diff of the working copy (staged with ``git add -A``) against the base commit.

        Raises :class:`PatchTooLarge` when the working copy adds more than ``max_bytes`` (measured
        before ``git add -A``, which would hash and compress every new byte; see
        :mod:`oec.agent.added_bytes`) or when the diff is longer than ``max_bytes`` (measured before
        it is read back).
        """
        base = shlex.quote(self.sandbox.base_commit)
        result = self.sandbox.run(
            shlex.join([*self._python, "-", self.sandbox.base_commit]),
            timeout=self.timeout_s,
            stdin=ADDED_BYTES_SCRIPT,
        )
        added = self._size(result, "measure what the working copy adds to")
        if added > max_bytes:
            raise PatchTooLarge(added, max_bytes, "the working copy adds")
        patch_file = f"{self.sandbox.tool_dir}/{PATCH_FILE}"
        quoted = shlex.quote(patch_file)
        result = self.sandbox.run(
            f"git add -A && git diff --cached --binary {base} > {quoted} && wc -c < {quoted}",
            timeout=self.timeout_s,
        )
        size = self._size(result, "compute the patch against")
        if size > max_bytes:
            raise PatchTooLarge(size, max_bytes, "the patch has")
        # Never cut (max_bytes=None): a patch missing its head would not apply. Bytes that are not
        # UTF-8 are replaced: a trajectory's patch is text.
        return read_file(
            self.sandbox, patch_file, max_bytes=None, timeout=self.timeout_s, chunk_bytes=self._chunk_bytes
        )

    def _size(self, result: ExecResult, doing: str) -> int:
        """The byte count a measuring command printed last, or SandboxError saying what failed."""
        lines = result.output.strip().splitlines()
        if result.exit_code != 0 or not lines or not lines[-1].strip().isdigit():
            why = result.output.strip()[-2000:] or f"exit code {result.exit_code}"
            raise SandboxError(f"cannot {doing} {self.sandbox.base_commit}: {why}")
        return int(lines[-1])
