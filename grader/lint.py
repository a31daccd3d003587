"""``grade lint``: every problem of every rubric at once — the ones that stop it loading, and missing languages.

Loading stops at a rubric's first structural error (each is one line with its file and line); the languages are
read from the YAML itself, so a rubric that does not load still has its translations listed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from grader.errors import GraderError
from grader.i18n import LANGUAGES

TEXT_KEYS = ("title", "description", "say")  # what a learner reads, from a rubric


@dataclass(frozen=True)
class Problem:
    where: str  # "rubrics/phase-04/lab-00.yaml:12"
    text: str
    fatal: bool  # the rubric does not load


def rubric_files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    if not target.is_dir():
        raise GraderError(f"{target}: no such rubric file or folder — give a rubrics folder, e.g. grade lint rubrics/")
    return sorted(p for p in target.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))


def lint(targets: list[Path]) -> list[Problem]:
    from grader.rubric import load_rubric

    problems: list[Problem] = []
    labs: dict[str, Path] = {}
    for path in (p for target in targets for p in rubric_files(target)):
        try:
            rubric = load_rubric(path)
            if rubric.lab in labs:
                problems.append(Problem(str(path), f"lab '{rubric.lab}' is also defined in {labs[rubric.lab]} — keep one", True))
            labs.setdefault(rubric.lab, path)
        except GraderError as exc:
            text = " ".join(str(exc).splitlines())
            where, _, rest = text.partition(": ")
            problems.append(Problem(where if where.startswith(str(path)) else str(path), rest if rest and where.startswith(str(path)) else text, True))
        problems.extend(sorted(_languages(path), key=lambda p: int(p.where.rsplit(":", 1)[1])))
    return problems


def _languages(path: Path) -> Iterator[Problem]:
    """A text in one language only: it is shown as it is to every learner."""
    try:
        root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError):
        return  # said by the loader
    stack = [root] if root is not None else []
    seen = 0
    while stack and seen < 100_000:
        node = stack.pop()
        seen += 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value in TEXT_KEYS:
                    where = f"{path}:{value.start_mark.line + 1}"
                    if isinstance(value, yaml.ScalarNode) and value.value.strip():
                        yield Problem(where, f"'{key.value}' has one text for every language — give "
                                             f"{{{', '.join(f'{lang}: …' for lang in LANGUAGES)}}}", False)
                    elif isinstance(value, yaml.MappingNode):
                        given = {k.value for k, _ in value.value if isinstance(k, yaml.ScalarNode)}
                        for lang in LANGUAGES:
                            if lang not in given:
                                yield Problem(where, f"'{key.value}' has no '{lang}' text — add '{lang}: \"…\"' "
                                                     "(the other language is shown meanwhile)", False)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(node.value)


def render(problems: list[Problem], files: int) -> str:
    lines = [f"{p.where}: {p.text}" for p in problems]
    broken = len({p.where.split(":")[0] for p in problems if p.fatal})
    missing = sum(not p.fatal for p in problems)
    lines.append(f"{files} rubric file{'s' if files != 1 else ''}: {broken} that do not load, "
                 f"{missing} text{'s' if missing != 1 else ''} missing a language" if problems else
                 f"{files} rubric file{'s' if files != 1 else ''}: no problem")
    return "\n".join(lines) + "\n"
