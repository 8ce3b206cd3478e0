from datetime import datetime

import pytest

from cronlite.registry import JobRegistry

T0 = datetime(2024, 1, 1, 0, 30)


def test_first_run_is_next_fire_time():
    registry = JobRegistry()
    job = registry.add("report", "0 6 * * *", print, now=T0)
    assert job.next_due == datetime(2024, 1, 1, 6, 0)


def test_duplicate_names_are_rejected():
    registry = JobRegistry()
    registry.add("report", "0 6 * * *", print, now=T0)
    with pytest.raises(ValueError, match="report"):
        registry.add("report", "0 7 * * *", print, now=T0)


def test_due_orders_by_time_then_name():
    registry = JobRegistry()
    registry.add("b", "0 1 * * *", print, now=T0)
    registry.add("a", "0 1 * * *", print, now=T0)
    registry.add("c", "45 0 * * *", print, now=T0)
    assert [job.name for job in registry.due(datetime(2024, 1, 1, 1, 0))] == ["c", "a", "b"]


def test_run_pending_passes_scheduled_time():
    seen = []
    registry = JobRegistry()
    registry.add("tick", "0 * * * *", seen.append, now=T0)
    results = registry.run_pending(datetime(2024, 1, 1, 1, 0, 5))
    assert seen == [datetime(2024, 1, 1, 1, 0)]
    assert results[0].ok and registry.get("tick").last_run == datetime(2024, 1, 1, 1, 0, 5)


def test_failing_job_does_not_stop_others():
    def boom(_):
        raise RuntimeError("disk full")

    registry = JobRegistry()
    registry.add("bad", "0 1 * * *", boom, now=T0)
    registry.add("good", "0 1 * * *", lambda moment: "done", now=T0)
    results = {result.job: result for result in registry.run_pending(datetime(2024, 1, 1, 1, 0))}
    assert str(results["bad"].error) == "disk full" and registry.get("bad").failures == 1
    assert results["good"].value == "done"


def test_paused_job_is_not_due_and_filter_by_tag():
    registry = JobRegistry()
    registry.add("backup", "0 1 * * *", print, now=T0, tags=["ops"])
    registry.add("digest", "0 1 * * *", print, now=T0)
    registry.pause("backup")
    assert [job.name for job in registry.due(datetime(2024, 1, 2))] == ["digest"]
    assert [job.name for job in registry.jobs(tag="ops")] == ["backup"]


def test_missing_job_error_names_it():
    with pytest.raises(KeyError, match="nightly"):
        JobRegistry().remove("nightly")
