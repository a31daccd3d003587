"""Instructor overrides: the file format and its errors, applying rules, and how reports show them."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from grader.errors import GraderError, OverridesError
from grader.i18n import Message, say
from grader.model import CheckResult, LabResult, Override, Status
from grader.overrides import Rule, apply_overrides, load_overrides
from grader.reports import render_html, render_markdown, render_summary
from grader.results import lab_from_dict, lab_to_dict

LAB = "phase-04/lab-00"


def result(learner: str = "borja") -> LabResult:
    return LabResult(
        learner=learner,
        lab=LAB,
        title="Softmax gradient",
        checks=(
            CheckResult("jacobian-analytic", "Jacobian", Status.FAIL, 0.0, 2.0, True, "off by p p^T"),
            CheckResult("shape", "Output shape", Status.PASS, 2.0, 2.0, True, "ok"),
            CheckResult("derivation", "Derivation", Status.REVIEW, 4.0, 4.0, False, "a photo: a human must look"),
            CheckResult("later", "Later step", Status.SKIP, 0.0, 3.0, False, "needs jacobian-analytic"),
        ),
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "overrides.yaml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """\
# decisions after office hours
- learner: borja
  lab: phase-04/lab-00
  check: jacobian-analytic
  status: pass
  reason: derivation checked on paper; the code had a typo

- learner: "0123"
  lab: phase-04/lab-00
  check: shape
  points: 1.5
  reason: >-
    copied the shape check
    from a classmate
- learner: no
  lab: phase-05/lab-02
  check: softmax-correct
  status: review
  points: 1e0
  reason: "42"
