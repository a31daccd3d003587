from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grader.deliverable import MAX_BYTES, CodeBlock, Document, parse_deliverable
from grader.errors import SubmissionError
from grader.maths.match import analyse
from grader.notation import count_sentences
from grader.rubric import load_rubric

DELIVERABLE = """\
Nota previa antes del primer título.

# Lab 00 — *Softmax* `gradient`

## Parte A — Derivación

Partimos de $p_i = e^{z_i} / \\sum_k e^{z_k}$ y derivamos p_i(delta_ij - p_j) a mano.

$$
\\frac{\\partial p_i}{\\partial z_j} = p_i(\\delta_{ij} - p_j)
$$

![derivación en papel](img/derivacion.jpg)

### Forma matricial

```math
J = \\operatorname{diag}(p) - pp^\\top
```

### Entropía cruzada

El gradiente es $p_j - \\mathbb{1}[j = y]$, es decir softmax(z) − one_hot(y).

## Parte B — Verificación numérica

```text
max_err = 1.3e-11
```

    indented output line

| y | diff |
|---|------|
| 0 | 2.1e-11 |

## Reflexión

> La derivación fue mecánica al principio. ¿Dónde me atasqué? En el signo del
> término cruzado, p. ej. cuando $i \\ne j$ en `softmax_jacobian`.
"""


def write(folder: Path, text: str | bytes, name: str = "lab.md") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8", newline="")
    else:
        path.write_bytes(text)
    return path


@pytest.fixture()
def document(tmp_path: Path) -> Document:
    root = tmp_path / "learner"
    write(root / "phase-04" / "img", b"\xff\xd8 jpeg", "derivacion.jpg")
    return parse_deliverable(write(root / "phase-04", DELIVERABLE), root)


def test_sections_in_document_order_with_levels_and_lines(document: Document) -> None:
    assert [(s.heading, s.level, s.line) for s in document.sections] == [
        ("", 0, 1),
        ("Lab 00 — Softmax gradient", 1, 3),
        ("Parte A — Derivación", 2, 5),
        ("Forma matricial", 3, 15),
        ("Entropía cruzada", 3, 21),
        ("Parte B — Verificación numérica", 2, 25),
        ("Reflexión", 2, 37),
    ]
    assert document.headings() == tuple(s.heading for s in document.sections[1:])


def test_find_returns_outermost_matches_once(document: Document) -> None:
    assert [s.heading for s in document.find(["derivacion"])] == ["Parte A — Derivación"]
    assert [s.heading for s in document.find(["parte"])] == [
        "Parte A — Derivación",
        "Parte B — Verificación numérica",
    ]
    # the lone top-level title is never a match: its subsections are
    assert [s.heading for s in document.find(["lab", "parte"])] == ["Parte A — Derivación", "Parte B — Verificación numérica"]
    assert [s.heading for s in document.find(["matricial", "cruzada"])] == [
        "Forma matricial",
        "Entropía cruzada",
    ]
    assert document.find(["reflection", "reflexión"])[0].heading == "Reflexión"
    assert document.find(["summary"]) == ()
    assert document.find([""]) == ()


def test_section_includes_its_subsections(document: Document) -> None:
    (derivation,) = document.find(["derivación"])
    notation = load_rubric(Path(__file__).resolve().parent.parent / "rubrics" / "phase-04" / "lab-00.yaml").notation
    found = analyse(document.pieces, notation)
    assert found.results["softmax-jacobian"] and found.results["ce-gradient"]
    assert all(derivation.holds(m.line) for matches in found.results.values() for m in matches)
    (matrix,) = document.find(["forma matricial"])
    assert not any(matrix.holds(m.line) for m in found.results["ce-gradient"])
    assert "El gradiente es MATH" in derivation.prose


def test_math_is_formula_text_but_not_code(document: Document) -> None:
    (part_b,) = document.find(["verificacion"])
    assert part_b.code_blocks == (
        CodeBlock(info="text", text="max_err = 1.3e-11\n", line=27),
        CodeBlock(info="", text="indented output line\n", line=31),
    )
    assert "1.3e-11" in part_b.formula_text
    (derivation,) = document.find(["derivación"])
    assert derivation.code_blocks == ()
    assert r"\frac{\partial p_i}" in derivation.formula_text
    assert r"\operatorname{diag}" in derivation.formula_text


def test_prose_is_plain_text_with_neutral_words(document: Document) -> None:
    (reflection,) = document.find(["reflexion"])
    assert reflection.prose == (
        "La derivación fue mecánica al principio. ¿Dónde me atasqué? En el signo del "
        "término cruzado, p. ej. cuando MATH en CODE."
    )
    assert count_sentences(reflection.prose) == 3
    assert document.sections[1].heading == "Lab 00 — Softmax gradient"
    assert "2.1e-11" in document.find(["parte b"])[0].prose


def test_preamble_only_when_not_empty(tmp_path: Path) -> None:
    document = parse_deliverable(write(tmp_path, "\n\n# Only\n\nBody text.\n"), tmp_path)
    assert [s.heading for s in document.sections] == ["Only"]
    assert document.headings() == ("Only",)
    empty = parse_deliverable(write(tmp_path, ""), tmp_path)
    assert empty.sections == ()
    assert empty.path == tmp_path / "lab.md"


