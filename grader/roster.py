"""The class roster (``roster.csv``, optional): who each learner folder belongs to, for the LMS gradebook exports.

A folder name is all the grader knows of a learner; an LMS knows them by a student id, an email or a login. The
roster is the instructor's spreadsheet saved as CSV, so it is read the way spreadsheets write it: UTF-8 with or
without a byte-order mark, comma- or semicolon-separated (Spanish Excel writes ``;``), headers in English or Spanish
in any case and spacing. It is validated like a rubric: the first problem is reported as one line naming
``file:line`` and what to do, and nothing is exported from a roster that has one. Its size is bounded before it is
read, so a wrong file (a dataset, a log) cannot stall the grader.
"""

from __future__ import annotations

import csv
import difflib
import io
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from grader.errors import RosterError
from grader.i18n import Message, msg, plural, verbatim
from grader.model import nfc

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 100_000
NAMES_SHOWN = 10
LANGUAGES = ("en", "es")
EXAMPLE = "folder,student id,email,name,section,language"

# Each field and the headers that mean it (compared by ``header_key``: case, accents, spaces, '_' and '-' ignored).
# The first header is the one suggested and listed.
COLUMNS: dict[str, tuple[str, ...]] = {
    "learner": ("folder", "learner", "carpeta", "folder name", "learner folder", "nombre de carpeta", "directory",
                "directorio"),
    "student_id": ("student id", "id", "sis user id", "id number", "número de identificación", "student number",
                   "número de estudiante", "identificador", "id de estudiante", "identificación", "matrícula"),
    "email": ("email", "e-mail", "email address", "mail", "correo", "correo electrónico", "dirección de correo",
              "correo-e"),
    "name": ("name", "display name", "nombre", "student", "full name", "nombre completo", "estudiante", "alumno",
             "alumna", "nombre y apellidos"),
    "section": ("section", "sección", "group", "grupo"),
    "language": ("language", "lang", "idioma", "lengua"),
    "login": ("login", "sis login id", "username", "usuario", "user name", "nombre de usuario", "login id"),
}
_LANGUAGE_WORDS = {
    "en": "en", "english": "en", "inglés": "en", "ingles": "en", "eng": "en",
    "es": "es", "spanish": "es", "español": "es", "espanol": "es", "castellano": "es", "spa": "es",
}
_REGION = re.compile(r"^([a-z]{2})[-_][a-z0-9]{2,4}$")  # en-GB, es_MX, es-419


@dataclass(frozen=True)
class Student:
    """One roster row: what an LMS knows the learner in folder ``learner`` by."""

    learner: str  # folder name, NFC-normalised
    student_id: str = ""
    email: str = ""
    name: str = ""  # display name, NFC
    section: str = ""
    language: str = ""  # "en", "es" or ""
    login: str = ""
    line: int = 0  # line in the file


@dataclass(frozen=True)
class Roster:
    """The roster's rows in file order; ``get`` finds a learner's row whatever Unicode form the folder name is in."""

    students: tuple[Student, ...]
    path: Path | None = None

    @cached_property
    def _by_learner(self) -> dict[str, Student]:
        return {s.learner: s for s in self.students}

    def get(self, learner: str) -> Student | None:
        """macOS writes "José" decomposed, Windows composed: both find the same row."""
        return self._by_learner.get(nfc(learner))

    @property
    def file_name(self) -> str:
        return self.path.name if self.path is not None else "roster.csv"


def header_key(text: str) -> str:
    """``"Número de identificación"`` → ``"numerodeidentificacion"``: what two spellings of one header share."""
    folded = unicodedata.normalize("NFD", text.casefold())
    plain = "".join(c for c in folded if not unicodedata.combining(c) and unicodedata.category(c) != "Cf")
    return re.sub(r"[\s_\-.]+", "", plain)


