"""``grade PATH...``: parse the flags, call the library, map errors to exit codes (here only)."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from grader import __version__
from grader.errors import GraderError

EXIT_PASSED, EXIT_NOT_PASSED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130  # 3: SandboxError.exit_code


# argparse's own error sentences (Python 3.10–3.13), said again through the catalogue; any other stays as it is
_ARGPARSE = (
    (re.compile(r"argument (?P<flag>\S+): invalid choice: (?P<value>.+?) \(choose from (?P<choices>.+)\)$"), "argparse.choice"),
    (re.compile(r"argument (?P<flag>\S+): invalid (?P<kind>int|float) value: (?P<value>.+)$"), "argparse.number"),
    (re.compile(r"argument (?P<flag>\S+): expected one argument$"), "argparse.one"),
    (re.compile(r"unrecognized arguments: (?P<args>.+)$"), "argparse.unknown"),
    (re.compile(r"the following arguments are required: (?P<args>.+)$"), "argparse.required"),
    (re.compile(r"argument (?P<flag>\S+): ignored explicit argument (?P<value>.+)$"), "argparse.ignored"),
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like every other bad input, in the reader's language
    (its usual sentences through the catalogue; its help's framework words, "usage:", as argparse gives them)."""

    lang = "en"

    def error(self, message: str) -> None:  # type: ignore[override]
        from grader.i18n import msg, say, verbatim

        said = next((msg(key, **m.groupdict()) for pattern, key in _ARGPARSE if (m := pattern.match(message))),
                    verbatim(message))
        self.exit(EXIT_USAGE, f"grade: {say(msg('cli.argparse', error=said, prog=self.prog), self.lang)}\n")


def _subcommand(argv: Sequence[str], name: str) -> bool:
    """``grade kit …`` is the subcommand — unless a folder of that name holds learners (then it is graded): the
    instructor's own ``kit/`` or ``history`` folder beside them must not turn the command into a path."""
    if argv[:1] != [name]:
        return False
    folder = Path(name)
    try:
        if any(p.name.endswith(".kit.json") for p in folder.glob("*/*")):
            return True  # a learner kit (phase-NN/<lab>.kit.json): not a learner, whatever its folders look like
        return not (_looks_like_learner(folder) or folder.is_dir() and any(_looks_like_learner(c) for c in folder.iterdir()))
    except OSError:
        return True


def _asked_language(argv: Sequence[str]) -> str:
    """``--lang`` as the command line gives it, read before parsing: the parser's own help and errors are said in
    that language too (else the locale's)."""
    for k, word in enumerate(argv):
        if word == "--":
            break
        if word == "--lang" and k + 1 < len(argv):
            return argv[k + 1]
        if word.startswith("--lang="):
            return word.partition("=")[2]
    return "auto"


