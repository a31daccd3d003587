"""``grade lint``: every problem of every rubric at once — the ones that stop it loading, and missing languages.

The loader validates each independent part of a rubric on its own (its top-level keys, each function, each input
set, each check, each cause, the notation), so every problem of a rubric is listed in one run, one line each with its
file and line, sorted by line. A few problems make what follows them meaningless and stop that rubric there: a YAML
error (or a file that is not UTF-8 text), a missing ``reference`` key, and a reference module that is missing or fails
to import; the notation is read up to its first problem, and a check of an unknown kind, or a function whose
reference is missing, is not read further. The languages are read from the YAML itself, so a rubric that does not
load still has its translations listed. Every line is a catalogue message, said in the instructor's language.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from grader.errors import GraderError
from grader.i18n import LANGUAGES, Message, class_language, msg, plural, say

TEXT_KEYS = ("title", "description", "say")  # what a learner reads, from a rubric


@dataclass(frozen=True)
class Problem:
    where: str  # "rubrics/phase-04/lab-00.yaml:12"
    message: Message
    fatal: bool  # the rubric does not load
    file: str = ""  # the rubric it belongs to
    line: int = 0  # its line in that rubric (0: the file as a whole)

    @property
    def text(self) -> str:
        """The problem in English."""
        return say(self.message, "en")


def rubric_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise GraderError(msg("rubric.at", where=str(target), problem=msg("lint.no_such_target")))
    from grader.rubric import NOT_RUBRICS

    return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml") and p.name not in NOT_RUBRICS)


def lint(targets: list[Path]) -> list[Problem]:
    from grader.rubric import RubricProblem, load_rubric

    problems: list[Problem] = []
    labs: dict[str, Path] = {}
    for path in (p for target in targets for p in rubric_files(target)):
        found: list[Problem] = []
        try:
            rubric = load_rubric(path)
            if rubric.lab in labs:
                found.append(Problem(str(path), msg("rubric.lab_twice", lab=rubric.lab, other=str(labs[rubric.lab])), True,
                                     str(path)))
            labs.setdefault(rubric.lab, path)
        except RubricProblem as exc:
            for each in exc.problems:
                if each.file == str(path):
                    found.append(Problem(each.where, each.problem, True, str(path), each.line))
                else:  # in the reference module: its own file and line, under the rubric's name
                    found.append(Problem(str(path), each.message, True, str(path)))
        except GraderError as exc:
            found.append(Problem(str(path), exc.message, True, str(path)))
        found.extend(_languages(path))
        problems.extend(sorted(found, key=lambda p: p.line))
    return problems


def _languages(path: Path) -> Iterator[Problem]:
    """A text in one language only: it is shown as it is to every learner."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError, RecursionError):
        return  # said by the loader
    stack = [root] if root is not None else []
    seen = 0
    while stack and seen < 100_000:
        node = stack.pop()
        seen += 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in TEXT_KEYS:
                    line = value.start_mark.line + 1
                    where = f"{path}:{line}"
                    if isinstance(value, yaml.ScalarNode) and value.value.strip():
                        yield Problem(where, msg("lint.one_text", key=key.value,
                                                 languages="{" + ", ".join(f"{lang}: …" for lang in LANGUAGES) + "}"), False, str(path), line)
                    elif isinstance(value, yaml.MappingNode):
                        given = {k.value for k, _ in value.value if isinstance(k, yaml.ScalarNode)}
                        for lang in LANGUAGES:
                            if lang not in given:
                                yield Problem(where, msg("lint.no_language", key=key.value, lang=lang), False, str(path), line)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def render(problems: list[Problem], files: int, lang: str | None = None) -> str:
    """One line per problem and a summary, in ``lang`` (default: the instructor's, from the locale)."""
    lang = class_language(lang or "auto")
    lines = [" ".join(say(msg("rubric.at", where=p.where, problem=p.message), lang).split()) for p in problems]
    broken = len({p.file or p.where for p in problems if p.fatal})
    missing = sum(not p.fatal for p in problems)
    counted = plural("lint.files", files)
    summary = msg("lint.summary", files=counted, broken=plural("lint.broken", broken), missing=plural("lint.missing", missing)) \
        if problems else msg("lint.clean", files=counted)
    lines.append(say(summary, lang))
    return "\n".join(lines) + "\n"
