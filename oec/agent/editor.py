"""str_replace_editor: the agent's file viewer and editor, with SWE-agent's semantics.

This file is a standalone script: the tool box copies it into the sandbox's tool directory and
runs it there with whatever Python the sandbox has, which for old repositories can be as old as
3.6. Hence only the standard library, only builtin names in annotations, no walrus operator.

Arguments arrive as one JSON object on stdin, never through a shell, e.g.
``{"command": "str_replace", "path": "src/a.py", "old_str": "x = 1", "new_str": "x = 2"}``.
Relative paths resolve against the current directory (the repository root). The message on stdout
is the agent's observation; the exit status is 0 on success and 1 on an error.

Commands: ``view`` (a file as ``cat -n`` with an optional ``view_range`` [start, end], end -1 for
the last line; a directory two levels deep without hidden entries), ``create`` (refuses to
overwrite), ``str_replace`` (``old_str`` must occur exactly once), ``insert`` (``new_str`` after
line ``insert_line``, 0 for the top) and ``undo_edit`` (reverts the last edit of a file).
Undo history lives in ``history/`` next to this script, outside the repository, so it never shows
in the submitted diff. Files are read and written byte-exactly (line endings, tabs and undecodable
bytes are preserved), unlike SWE-agent's editor, which expands tabs.
"""

import hashlib
import json
import os
import re
import sys

SNIPPET_CONTEXT = 4
HISTORY_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "history")


class EditorError(Exception):
    """An invalid request; the message is shown to the agent."""


def read_text(path: str) -> str:
    with open(path, encoding="utf-8", errors="surrogateescape", newline="") as handle:
        text = handle.read()
    if "\0" in text:
        raise EditorError(
            f"The file {path} looks binary (it contains NUL bytes); the editor works on text files only."
        )
    return text


def write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8", errors="surrogateescape", newline="") as handle:
        handle.write(text)


def split_lines(text: str) -> list:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return lines


def numbered(lines: list, first: int = 1) -> str:
    return "".join(f"{number:6}\t{line}\n" for number, line in enumerate(lines, first))


def snippet(text: str, first: int, last: int) -> str:
    """Lines first..last (1-based) of ``text`` widened by SNIPPET_CONTEXT lines, numbered."""
    lines = split_lines(text)
    start = max(1, first - SNIPPET_CONTEXT)
    end = min(len(lines), last + SNIPPET_CONTEXT)
    return numbered(lines[start - 1 : end], start)


def history_dir(path: str) -> str:
    return os.path.join(HISTORY_DIR, hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32])


def remember(path: str) -> None:
    """Save the file's current state (or its absence) so the next undo_edit restores it."""
    folder = history_dir(path)
    os.makedirs(folder, exist_ok=True)
    entry = os.path.join(folder, f"{len(os.listdir(folder)):08d}")
    if os.path.exists(path):
        with open(path, "rb") as source, open(entry + ".bytes", "wb") as target:
            target.write(source.read())
    else:
        open(entry + ".absent", "wb").close()


def require(args: dict, name: str) -> str:
    value = args.get(name)
    if value is None:
        raise EditorError(f"Parameter `{name}` is required for command: {args['command']}")
    return value