_FIELD_BY_KEY = {header_key(alias): field for field, aliases in COLUMNS.items() for alias in aliases}
_SUGGESTIONS = {header_key(alias): alias for aliases in COLUMNS.values() for alias in aliases}


def listed(names: Sequence[Message | str], most: int = NAMES_SHOWN) -> Message | list[Message | str]:
    """Names for a note (a message parameter), at most ``most`` of them, then "and N more": a class of 300 does not
    fill the terminal."""
    if len(names) <= most:
        return list(names)
    return msg("roster.names_and_more", names=list(names[:most]), n=len(names) - most)


def load_roster(path: Path) -> Roster:
    """Read and validate the whole roster; the first problem raises ``RosterError`` naming ``file:line``."""
    path = Path(path)
    text = _read(path)
    first = re.match(r"[^\r\n]*", text)
    if first is None or not first.group().strip():
        raise RosterError(msg("roster.empty", at=f"{path}:1", example=EXAMPLE))
    delimiter = _delimiter(first.group())
    rows = _rows(path, text, delimiter)
    header_line, header = rows[0]
    fields = _columns(f"{path}:{header_line}", header)
    unnamed = [i for i, name in enumerate(header) if not name.strip()]
    students: list[Student] = []
    seen: dict[str, dict[str, int]] = {field: {} for field in _DUPLICATE}
    for line, cells in rows[1:]:
        if not any(c.strip() for c in cells):
            continue  # a blank line, or the empty rows a spreadsheet leaves at the end (";;;;")
        at = f"{path}:{line}"
        if len(cells) != len(header):
            raise RosterError(msg("roster.cell_count", at=at, n=len(cells), want=len(header), sep=delimiter))
        for index in unnamed:
            if cells[index].strip():
                raise RosterError(msg("roster.unnamed_value", at=at, column=index + 1, value=cells[index].strip()))
        student = _student(at, line, fields, cells)
        _unique(at, student, seen)
        students.append(student)
    return Roster(tuple(students), path)