def test_emphasis_does_not_eat_formula_source(tmp_path: Path) -> None:
    path = write(tmp_path, "# A\n\nWe have p*q and r*s, and __init__ here, with p_i and p_j.\n")
    (section,) = parse_deliverable(path, tmp_path).sections
    assert "p*q and r*s" in section.formula_text
    assert "__init__" in section.formula_text
    assert section.prose == "We have pq and rs, and init here, with p_i and p_j."


def test_setext_headings_nested_levels_and_headings_in_code(tmp_path: Path) -> None:
    text = (
        "Title\n=====\n\nSub\n---\n\n```python\n# not a heading\n```\n\n"
        "# Next\n\n#### Deep\n\ntext\n"
    )
    document = parse_deliverable(write(tmp_path, text), tmp_path)
    assert [(s.heading, s.level, s.line) for s in document.sections] == [
        ("Title", 1, 1),
        ("Sub", 2, 4),
        ("Next", 1, 11),
        ("Deep", 4, 13),
    ]
    assert document.sections[0].code_blocks == (
        CodeBlock(info="python", text="# not a heading\n", line=7),
    )
    assert document.sections[2].prose == "text"


def test_crlf_and_bom_parse_like_lf(tmp_path: Path) -> None:
    lf = parse_deliverable(write(tmp_path, DELIVERABLE, "lf.md"), tmp_path)
    crlf_bytes = b"\xef\xbb\xbf" + DELIVERABLE.replace("\n", "\r\n").encode()
    crlf = parse_deliverable(write(tmp_path, crlf_bytes, "crlf.md"), tmp_path)
    assert crlf.sections == lf.sections
    assert crlf.sections[0].prose == "Nota previa antes del primer título."


def test_images_exist_only_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "learner"
    write(root / "phase-04" / "img", b"png", "photo.png")
    write(root / "shared", b"png", "common.png")
    write(root / "phase-04" / "img", b"png", "foto de la derivación.png")
    write(tmp_path, b"png", "outside.png")
    (root / "phase-04" / "img" / "sub").mkdir()
    (root / "phase-04" / "link.png").symlink_to(tmp_path / "outside.png")
    text = (
        "# Fotos\n\n"
        "![photo](img/photo.png)\n"
        "![missing](img/missing.png)\n"
        "![escape](../../outside.png)\n"
        "![shared](../shared/common.png)\n"
        "![absolute](" + str(tmp_path / "outside.png") + ")\n"
        "![url](https://example.com/img/photo.png)\n"
        "![dir](img/sub)\n"
        "![link](link.png)\n"
        "![spaces](<img/foto de la derivación.png>)\n"
        '\n<img src="img/photo.png" alt="html">\n\n'
        "Inline <img alt='tag' src=\"../../outside.png\"> too.\n"
    )
    document = parse_deliverable(write(root / "phase-04", text), root)
    (section,) = document.sections
    assert [(i.alt, i.exists, i.line) for i in section.images] == [
        ("photo", True, 3),
        ("missing", False, 4),
        ("escape", False, 5),
        ("shared", True, 6),
        ("absolute", False, 7),
        ("url", False, 8),
        ("dir", False, 9),
        ("link", False, 10),
        ("spaces", True, 11),
        ("html", True, 13),
        ("tag", False, 15),
    ]
    assert section.images[8].src == "img/foto de la derivación.png"
    assert section.images[0].src == "img/photo.png"


def test_tables_lists_and_quotes_are_prose(tmp_path: Path) -> None:
    text = (
        "# R\n\n- First item has words.\n- Second item has words.\n\n"
        "> Quoted text is prose too.\n\n| Col |\n|---|\n| Cell text is prose. |\n"
    )
    (section,) = parse_deliverable(write(tmp_path, text), tmp_path).sections
    assert section.prose.split("\n\n") == [
        "First item has words.",
        "Second item has words.",
        "Quoted text is prose too.",
        "Col",
        "Cell text is prose.",
    ]
    assert count_sentences(section.prose) == 4


