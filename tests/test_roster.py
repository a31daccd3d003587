"""The class roster: spreadsheets' ways of writing CSV read alike, every malformed roster named by file:line, notes."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import pytest

from grader import roster as roster_module
from grader.errors import GraderError, RosterError
from grader.i18n import say
from grader.roster import Roster, Student, load_roster, roster_notes

BOM = b"\xef\xbb\xbf"


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "roster.csv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# What Spanish Excel writes: a byte-order mark, ';' between cells, CRLF, headers in Spanish and in any case, an
# empty row at the end; a decomposed "é" (typed on a Mac); a cell quoted because it holds ';' and one that spans lines.
SPANISH = (BOM + (
    "Carpeta;Número de identificación;Correo;Nombre;SECCIÓN;idioma;Usuario\r\n"
    "borja;0123;Borja@Example.org;Borja Pérez;A;es;bperez\r\n"
    f"{nfd('josé')};0124;jose@example.org;\"García; {nfd('José')}\";B;English;\r\n"
    "ana;;ana@example.org;\"Ana\r\nMaría  Ruiz\";A;;\r\n"
    "luis;0126;;;B;es-MX;\r\n"
    ";;;;;;\r\n"
).encode())


def test_a_spanish_excel_roster(tmp_path: Path) -> None:
    path = write(tmp_path, SPANISH)
    roster = load_roster(path)
    assert roster.students == (
        Student("borja", "0123", "Borja@Example.org", "Borja Pérez", "A", "es", "bperez", 2),
        Student("josé", "0124", "jose@example.org", "García; José", "B", "en", "", 3),
        Student("ana", "", "ana@example.org", "Ana María Ruiz", "A", "", "", 4),
        Student("luis", "0126", "", "", "B", "es", "", 6),
    )
    assert roster.path == path


def test_names_and_folders_are_nfc_and_found_in_either_form(tmp_path: Path) -> None:
    roster = load_roster(write(tmp_path, SPANISH))
    jose = roster.students[1]
    assert jose.learner == unicodedata.normalize("NFC", jose.learner) and jose.name == "García; José"
    assert roster.get("josé") is jose and roster.get(nfd("josé")) is jose
    assert roster.get("nobody") is None


@pytest.mark.parametrize(
    "header",
    ["folder,SIS User ID,E-Mail,Display_Name,group,LANG,SIS Login ID",
     "Learner, Student ID , email address,Student,Section,Language,username",
     "carpeta,numero de identificacion,correo electronico,nombre completo,grupo,lengua,nombre de usuario"],
)
def test_headers_in_english_or_spanish_any_case_spacing_or_accents(tmp_path: Path, header: str) -> None:
    roster = load_roster(write(tmp_path, f"{header}\nana,7,a@b.es,Ana,A,ES,ana1\n"))
    assert roster.students == (Student("ana", "7", "a@b.es", "Ana", "A", "es", "ana1", 2),)


def test_only_the_folder_column_is_required(tmp_path: Path) -> None:
    roster = load_roster(write(tmp_path, "folder\nana\n\nborja\n"))
    assert [(s.learner, s.line) for s in roster.students] == [("ana", 2), ("borja", 4)]


def test_the_separator_is_told_from_the_header(tmp_path: Path) -> None:
    """Commas inside a semicolon roster's values are text, and the other way round."""
    semi = load_roster(write(tmp_path, "carpeta;nombre\nana;García, Ana\n"))
    comma = load_roster(write(tmp_path, "folder,name\nana,García; Ana\n"))
    assert semi.students[0].name == "García, Ana" and comma.students[0].name == "García; Ana"


def test_an_empty_trailing_column_is_allowed(tmp_path: Path) -> None:
    assert load_roster(write(tmp_path, "folder;email;\nana;a@b.es;\n")).students[0].email == "a@b.es"


