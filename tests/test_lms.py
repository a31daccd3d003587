"""Canvas and Moodle gradebook files, read back as their importers read them."""

from __future__ import annotations

import csv
import io
import random
import re
import unicodedata

import pytest

from grader.exports import BOM
from grader.i18n import say
from grader.lms import (
    CANVAS_COLUMNS,
    MOODLE_COLUMNS,
    LabColumn,
    LearnerGrades,
    canvas_csv,
    column_name,
    moodle_csv,
    moodle_notes,
)
from grader.roster import Student

LABS = [LabColumn("phase-04/lab-00", "Softmax gradient", 10.0), LabColumn("phase-04/lab-01", "Cross-entropy", 8.0)]
NFD = unicodedata.normalize("NFD", "josé")

GRADES = [
    LearnerGrades("borja", Student("borja", "0123", "borja@example.org", "Borja Pérez", "A", "es", "bperez"),
                  {"phase-04/lab-00": 7.5, "phase-04/lab-01": 8.0}),
    LearnerGrades(NFD, Student("josé", "0124", "jose@example.org", unicodedata.normalize("NFD", "José García"), "B"),
                  {"phase-04/lab-00": 10.0}),  # lab-01 not handed in
    LearnerGrades("ana", None, {"phase-04/lab-01": 1 / 3}),  # no roster row
    LearnerGrades("luis", Student("luis", "", "luis@example.org"), {"phase-04/lab-00": 1e-9}),
]


def rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_canvas_header_is_the_gradebook_import_layout() -> None:
    table = rows(canvas_csv(GRADES, LABS))
    header = table[0]
    assert header == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section",
                      "Softmax gradient [phase-04/lab-00]", "Cross-entropy [phase-04/lab-01]"]
    assert tuple(header[:5]) == CANVAS_COLUMNS
    # what Canvas's importer checks before it takes a row as the header
    assert "Student" in header[0] and "ID" in header[1] and "Section" in header[4]
    # a header ending in "(digits)" would be read as an existing assignment's id
    assert not any(re.search(r"\s\((\d+)\)$", name) for name in header[5:])


def test_canvas_points_possible_row_then_one_row_per_learner_in_folder_order() -> None:
    table = rows(canvas_csv(GRADES, LABS))
    assert table[1] == ["Points Possible", "", "", "", "", "10", "8"]
    assert table[2:] == [
        ["ana", "", "", "", "", "0", "0.333333"],  # no roster row: the folder name, no ids
        ["Borja Pérez", "", "0123", "bperez", "A", "7.5", "8"],
        ["José García", "", "0124", "", "B", "10", "0"],  # not handed in: 0, not blank
        ["luis", "", "", "", "", "0", "0"],  # no display name: the folder name; 1e-9 rounds to 0, no exponent
    ]
    assert all(row[1] == "" for row in table[1:])  # Canvas's internal user id is never guessed


def test_both_files_are_rfc4180_with_crlf_and_no_bom() -> None:
    for text in (canvas_csv(GRADES, LABS), moodle_csv(GRADES, LABS)):
        assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
        assert not text.startswith(BOM) and not text.startswith('"')  # a BOM a writer adds cannot break a quote


def test_a_cell_holding_the_separator_or_a_quote_is_quoted() -> None:
    labs = [LabColumn("phase-05/lab-00", 'Loss, "smoothed"', 5)]
    text = canvas_csv([LearnerGrades("ana", Student("ana", name="García, Ana"), {})], labs)
    assert '"Loss, ""smoothed"" [phase-05/lab-00]"' in text and '"García, Ana"' in text
    assert rows(text)[2][0] == "García, Ana"


def test_moodle_ids_then_one_column_per_lab() -> None:
    table = rows(moodle_csv(GRADES, LABS))
    assert table[0] == [*MOODLE_COLUMNS, "Softmax gradient [phase-04/lab-00]", "Cross-entropy [phase-04/lab-01]"]
    assert table[0][:2] == ["ID number", "Email address"]
    assert table[1:] == [["0123", "borja@example.org", "7.5", "8"], ["0124", "jose@example.org", "10", "0"]]