def build_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import class_language, msg, say

    lang = class_language(lang)

    def words(message: Any) -> str:
        return say(message, lang).replace("%", "%%")  # argparse formats help with %

    parser = _Parser(prog="grade", description=words(msg("cli.help.description")), epilog=words(msg("cli.help.epilog")),
                     add_help=False)
    parser.lang = lang
    parser.add_argument("-h", "--help", action="help", help=words(msg("cli.help.help")))
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help=words(msg("cli.help.paths")))
    parser.add_argument("--rubrics", type=Path, default=None, metavar="DIR", help=words(msg("cli.help.rubrics")))
    parser.add_argument("--lab", default=None, metavar="LAB", help=words(msg("cli.help.lab")))
    parser.add_argument("--out", default="reports", metavar="DIR", help=words(msg("cli.help.out")))
    parser.add_argument("--json", default=None, metavar="FILE", help=words(msg("cli.help.json")))
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.junit")))
    parser.add_argument("--gradescope", action="store_true", help=words(msg("cli.help.gradescope")))
    parser.add_argument("--similar-threshold", type=_threshold, default=0.6, metavar="SHARE",
                        help=words(msg("cli.help.similar_threshold")))
    parser.add_argument("--no-git-history", action="store_true", help=words(msg("cli.help.no_git_history")))
    parser.add_argument("--gradescope-autograder", nargs="?", const="/autograder", default=None, metavar="ROOT",
                        help=words(msg("cli.help.gradescope_autograder")))
    parser.add_argument("--jobs", "-j", type=int, default=0, metavar="N", help=words(msg("cli.help.jobs")))
    parser.add_argument("--force", action="store_true", help=words(msg("cli.help.force")))
    parser.add_argument("--db", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.db")))
    parser.add_argument("--overrides", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.overrides")))
    parser.add_argument("--course", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.course")))
    parser.add_argument("--roster", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.roster")))
    parser.add_argument("--executor", choices=("local", "dask"), default="local", help=words(msg("cli.help.executor")))
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS", help=words(msg("cli.help.scheduler")))
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help=words(msg("cli.help.timeout")))
    parser.add_argument("--lang", choices=("auto", "en", "es"), default="auto", help=words(msg("cli.help.lang")))
    parser.add_argument("--watch", action="store_true", help=words(msg("cli.help.watch")))
    parser.add_argument("--doctor", action="store_true", help=words(msg("cli.help.doctor")))
    parser.add_argument("-q", "--quiet", action="store_true", help=words(msg("cli.help.quiet")))
    parser.add_argument("--version", action="version", version=f"grade {__version__}", help=words(msg("cli.help.version")))
    return parser


def _subparser(prog: str, description: Any, lang: str) -> tuple[_Parser, Callable[[Any], str]]:
    """A subcommand's parser, its help in the reader's language: ``words`` says a message there (for argparse)."""
    from grader.i18n import class_language, msg, say

    lang = class_language(lang)

    def words(message: Any) -> str:
        return say(message, lang).replace("%", "%%")

    parser = _Parser(prog=prog, description=words(description), add_help=False)
    parser.lang = lang
    parser.add_argument("-h", "--help", action="help", help=words(msg("cli.help.help")))
    return parser, words


def _with_lang(parser: _Parser, words: Callable[[Any], str]) -> _Parser:
    from grader.i18n import msg

    parser.add_argument("--lang", choices=("auto", "en", "es"), default="auto", help=words(msg("cli.history.lang")))
    return parser


def _threshold(text: str) -> float | None:
    """A share of passages between 0 and 1 (``0.6``), or ``off``."""
    if text.strip().lower() == "off":
        return None
    return _share(text)


def _share(text: str) -> float:
    """A share of passages above 0, up to 1 (``0.6``)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(f"'{text}': give a share above 0, up to 1, such as 0.6")
    return value


def build_similar_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _subparser("grade similar", msg("cli.similar.description"), lang)
    parser.add_argument("paths", nargs="+", type=Path, metavar="CLASS", help=words(msg("cli.similar.paths")))
    parser.add_argument("--lab", default=None, metavar="LAB", help=words(msg("cli.similar.lab")))
    parser.add_argument("--threshold", type=_share, default=0.6, metavar="SHARE",
                        help=words(msg("cli.similar.threshold")))
    parser.add_argument("--rubrics", type=Path, default=None, metavar="DIR", help=words(msg("cli.help.rubrics")))
    return _with_lang(parser, words)


def _similar(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        from grader.grading import find_learners, select_rubrics
        from grader.i18n import class_language, msg, say
        from grader.safety import terminal_safe
        import time

        from grader.i18n import plural
        from grader.similarity import read_class, similar_pairs

        lang = class_language(args.lang)
        rubrics = select_rubrics(_rubrics(args, lambda _: None) or _bundled(), args.lab)
        from grader.batch import class_members

        asked = find_learners(args.paths)
        learners = class_members(args.paths, asked)  # one learner: compared with their class, only their pairs listed
        names = {p.name for p in asked} if len(asked) < len(learners) else None
        threshold = args.threshold
        started = time.perf_counter()
        pairs = [p for p in similar_pairs(read_class(learners, rubrics, args.lab), threshold=threshold)
                 if names is None or {p.first, p.second} & names]
        lines = [say(plural("similar.heading", len(learners), threshold=f"{threshold * 100:.3g}",
                         seconds=f"{time.perf_counter() - started:.1f}"), lang)]
        for pair in pairs:
            shares = [msg(said, percent=round(value * 100))
                      for said, value in (("similar.share.code", pair.code), ("similar.share.prose", pair.prose))
                      if value is not None]
            lines.append(say(msg("similar.pair", lab=pair.lab, first=pair.first, second=pair.second,
                                 shares=", ".join(say(m, lang) for m in shares)), lang))
        if not pairs:
            lines.append(say(msg("similar.none"), lang))
        lines.append(say(msg("similar.footer"), lang))
        print(terminal_safe("\n".join(lines)))
    return code[0]


def build_history_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _subparser("grade history", msg("cli.history.description"), lang)
    parser.add_argument("learners", nargs="+", metavar="LEARNER", help=words(msg("cli.history.learners")))
    parser.add_argument("--lab", default=None, metavar="LAB", help=words(msg("cli.history.lab")))
    parser.add_argument("--out", default="reports", metavar="DIR", help=words(msg("cli.history.out")))
    parser.add_argument("--db", type=Path, default=None, metavar="FILE", help=words(msg("cli.history.db")))
    return _with_lang(parser, words)


@contextlib.contextmanager
def _errors(lang: str = "auto") -> Iterator[list[int]]:
    """The one place grader errors become a message, in the reader's language, and an exit code."""
    code = [EXIT_PASSED]
    try:
        yield code
    except GraderError as exc:
        from grader.i18n import class_language
        from grader.safety import terminal_safe

        print(f"grade: {terminal_safe(exc.said(class_language(lang)))}", file=sys.stderr)  # one line, whatever the input held
        code[0] = exc.exit_code
    except KeyboardInterrupt:
        from grader.i18n import class_language, msg, say

        print(f"grade: {say(msg('cli.interrupted'), class_language(lang))}", file=sys.stderr)
        code[0] = EXIT_INTERRUPTED


def _check_outputs(out: str, json_path: str | None, *, db: Path | None = None, junit: Path | None = None,
                   paths: Sequence[Path] = ()) -> None:
    """Refuse an output that cannot work, or would land inside a submission, before spending time on grading."""
    from grader.errors import UsageError
    from grader.i18n import msg

    if not out.strip():
        raise UsageError(msg("cli.out_empty"))
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(msg("cli.out_file", out=out))
    _check_writable("--out", Path(out), folder=True)
    files = [("--db", db), ("--junit", junit)]
    if json_path is not None:
        if not json_path.strip():
            raise UsageError(msg("cli.json_empty"))
        if Path(json_path).suffix.lower() in (".html", ".md"):
            raise UsageError(msg("cli.json_report", path=json_path))
        if json_path != "-" and Path(json_path).is_dir():
            raise UsageError(msg("cli.json_folder", path=json_path, example=str(Path(json_path) / "results.json")))
        if json_path != "-":
            files.append(("--json", Path(json_path)))
    for flag, path in files:
        if path is not None:
            if path.is_dir():
                raise UsageError(msg("cli.file_folder", flag=flag, path=str(path)))
            _check_writable(flag, path, folder=False)
    if paths:
        _check_outside_submissions(Path(out), [(flag, path) for flag, path in files if path is not None], paths)


def _check_writable(flag: str, path: Path, *, folder: bool) -> None:
    """Create (and remove) a file where the output will go, so a read-only place fails now, not after grading."""
    import tempfile

    from grader.errors import UsageError
    from grader.i18n import msg

    existing = Path(os.path.abspath(path if folder else path.parent))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(msg("cli.parent_file", flag=flag, path=str(path), existing=str(existing)))
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=f".grade-probe.{os.getpid()}-", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(msg("cli.not_writable", flag=flag, path=str(path), existing=str(existing),
                             error=exc.strerror or str(exc))) from None




def _check_outside_submissions(out: Path, files: Sequence[tuple[str, Path]], paths: Sequence[Path]) -> None:
    """No output may land in a learner's folder: the next run would grade (and copy, and hash) it as their work.

    Only the outputs' own ancestors are looked at, so a class of thousands costs nothing here."""
    from grader.errors import UsageError
    from grader.batch import CLASS_FILES
    from grader.grading import is_learner
    from grader.i18n import msg

    roots = [p.resolve() for p in paths if p.is_dir()]

    def learner_above(target: Path) -> Path | None:
        for ancestor in [target, *target.parents]:
            if any(ancestor == root or root in ancestor.parents for root in roots) and ancestor.is_dir() \
                    and is_learner(ancestor):
                return ancestor
        return None

    out_resolved = out.resolve()
    for flag, path in [("--out", out), *files]:
        target = path.resolve()
        learner = learner_above(target)
        if learner is not None:
            outside = os.path.relpath(learner.parent / ("reports" if flag == "--out" else "results" + path.suffix))
            raise UsageError(msg("cli.is_learner" if target == learner else "cli.in_learner", flag=flag, path=str(path),
                                 learner=str(learner), outside=outside))
    for root in roots:
        learners = [root] if is_learner(root) else [root / name for name in CLASS_FILES
                                                      if (root / name).is_dir() and is_learner(root / name)]
        for learner in learners:
            if learner.name in CLASS_FILES:
                raise UsageError(msg("cli.class_name", learner=str(learner), name=learner.name))
        holder = root.parent if is_learner(root) else root
        if out_resolved == holder:
            first = root if is_learner(root) else next(
                (p for p in sorted(root.iterdir()) if p.is_dir() and is_learner(p)), None)
            raise UsageError(msg("cli.out_in_learner", out=str(out), name=first.name, folder=str(first)) if first else
                             msg("cli.out_in_learners", out=str(out), folder=str(root)))


def main(argv: Sequence[str] | None = None) -> int:
    """``grade …``; output piped into ``head`` that closes early ends the command quietly, as other tools do."""
    try:
        return _main(argv)
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own flush at exit must not fail
        except (OSError, ValueError):
            pass
        return EXIT_NOT_PASSED


def _main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 terminal must not turn "✗" into a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = list(sys.argv[1:] if argv is None else argv)
    asked = _asked_language(argv)
    if _subcommand(argv, "history"):
        return _history(build_history_parser(asked).parse_args(argv[1:]))
    if _subcommand(argv, "similar"):
        return _similar(build_similar_parser(asked).parse_args(argv[1:]))
    if _subcommand(argv, "lint"):
        lint_args = build_lint_parser(asked).parse_args(argv[1:])
        return _lint([str(t) for t in lint_args.rubrics], lint_args.lang)
    if _subcommand(argv, "kit"):
        return _kit(build_kit_parser(asked).parse_args(argv[1:]))
    if _subcommand(argv, "gradescope-zip"):
        return _gradescope_zip(build_zip_parser(asked).parse_args(argv[1:]))
    for name, (builder, command) in _TERM_COMMANDS.items():
        if _subcommand(argv, name):
            return command(builder(asked).parse_args(argv[1:]))
    args = build_parser(asked).parse_args(argv)
    if args.doctor:
        return _doctor(args.lang)
    if args.gradescope_autograder is not None:
        return _autograder(args)
    from grader.i18n import msg

    with _errors(args.lang) as code:
        if not args.paths:
            raise _usage(msg("cli.no_paths"))
        if args.watch:
            from grader.watch import watch

            if len(args.paths) == 1 and not args.paths[0].exists():
                from grader.grading import find_learners

                find_learners(args.paths)  # says what is wrong with the path, as grading it would
            if len(args.paths) != 1 or not _looks_like_learner(args.paths[0]):
                raise _usage(msg("cli.watch_one"))
            code[0] = watch(Path(args.paths[0]), lambda quiet: _grade_once(args, argv, quiet),
                            lambda results: _terminal_language(args.lang, results))
        else:
            results = _grade_once(args, argv)
            code[0] = EXIT_PASSED if all(r.passed for r in results) else EXIT_NOT_PASSED
    return code[0]


def _grade_once(args: argparse.Namespace, argv: Sequence[str], quiet_summary: bool = False) -> list[Any]:
    """One run as the command line asks: grade, write the files, print the summary (unless ``quiet_summary``)."""
    if args.jobs == 1 or (len(args.paths) == 1 and _looks_like_learner(args.paths[0])):
        from grader import zygote

        zygote.get()  # the fork server imports numpy while this process imports the rest
    from grader import progress
    from grader.batch import Options, grade_class
    from grader.i18n import Message, class_language, msg, say
    from grader.reports import render_class_summary, render_summary
    from grader.results import dumps, write_json

    limits = _limits(args)
    if args.jobs < 0:
        raise _usage(msg("cli.jobs", jobs=args.jobs))
    if args.executor == "dask":
        from grader.cluster import check_scheduler

        check_scheduler(args.scheduler)
    elif args.scheduler is not None:
        raise _usage(msg("cli.scheduler_alone", scheduler=args.scheduler))
    _check_outputs(args.out, args.json, db=args.db, junit=args.junit, paths=args.paths)
    from grader.atomicio import remove_stale_temps

    remove_stale_temps(Path(args.out))  # what a killed run left behind; never a live run's

    from grader.safety import terminal_safe

    one_learner = len(args.paths) == 1 and _looks_like_learner(args.paths[0])
    held: list[Message | str] = []  # one learner's notes wait for their deliverable's language

    def say_note(text: Message | str, lang: str) -> None:
        words = say(msg("cli.note", note=text), lang)
        print(f"grade: {terminal_safe(' '.join(words.split()))}", file=sys.stderr)

    def note(text: Message | str) -> None:
        if args.quiet:
            return
        if one_learner and args.lang == "auto":
            held.append(text)
        else:
            say_note(text, class_language(args.lang))

    options = Options(out=Path(args.out), jobs=args.jobs, force=args.force, executor=args.executor,
                      scheduler=args.scheduler, db=args.db, overrides=args.overrides, course=args.course,
                      roster=args.roster, gradescope=args.gradescope,
                      junit=args.junit, lang=args.lang, argv=tuple(argv),
                      also_writes=(Path(args.json),) if args.json not in (None, "-") else (),
                      similar=args.similar_threshold, history=not args.no_git_history)
    rubrics_dir = _rubrics(args, note)
    try:
        run = grade_class(args.paths, options, rubrics_dir=rubrics_dir or _bundled(), lab=args.lab, limits=limits,
                          note=note, progress=progress.choose(args.quiet or one_learner, lang=class_language(args.lang)))
    except BaseException:  # what was noted still explains the error: said in the class's language
        for text in held:
            say_note(text, class_language(args.lang))
        raise
    results = list(run.results)
    for text in held:
        say_note(text, _terminal_language(args.lang, results))
    to_stdout = args.json == "-"
    chosen = None if args.lang == "auto" else args.lang
    if to_stdout:
        sys.stdout.write(dumps(results, chosen))
    elif args.json is not None:
        write_json(Path(args.json), results, chosen)
    if not args.quiet and not quiet_summary:
        learners = len({r.learner for r in results})
        text = (render_summary(results, run.report_paths, detailed=learners == 1, lang=_terminal_language(args.lang, results))
                if learners <= _LIST_UP_TO else render_class_summary(results, run, _terminal_language(args.lang, results)))
        print(terminal_safe(text), end="", file=sys.stderr if to_stdout else sys.stdout)
    return results




def _terminal_language(lang: str, results: Sequence[Any]) -> str:
    """One learner reads their own results in their deliverable's language; a class is the instructor's, in the
    locale's (``LANG``)."""
    from grader.i18n import class_language

    learners = {r.learner for r in results}
    spoken = {r.language for r in results if r.language}
    if lang == "auto" and len(learners) == 1 and len(spoken) == 1:
        return spoken.pop()
    return class_language(lang)


_LIST_UP_TO = 20  # learners: above this the terminal gets the class totals and index.html, not every line


def _bundled() -> Path:
    from grader.grading import bundled_rubrics

    return bundled_rubrics()


def _usage(message: Any) -> GraderError:
    from grader.errors import UsageError

    return UsageError(message)


def _limits(args: argparse.Namespace) -> Any:
    from grader.i18n import msg
    from grader.sandbox import Limits

    if args.timeout is not None and not 0.05 <= args.timeout <= 3600:
        raise _usage(msg("cli.timeout", seconds=args.timeout))
    return Limits() if args.timeout is None else Limits(call_seconds=args.timeout)


def _looks_like_learner(path: Path) -> bool:
    """A learner folder (phase-NN inside): one learner, graded in this process, no progress bar."""
    from grader.grading import is_learner

    try:
        return path.is_dir() and is_learner(path)
    except OSError:
        return False


def _rubrics(args: argparse.Namespace, note: Any) -> Path | None:
    """``--rubrics``, else the bundled ones — never a ``./rubrics`` picked up implicitly: a rubric's reference module
    runs in the grader, and a folder beside the learners' (or inside one) may be a learner's."""
    from grader.i18n import msg
    from grader.safety import inside_any

    if args.rubrics is not None:
        graded = inside_any(args.rubrics, args.paths)
        if graded is not None:
            raise _usage(msg("cli.rubrics_inside", path=str(args.rubrics), graded=str(graded)))
        return args.rubrics
    here = Path("rubrics")
    if here.is_dir() and here.resolve() != _bundled().resolve():
        note(msg("note.rubrics_unused", path=str(here)))
    return None


def build_lint_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _subparser("grade lint", msg("cli.lint.description"), lang)
    parser.add_argument("rubrics", nargs="*", type=Path, metavar="RUBRICS", help=words(msg("cli.lint.rubrics")))
    return _with_lang(parser, words)


def _lint(paths: Sequence[str], lang: str = "auto") -> int:
    """Every rubric problem at once; exit 2 when a rubric does not load, 1 when only languages are missing."""
    from grader.i18n import class_language
    from grader.lint import lint, render, rubric_files

    with _errors(lang) as code:
        targets = [Path(p) for p in paths] or [_bundled()]
        files = sum(len(rubric_files(t)) for t in targets)
        problems = lint(targets)
        from grader.safety import terminal_safe

        print(terminal_safe(render(problems, files, lang=class_language(lang))), end="")
        code[0] = 2 if any(p.fatal for p in problems) else 1 if problems else 0
    return code[0]


def build_kit_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _subparser("grade kit", msg("cli.kit.description"), lang)
    parser.add_argument("rubrics", nargs="+", type=Path, metavar="RUBRIC", help=words(msg("cli.zip.rubrics")))
    parser.add_argument("--out", type=Path, default=Path("kit"), metavar="DIR", help=words(msg("cli.kit.out")))
    return _with_lang(parser, words)


def _kit(args: argparse.Namespace) -> int:
    """The learner kit: public checks with the reference's values as data, no reference code, no hidden input."""
    with _errors(args.lang) as code:
        from grader.i18n import class_language, msg, say
        from grader.kit import build_kit, is_kit
        from grader.rubric import discover_rubrics
        from grader.safety import terminal_safe

        lang = class_language(args.lang)
        rubrics = [r for target in args.rubrics for r in discover_rubrics(target)]
        if any(is_kit(r.path) for r in rubrics):
            raise _usage(msg("cli.kit.from_kit"))
        zipped = args.out.suffix.lower() == ".zip"
        if args.out.exists() and not args.out.is_dir() and not zipped:
            raise _usage(msg("cli.kit.out_file", out=str(args.out)))
        import tempfile

        from grader.kit import load_kit, write_zip

        with tempfile.TemporaryDirectory(prefix="grader-kit-") as tmp:
            folder = Path(tmp) if zipped else args.out
            for rubric in rubrics:
                path, notes = build_kit(rubric, folder)
                kit = load_kit(path)
                shown = args.out / path.relative_to(folder) if not zipped else Path(f"{args.out}:{path.relative_to(folder)}")
                print(terminal_safe(say(msg("cli.kit.wrote", path=str(shown), lab=rubric.lab, n=len(kit.checks),
                                            held=kit.held_back, narrowed=kit.narrowed), lang)))
                for note in notes:
                    print(terminal_safe(f"  {say(note, lang)}"), file=sys.stderr)
            if zipped:
                write_zip(folder, args.out)
    return code[0]


def build_zip_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _subparser("grade gradescope-zip", msg("cli.zip.description"), lang)
    parser.add_argument("rubrics", nargs="+", type=Path, metavar="RUBRIC", help=words(msg("cli.zip.rubrics")))
    parser.add_argument("--out", type=Path, default=Path("autograder.zip"), metavar="FILE", help=words(msg("cli.zip.out")))
    parser.add_argument("--course", type=Path, default=None, metavar="FILE", help=words(msg("cli.zip.course")))
    return _with_lang(parser, words)


def _gradescope_zip(args: argparse.Namespace) -> int:
    """One upload for Gradescope's "Configure autograder": the grader, the rubrics and the two scripts."""
    with _errors(args.lang) as code:
        from grader.autograder_zip import build_zip
        from grader.i18n import class_language, msg, say
        from grader.rubric import discover_rubrics
        from grader.safety import terminal_safe

        rubrics = [r for target in args.rubrics for r in discover_rubrics(target)]
        from grader.kit import is_kit

        if any(is_kit(r.path) for r in rubrics):
            raise _usage(msg("zip.from_kit"))
        if args.course is not None and not args.course.is_file():
            raise _usage(msg("term.missing", flag="--course", path=str(args.course), name="course.yaml"))
        names = build_zip(rubrics, args.out, args.course)
        print(terminal_safe(say(msg("cli.zip.wrote", out=str(args.out), n=len(names), labs=", ".join(r.lab for r in rubrics)),
                                class_language(args.lang))))
    return code[0]


def _history(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        from grader.history import render_history
        from grader.i18n import msg
        from grader.safety import terminal_safe
        from grader.store import Store

        import dataclasses

        from grader.model import LAB_NAME
        from grader.term import class_state, known_name

        db = _gradebook(args)
        if args.lab is not None and not LAB_NAME.match(args.lab):
            raise _usage(msg("cli.history.bad_lab", lab=args.lab))
        store = Store.open(db)
        try:
            state = class_state(store)
            final = {(r.learner, r.lab): r.score for r in state.results}
            passed = {(r.learner, r.lab): r.passed for r in state.results}
            for learner in args.learners:
                name = Path(learner).name or Path(learner).resolve().name
                try:
                    name = known_name(name, [r.learner for r in state.results])
                except GraderError:
                    pass  # "no grading history for …" says it, with how to make one
                rows = [dataclasses.replace(row, instructor_score=final.get((name, row.lab)),
                                            instructor_passed=passed.get((name, row.lab))) if row.current else row
                        for row in store.history(name, args.lab)]
                print(terminal_safe(render_history(rows, name, db=db, lab=args.lab,
                                                   lang=_terminal_language(args.lang, []))), end="")
        finally:
            store.close()
    return code[0]


def _gradebook(args: argparse.Namespace) -> Path:
    """``--db``, else ``<out>/gradebook.sqlite``: the gradebook a subcommand reads, which must exist."""
    from grader.batch import HISTORY
    from grader.i18n import msg

    db = args.db or Path(args.out) / HISTORY
    if not db.is_file():
        raise _usage(msg("cli.no_history_db", db=str(db)) if args.db else msg("cli.no_history", db=str(db)))
    return db


def _doctor(lang: str) -> int:
    with _errors(lang) as code:
        from grader.i18n import class_language
        from grader.layers import doctor_text

        print(doctor_text(lang=class_language(lang)), end="")
    return code[0]


def _autograder(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        from grader.autograder import run_autograder

        code[0] = run_autograder(Path(args.gradescope_autograder), rubrics_dir=args.rubrics, lab=args.lab,
                                 limits=_limits(args), lang=args.lang)
    return code[0]


# ----------------------------------------------------------------------------- the instructor's term

def _term_parser(prog: str, description: Any, lang: str) -> tuple[_Parser, Callable[[Any], str]]:
    """What every gradebook subcommand shares: which gradebook, and the class files that override the recorded ones."""
    from grader.i18n import msg

    parser, words = _subparser(prog, description, lang)
    parser.add_argument("--out", default="reports", metavar="DIR", help=words(msg("cli.history.out")))
    return _class_flags(parser, words), words


def _class_flags(parser: _Parser, words: Callable[[Any], str]) -> _Parser:
    """The gradebook and the class files that override the ones its last run recorded."""
    from grader.i18n import msg

    parser.add_argument("--db", type=Path, default=None, metavar="FILE", help=words(msg("cli.history.db")))
    parser.add_argument("--overrides", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.overrides")))
    parser.add_argument("--course", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.course")))
    parser.add_argument("--roster", type=Path, default=None, metavar="FILE", help=words(msg("cli.help.roster")))
    return parser


def _state(args: argparse.Namespace) -> Any:
    from grader.store import Store
    from grader.term import class_state

    with Store.open(_gradebook(args)) as store:
        return class_state(store, {"overrides": args.overrides, "course": args.course, "roster": args.roster})


def _roster_of(state: Any) -> Any:
    if state.files.roster is None:
        return None
    from grader.roster import load_roster

    return load_roster(state.files.roster)


def _print(text: str) -> None:
    from grader.safety import terminal_safe

    print(terminal_safe(text), end="" if text.endswith("\n") else "\n")


def build_review_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _term_parser("grade review", msg("cli.review.description"), lang)
    parser.add_argument("target", nargs="*", metavar="LEARNER [LAB CHECK]", help=words(msg("cli.review.target")))
    decision = parser.add_mutually_exclusive_group()
    decision.add_argument("--pass", dest="decide", action="store_const", const="pass", help=words(msg("cli.review.pass")))
    decision.add_argument("--fail", dest="decide", action="store_const", const="fail", help=words(msg("cli.review.fail")))
    decision.add_argument("--points", type=float, default=None, metavar="N", help=words(msg("cli.review.points")))
    parser.add_argument("--reason", default="", metavar="TEXT", help=words(msg("cli.review.reason")))
    parser.add_argument("--by", default="", metavar="NAME", help=words(msg("cli.review.by")))
    return _with_lang(parser, words)


def _review(args: argparse.Namespace) -> int:
    """List the queue, or record one decision in the overrides file."""
    with _errors(args.lang) as code:
        from grader.i18n import class_language, msg, say
        from grader.model import Status
        from grader.reports import format_points
        from grader.review import decision_target, record_decision, review_queue

        lang = class_language(args.lang)
        state = _state(args)
        deciding = args.decide is not None or args.points is not None
        if not deciding:
            items = review_queue(state, args.target)
            if not items:
                _print(say(msg("review.empty"), lang))
                return code[0]
            _print(say(msg("review.head", n=len(items)), lang))
            for item in items:
                held = say(msg("review.held"), lang) if item.held else say(msg("review.provisional"), lang)
                _print(f"  {item.learner}  {item.lab}  {item.check}  {format_points(item.points)}/"
                       f"{format_points(item.max_score)} {held}")
                _print(f"      {' '.join(say(item.look_at, lang).split())}")
                report = Path(args.out) / item.learner / f"{item.lab.replace('/', '-')}.html"
                _print(f"      {say(msg('summary.report'), lang)}: {report}")
                if state.files.folder is not None:
                    _print(f"      {say(msg('review.files'), lang)}: {state.files.folder / item.learner / item.lab.split('/')[0]}")
            _print(say(msg("review.how"), lang))
            return code[0]
        if len(args.target) != 3:
            raise _usage(msg("review.three"))
        learner, lab, check = args.target
        status = Status.PASS if args.decide == "pass" else Status.FAIL if args.decide == "fail" else None
        target = decision_target(state, args.overrides)
        line, was_review = record_decision(state, target, learner, lab, check, status=status, points=args.points,
                                           reason=args.reason, by=args.by)
        _print(say(msg("review.recorded", at=f"{target}:{line}", learner=learner, lab=lab, check=check,
                       out=args.out), lang))
        if not was_review:
            _print(say(msg("review.was_not_review", check=check), lang))
    return code[0]


def build_query_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _term_parser("grade query", msg("cli.query.description"), lang)
    ask = parser.add_mutually_exclusive_group(required=True)
    ask.add_argument("--check", default=None, metavar="ID", help=words(msg("cli.query.check")))
    ask.add_argument("--not-passed", action="store_true", help=words(msg("cli.query.not_passed")))
    ask.add_argument("--review", action="store_true", help=words(msg("cli.query.review")))
    ask.add_argument("--changed", action="store_true", help=words(msg("cli.query.changed")))
    ask.add_argument("--late", action="store_true", help=words(msg("cli.query.late")))
    ask.add_argument("--causes", default=None, metavar="ID", help=words(msg("cli.query.causes")))
    parser.add_argument("--status", action="append", default=[], metavar="STATUS", help=words(msg("cli.query.status")))
    parser.add_argument("--lab", default=None, metavar="LAB", help=words(msg("cli.query.lab")))
    parser.add_argument("--json", action="store_true", help=words(msg("cli.query.json")))
    return _with_lang(parser, words)


def _query(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        import json

        from grader import query
        from grader.i18n import Message, class_language, joined, msg, plural, say
        from grader.model import LAB_NAME, Status
        from grader.reports import format_points
        from grader.results import plain

        lang = class_language(args.lang)
        if args.lab is not None and not LAB_NAME.match(args.lab):
            raise _usage(msg("cli.history.bad_lab", lab=args.lab))
        if args.status and args.check is None:
            raise _usage(msg("query.status_alone"))
        statuses = [word for given in args.status for word in given.split(",") if word]
        state = _state(args)
        if args.lab is not None:
            from grader.store import Store

            with Store.open(_gradebook(args)) as store:
                known = sorted(set(store.labs()) | {r.lab for r in state.results})
            if args.lab not in known:
                from grader.overrides import did_you_mean

                raise _usage(msg("query.unknown_lab", lab=args.lab, labs=", ".join(known),
                                 fix=did_you_mean(args.lab, known, cutoff=0.8)))
        if args.check is not None:
            rows = query.with_status(state, args.check, statuses, args.lab)
        elif args.not_passed:
            from grader.store import Store

            with Store.open(_gradebook(args)) as store:
                labs = sorted(store.labs()) or sorted({r.lab for r in state.results})
            rows = query.not_passed(state, args.lab, labs, sorted({r.learner for r in state.results}))
        elif args.review:
            rows = query.needs_review(state)
        elif args.changed:
            rows = query.changed(state)
        elif args.late:
            rows = [r for r in query.late(state) if args.lab is None or r.lab == args.lab]
        else:
            rows = query.causes(state, args.causes, args.lab)

        def words(value: Any) -> str:
            return " ".join(say(value, lang).split()) if isinstance(value, Message) else str(value)

        if args.json:
            sys.stdout.write(json.dumps([{"learner": r.learner, "lab": r.lab, "check": r.check, "status": r.status,
                                          "score": r.score, "max_score": r.max_score, "detail": words(r.detail),
                                          **({"message_id": r.detail.id, "params": plain(r.detail.to_dict()["params"])}
                                             if isinstance(r.detail, Message) else {}), **plain(r.extra)}
                                         for r in rows], ensure_ascii=False, indent=2) + "\n")
            return code[0]
        if not rows:
            _print(say(msg("query.none"), lang))
            return code[0]
        shown = {"missing": msg("query.status.missing"), "not-passed": msg("query.status.not_passed"),
                 "late": msg("query.status.late"), **{s.value: msg("status." + s.value) for s in Status}}
        for r in rows:
            points = f"{format_points(r.score)}/{format_points(r.max_score)}" if r.score is not None else ""
            count = f"×{r.extra['count']}" if "count" in r.extra else ""
            status = words(shown[r.status]) if r.status in shown and not count else r.status
            cells = [r.learner if not count else count, r.lab, r.check, status, points, words(r.detail),
                     f"({r.learner})" if count else ""]
            _print("  ".join(cell for cell in cells if cell))
        learners = len({r.learner for r in rows}) if args.causes is None else sum(r.extra["count"] for r in rows)
        _print(say(joined(plural("query.rows", len(rows)), plural("query.learners", learners), sep=", "), lang))
    return code[0]


def build_export_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _term_parser("grade export", msg("cli.export.description"), lang)
    parser.add_argument("format", choices=("canvas", "moodle", "csv"), help=words(msg("cli.export.format")))
    parser.add_argument("--file", type=Path, default=None, metavar="FILE", help=words(msg("cli.export.file")))
    return _with_lang(parser, words)


def _export(args: argparse.Namespace) -> int:
    """An LMS's gradebook import: every lab a column, every learner a row (roster rows with no folder too)."""
    with _errors(args.lang) as code:
        from grader.atomicio import atomic_write_text
        from grader.exports import BOM, gradebook_csv
        from grader.i18n import class_language, msg, say
        from grader.lms import LabColumn, canvas_csv, class_grades, moodle_csv, moodle_notes
        from grader.store import Store

        lang = class_language(args.lang)
        state = _state(args)
        roster = _roster_of(state)
        with Store.open(_gradebook(args)) as store:
            known = store.labs()
        for r in state.results:
            known.setdefault(r.lab, ({lang: say(r.title, lang)}, r.max_score))
        labs = [LabColumn(lab, title.get(lang) or next(iter(title.values()), lab), most) for lab, (title, most) in sorted(known.items())]
        target = args.file or Path(args.out) / f"{args.format}.csv"
        from grader.term import learner_holding

        holder = learner_holding(target)
        if holder is not None:
            raise _usage(msg("term.output_in_learner", path=str(target), learner=str(holder)))
        if target.is_dir() or (target.parent.exists() and not target.parent.is_dir()):
            raise _usage(msg("cli.file_folder", flag="--file", path=str(target)) if target.is_dir() else
                         msg("cli.parent_file", flag="--file", path=str(target), existing=str(target.parent)))
        if args.format == "csv":
            text = BOM + gradebook_csv(state.results, {c.lab: c.max_score for c in labs}, roster)
        else:
            grades = class_grades(state.results, roster)
            text = canvas_csv(grades, labs) if args.format == "canvas" else moodle_csv(grades, labs)
            if args.format == "moodle":
                for note in moodle_notes(grades):
                    print(f"grade: {' '.join(say(note, lang).split())}", file=sys.stderr)
            if roster is None:
                print(f"grade: {say(msg('export.no_roster', format=args.format), lang)}", file=sys.stderr)
        atomic_write_text(target, text, hint=msg("write.hint.gradebook"))
        learners = len({r.learner for r in state.results} | ({s.learner for s in roster.students} if roster else set()))
        _print(say(msg("export.wrote", path=str(target), format=args.format, n=learners, labs=len(labs)), lang))
    return code[0]


def build_release_parser(lang: str = "auto") -> argparse.ArgumentParser:
    from grader.i18n import msg

    parser, words = _subparser("grade release", msg("cli.release.description"), lang)
    parser.add_argument("learners", nargs="*", metavar="LEARNER", help=words(msg("cli.release.learners")))
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help=words(msg("cli.release.out")))
    parser.add_argument("--reports", default="reports", metavar="DIR", help=words(msg("cli.release.reports")))
    return _with_lang(_class_flags(parser, words), words)


def _release(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        from grader.i18n import class_language, plural, say
        from grader.release import check_release_target, release

        lang = class_language(args.lang)
        args.out, reports = args.out, Path(args.reports)
        check_release_target(args.out, reports)
        state = _state(argparse.Namespace(**{**vars(args), "out": reports}))
        written = release(state, args.out, args.learners, args.lang, _roster_of(state))
        _print(say(plural("release.wrote", len(written), out=str(args.out)), lang))
    return code[0]


_TERM_COMMANDS: dict[str, tuple[Callable[[str], argparse.ArgumentParser], Callable[[argparse.Namespace], int]]] = {
    "review": (build_review_parser, _review),
    "query": (build_query_parser, _query),
    "export": (build_export_parser, _export),
    "release": (build_release_parser, _release),
}