def one_line(error: pytest.ExceptionInfo[SubmissionError], path: Path) -> str:
    """One line naming the file as the learner knows it (relative to their folder), never a temp path."""
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{path.name}: ")
    return message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"# title\x00binary", "NUL byte at offset 7"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "this is a PNG image, not Markdown text"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "this is a PDF document"),
    ],
    ids=["nul", "png", "pdf"],
)
def test_unusable_bytes_are_submission_errors(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = write(tmp_path, content)
    with pytest.raises(SubmissionError) as error:
        parse_deliverable(path, tmp_path)
    assert expected in one_line(error, path)


@pytest.mark.parametrize(
    ("content", "heading", "note"),
    [
        (b"# ok\n\n## Reflexi\xf3n\n\nDone.\n", "Reflexión", "not saved as UTF-8 (line 3)"),
        (b"\xef\xbb\xbf# ok\n\xc3(\n## A\xf1o\n", "Año", "(line 2 and 1 more)"),
        ("# título\n".encode("utf-16"), "título", "saved as UTF-16"),
    ],
    ids=["latin-1", "mixed-after-bom", "utf16"],
)
def test_awkward_encodings_are_read_and_said(tmp_path: Path, content: bytes, heading: str, note: str) -> None:
    document = parse_deliverable(write(tmp_path, content), tmp_path)
    assert heading in document.headings()
    (said,) = map(str, document.notes)
    assert note in said and said.startswith("lab.md ") and "re-save" in said


def test_past_the_cap_only_the_start_is_parsed(tmp_path: Path) -> None:
    line = "max_err = 1.3e-11 and a long line of pasted output\n"
    text = "# Head\n\n```\n" + line * (3 * 1024 * 1024 // len(line)) + "```\n\n## Late\n\nNever read.\n"
    started = time.perf_counter()
    document = parse_deliverable(write(tmp_path, text), tmp_path)
    assert time.perf_counter() - started < 5.0
    assert document.headings() == ("Head",)
    (note,) = map(str, document.notes)
    assert "only its first 256 KB (lines 1-" in note and "3.1 MB" in note


def test_one_huge_line_is_cut_between_characters(tmp_path: Path) -> None:
    document = parse_deliverable(write(tmp_path, "# H\n" + "é" * (MAX_BYTES // 2 + 5)), tmp_path)
    assert len(document.notes) == 1 and "UTF-8" not in str(document.notes[0])


def test_exactly_the_cap_is_accepted_whole(tmp_path: Path) -> None:
    path = write(tmp_path, b"a" * MAX_BYTES)
    document = parse_deliverable(path, tmp_path)
    assert document.sections[0].level == 0 and document.notes == ()


def test_a_link_out_of_the_learner_folder_is_not_read(tmp_path: Path) -> None:
    other = write(tmp_path / "alice" / "phase-04", "# Derivation\n\nAlice's work.\n")
    mine = tmp_path / "bob" / "phase-04" / "lab.md"
    mine.parent.mkdir(parents=True)
    mine.symlink_to(other)
    with pytest.raises(SubmissionError) as error:
        parse_deliverable(mine, tmp_path / "bob")
    assert "phase-04/lab.md: a link to a file outside your folder" in str(error.value)


@pytest.mark.parametrize("kind", ["missing", "directory", "fifo", "broken-symlink"])
def test_unreadable_files_are_submission_errors(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "lab.md"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "broken-symlink":
        path.symlink_to(tmp_path / "nowhere.md")
    with pytest.raises(SubmissionError) as error:
        parse_deliverable(path, tmp_path)
    one_line(error, path)


markdown_pieces = st.sampled_from(
    [
        "#", "## ", "\n", "\n\n", " ", "    ", "*", "_", "`", "```", "```math", "~~~", "$", "$$",
        "[", "]", "(", ")", "!", "![a](", "../", "img.png", "<img src=", '"', "'", ">", "<",
        "|", "---", "-", "1.", "\\", "&amp;", "<!--", "-->", "\r\n", "\r", "text", "é", "\ufeff",
        "%00", "%", "http://x", "=", "==", "\t",
    ]
)  # fmt: skip


@pytest.fixture(scope="module")
def fuzz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=250, database=None, deadline=None)
@given(
    content=st.lists(markdown_pieces, max_size=40).map(lambda p: "".join(p).encode())
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
    | st.binary(max_size=200)
)
def test_any_content_parses_or_is_a_submission_error(fuzz_root: Path, content: bytes) -> None:
    path = write(fuzz_root, content)
    try:
        document = parse_deliverable(path, fuzz_root)
    except SubmissionError as error:
        assert "\n" not in str(error)
        return
    for section in document.sections:
        assert section.line >= 1
        assert all(image.line >= 1 for image in section.images)


def test_many_html_images_take_linear_time(tmp_path: Path) -> None:
    path = write(tmp_path, "<div>\n" + '<img src="x.png">\n' * 12_000)  # 204 KB, under MAX_BYTES
    started = time.perf_counter()
    (section,) = parse_deliverable(path, tmp_path).sections
    assert time.perf_counter() - started < 3.0
    assert len(section.images) == 12_000 and section.images[-1].line == 12_001


def test_a_lone_title_heading_is_not_a_matching_section(tmp_path: Path) -> None:
    md = tmp_path / "lab.md"
    md.write_text(
        "# Lab 00 — Softmax and cross-entropy derivation\n\nIntro.\n\n"
        "## Part A — Derivation\n\n$$J = diag(p) - pp^T$$\n\n## Reflection\n\nIt was fine. I liked it. Done now.\n",
        encoding="utf-8",
    )
    doc = parse_deliverable(md, tmp_path)
    assert [s.heading for s in doc.find(["derivation"])] == ["Part A — Derivation"]
    single = tmp_path / "single.md"
    single.write_text("# Derivation\n\n$$x$$\n", encoding="utf-8")
    assert [s.heading for s in parse_deliverable(single, tmp_path).find(["derivation"])] == ["Derivation"]