def test_moodle_leaves_out_learners_it_cannot_identify_and_says_who() -> None:
    """A blank ID number makes Moodle give the row's grades to the previous row's student."""
    notes = moodle_notes(GRADES)
    assert [n.id for n in notes] == ["lms.moodle.left_out.other"]
    assert say(notes[0], "en").startswith("2 learners are not in the Moodle file: ana (no row in roster.csv), luis "
                                          "(no student id) — ")
    assert "luis (sin número de identificación)" in say(notes[0], "es")
    assert moodle_notes(GRADES[:2]) == []
    both = [LearnerGrades("eva", Student("eva", "9"), {}), LearnerGrades("max", Student("max"), {})]
    assert "eva (no email), max (no student id or email)" in say(moodle_notes(both)[0], "en")


def test_formula_injection_is_guarded_in_every_text_cell() -> None:
    labs = [LabColumn("phase-04/lab-00", "=HYPERLINK(\"http://x\")", 1)]
    grades = [LearnerGrades("=cmd|' /C calc'!A0", None, {}),
              LearnerGrades("eve", Student("eve", "+1", "@eve@example.org", "-2+3", "=A1", login="@SUM(1)"), {})]
    for text in (canvas_csv(grades, labs), moodle_csv(grades, labs)):
        for row in rows(text):
            for cell in row:
                assert not cell.startswith(("=", "+", "-", "@")), cell
    canvas = rows(canvas_csv(grades, labs))
    assert canvas[0][5].startswith("'=HYPERLINK") and canvas[3][:5] == ["'-2+3", "", "'+1", "'@SUM(1)", "'=A1"]


def test_names_and_titles_are_nfc_and_the_order_does_not_depend_on_the_input() -> None:
    labs = [LabColumn("phase-04/lab-00", unicodedata.normalize("NFD", "Gradiente de la entropía"), 10)]
    text = canvas_csv(GRADES, labs)
    assert unicodedata.is_normalized("NFC", text) and "José García" in text and "entropía [phase-04/lab-00]" in text
    shuffled = GRADES[:]
    random.Random(4).shuffle(shuffled)
    assert canvas_csv(shuffled, labs) == text and moodle_csv(shuffled, labs) == moodle_csv(GRADES, labs)


@pytest.mark.parametrize(("title", "name"), [
    ("Softmax (2)", "Softmax (2) [phase-04/lab-00]"),  # never read as assignment id 2
    ("Final Grade check", "phase-04/lab-00"),  # Canvas drops headers naming its computed columns
    ("  Two\n lines ", "Two lines [phase-04/lab-00]"),
    ("", "phase-04/lab-00"),
])
def test_column_names_canvas_will_not_misread(title: str, name: str) -> None:
    assert column_name(LabColumn("phase-04/lab-00", title, 1)) == name


def test_numbers_are_plain_decimals() -> None:
    labs = [LabColumn("phase-04/lab-00", "Big", 1e6)]
    table = rows(canvas_csv([LearnerGrades("ana", None, {"phase-04/lab-00": 123456.25})], labs))
    assert table[1][5] == "1000000" and table[2][5] == "123456.25"


def test_not_a_number_is_a_bug_not_a_grade() -> None:
    with pytest.raises(ValueError):
        canvas_csv([LearnerGrades("ana", None, {"phase-04/lab-00": float("nan")})], LABS)
    with pytest.raises(ValueError):
        canvas_csv([], [LabColumn("phase-04/lab-00", "x", float("inf"))])


def test_two_labs_with_one_column_name_are_refused() -> None:
    with pytest.raises(ValueError):
        canvas_csv([], [LabColumn("phase-04/lab-00", "A", 1), LabColumn("phase-04/lab-00", "A", 1)])
