"""Verification and filtering of finished rollouts.

``grade`` turns a test log into a :class:`~oec.types.Verdict` with swebench's log parsers and
grading functions (also a command: ``python -m oec.verify grade``); ``run_tests`` produces that log
by applying the model patch and the task's test patch in a fresh sandbox and running FAIL_TO_PASS
and PASS_TO_PASS; ``filters`` decides which resolved trajectories are accepted for training.
"""

from oec.verify.filters import Filter, FilterConfig, RepetitionConfig, apply_filters, build_filters
from oec.verify.grade import grade_log
from oec.verify.run_tests import verify

__all__ = [
    "Filter",
    "FilterConfig",
    "RepetitionConfig",
    "apply_filters",
    "build_filters",
    "grade_log",
    "verify",
]
