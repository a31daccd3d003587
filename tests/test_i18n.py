"""The catalogues: complete in both languages, placeholders kept, findings as data, the reader's language chosen."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jinja2.nodes
import pytest
from babel.messages.pofile import read_po

from grader import i18n
from grader.i18n import Message, Texts, detect, fields, from_dict, joined, msg, plural, say, verbatim
from grader.reports import environment

ROOT = Path(__file__).resolve().parent.parent
STATUSES = ("pass", "fail", "error", "skip", "review")
# ids built from a prefix and a value: every value the code can give
DYNAMIC = {
    "status.": STATUSES, "badge.": STATUSES, "count.": STATUSES, "export.status.": ("review", "error", "skip"),
    "input.": ("case", "only", "hidden"), "pattern.only_": ("last", "first"),
    "place.": ("line", "cell", "line.start", "cell.start"), "fd.times_step.": ("1", "2"),
    "died.": ("native", "signal"), "similar.share.": ("code", "prose"),
    "provenance.": ("paper_first", "code_first", "together", "no_history", "never_committed", "no_code", "no_derivation",
                    "no_derivation_or_code"),
    "argparse.": ("choice", "number", "one", "unknown", "required", "ignored"),  # argparse's sentences, said again
    "raised.hint.": ("link", "outside", "relative", "memory", "sandbox", "file_size", "processes"),
    "scheme.": ("centred", "forward", "backward", "five-point", "one-sided", "higher-order", "adaptive"),
    "scheme.words.": ("centred", "forward", "backward", "five-point", "one-sided", "higher-order", "adaptive"),
    "property.pass.": tuple(f"{p}.{n}" for p in ("symmetric", "finite", "unmutated") for n in ("one", "other")),
}
PLURAL_SUFFIXES = (".one", ".other")
# modules whose findings are all catalogue messages: no sentence may be built there
CONVERTED = ("compare.py", "agree.py", "property.py", "relation.py", "implementation.py", "deliverable.py", "section.py", "fd.py")


def _catalogue(lang: str) -> dict[str, str]:
    with (ROOT / "grader" / "locale" / f"{lang}.po").open("rb") as f:
        return {m.id: m.string for m in read_po(f, locale=lang) if m.id}


def _code_ids() -> set[str]:
    """Literal ids given to msg(), plural() and templates' _() / _n() — what the catalogues must hold."""
    ids: set[str] = set()
    for path in (ROOT / "grader").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in ("msg", "plural"):
                if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                    word = node.args[0].value
                    ids |= {word + s for s in PLURAL_SUFFIXES} if node.func.__dict__.get("id") == "plural" else {word}
                elif node.args and isinstance(node.args[0], ast.IfExp):
                    ids |= {b.value for b in (node.args[0].body, node.args[0].orelse) if isinstance(b, ast.Constant)}
    env = environment("en")
    for template in (ROOT / "templates").glob("*.j2"):
        tree = env.parse(template.read_text(encoding="utf-8"))
        for call in tree.find_all(jinja2.nodes.Call):
            name = getattr(call.node, "name", "")
            first = call.args[0] if call.args else None
            words = [first] if isinstance(first, jinja2.nodes.Const) else \
                [e for e in (first.expr1, first.expr2) if isinstance(e, jinja2.nodes.Const)] if isinstance(first, jinja2.nodes.CondExpr) else []
            if name in ("_", "_n"):
                for word in (w.value for w in words):
                    ids |= {word + s for s in PLURAL_SUFFIXES} if name == "_n" else {word}
    return ids


def _all_expected() -> set[str]:
    return _code_ids() | {prefix + value for prefix, values in DYNAMIC.items() for value in values}


def test_every_id_used_is_in_the_english_catalogue() -> None:
    missing = sorted(_all_expected() - set(_catalogue("en")))
    assert not missing, f"ids used but not in en.po: {missing}"


def test_no_catalogue_entry_is_dead() -> None:
    unused = sorted(set(_catalogue("en")) - _all_expected())
    assert not unused, f"en.po ids no code or template uses: {unused}"


@pytest.mark.parametrize("lang", [code for code in i18n.LANGUAGES if code != "en"])
def test_every_language_has_every_id_with_the_same_placeholders(lang: str) -> None:
    english, other = _catalogue("en"), _catalogue(lang)
    assert sorted(set(english) - set(other)) == [], f"{lang}.po lacks these ids"
    assert sorted(set(other) - set(english)) == [], f"{lang}.po has ids English does not"
    empty = [k for k, v in other.items() if not v.strip()]
    assert not empty, f"{lang}.po: untranslated {empty}"
    dropped = {k: (fields(english[k]), fields(other[k])) for k in english if fields(english[k]) != fields(other[k])}
    assert not dropped, f"{lang}.po: placeholders differ {dropped}"