# (roster, message id, line, parameters the message must carry)
BAD = [
    ("", "roster.empty", 1, {}),
    ("folder,emial\nana,a@b.es\n", "roster.unknown_column", 1, {"column": "emial"}),
    ("folder,colour\nana,red\n", "roster.unknown_column", 1, {"column": "colour"}),
    ("name,email\nAna,a@b.es\n", "roster.no_folder_column", 1, {}),
    ("folder,id,Student ID\nana,1,1\n", "roster.duplicate_column", 1, {"first": "id", "second": "Student ID"}),
    ("folder,email\nana,a@b.es\nborja\n", "roster.cell_count", 3, {"n": 1, "want": 2}),
    ("carpeta;correo\nana;a@b.es;x\n", "roster.cell_count", 2, {"n": 3, "want": 2, "sep": ";"}),
    ("folder,name\nana,Ana\n,Nobody\n", "roster.empty_folder", 3, {}),
    ("folder\nana\nphase-04/ana\n", "roster.bad_folder", 3, {"folder": "phase-04/ana"}),
    ("folder,name\nana,Ana\nborja,Borja\nana,Ana again\n", "roster.duplicate_folder", 4, {"value": "ana", "first": 2}),
    (f"folder,name\njosé,\"Jo\nsé\"\n{nfd('josé')},x\n", "roster.duplicate_folder", 4, {"value": "josé", "first": 2}),
    ("folder,id\nana,7\nborja,8\nluis,7\n", "roster.duplicate_id", 4, {"value": "7", "first": 2}),
    ("folder,email\nana,Ana@B.es\nborja,ana@b.es\n", "roster.duplicate_email", 3, {"value": "ana@b.es", "first": 2}),
    ("folder,login\nana,a1\nborja,a1\n", "roster.duplicate_login", 3, {"value": "a1", "first": 2}),
    ("folder,id,email\nana,,\nborja,,\n", None, 0, {}),  # empty ids and emails are not duplicates
    ("folder,language\nana,en\nborja,fr\n", "roster.unknown_language", 3, {"value": "fr"}),
    ("folder,email,name\nana,Ana,a@b.es\n", "roster.bad_email", 2, {"value": "Ana"}),
    ("folder,,email\nana,x,a@b.es\n", "roster.unnamed_value", 2, {"column": 2, "value": "x"}),
    ("folder,name\nana,Ana\nborja,\"Borja\n", "roster.bad_csv", 3, {}),
    ("folder,name\nana,Ana\nborja,\"Bo\"rja\"\n", "roster.bad_csv", 3, {}),
]


@pytest.mark.parametrize(("text", "message_id", "line", "params"), BAD)
def test_a_bad_roster_names_its_line_and_the_fix(tmp_path: Path, text: str, message_id: str | None, line: int,
                                                 params: dict[str, object]) -> None:
    path = write(tmp_path, text)
    if message_id is None:
        load_roster(path)
        return
    with pytest.raises(RosterError) as caught:
        load_roster(path)
    error = caught.value
    assert error.message.id == message_id
    assert error.message.params["at"] == f"{path}:{line}"
    assert {k: error.message.params[k] for k in params} == params
    for lang in ("en", "es"):
        said = error.said(lang)
        assert said.startswith(f"{path}:{line}: ") and "\n" not in said and "{" not in said
    assert isinstance(error, GraderError) and error.exit_code == 2


def test_an_unknown_column_suggests_the_closest_or_lists_them(tmp_path: Path) -> None:
    with pytest.raises(RosterError) as caught:
        load_roster(write(tmp_path, "carpeta,correo electronco\n"))
    assert caught.value.said("es").endswith(": columna desconocida 'correo electronco' — ¿querías decir 'correo electrónico'?")
    with pytest.raises(RosterError) as caught:
        load_roster(write(tmp_path, "folder,colour\n"))
    assert str(caught.value).endswith("unknown column 'colour' — the columns are: folder (required), student id, email, "
                                      "name, section, language, login")


