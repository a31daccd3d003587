"""Auto-grader for a bilingual (English/Spanish) machine-learning course.

OpenBLAS must use one thread before numpy is first imported: workers fork from a process that
has numpy loaded, and a thread pool per worker would blow the memory limit and the process limit.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from grader.errors import GraderError, RubricError, SandboxError, SubmissionError, UsageError  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "GraderError",
    "RubricError",
    "SandboxError",
    "SubmissionError",
    "UsageError",
    "__version__",
    "grade",
]


def grade(*args, **kwargs):  # type: ignore[no-untyped-def]
    """Lazy re-export of :func:`grader.grading.grade` (keeps ``import grader`` cheap)."""
    from grader.grading import grade as _grade

    return _grade(*args, **kwargs)