@pytest.mark.parametrize("lang", i18n.LANGUAGES)
def test_every_message_renders_with_its_parameters(lang: str) -> None:
    for key, text in _catalogue(lang).items():
        params = {name: "X" for name in fields(text)}
        words = say(Message(key, params), lang)
        assert words and "{" not in words.replace("{X", ""), (key, words)


def test_a_missing_parameter_falls_back_to_english_then_to_the_id() -> None:
    assert say(msg("no.such.id"), "es") == "no.such.id"
    assert say(msg("inputs.all", n=3), "es") == "las 3 entradas"
    assert say(msg("inputs.all", n=3), "fr") == "all 3 inputs"  # an unknown language is English


def test_numbers_keep_their_technical_form_in_spanish() -> None:
    words = say(msg("compare.off", name="ce_grad", input=msg("input.only", name="seed", args="z=[1, 2]"),
                    diff=msg("diff.max_abs", err="1.2e-07", at="", want="0.5", got="0.5000001"), atol="1e-09",
                    count=""), "es")
    assert words == ("ce_grad falla en la entrada 'seed' (z=[1, 2]): error absoluto máx. 1.2e-07 (se esperaba 0.5, "
                     "se obtuvo 0.5000001), tolerancia 1e-09.")
    assert say(msg("sentence.note", note=0.1 + 0.2), "es") == "Nota: 0.3."


def test_messages_travel_as_plain_data_and_come_back_equal() -> None:
    nested = joined(msg("compare.pass", name="softmax", inputs=msg("inputs.all", n=4), atol="1e-09"),
                    msg("sentence.note", note=verbatim("ignores h")))
    titled = msg("relation.pass", name="f", inputs=Texts.of({"en": "two", "es": "dos"}), atol="0")
    for message in (nested, titled, plural("first.skipped", 2, ids="a, b", why=verbatim("x"))):
        assert from_dict(message.to_dict()) == message
        assert say(from_dict(message.to_dict()), "es") == say(message, "es")


@pytest.mark.parametrize(
    ("prose", "lang"),
    [
        ("The derivative of the softmax is easy to get when we use the quotient rule, and it is what I expected.", "en"),
        ("La derivada de la softmax se obtiene con la regla del cociente, y es lo que esperaba cuando empecé.", "es"),
        ("Lo que aprendí: que el gradiente de la entropía cruzada es p menos el one-hot, y que es muy simple.", "es"),
        ("p_i (δ_ij − p_j)", ""),  # a formula says no language
        ("", ""),
    ],
)
def test_the_deliverables_language_is_told_from_its_function_words(prose: str, lang: str) -> None:
    assert detect([prose]) == lang


def test_rubric_text_in_two_languages_is_read_in_the_readers() -> None:
    title = Texts.of({"en": "Softmax Jacobian", "es": "Jacobiano de la softmax"})
    assert (title.get("en"), title.get("es"), title.get("fr")) == ("Softmax Jacobian", "Jacobiano de la softmax", "Softmax Jacobian")
    assert Texts.of("one text").get("es") == "one text"


@pytest.mark.parametrize("module", CONVERTED)
def test_converted_checks_build_no_sentences(module: str) -> None:
    """Their findings are ids and parameters: an f-string or a string literal handed to result() would be English
    in every language."""
    source = (ROOT / "grader" / "checks" / module).read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "result" and len(node.args) >= 3:
            said = node.args[2]
            assert not isinstance(said, (ast.JoinedStr, ast.Constant)), f"{module}:{node.lineno} builds a sentence"
    assert not re.search(r"message \+?= f\"", source), f"{module} concatenates a sentence"


ERRORS = {"GraderError", "UsageError", "RubricError", "OverridesError", "SubmissionError", "SandboxError", "ServerLost",
          "Interrupted", "TooLarge"}
# helpers that turn their text into one of those errors, or into a line on the terminal
SAYERS = {"fail": 1, "_usage": 0, "note": 0, "_note": 0}


def _sentences(node: ast.AST) -> bool:
    """Words written in the code: a string literal, an f-string, or one glued to another."""
    if isinstance(node, ast.JoinedStr) or isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    return isinstance(node, ast.BinOp) and (_sentences(node.left) or _sentences(node.right))


