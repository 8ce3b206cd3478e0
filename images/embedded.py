"""Build one image per embedded task, laid out as SWE-bench images are (``make images``).

Each image is the base image (images/base.sh: Debian, git, a virtualenv with pytest on PATH) plus
the task's base repository at ``/testbed``, exactly as the local sandbox materialises it
(:func:`oec.tasks.embedded.materialize`), at the task's base commit. Images are named by
:func:`oec.tasks.embedded.image_name` (``oec-embedded/cronlite-001:<base commit>``), so an
image that exists is current and is skipped. No registry is involved: ``create``, ``cp`` and
``commit`` of the local client, which podman speaks too.

Usage: python images/embedded.py BASE_IMAGE [--binary docker] [--workers 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from oec.tasks import load_tasks
from oec.types import Task


def _check(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def exists(binary: str, image: str) -> bool:
    return subprocess.run([binary, "image", "inspect", image], capture_output=True).returncode == 0


def build(binary: str, base: str, task: Task) -> None:
    """Commit ``base`` plus the task's repository at /testbed as the task's image."""
    container = _check([binary, "create", base])
    try:
        _check([binary, "cp", f"{task.snapshot}/.", f"{container}:/testbed"])
        _check([binary, "commit", "--change", "WORKDIR /testbed", container, task.metadata["image"]])
    finally:
        subprocess.run([binary, "rm", "-f", container], capture_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("base", help="the base image (images/base.sh)")
    parser.add_argument("--binary", default="docker", help="the container client (docker or podman)")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    loaded = load_tasks("embedded")
    if loaded.errors:
        print("\n".join(str(error) for error in loaded.errors), file=sys.stderr)
        return 1
    missing = [task for task in loaded.tasks if not exists(args.binary, task.metadata["image"])]
    started = time.monotonic()
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda task: build(args.binary, args.base, task), missing))
    print(
        f"embedded images: {len(loaded.tasks) - len(missing)} up to date, {len(missing)} built "
        f"in {time.monotonic() - started:.1f} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
