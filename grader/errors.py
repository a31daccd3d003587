"""The grader's own failures. A learner's failure is data (a CheckResult); these are not."""

from __future__ import annotations

from grader.i18n import Message, say, verbatim


class GraderError(Exception):
    """Base: ``message`` is the one line the user reads, as a catalogue message (``str(error)``: its English)."""

    exit_code = 2

    def __init__(self, message: Message | str) -> None:
        self.message = message if isinstance(message, Message) else verbatim(str(message))
        super().__init__(self.message.english())

    def said(self, lang: str) -> str:
        return " ".join(say(self.message, lang).split())


class UsageError(GraderError):
    """A bad flag, path or combination of options."""


class RubricError(GraderError):
    """A rubric or its reference module is malformed; the message names file and line."""


class OverridesError(GraderError):
    """An instructor's overrides file is malformed; the message names file and line."""


class SubmissionError(GraderError):
    """A learner folder cannot be graded at all (not one whose code merely fails)."""


class SandboxError(GraderError):
    """The isolation machinery itself failed (not the learner's code)."""

    exit_code = 3


class ServerLost(SandboxError):
    """The fork server stopped in the middle of a run (killed, out of memory): the lab being graded is the machine's
    fault and is graded again on the next run; the next learner gets a new server."""


class Interrupted(GraderError):
    """Ctrl-C: what was finished is kept; the message says how to resume."""

    exit_code = 130


class KitMissing(RubricError):
    """A learner kit has no value for a call a check made on the rubric's own inputs: the kit is older than the
    grader's checks, or was edited by hand."""


class RosterError(GraderError):
    """The class roster (``roster.csv``) is malformed; the message names file and line."""


class CourseError(GraderError):
    """The course file (``course.yaml``: due dates, late policy, extensions) is malformed; file and line named."""
