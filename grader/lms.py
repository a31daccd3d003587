"""Gradebook files in the form each LMS's own gradebook import reads: Canvas ("Import" in Grades) and Moodle
("Import › CSV file" in the gradebook).

Both are RFC 4180 CSV (CRLF, quoted only where needed, UTF-8; no byte-order mark here — a writer may prepend
``grader.exports.BOM`` for Excel: Canvas finds its header with a substring test and Moodle strips the mark, and the
first cell is never quoted, so the mark cannot break a quote). Every text cell goes through the spreadsheet
formula guard (``cell_text``): an instructor opens these files in Excel before uploading. Numbers are plain decimals
with a point and no exponent (``decimal_text``); both importers parse that (Canvas also reads a decimal comma).
A lab a learner did not hand in is exported as 0, never blank: both importers read a blank cell (or ``-``) as "no
grade", not as the zero it is. Rows are in folder-name order (NFC), so two exports of one run are byte-identical.

What the importers do was read in their source: Canvas's ``GradebookImporter`` (instructure/canvas-lms) and
Moodle's ``gradeimport_csv_load_data`` (grade/import/csv/classes/load_data.php).
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from dataclasses import dataclass

from grader.exports import cell_text, decimal_text
from grader.i18n import Message, msg, plural
from grader.roster import Student, listed, nfc

CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
CANVAS_POINTS_ROW = "Points Possible"
MOODLE_COLUMNS = ("ID number", "Email address")  # the names Moodle's own grade export gives these user fields
# Canvas drops every column whose header contains one of these (unanchored, case-sensitive): its computed totals.
_CANVAS_COMPUTED = re.compile("Current Score|Current Points|Current Grade|Final Score|Final Points|Final Grade|"
                              "Override Score|Override Grade|Override Status")


@dataclass(frozen=True)
class LabColumn:
    """One lab as a gradebook column."""

    lab: str  # "phase-04/lab-00"
    title: str  # the lab's title in the instructor's language
    max_score: float


@dataclass(frozen=True)
class LearnerGrades:
    """One learner's points to export; a lab absent from ``points`` was not handed in and is exported as 0."""

    learner: str
    student: Student | None
    points: Mapping[str, float]


def column_name(lab: LabColumn) -> str:
    """``"Lab title [phase-04/lab-00]"``: the name Canvas creates the assignment with on the first import and
    finds it by (exact title) on every later one, so it must be unique and the same each run — the lab id makes it
    both. It ends in ``]`` because Canvas reads a header ending in ``(digits)`` as the id of an existing assignment
    (``Assignment.title_and_id``). A title containing the name of one of Canvas's computed columns ("Final Grade")
    would be dropped without a word, so such a lab is named by its id alone."""
    title = " ".join(nfc(lab.title).split())
    name = f"{title} [{lab.lab}]" if title else lab.lab
    return lab.lab if _CANVAS_COMPUTED.search(name) else name


def canvas_csv(grades: Sequence[LearnerGrades], labs: Sequence[LabColumn]) -> str:
    """Canvas's gradebook import: ``Student, ID, SIS User ID, SIS Login ID, Section``, one column per lab, then a
    ``Points Possible`` row (the importer reads a row whose first cell says so as each assignment's points, not as
    a student) and one row per learner with points out of the lab's maximum.

    Canvas finds the student by ``ID`` (its own internal user id), then ``SIS User ID``, then ``SIS Login ID``, then
    by the ``Student`` name. ``ID`` is always empty: the grader does not know Canvas's internal ids, and a roster's
    student id put there would be read as one — another student's, possibly. The roster's student id is the SIS
    User ID, its login the SIS Login ID, its display name the Student. A learner with no roster row keeps the
    folder name in ``Student`` and empty ids: Canvas cannot match them by id, tries the name, and otherwise lists
    them as a student it could not find, for the instructor to resolve in the import preview — rather than a guess
    that grades someone else.
    """
    columns = _labs(labs)
    rows: list[list[str]] = [_text(*CANVAS_COLUMNS, *(column_name(lab) for lab in columns)),
                             [*_text(CANVAS_POINTS_ROW, "", "", "", ""), *(_number(lab.max_score) for lab in columns)]]
    for learner in _ordered(grades):
        s = learner.student
        name = s.name if s is not None and s.name else learner.learner
        who = _text(nfc(name), "", s.student_id if s else "", s.login if s else "", s.section if s else "")
        rows.append([*who, *_points(learner, columns)])
    return _csv(rows)