def _rows(path: Path, text: str, delimiter: str) -> list[tuple[int, list[str]]]:
    """Each record with the line it starts on (a quoted cell may span lines); at most ``MAX_ROWS`` after the header."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows: list[tuple[int, list[str]]] = []
    end = 0
    try:
        for cells in reader:
            start, end = end + 1, reader.line_num
            if len(rows) > MAX_ROWS:
                raise RosterError(msg("roster.too_many_rows", at=f"{path}:{start}", n=MAX_ROWS))
            rows.append((start, cells))
    except csv.Error as exc:
        raise RosterError(msg("roster.bad_csv", at=f"{path}:{end + 1}", problem=verbatim(str(exc)))) from None
    return rows


def _read(path: Path) -> str:
    """The text, or the reason it cannot be had; at most ``MAX_BYTES`` are read, whatever the file claims."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise RosterError(msg("roster.not_found", path=str(path))) from None
    except OSError as exc:
        raise RosterError(msg("roster.unreadable", path=str(path), error=verbatim(exc.strerror or str(exc)))) from None
    if len(data) > MAX_BYTES:
        raise RosterError(msg("roster.too_large", path=str(path), mib=MAX_BYTES // (1024 * 1024)))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RosterError(msg("roster.not_utf8", at=f"{path}:{line}")) from None


def _delimiter(header_line: str) -> str:
    """The separator that splits the header into more columns; a one-column roster is comma-separated."""
    def width(sep: str) -> int:
        try:
            return len(next(csv.reader([header_line], delimiter=sep)))
        except (csv.Error, StopIteration):
            return header_line.count(sep) + 1

    return ";" if width(";") > width(",") else ","


def _columns(at: str, header: list[str]) -> dict[str, int]:
    """Field → column index. A column with no name is left out (a trailing separator), while it stays empty."""
    fields: dict[str, int] = {}
    for index, raw in enumerate(header):
        name = nfc(raw.strip())
        if not name:
            continue
        field = _FIELD_BY_KEY.get(header_key(name))
        if field is None:
            raise RosterError(msg("roster.unknown_column", at=at, column=name, fix=_suggest(name)))
        if field in fields:
            first = nfc(header[fields[field]].strip())
            raise RosterError(msg("roster.duplicate_column", at=at, first=first, second=name))
        fields[field] = index
    if "learner" not in fields:
        raise RosterError(msg("roster.no_folder_column", at=at, example=EXAMPLE))
    return fields


def _suggest(name: str) -> Message:
    close = difflib.get_close_matches(header_key(name), list(_SUGGESTIONS), n=1, cutoff=0.75)
    if close:
        return msg("roster.did_you_mean", word=_SUGGESTIONS[close[0]])
    return msg("roster.one_of")


def _student(at: str, line: int, fields: dict[str, int], cells: list[str]) -> Student:
    """One row's values, spaces collapsed and NFC (a name typed on a Mac and one typed on Windows are equal)."""
    def cell(field: str) -> str:
        index = fields.get(field)
        return "" if index is None else nfc(" ".join(cells[index].split()))

    learner = cell("learner")
    if not learner:
        raise RosterError(msg("roster.empty_folder", at=at))
    if "/" in learner or "\\" in learner or learner in (".", ".."):
        raise RosterError(msg("roster.bad_folder", at=at, folder=learner))
    email = cell("email")
    if email and ("@" not in email or " " in email):
        raise RosterError(msg("roster.bad_email", at=at, value=email))
    return Student(learner=learner, student_id=cell("student_id"), email=email, name=cell("name"),
                   section=cell("section"), language=_language(at, cell("language")), login=cell("login"), line=line)


def _language(at: str, value: str) -> str:
    """``en``/``es``, a region form of them (``es-MX``) or the language's name in either language."""
    word = value.casefold()
    if not word:
        return ""
    region = _REGION.match(word)
    code = region.group(1) if region else _LANGUAGE_WORDS.get(word, "")
    if code not in LANGUAGES:
        raise RosterError(msg("roster.unknown_language", at=at, value=value))
    return code


_DUPLICATE = {  # literal ids: the catalogue test finds them
    "learner": lambda at, value, first: msg("roster.duplicate_folder", at=at, value=value, first=first),
    "student_id": lambda at, value, first: msg("roster.duplicate_id", at=at, value=value, first=first),
    "email": lambda at, value, first: msg("roster.duplicate_email", at=at, value=value, first=first),
    "login": lambda at, value, first: msg("roster.duplicate_login", at=at, value=value, first=first),
}


def _unique(at: str, student: Student, seen: dict[str, dict[str, int]]) -> None:
    """A folder, student id, email or login given twice would send one learner's grade to two people (or none);
    emails are compared without case, as mail servers do."""
    for field, said in _DUPLICATE.items():
        value = getattr(student, field)
        if not value:
            continue
        key = value.casefold() if field == "email" else value
        first = seen[field].get(key)
        if first is not None:
            raise RosterError(said(at, value, first))
        seen[field][key] = student.line


def roster_notes(roster: Roster, learners: Sequence[str]) -> list[Message]:
    """What the instructor should know before importing: folders the roster does not name (their LMS rows have no
    id), and roster rows no folder matches (a typo, or a learner who handed nothing in)."""
    folders = sorted({nfc(name) for name in learners})
    known = {s.learner for s in roster.students}
    missing = [name for name in folders if name not in known]
    present = set(folders)
    extra = [s for s in roster.students if s.learner not in present]
    notes: list[Message] = []
    if missing:
        notes.append(plural("roster.note.no_row", len(missing), file=roster.file_name, names=listed(missing)))
    if extra:
        named = [msg("roster.name_at_line", name=s.learner, line=s.line) for s in extra]
        notes.append(plural("roster.note.no_folder", len(extra), file=roster.file_name, names=listed(named)))
    return notes