def parse_int(value: str, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise EditorError(f"Invalid `{name}` parameter: {value!r}. It should be an integer.") from None


def parse_range(value) -> list:
    numbers = value if isinstance(value, list) else re.findall(r"-?\d+", str(value))
    if len(numbers) != 2:
        raise EditorError(
            f"Invalid `view_range` parameter: {value!r}. It should be a list of two integers, e.g. [10, 20]."
        )
    return [int(n) for n in numbers]


def view(path: str, args: dict) -> str:
    view_range = args.get("view_range")
    if os.path.isdir(path):
        if view_range is not None:
            raise EditorError("The `view_range` parameter is not allowed when `path` points to a directory.")
        return (
            f"Here's the files and directories up to 2 levels deep in {path}, excluding hidden items:\n"
            + "".join(line + "\n" for line in list_directory(path))
        )
    lines = split_lines(read_text(path))
    if view_range is None:
        return f"Here's the result of running `cat -n` on {path}:\n" + numbered(lines)
    start, end = parse_range(view_range)
    count = len(lines)
    if not 1 <= start <= count:
        raise EditorError(
            f"Invalid `view_range`: {[start, end]}. Its first element `{start}` should be within the "
            f"range of lines of the file: {[1, count]}"
        )
    if end == -1:
        end = count
    elif end < start:
        raise EditorError(
            f"Invalid `view_range`: {[start, end]}. Its second element `{end}` should be larger or "
            f"equal than its first `{start}`"
        )
    elif end > count:
        raise EditorError(
            f"Invalid `view_range`: {[start, end]}. Its second element `{end}` should be smaller than "
            f"the number of lines in the file: `{count}`"
        )
    return f"Here's the result of running `cat -n` on {path}:\n" + numbered(lines[start - 1 : end], start)


def list_directory(root: str) -> list:
    entries = [root]
    for name in sorted(os.listdir(root)):
        if name.startswith("."):
            continue
        child = os.path.join(root, name)
        entries.append(child)
        if os.path.isdir(child) and not os.path.islink(child):
            entries.extend(
                os.path.join(child, sub) for sub in sorted(os.listdir(child)) if not sub.startswith(".")
            )
    return entries


def create(path: str, args: dict) -> str:
    file_text = require(args, "file_text")
    if os.path.exists(path):
        raise EditorError(f"File already exists at: {path}. Cannot overwrite files using command `create`.")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        os.makedirs(parent)
    remember(path)
    write_text(path, file_text)
    return f"File created successfully at: {path}"


def str_replace(path: str, args: dict) -> str:
    old_str = require(args, "old_str")
    new_str = args.get("new_str") or ""
    if old_str == "":
        raise EditorError(
            "Parameter `old_str` is empty. Give the exact text to replace, with enough context to be unique."
        )
    text = read_text(path)
    starts = occurrences(text, old_str)
    if not starts:
        raise EditorError(
            f"No replacement was performed, old_str `{old_str}` did not appear verbatim in {path}."
        )
    if len(starts) > 1:
        lines = [text.count("\n", 0, start) + 1 for start in starts]
        raise EditorError(
            f"No replacement was performed. Multiple occurrences of old_str `{old_str}` in lines {lines}. "
            "Please ensure it is unique"
        )
    remember(path)
    edited = text[: starts[0]] + new_str + text[starts[0] + len(old_str) :]
    write_text(path, edited)
    first = text.count("\n", 0, starts[0]) + 1
    return (
        f"The file {path} has been edited. Here's the result of running `cat -n` on a snippet of {path}:\n"
        + snippet(edited, first, first + new_str.count("\n"))
        + "Review the changes and make sure they are as expected. Edit the file again if necessary."
    )


def occurrences(text: str, needle: str) -> list:
    starts = []
    index = text.find(needle)
    while index != -1:
        starts.append(index)
        index = text.find(needle, index + len(needle))
    return starts


def insert(path: str, args: dict) -> str:
    line = parse_int(require(args, "insert_line"), "insert_line")
    new_str = require(args, "new_str")
    text = read_text(path)
    lines = split_lines(text)
    if not 0 <= line <= len(lines):
        raise EditorError(
            f"Invalid `insert_line` parameter: {line}. It should be within the range of lines of the file: "
            f"{[0, len(lines)]}"
        )
    new_lines = new_str.split("\n")
    ends_with_newline = text.endswith("\n") or text == ""
    edited = "\n".join(lines[:line] + new_lines + lines[line:]) + ("\n" if ends_with_newline else "")
    remember(path)
    write_text(path, edited)
    return (
        f"The file {path} has been edited. "
        "Here's the result of running `cat -n` on a snippet of the edited file:\n"
        + snippet(edited, line + 1, line + len(new_lines))
        + "Review the changes and make sure they are as expected "
        "(correct indentation, no duplicate lines, etc). Edit the file again if necessary."
    )


def undo_edit(path: str, args: dict) -> str:
    folder = history_dir(path)
    entries = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    if not entries:
        raise EditorError(f"No edit history found for {path}.")
    entry = os.path.join(folder, entries[-1])
    if entry.endswith(".absent"):
        if os.path.exists(path):
            os.remove(path)
        os.remove(entry)
        return f"Last edit to {path} undone successfully: the file did not exist before, so it was removed."
    with open(entry, "rb") as source, open(path, "wb") as target:
        target.write(source.read())
    os.remove(entry)
    return (
        f"Last edit to {path} undone successfully. Here's the result of running `cat -n` on {path}:\n"
        + numbered(split_lines(read_text(path)))
    )


HANDLERS = {
    "view": view,
    "create": create,
    "str_replace": str_replace,
    "insert": insert,
    "undo_edit": undo_edit,
}


def main(raw: bytes) -> int:
    try:
        args = json.loads(raw.decode("utf-8"))
        if not isinstance(args, dict):
            raise EditorError("The editor expects a JSON object of parameters.")
        command = args.get("command")
        if command not in HANDLERS:
            raise EditorError(
                f"Unrecognized command {command!r}. The allowed commands are: {', '.join(HANDLERS)}"
            )
        path = os.path.abspath(os.path.expanduser(require(args, "path")))
        # undo_edit may restore a file that has since been deleted.
        if command not in ("create", "undo_edit") and not os.path.exists(path):
            raise EditorError(f"The path {path} does not exist. Please provide a valid path.")
        if os.path.isdir(path) and command != "view":
            raise EditorError(
                f"The path {path} is a directory and only the `view` command can be used on directories."
            )
        message, status = HANDLERS[command](path, args), 0
    except EditorError as exc:
        message, status = str(exc), 1
    except (OSError, ValueError) as exc:
        message, status = f"The editor failed: {exc}", 1
    sys.stdout.buffer.write(message.encode("utf-8", "surrogateescape"))
    if not message.endswith("\n"):
        sys.stdout.buffer.write(b"\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.stdin.buffer.read()))
