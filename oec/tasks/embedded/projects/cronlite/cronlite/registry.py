"""An in-memory registry of named cron jobs: which are due, running them, pausing and resuming.

The registry never reads the clock: every call takes ``now``, so the same code serves a real
loop (``registry.run_pending(datetime.now())``) and deterministic tests. Missed runs coalesce: a
job that fell due several times while nothing called :meth:`JobRegistry.run_pending` runs once.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from cronlite.expression import CronExpression
from cronlite.schedule import next_run

Action = Callable[[datetime], object]


@dataclass
class Job:
    """A registered job; ``next_due`` is the scheduled time of its next run."""

    name: str
    expression: CronExpression
    action: Action
    next_due: datetime
    tags: set[str] = field(default_factory=set)
    last_run: datetime | None = None
    failures: int = 0
    paused: bool = False


@dataclass(frozen=True)
class RunResult:
    """The outcome of one run: the action's return value, or the exception it raised."""

    job: str
    scheduled: datetime
    value: object = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class JobRegistry:
    """Named jobs keyed by name; names are unique."""

    def __init__(self) -> None:
        self._jobs: dict[str, Job] = {}

    def add(
        self,
        name: str,
        schedule: CronExpression | str,
        action: Action,
        now: datetime,
        tags: Iterable[str] = (),
    ) -> Job:
        """Register ``action`` to run on ``schedule``; its first run is the first fire time after ``now``."""
        if name in self._jobs:
            raise ValueError(f"job {name!r} is already registered")
        expression = CronExpression.parse(schedule) if isinstance(schedule, str) else schedule
        job = Job(
            name=name,
            expression=expression,
            action=action,
            next_due=next_run(expression, now),
            tags=set(tags),
        )
        self._jobs[name] = job
        return job

    def get(self, name: str) -> Job:
        try:
            return self._jobs[name]
        except KeyError:
            raise KeyError(f"no job named {name!r}") from None

    def remove(self, name: str) -> Job:
        job = self.get(name)
        del self._jobs[name]
        return job

    def tag(self, name: str, *tags: str) -> None:
        self.get(name).tags.update(tags)

    def jobs(self, tag: str | None = None) -> list[Job]:
        """All jobs sorted by name, or only those carrying ``tag``."""
        return sorted(
            (job for job in self._jobs.values() if tag is None or tag in job.tags), key=lambda job: job.name
        )

    def pause(self, name: str) -> None:
        self.get(name).paused = True

    def resume(self, name: str, now: datetime) -> None:
        """Un-pause a job; runs it skipped while paused are dropped, not caught up."""
        job = self.get(name)
        job.paused = False
        job.next_due = next_run(job.expression, now)

    def due(self, now: datetime) -> list[Job]:
        """Unpaused jobs whose next run is at or before ``now``, earliest first, then by name."""
        ready = [job for job in self._jobs.values() if not job.paused and job.next_due <= now]
        return sorted(ready, key=lambda job: (job.next_due, job.name))

    def run_pending(self, now: datetime) -> list[RunResult]:
        """Run every due job once and schedule its next run after ``now``.

        An exception raised by an action is recorded in its result and counted in
        ``Job.failures``; it never stops the other jobs, and the job keeps its schedule.
        """
        results = []
        for job in self.due(now):
            scheduled = job.next_due
            try:
                result = RunResult(job.name, scheduled, value=job.action(scheduled))
            except Exception as error:
                job.failures += 1
                result = RunResult(job.name, scheduled, error=error)
            job.last_run = now
            job.next_due = next_run(job.expression, now)
            results.append(result)
        return results