def test_a_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "folder,name\nana,Ana\njose,Jos\xe9\n".encode("latin-1"))
    with pytest.raises(RosterError) as caught:
        load_roster(path)
    assert caught.value.message.id == "roster.not_utf8" and caught.value.message.params["at"] == f"{path}:3"
    assert "CSV UTF-8" in str(caught.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(RosterError) as caught:
        load_roster(tmp_path / "roster.csv")
    assert caught.value.message.id == "roster.not_found"
    with pytest.raises(RosterError) as caught:
        load_roster(tmp_path)
    assert caught.value.message.id == "roster.unreadable"


def test_a_file_over_5_mb_is_refused_without_being_read(tmp_path: Path) -> None:
    path = tmp_path / "roster.csv"
    with path.open("wb") as f:
        f.truncate(roster_module.MAX_BYTES + 1)  # sparse: no time spent writing it
    with pytest.raises(RosterError) as caught:
        load_roster(path)
    assert caught.value.message.id == "roster.too_large" and "5 MiB" in str(caught.value)


def test_more_than_100000_rows_are_refused(tmp_path: Path) -> None:
    rows = "".join(f"l{i}\n" for i in range(roster_module.MAX_ROWS + 1))
    path = write(tmp_path, "folder\n" + rows)
    with pytest.raises(RosterError) as caught:
        load_roster(path)
    assert caught.value.message.id == "roster.too_many_rows"
    assert caught.value.message.params["at"] == f"{path}:{roster_module.MAX_ROWS + 2}"
    write(tmp_path, "folder\n" + rows[: rows.rindex("l")])  # exactly the limit: read
    assert len(load_roster(tmp_path / "roster.csv").students) == roster_module.MAX_ROWS


@pytest.mark.parametrize(("value", "code"), [("en", "en"), ("ES", "es"), ("es-MX", "es"), ("en_GB", "en"),
                                             ("Español", "es"), ("inglés", "en"), ("castellano", "es"), ("", "")])
def test_languages_by_code_region_or_name(tmp_path: Path, value: str, code: str) -> None:
    assert load_roster(write(tmp_path, f"folder,language\nana,{value}\n")).students[0].language == code


def roster(*learners: str) -> Roster:
    return Roster(tuple(Student(name, line=i + 2) for i, name in enumerate(learners)), Path("course/roster.csv"))


def test_notes_name_folders_without_a_row_and_rows_without_a_folder() -> None:
    notes = roster_notes(roster("ana", "borja", "josé", "zoe"), ["borja", nfd("josé"), "luis", "ana"])
    assert [n.id for n in notes] == ["roster.note.no_row.one", "roster.note.no_folder.one"]
    assert say(notes[0], "en") == ("1 learner folder has no row in roster.csv: luis — the LMS exports give it no "
                                   "student id or email")
    assert say(notes[1], "es") == ("1 fila de roster.csv no corresponde a ninguna carpeta: zoe (línea 5) — ¿una "
                                   "errata en el nombre de la carpeta, o no ha entregado nada?")


def test_notes_show_ten_names_then_how_many_more() -> None:
    learners = [f"l{i:02}" for i in range(25)]
    notes = roster_notes(roster(), learners)
    assert [n.id for n in notes] == ["roster.note.no_row.other"]
    assert say(notes[0], "en").startswith("25 learner folders have no row in roster.csv: l00, l01, l02, l03, l04, "
                                          "l05, l06, l07, l08, l09 and 15 more — ")
    assert " y 15 más — " in say(notes[0], "es")
    extra = roster_notes(roster(*learners), [])
    assert say(extra[0], "en").startswith("25 rows in roster.csv match no learner folder: l00 (line 2), ")
    assert say(extra[0], "en").count("(line") == 10


def test_no_notes_when_roster_and_folders_agree() -> None:
    assert roster_notes(roster("ana", "josé"), [nfd("josé"), "ana"]) == []
