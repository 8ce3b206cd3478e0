"""Tasks: SWE-bench-style instances from the embedded set or from SWE-bench / SWE-Gym / SWE-smith rows.

The collection and evaluation loops call::

    result = load_from_config(oec.config.parse(TasksConfig, cfg.tasks, "tasks"))
    for error in result.errors: ...        # rows that were skipped, with row number, instance id, field
    for task in result.tasks: ...          # image_of(task), workdir_of(task), task.snapshot...

or :func:`load_tasks` with the same fields as keyword arguments. ``python -m oec.tasks validate``
checks tasks end to end; ``python -m oec.tasks.embedded build`` regenerates the embedded set.
"""

from oec.tasks.config import (
    EmbeddedTasks,
    FileTasks,
    RowsConfig,
    SweBenchTasks,
    SweGymTasks,
    SweSmithTasks,
    TasksConfig,
)
from oec.tasks.embedded import materialize
from oec.tasks.loaders import LoadResult, RowError, load_from_config, load_tasks
from oec.tasks.rows import bug_patch_of, grading_of, image_of, task_from_row, workdir_of

__all__ = [
    "EmbeddedTasks",
    "FileTasks",
    "LoadResult",
    "RowError",
    "RowsConfig",
    "SweBenchTasks",
    "SweGymTasks",
    "SweSmithTasks",
    "TasksConfig",
    "bug_patch_of",
    "grading_of",
    "image_of",
    "load_from_config",
    "load_tasks",
    "materialize",
    "task_from_row",
    "workdir_of",
]