"""


def test_load_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    rules = load_overrides(path)
    assert rules == (
        Rule("borja", LAB, "jacobian-analytic", "derivation checked on paper; the code had a typo", Status.PASS, None, f"{path}:2"),
        Rule("0123", LAB, "shape", "copied the shape check from a classmate", None, 1.5, f"{path}:8"),
        Rule("no", "phase-05/lab-02", "softmax-correct", "42", Status.REVIEW, 1.0, f"{path}:15"),
    )


@pytest.mark.parametrize("text", ["", "# nothing decided yet\n"])
def test_an_empty_file_has_no_rules(tmp_path: Path, text: str) -> None:
    assert load_overrides(write(tmp_path, text)) == ()


RULE = "- learner: borja\n  lab: phase-04/lab-00\n  check: shape\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (RULE + "  status: pass\n  reason: [unclosed\n",
         ":6: YAML error: "),
        ("learner: borja\nlab: phase-04/lab-00\n",
         ":1: the file must be a list of rules, one '- ' item each, e.g. - {learner: borja"),
        ("- borja\n",
         ":1: each rule is a mapping with learner, lab, check, status and/or points, reason"),
        (RULE + "  status: pass\n  reson: typo\n",
         ":5: unknown key 'reson' — did you mean 'reason'?"),
        (RULE + "  score: 2\n  reason: x\n",
         ":4: unknown key 'score' — did you mean 'points'?"),
        (RULE + "  status: passed\n  reason: x\n",
         ":4: rule for borja phase-04/lab-00 shape: status 'passed' is not known — did you mean 'pass'?"),
        (RULE + "  status: PASS\n  reason: x\n",
         ":4: rule for borja phase-04/lab-00 shape: status 'PASS' is not known — did you mean 'pass'?"),
        (RULE + "  points: -1\n  reason: x\n",
         ":4: rule for borja phase-04/lab-00 shape: points -1 is negative — give 0 up to what the check is worth"),
        (RULE + "  points: lots\n  reason: x\n",
         ":4: rule for borja phase-04/lab-00 shape: points must be a number, not 'lots'"),
        (RULE + "  points: .nan\n  reason: x\n",
         ":4: rule for borja phase-04/lab-00 shape: points must be a number, not nan"),
        (RULE + "  status: pass\n",
         ":1: rule for borja phase-04/lab-00 shape: missing 'reason' — say why the grade changes"),
        (RULE + "  status: pass\n  reason: '  '\n",
         ":5: rule for borja phase-04/lab-00 shape: missing 'reason'"),
        (RULE + "  reason: x\n",
         ":1: rule for borja phase-04/lab-00 shape: give 'status', 'points' or both — otherwise the rule changes nothing"),
        ("- lab: phase-04/lab-00\n  check: shape\n  status: pass\n  reason: x\n",
         ":1: missing 'learner' — every rule names learner, lab and check"),
        ("- learner: borja\n  lab: lab-00\n  check: shape\n  status: pass\n  reason: x\n",
         ":2: rule for borja lab-00 shape: lab 'lab-00' must look like 'phase-04/lab-00'"),
        ("- learner: borja\n  lab: phase-04/lab-00\n  check: [shape, plot]\n  status: pass\n  reason: x\n",
         ":3: 'check' must be a single value, not a list or mapping"),
        (RULE + "  status: pass\n  status: fail\n  reason: x\n",
         ":5: duplicate key 'status' in one rule — keep only one"),
        (RULE + "  status: pass\n  reason: x\n" + "\n" + RULE + "  points: 0\n  reason: y\n",
         ":7: a second rule for borja phase-04/lab-00 shape (the first is at line 1) — keep one"),
    ],
)
def test_malformed_files_name_file_line_and_fix(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(OverridesError) as caught:
        load_overrides(path)
    text_ = str(caught.value)
    assert text_.startswith(str(path) + message), text_
    assert "\n" not in text_
    assert caught.value.exit_code == 2 and isinstance(caught.value, GraderError)


def test_an_unknown_key_is_said_in_the_instructors_language(tmp_path: Path) -> None:
    path = write(tmp_path, RULE + "  status: pass\n  reson: typo\n")
    with pytest.raises(OverridesError) as caught:
        load_overrides(path)
    assert str(caught.value) == f"{path}:5: unknown key 'reson' — did you mean 'reason'?"
    assert caught.value.said("es") == f"{path}:5: clave desconocida 'reson' — ¿querías decir 'reason'?"
    assert caught.value.message.id == "overrides.unknown_key" and caught.value.message.params["key"] == "reson"


def test_a_rule_error_is_said_in_spanish_with_its_numbers_kept(tmp_path: Path) -> None:
    with pytest.raises(OverridesError) as caught:
        load_overrides(write(tmp_path, RULE + "  points: -1.5\n  reason: x\n"))
    assert caught.value.said("es").endswith(":4: regla para borja phase-04/lab-00 shape: points -1.5 es negativo — pon de 0 "
                                            "hasta lo que vale la comprobación")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OverridesError, match=r"overrides\.yaml: overrides file not found — check the path$"):
        load_overrides(tmp_path / "overrides.yaml")


def rule(check: str, status: Status | None = None, points: float | None = None, learner: str = "borja") -> Rule:
    return Rule(learner, LAB, check, f"because of {check}", status, points, f"overrides.yaml:{len(check)}")


def checks_of(results: list[LabResult]) -> dict[str, CheckResult]:
    return {c.id: c for c in results[0].checks}


@pytest.mark.parametrize(
    ("check", "status", "points", "now"),
    [
        ("jacobian-analytic", Status.PASS, None, (Status.PASS, 2.0)),
        ("jacobian-analytic", Status.REVIEW, None, (Status.REVIEW, 2.0)),
        ("shape", Status.FAIL, None, (Status.FAIL, 0.0)),
        ("shape", Status.SKIP, None, (Status.SKIP, 0.0)),
        ("jacobian-analytic", None, 2.0, (Status.PASS, 2.0)),
        ("jacobian-analytic", None, 1.0, (Status.FAIL, 1.0)),
        ("shape", None, 0.0, (Status.FAIL, 0.0)),
        ("jacobian-analytic", Status.PASS, 1.0, (Status.PASS, 1.0)),
        ("derivation", Status.FAIL, 4.0, (Status.FAIL, 4.0)),
    ],
)
def test_apply_status_and_points(check: str, status: Status | None, points: float | None, now: tuple[Status, float]) -> None:
    original = checks_of([result()])[check]
    changed = checks_of(apply_overrides([result()], [rule(check, status, points)]))[check]
    assert (changed.status, changed.score) == now
    assert changed.override == Override(f"because of {check}", original.status, original.score, f"overrides.yaml:{len(check)}")
    assert (changed.message, changed.max_score, changed.acceptance) == (original.message, original.max_score, original.acceptance)


def test_apply_changes_the_verdict_and_leaves_the_rest_alone() -> None:
    anna, borja = result("anna"), result()
    out = apply_overrides([anna, borja], [rule("jacobian-analytic", Status.PASS)])
    assert out[0] is anna
    assert not borja.passed and out[1].passed and out[1].score == borja.score + 2.0
    assert [c is d for c, d in zip(out[1].checks, borja.checks)] == [False, True, True, True]


def test_apply_is_idempotent_and_keeps_the_graders_own_verdict() -> None:
    rules = [rule("jacobian-analytic", Status.PASS), rule("shape", points=0.0)]
    once = apply_overrides([result()], rules)
    twice = apply_overrides(once, rules)
    assert [lab_to_dict(r) for r in twice] == [lab_to_dict(r) for r in once]
    again = apply_overrides(once, [rule("jacobian-analytic", Status.REVIEW)])
    assert checks_of(again)["jacobian-analytic"].override == Override("because of jacobian-analytic", Status.FAIL, 0.0, "overrides.yaml:17")


def test_points_above_what_the_check_is_worth() -> None:
    with pytest.raises(OverridesError) as caught:
        apply_overrides([result()], [rule("shape", points=3.0)])
    assert str(caught.value) == "overrides.yaml:5: borja phase-04/lab-00 shape: points 3 is more than the check is worth (2) — give 0 up to 2"


def test_rules_that_match_nothing_are_noted() -> None:
    notes: list[Message | str] = []
    rules = [
        rule("shape", Status.FAIL, learner="borjа"),  # a Cyrillic а
        rule("shape", Status.FAIL, learner="zoe"),
        Rule("borja", "phase-04/lab-01", "shape", "x", Status.FAIL, None, "o.yaml:3"),
        rule("jacobian-analitic", Status.PASS),
        rule("derivation", Status.PASS),
    ]
    out = apply_overrides([result()], rules, note=notes.append)
    assert [str(n) for n in notes] == [
        "overrides.yaml:5: override for borjа phase-04/lab-00 shape not applied: learner 'borjа' was not graded in this run — did you mean 'borja'?",
        "overrides.yaml:5: override for zoe phase-04/lab-00 shape not applied: learner 'zoe' was not graded in this run",
        "o.yaml:3: override for borja phase-04/lab-01 shape not applied: lab 'phase-04/lab-01' was not graded for borja — did you mean 'phase-04/lab-00'?",
        "overrides.yaml:17: override for borja phase-04/lab-00 jacobian-analitic not applied: phase-04/lab-00 has no check 'jacobian-analitic' — did you mean 'jacobian-analytic'?",
    ]
    assert checks_of(out)["derivation"].status is Status.PASS
    assert say(notes[1], "es") == ("overrides.yaml:5: el ajuste para zoe phase-04/lab-00 shape no se aplicó: el estudiante "
                                   "'zoe' no se ha corregido en esta ejecución")


def test_loaded_rules_apply_and_survive_the_json_round_trip(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    out = apply_overrides([result(), result("0123")], load_overrides(path), note=lambda _: None)
    doc = json.loads(json.dumps([lab_to_dict(r) for r in out], allow_nan=False))
    assert doc[0]["checks"][0]["override"] == {
        "reason": "derivation checked on paper; the code had a typo", "status": "fail", "score": 0.0, "source": "overrides.yaml:2",
    }
    assert doc[1]["checks"][1]["override"]["source"] == "overrides.yaml:8"
    assert [lab_to_dict(lab_from_dict(d)) for d in doc] == doc


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.ok = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "br"):
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        self.ok = self.ok and bool(self.stack) and self.stack.pop() == tag


def overridden() -> LabResult:
    rules = [
        Rule("borja", LAB, "jacobian-analytic", "derivation checked <b>on paper</b>", Status.PASS, None, "overrides.yaml:2"),
        Rule("borja", LAB, "shape", "copied", Status.FAIL, None, "overrides.yaml:8"),
    ]
    return apply_overrides([result()], rules)[0]


def test_html_shows_the_override_the_reason_and_what_the_grader_said() -> None:
    html = render_html(overridden())
    assert html.count('<span class="tag override"') == 3  # two checks, and the failing one in "look at first"
    assert ("<p class=\"override\"><strong>Overridden by instructor:</strong> derivation checked &lt;b&gt;on paper&lt;/b&gt; "
            "<span class=\"hint\">(grader said: fail 0.0/2.0)</span></p>") in html
    assert "(grader said: pass 2.0/2.0)" in html
    assert "<b>" not in html
    parser = _Balance()
    parser.feed(html)
    assert parser.ok and parser.stack == []
    assert "override" not in render_html(result())


def test_markdown_shows_the_override() -> None:
    text = render_markdown(overridden())
    html = MarkdownIt("commonmark").enable("table").render(text)
    assert "| ✅ pass | `jacobian-analytic` | Jacobian *(acceptance)* **(overridden by instructor)** | 2.0/2.0 |" in text
    assert ("**Overridden by instructor:** derivation checked \\<b\\>on paper\\</b\\> *(grader said: fail 0.0/2.0)*") in text
    assert html.count("<details>") == 4  # the overridden pass gets one, beside fail, review and skip
    assert "<b>" not in html
    assert "overridden" not in render_markdown(result())


def test_summary_shows_the_override_once() -> None:
    lines = render_summary([overridden()]).splitlines()
    assert lines[1:] == [
        "    – needs jacobian-analytic — 1 check (later)",
        "    ? derivation (to review): a photo: a human must look",
        "    ✎ jacobian-analytic overridden by instructor: pass 2.0/2.0 (grader said: fail 0.0/2.0): derivation checked <b>on paper</b>",
        "    ✎ shape overridden by instructor: fail 0.0/2.0 (grader said: pass 2.0/2.0): copied",
        "total: 0 of 1 passed, 1 check to review, 2 overridden by instructor",
    ]
    assert "overridden" not in render_summary([result()])
