"""Tasks: SWE-bench-style instances from the embedded set or from SWE-bench / SWE-Gym / SWE-smith files.

The collection and evaluation loops call::

    result = load_from_config(oec.config.parse(TasksConfig, cfg.tasks, "tasks"))
    for error in result.errors: ...        # rows that were skipped, with row number and instance id
    for task in result.tasks: ...          # task.snapshot is a local git repository to clone

or :func:`load_tasks` with the same fields as keyword arguments. ``python -m oec.tasks validate``
checks tasks end to end; ``python -m oec.tasks.embedded build`` regenerates the embedded set.
"""

from oec.tasks.config import EmbeddedTasks, FileTasks, TasksConfig
from oec.tasks.embedded import materialize
from oec.tasks.loaders import LoadResult, RowError, load_from_config, load_tasks, task_from_row

__all__ = [
    "EmbeddedTasks",
    "FileTasks",
    "LoadResult",
    "RowError",
    "TasksConfig",
    "load_from_config",
    "load_tasks",
    "materialize",
    "task_from_row",
]
