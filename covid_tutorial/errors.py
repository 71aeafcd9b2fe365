"""Errors that carry a message for a learner: what went wrong, which file, and what to do."""

__all__ = [
    "CourseError",
    "DataError",
    "RunError",
    "DataWarning",
]


class CourseError(Exception):
    """Base class: the command line prints these as one clear message, without a traceback."""


class DataError(CourseError, ValueError):
    """A dataset, CSV or image that cannot be used as given."""


class RunError(CourseError):
    """A RUN folder that is missing, incomplete or made by an incompatible version."""


class DataWarning(UserWarning):
    """Something in the data was skipped or is risky; the message says what and how many."""
