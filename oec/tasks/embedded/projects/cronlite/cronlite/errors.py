"""The single exception type of cronlite, so callers can catch every input error in one place."""


class CronError(ValueError):
    """An invalid cron expression, field or duration, or a schedule that never fires."""