def moodle_csv(grades: Sequence[LearnerGrades], labs: Sequence[LabColumn]) -> str:
    """Moodle's "Import grades from CSV": ``ID number`` and ``Email address`` (the instructor maps the learner by
    either: "Map from" that column, "Map to" useridnumber or useremail), then one column per lab, each mapped to a
    grade item (or "New grade item", named by the header). No feedback columns: Moodle's guide warns that importing
    feedback overwrites the grades linked to it.

    Only learners with both a student id and an email in the roster are written (``moodle_notes`` names the
    others). Moodle's importer skips a blank identifier without clearing the one before it, so a row with a blank
    ID number gives its grades to the student on the previous row; and an identifier it cannot find aborts the whole
    import. A learner is never in the file under a name Moodle might take for someone else.
    """
    columns = _labs(labs)
    rows: list[list[str]] = [_text(*MOODLE_COLUMNS, *(column_name(lab) for lab in columns))]
    for learner in _ordered(grades):
        s = learner.student
        if s is not None and s.student_id and s.email:
            rows.append([*_text(s.student_id, s.email), *_points(learner, columns)])
    return _csv(rows)


def moodle_notes(grades: Sequence[LearnerGrades]) -> list[Message]:
    """The learners ``moodle_csv`` leaves out and why, to say beside the file (their grades go in by hand)."""
    left_out: list[Message | str] = []
    for learner in _ordered(grades):
        s, name = learner.student, nfc(learner.learner)
        if s is None:
            left_out.append(msg("lms.moodle.no_row", name=name))
        elif not s.student_id and not s.email:
            left_out.append(msg("lms.moodle.no_id_or_email", name=name))
        elif not s.student_id:
            left_out.append(msg("lms.moodle.no_id", name=name))
        elif not s.email:
            left_out.append(msg("lms.moodle.no_email", name=name))
    if not left_out:
        return []
    return [plural("lms.moodle.left_out", len(left_out), names=listed(left_out))]


def _labs(labs: Iterable[LabColumn]) -> list[LabColumn]:
    columns = list(labs)
    names = [column_name(lab) for lab in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"two labs give one gradebook column: {sorted(n for n in names if names.count(n) > 1)}")
    return columns


def _ordered(grades: Iterable[LearnerGrades]) -> list[LearnerGrades]:
    return sorted(grades, key=lambda g: (nfc(g.learner), g.learner))


def _points(learner: LearnerGrades, labs: Sequence[LabColumn]) -> list[str]:
    return [_number(learner.points.get(lab.lab, 0.0), f"{learner.learner} {lab.lab}") for lab in labs]


def _number(value: float, what: str = "max_score") -> str:
    """No NaN or infinity reaches a gradebook: either would be a bug upstream, not a grade."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what}: {number} is not a number a gradebook can store")
    return decimal_text(number)


def _text(*cells: str) -> list[str]:
    """Text cells a spreadsheet will not run (``=``, ``+``, ``-``, ``@`` at a piece's start get a ``'``)."""
    return [cell_text(cell) for cell in cells]


def _csv(rows: Iterable[Sequence[str]]) -> str:
    """RFC 4180: CRLF, a cell quoted only when it holds a separator, a quote or a line break."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue()


def class_grades(results: Sequence[Any], roster: Any = None) -> list[LearnerGrades]:
    """Each learner's export points (adjusted, review points held as the rubric says); a roster row with no results
    is exported too, with 0 for every lab, so nobody is missing from the LMS's gradebook."""
    by: dict[str, dict[str, float]] = {}
    for r in results:  # by the composed name: a folder saved decomposed (macOS) is the roster's row, not a second one
        by.setdefault(nfc(r.learner), {})[r.lab] = r.export_score
    if roster is not None:
        for student in roster.students:
            by.setdefault(student.learner, {})
    return [LearnerGrades(learner, roster.get(learner) if roster is not None else None, points)
            for learner, points in sorted(by.items())]