def test_no_error_or_note_the_user_reads_is_a_sentence_in_the_code() -> None:
    """The command line's errors and notes are catalogue messages too: an English sentence given to an error would
    reach a Spanish reader in English."""
    built = []
    for path in sorted((ROOT / "grader").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            index = 0 if name in ERRORS else SAYERS.get(name)
            if index is not None and len(node.args) > index and _sentences(node.args[index]):
                built.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
            built += [f"{path.relative_to(ROOT)}:{node.lineno} hint=" for k in node.keywords
                      if k.arg == "hint" and _sentences(k.value) and " " in ast.unparse(k.value)]  # not an id
    assert not built, f"sentences built outside the catalogue: {built}"


def _grade(tmp_path: Path, learner: Path, *flags: str) -> tuple[str, str, str]:
    copy = tmp_path / "learners" / learner.name
    shutil.copytree(learner, copy)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", str(copy), "--out", str(out), *flags],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode in (0, 1), proc.stderr
    html = next(out.glob(f"{learner.name}/phase-04-*.html")).read_text(encoding="utf-8")
    md = next(out.glob(f"{learner.name}/phase-04-*.md")).read_text(encoding="utf-8")
    return proc.stdout, html, md


def test_a_spanish_deliverable_gets_spanish_reports_and_terminal(tmp_path: Path) -> None:
    stdout, html, md = _grade(tmp_path, ROOT / "tests" / "fixtures" / "deliverable-spanish")
    assert '<html lang="es">' in html and "puntos" in html and "Salida de tu código" in html
    assert "| Estado | Comprobación | Título | Puntos |" in md
    assert "APROBADO" in stdout and "total:" in stdout and "aprobados" in stdout


def test_lang_en_gives_english_to_a_spanish_deliverable(tmp_path: Path) -> None:
    stdout, html, md = _grade(tmp_path, ROOT / "tests" / "fixtures" / "deliverable-spanish", "--lang", "en")
    assert '<html lang="en">' in html and "Output of your code" in html
    assert "| Status | Check | Title | Score |" in md and "PASSED" in stdout


def test_lang_es_gives_spanish_to_an_english_deliverable(tmp_path: Path) -> None:
    stdout, html, _ = _grade(tmp_path, ROOT / "learners" / "borja", "--lang", "es")
    assert '<html lang="es">' in html and "coincide con la referencia" in html and "APROBADO" in stdout


@pytest.mark.parametrize(
    ("data", "spanish"),
    [
        ({"type": "ValueError", "text": "no", "line": 3, "function": "f", "file": "lab.py"},
         "f lanzó ValueError: no (línea 3 en f, lab.py)"),
        ({"type": "FileNotFoundError", "text": "x", "hint": "relative"},
         "f lanzó FileNotFoundError: x; los archivos se abren relativos al directorio de trabajo, tu carpeta de fase: "
         "usa Path(__file__).parent / nombre"),
        ({"exit": "3"}, "f llamó a sys.exit(3)"),
    ],
)
def test_what_the_worker_says_of_an_exception_is_said_in_the_learners_language(data: dict[str, object], spanish: str) -> None:
    from grader.runner import raised_message

    said = raised_message("f", data)
    assert said is not None and say(said, "es") == spanish


@pytest.mark.parametrize("data", [None, "text", {"type": 3}, {"type": "E", "text": ["x"]}, {"exit": {"a": 1}}, {}])
def test_a_worker_that_sends_something_else_is_said_in_its_own_english(data: object) -> None:
    """The worker is untrusted: anything but the plain data it should send is not made a message."""
    from grader.runner import raised_message

    assert raised_message("f", data) is None


def test_a_hostile_worker_cannot_grow_a_message() -> None:
    from grader.runner import raised_message

    said = raised_message("f", {"type": "E" * 10_000, "text": "x" * 10_000, "line": 1, "function": "g" * 5_000,
                                "file": "h" * 5_000, "hint": "link", "link": "l" * 5_000})
    assert said is not None and len(say(said, "es")) < 1_500


def test_the_heading_suggested_is_in_the_readers_language(tmp_path: Path) -> None:
    """A Spanish writer missing the reflection is told '## Reflexión', not '## Reflection' (the rubric's suggest)."""
    learner = tmp_path / "src" / "ana"
    shutil.copytree(ROOT / "tests" / "fixtures" / "deliverable-spanish", learner)
    md = next((learner / "phase-04").glob("*.md"))
    text = md.read_text(encoding="utf-8")
    md.write_text(text[: text.rfind("\n## ")] + "\n", encoding="utf-8")
    _, _, report = _grade(tmp_path, learner)
    assert "'Reflexión'" in report and "'Reflection'" not in report
