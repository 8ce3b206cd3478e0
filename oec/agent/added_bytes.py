"""Run in the sandbox: print how many bytes the working copy adds to a commit, reading no file.

Usage: ``python -S - BASE`` in the repository root, with this script on stdin. The sum over every
path that differs from ``BASE`` (tracked files changed in the index or the working tree, and
untracked files that ``.gitignore`` does not hide) of how much the file grew: working-tree size
minus size at ``BASE``, when positive. A diff carries at least the bytes a text file gained, so
this is a lower bound of the patch's size that costs one ``stat`` per path. It lets ``submit``
refuse a 4 GiB file before ``git add -A`` hashes and compresses it. Only git plumbing is used
(``diff-index`` compares by ``stat``, and ``ls-files --others`` lists names), so nothing is hashed.
Standard library only: it runs with the sandbox's own interpreter, like the editor script.
"""

import os
import subprocess
import sys


def git(*args: str) -> list[bytes]:
    output = subprocess.run(["git", *args], check=True, stdout=subprocess.PIPE).stdout
    return [entry for entry in output.split(b"\0") if entry]


def main(base: str) -> int:
    base_sizes = {}
    for entry in git("ls-tree", "-r", "-l", "-z", base):
        meta, path = entry.split(b"\t", 1)
        size = meta.split()[3]  # "-" for a submodule
        base_sizes[path] = int(size) if size.isdigit() else 0
    changed = set(git("diff-index", "--name-only", "-z", base))
    changed.update(git("ls-files", "-z", "--others", "--exclude-standard"))
    added = 0
    for path in changed:
        try:
            size = os.lstat(path).st_size
        except (FileNotFoundError, NotADirectoryError):
            continue  # deleted
        added += max(0, size - base_sizes.get(path, 0))
    return added


if __name__ == "__main__":
    print(main(sys.argv[1]))
