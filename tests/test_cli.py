"""The command line: exit codes, one-line errors, the files it writes."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grader.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
BORJA = ROOT / "learners" / "borja"
FIXTURES = ROOT / "tests" / "fixtures"


def test_borja_exits_0_and_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    code = main([str(BORJA), "--out", str(out), "--json", str(tmp_path / "r.json"), "--rubrics", str(ROOT / "rubrics")])
    assert code == 0
    printed = capsys.readouterr().out
    assert re.search(r"borja\s+phase-04/lab-00\s+PASSED\s+30(\.0)?/30(\.0)?", printed)
    for name in ("phase-04-lab-00.html", "phase-04-lab-00.md", "phase-05-lab-02.html", "phase-05-lab-02.md"):
        assert (out / "borja" / name).stat().st_size > 500
    document = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert document["version"] == 2
    first = document["results"][0]
    assert {first["learner"], first["lab"], first["passed"]} == {"borja", "phase-04/lab-00", True}
    assert set(first["checks"][0]) >= {"id", "title", "status", "score", "max_score", "acceptance", "message"}
    assert not list(out.rglob("*.tmp"))


def test_a_failing_learner_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main([str(FIXTURES / "sign-flipped"), "--out", str(tmp_path), "--rubrics", str(ROOT / "rubrics")])
    assert code == 1
    assert "ce-grad-analytic" in capsys.readouterr().out


def test_quiet_prints_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(BORJA), "-q", "--out", str(tmp_path), "--rubrics", str(ROOT / "rubrics")]) == 0
    assert capsys.readouterr() == ("", "")


def test_a_folder_of_learners(tmp_path: Path) -> None:
    klass = tmp_path / "class"
    for name in ("borja", "page-copy"):
        shutil.copytree(BORJA if name == "borja" else FIXTURES / name, klass / name)
    out = tmp_path / "out"
    assert main([str(klass), "-q", "--out", str(out), "--lab", "phase-04/lab-00", "--rubrics", str(ROOT / "rubrics")]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["borja", "gradebook.csv", "gradebook.sqlite", "index.html", "page-copy"]


BAD = [
    (["nope-folder"], "no such folder"),
    ([str(ROOT / "templates")], "neither a learner folder"),
    ([str(BORJA), "--lab", "phase-4/lab-00"], "did you mean 'phase-04/lab-00'"),
    ([str(BORJA), "--timeout", "-3"], "--timeout"),
    ([str(BORJA), "--rubrics", "nowhere"], "no such rubrics folder"),
    ([str(BORJA), "--bogus"], "unrecognized arguments: --bogus"),
    ([str(BORJA), "--timeout", "soon"], "invalid float value"),
    ([str(BORJA), "--json", "/tmp"], "that is a folder"),
    ([str(BORJA), "--json", ""], "--json needs a file name"),
]


@pytest.mark.parametrize(("argv", "words"), BAD, ids=[w for _, w in BAD])
def test_bad_input_is_one_line_and_exit_2(argv: list[str], words: str, tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "grader", *argv, "--out", str(tmp_path)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_rubric_from_the_command_line(tmp_path: Path) -> None:
    rubrics = tmp_path / "rubrics"
    shutil.copytree(ROOT / "rubrics", rubrics)
    path = rubrics / "phase-04" / "lab-00.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("    atol: 1.0e-7\n", "    atoll: 1.0e-7\n", 1), encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "grader", str(BORJA), "--rubrics", str(rubrics), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert re.fullmatch(rf"grade: {re.escape(str(path))}:\d+: check '[a-z-]+': unknown key 'atoll' — did you mean 'atol'\?\n", proc.stderr)


def test_every_flag_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for action in build_parser()._actions:
        for flag in action.option_strings:
            if flag not in ("-h", "--help"):
                assert f"`{flag}" in readme or f"{flag}`" in readme, flag


def test_readme_test_command_is_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = "pip install -e '.[test]' && pytest"
    assert command in readme and command in ci


def test_near_miss_phase_folders_and_skipped_learners_are_said(tmp_path: Path) -> None:
    klass = tmp_path / "class"
    shutil.copytree(BORJA, klass / "alice")
    shutil.copytree(BORJA, klass / "bob")
    (klass / "bob" / "phase-04").rename(klass / "bob" / "phase-4")
    (klass / "dave" / "notes").mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-m", "grader", str(klass), "--out", str(tmp_path / "out"),
                           "--rubrics", str(ROOT / "rubrics"), "--lab", "phase-04/lab-00"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "grade: note: dave: skipped, it has no phase-NN/ folder" in proc.stderr
    assert "bob: found phase-4/ and graded it as phase-04/ — rename it to phase-04/" in proc.stderr
    assert re.search(r"bob\s+phase-04/lab-00\s+PASSED", proc.stdout)


def test_dot_is_the_learner_folder_itself(tmp_path: Path) -> None:
    learner = tmp_path / "carla"
    shutil.copytree(BORJA, learner)
    proc = subprocess.run([sys.executable, "-m", "grader", ".", "-q", "--out", str(tmp_path / "out"),
                           "--rubrics", str(ROOT / "rubrics")], cwd=learner, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "carla" / "phase-04-lab-00.html").is_file()


def test_two_learners_with_one_name_would_overwrite_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(BORJA, tmp_path / "a" / "alice")
    shutil.copytree(BORJA, tmp_path / "b" / "alice")
    code = main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "out"), "--rubrics", str(ROOT / "rubrics")])
    assert code == 2 and "two learners are named alice" in capsys.readouterr().err


def test_json_to_standard_output_moves_the_summary_to_stderr(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "grader", str(BORJA), "--json", "-", "--out", str(tmp_path),
                           "--rubrics", str(ROOT / "rubrics")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["version"] == 2
    assert "total: 2 of 2 passed" in proc.stderr


def test_one_learner_sees_whole_messages(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main([str(FIXTURES / "missing-function"), "--out", str(tmp_path), "--rubrics", str(ROOT / "rubrics")])
    assert "rename it to 'softmax_jacobian'." in capsys.readouterr().out


# ----------------------------------------------------------------------------- the command line's own words, in two languages

def test_help_is_said_in_the_language_asked() -> None:
    spanish = " ".join(build_parser("es").format_help().split())
    assert "una carpeta de estudiante (con carpetas phase-NN/) o una carpeta de estudiantes" in spanish
    assert "muestra esta ayuda y termina" in spanish and "Códigos de salida" in spanish
    english = " ".join(build_parser("en").format_help().split())
    assert "a learner folder (it has phase-NN/ folders) or a folder of learners" in english
    assert "Exit codes: 0 every graded lab passed" in english


def test_argparse_errors_are_said_in_the_language_asked(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "grader", str(BORJA), "--bogus", "--lang", "es"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "grade: argumentos no reconocidos: --bogus (mira grade --help)\n"
    for argv, spanish in ((["--lang", "fr"], "argumento --lang: opción no válida: 'fr' (elige entre 'auto', 'en', 'es')"),
                          (["--jobs", "x", "x"], "argumento --jobs/-j: valor no válido 'x'"),
                          (["history", "--out", "r"], "faltan estos argumentos: LEARNER (mira grade history --help)")):
        proc = subprocess.run([sys.executable, "-m", "grader", *argv], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60, env={**os.environ, "LANG": "es_ES.UTF-8", "LANGUAGE": ""})
        assert proc.returncode == 2 and spanish in proc.stderr and len(proc.stderr.splitlines()) == 1, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "grader", str(BORJA), "--bogus"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "LANG": "C", "LANGUAGE": ""})
    assert proc.stderr == "grade: unrecognized arguments: --bogus (see grade --help)\n"  # argparse's own, in English
    proc = subprocess.run([sys.executable, "-m", "grader", "--lang=es"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == ("grade: indica una carpeta de estudiante o una carpeta de estudiantes (p. ej. grade "
                           "learners/borja) (mira grade --help)\n")


def test_notes_and_progress_of_a_class_are_in_the_instructors_language(tmp_path: Path) -> None:
    klass = tmp_path / "class"
    shutil.copytree(BORJA, klass / "alice")
    shutil.copytree(BORJA, klass / "bob")
    (klass / "dave" / "notes").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    proc = subprocess.run([sys.executable, "-m", "grader", str(klass), "--out", str(tmp_path / "out"),
                           "--rubrics", str(ROOT / "rubrics"), "--lab", "phase-04/lab-00"],
                          capture_output=True, text=True, timeout=120, env={**env, "LANG": "es_ES.UTF-8"})
    assert proc.returncode == 0, proc.stderr
    assert "grade: nota: dave: omitida, no tiene ninguna carpeta phase-NN/" in proc.stderr
    assert "grade: corrigiendo 2 estudiantes\n" in proc.stderr and "grade: 2/2 estudiantes (" in proc.stderr


def test_the_machines_faults_reach_the_learner_in_their_language(monkeypatch: pytest.MonkeyPatch) -> None:
    from grader import grading
    from grader.errors import ServerLost
    from grader.i18n import say, verbatim
    from grader.sandbox import Limits

    rubric = grading.select_rubrics(ROOT / "rubrics", "phase-04/lab-00")[0]

    def lost(*_: object) -> None:
        raise ServerLost(verbatim("the fork server stopped"))

    monkeypatch.setattr(grading, "_grade_lab", lost)
    result = grading.grade_lab(rubric, BORJA, Limits())
    message = result.checks[0].message
    assert result.retry and message.id == "machine.server_lost"
    assert say(message, "en").startswith("the grading machine failed while grading this lab (the fork server stopped)")
    assert say(message, "es").startswith("la máquina de corrección falló mientras corregía este lab (the fork server stopped)")

    def bug(*_: object) -> None:
        raise KeyError("x")

    monkeypatch.setattr(grading, "_grade_lab", bug)
    message = grading.grade_lab(rubric, BORJA, Limits()).checks[0].message
    assert message.id == "machine.grader_failed" and message.params["error"] == "KeyError: 'x'"
    assert "avísale al profesor" in say(message, "es") and "tell the instructor" in say(message, "en")


def test_progress_lines_are_in_the_language_asked() -> None:
    import io

    from grader import progress

    stream = io.StringIO()
    lines = progress.Lines(stream, every=0.0, lang="es")
    lines.start(3, reused=1, graded=2)
    lines.advance(3)
    lines.close()
    text = stream.getvalue().splitlines()
    assert text[0] == ("grade: corrigiendo 2 estudiantes, reescribiendo los informes de 1 estudiante (se reutilizan los "
                       "resultados); 1 más sin cambios")
    assert text[-1].startswith("grade: 3/3 estudiantes (") and " en " in text[-1]
    assert progress._opening(0, 4, lang="en") == "grade: nothing to grade again: all 4 learners are unchanged (results reused)"
    assert progress._opening(2, 0, lang="en") == "grade: grading 2 learners"


def test_one_learners_notes_are_said_in_their_deliverables_language(tmp_path: Path) -> None:
    """A learner whose folder is spelled in Spanish (fase-04/) and who writes in Spanish reads the note in Spanish,
    whatever the machine's locale; a class's notes stay the instructor's."""
    learner = tmp_path / "maria"
    shutil.copytree(ROOT / "tests" / "fixtures" / "deliverable-spanish" / "phase-04", learner / "fase-04")
    proc = subprocess.run([sys.executable, "-m", "grader", str(learner), "--out", str(tmp_path / "out")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8", "LANGUAGE": ""})
    assert proc.returncode == 0, proc.stderr
    assert "grade: nota: maria: hay fase-04/ y se corrigió como phase-04/" in proc.stderr
    assert proc.stdout.startswith("maria  phase-04/lab-00  APROBADO")


def test_a_learner_folder_named_like_a_subcommand_is_graded_and_a_kit_folder_is_not(tmp_path: Path) -> None:
    shutil.copytree(BORJA, tmp_path / "history")
    proc = subprocess.run([sys.executable, "-m", "grader", "history", "--out", "out"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("history  phase-04/lab-00  PASSED"), proc.stdout + proc.stderr
    for _ in range(2):  # the second time, kit/ is there: still the subcommand
        proc = subprocess.run([sys.executable, "-m", "grader", "kit", str(ROOT / "rubrics" / "phase-05"), "--out", "kit"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and proc.stdout.startswith("wrote kit/phase-05/lab-02.kit.json"), proc.stdout + proc.stderr
