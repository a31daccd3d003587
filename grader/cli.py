"""``grade PATH...``: parse the flags, call the library, map errors to exit codes (here only)."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from grader import __version__
from grader.errors import GraderError

EXIT_PASSED, EXIT_NOT_PASSED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130  # 3: SandboxError.exit_code


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"grade: {message} (see grade --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="grade",
        description="Grade learners' lab submissions against YAML rubrics, in isolated worker processes.",
        epilog="Also: grade history LEARNER (attempts over time). Exit codes: 0 every graded lab passed, "
               "1 one did not, 2 bad usage, path or rubric, 3 the sandbox could not start, 130 interrupted.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                        help="a learner folder (it has phase-NN/ folders) or a folder of learners")
    parser.add_argument("--rubrics", type=Path, default=None, metavar="DIR",
                        help="folder of rubric YAML files (default: ./rubrics, else the bundled ones)")
    parser.add_argument("--lab", default=None, metavar="LAB", help="grade only this lab, e.g. phase-04/lab-00")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="where the reports and class outputs go (default: reports/)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the results as JSON (- for standard output; the summary then goes to stderr)")
    parser.add_argument("--junit", type=Path, default=None, metavar="FILE",
                        help="also write JUnit XML: one testcase per learner and check")
    parser.add_argument("--gradescope", action="store_true",
                        help="also write a Gradescope results.json per learner: <out>/<learner>/results.json")
    parser.add_argument("--gradescope-autograder", nargs="?", const="/autograder", default=None, metavar="ROOT",
                        help="run inside a Gradescope container: grade ROOT/submission, write ROOT/results/results.json")
    parser.add_argument("--jobs", "-j", type=int, default=0, metavar="N",
                        help="learners graded at once (default: twice the cores)")
    parser.add_argument("--force", action="store_true",
                        help="grade again even learners whose submission, rubric and grader are unchanged")
    parser.add_argument("--db", type=Path, default=None, metavar="FILE",
                        help="the gradebook history (SQLite; default: <out>/gradebook.sqlite)")
    parser.add_argument("--overrides", type=Path, default=None, metavar="FILE",
                        help="instructor overrides (default: overrides.yaml in the class folder, when there)")
    parser.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="where learners are graded: this machine (default) or a Dask cluster")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="the Dask scheduler for --executor dask, e.g. tcp://scheduler:8786")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall-time limit for one call of a learner function (default: 10)")
    parser.add_argument("--lang", choices=("auto", "en", "es"), default="auto",
                        help="the reports' language: en, es, or auto (each learner in the language of their deliverable; "
                             "the class's own text in the locale's, LANG)")
    parser.add_argument("--watch", action="store_true",
                        help="grade again each time a file of the submission is saved, and say what changed (Ctrl-C stops)")
    parser.add_argument("--doctor", action="store_true", help="say which sandbox layers protect this machine, and exit")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing; rely on the exit code and files")
    parser.add_argument("--version", action="version", version=f"grade {__version__}")
    return parser


def build_history_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="grade history", description="A learner's attempts over time, from the gradebook history.")
    parser.add_argument("learners", nargs="+", metavar="LEARNER", help="a learner folder or name (learners/borja, borja)")
    parser.add_argument("--lab", default=None, metavar="LAB", help="only this lab")
    parser.add_argument("--out", default="reports", metavar="DIR", help="the --out of the runs (default: reports/)")
    parser.add_argument("--db", type=Path, default=None, metavar="FILE", help="the history file (default: <out>/gradebook.sqlite)")
    parser.add_argument("--lang", choices=("auto", "en", "es"), default="auto", help="en, es, or auto (the locale's, LANG)")
    return parser


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

    if not out.strip():
        raise UsageError("--out needs a folder for the reports, e.g. --out reports")
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out}: a file is there, not a folder — choose another --out")
    _check_writable("--out", Path(out), folder=True)
    files = [("--db", db), ("--junit", junit)]
    if json_path is not None:
        if not json_path.strip():
            raise UsageError("--json needs a file name (or - for standard output)")
        if Path(json_path).suffix.lower() in (".html", ".md"):
            raise UsageError(f"--json {json_path}: that name is for a report — give a .json file name")
        if json_path != "-" and Path(json_path).is_dir():
            raise UsageError(f"--json {json_path}: that is a folder — give a file name such as {Path(json_path) / 'results.json'}")
        if json_path != "-":
            files.append(("--json", Path(json_path)))
    for flag, path in files:
        if path is not None:
            if path.is_dir():
                raise UsageError(f"{flag} {path}: that is a folder — give a file name")
            _check_writable(flag, path, folder=False)
    if paths:
        _check_outside_submissions(Path(out), [(flag, path) for flag, path in files if path is not None], paths)


def _check_writable(flag: str, path: Path, *, folder: bool) -> None:
    """Create (and remove) a file where the output will go, so a read-only place fails now, not after grading."""
    import tempfile

    from grader.errors import UsageError

    existing = Path(os.path.abspath(path if folder else path.parent))
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{flag} {path}: {existing} is a file, not a folder — choose another {flag}")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=f".grade-probe.{os.getpid()}-", suffix=".tmp")
        os.close(handle)
        os.unlink(probe)
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write in {existing} ({exc.strerror or exc}) — choose another {flag}") from None




def _check_outside_submissions(out: Path, files: Sequence[tuple[str, Path]], paths: Sequence[Path]) -> None:
    """No output may land in a learner's folder: the next run would grade (and copy, and hash) it as their work.

    Only the outputs' own ancestors are looked at, so a class of thousands costs nothing here."""
    from grader.errors import UsageError
    from grader.batch import CLASS_FILES
    from grader.grading import is_learner

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
            where = "is the learner folder" if target == learner else "is inside the learner folder"
            outside = os.path.relpath(learner.parent / ("reports" if flag == "--out" else "results" + path.suffix))
            raise UsageError(f"{flag} {path}: {where} {learner} — the next run would grade what is written there as "
                             f"part of that submission; choose a place outside it, e.g. {flag} {outside}")
    for root in roots:
        learners = [root] if is_learner(root) else [root / name for name in CLASS_FILES
                                                      if (root / name).is_dir() and is_learner(root / name)]
        for learner in learners:
            if learner.name in CLASS_FILES:
                raise UsageError(f"{learner}: a learner folder named {learner.name} would collide with the class's "
                                 f"{learner.name} in --out — rename the folder")
        holder = root.parent if is_learner(root) else root
        if out_resolved == holder:
            first = root if is_learner(root) else next(
                (p for p in sorted(root.iterdir()) if p.is_dir() and is_learner(p)), root / "each learner")
            raise UsageError(f"--out {out}: the reports for {first.name} would go into {first} itself — "
                             "choose an --out outside the learners' folders, e.g. --out reports")


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 terminal must not turn "✗" into a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["history"] and not Path("history").is_dir():
        return _history(build_history_parser().parse_args(argv[1:]))
    if argv[:1] == ["lint"] and not Path("lint").is_dir():
        return _lint(argv[1:])
    args = build_parser().parse_args(argv)
    if args.doctor:
        return _doctor()
    if args.gradescope_autograder is not None:
        return _autograder(args)
    if not args.paths:
        build_parser().error("give a learner folder or a folder of learners (e.g. grade learners/borja)")
    with _errors(args.lang) as code:
        if args.watch:
            from grader.watch import watch

            if len(args.paths) != 1 or not _looks_like_learner(args.paths[0]):
                raise _usage("--watch follows one learner's folder (the one with phase-NN/ folders), e.g. "
                             "grade --watch learners/me")
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
    from grader.reports import render_class_summary, render_summary
    from grader.results import dumps, write_json

    limits = _limits(args)
    if args.jobs < 0:
        raise _usage(f"--jobs {args.jobs}: not a number of processes — give 1 or more (0: every core)")
    if args.executor == "dask":
        from grader.cluster import check_scheduler

        check_scheduler(args.scheduler)
    elif args.scheduler is not None:
        raise _usage(f"--scheduler {args.scheduler}: only used with --executor dask — add --executor dask, or drop --scheduler")
    _check_outputs(args.out, args.json, db=args.db, junit=args.junit, paths=args.paths)
    from grader.atomicio import remove_stale_temps

    remove_stale_temps(Path(args.out))  # what a killed run left behind; never a live run's

    from grader.i18n import Message, class_language, msg, say
    from grader.safety import terminal_safe

    def note(text: Message | str) -> None:
        if not args.quiet:
            words = say(msg("cli.note", note=text), class_language(args.lang))
            print(f"grade: {terminal_safe(' '.join(words.split()))}", file=sys.stderr)

    options = Options(out=Path(args.out), jobs=args.jobs, force=args.force, executor=args.executor,
                      scheduler=args.scheduler, db=args.db, overrides=_overrides(args, note), gradescope=args.gradescope,
                      junit=args.junit, lang=args.lang, argv=tuple(argv),
                      also_writes=(Path(args.json),) if args.json not in (None, "-") else ())
    rubrics_dir = _rubrics(args, note)
    run = grade_class(args.paths, options, rubrics_dir=rubrics_dir or _bundled(), lab=args.lab, limits=limits, note=note,
                      progress=progress.choose(args.quiet or len(args.paths) == 1 and _looks_like_learner(args.paths[0])))
    results = list(run.results)
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


def _usage(text: str) -> GraderError:
    from grader.errors import UsageError

    return UsageError(text)


def _limits(args: argparse.Namespace) -> Any:
    from grader.sandbox import Limits

    if args.timeout is not None and not 0.05 <= args.timeout <= 3600:
        raise _usage(f"--timeout {args.timeout:g}: give a number of seconds between 0.05 and 3600")
    return Limits() if args.timeout is None else Limits(call_seconds=args.timeout)


def _looks_like_learner(path: Path) -> bool:
    """A learner folder (phase-NN inside): one learner, graded in this process, no progress bar."""
    from grader.grading import is_learner

    try:
        return path.is_dir() and is_learner(path)
    except OSError:
        return False


def _overrides(args: argparse.Namespace, note: Any) -> Path | None:
    """``--overrides FILE`` only, and never a file inside a folder being graded (a learner's, or the class folder a
    learner's hand-in sits in): a learner could grade themselves. An ``overrides.yaml`` found there is named, not used."""
    from grader.safety import inside_any

    if args.overrides is not None:
        if not args.overrides.is_file():
            raise _usage(f"--overrides {args.overrides}: no such file — give the path of an overrides.yaml")
        graded = inside_any(args.overrides, args.paths)
        if graded is not None:
            raise _usage(f"{args.overrides}: inside {graded}, which is being graded — keep the instructor's overrides "
                         "outside the folders being graded (a learner could have written this one)")
        return args.overrides
    for path in args.paths:
        candidate = Path(path) / "overrides.yaml"
        if candidate.is_file():
            note(f"{candidate} is not used: overrides are read only from --overrides FILE, outside the folders being graded")
            break
    return None


def _rubrics(args: argparse.Namespace, note: Any) -> Path | None:
    """``--rubrics``, else the bundled ones — never a ``./rubrics`` picked up implicitly: a rubric's reference module
    runs in the grader, and a folder beside the learners' (or inside one) may be a learner's."""
    from grader.safety import inside_any

    if args.rubrics is not None:
        graded = inside_any(args.rubrics, args.paths)
        if graded is not None:
            raise _usage(f"--rubrics {args.rubrics}: inside {graded}, which is being graded — rubrics (and their reference "
                         "code, which the grader runs) must come from outside the folders being graded")
        return args.rubrics
    here = Path("rubrics")
    if here.is_dir() and here.resolve() != _bundled().resolve():
        note(f"./rubrics is not used, the bundled rubrics are — pass --rubrics {here} to grade with it (rubrics are never "
             "taken implicitly: their reference code runs in the grader)")
    return None


def _lint(paths: Sequence[str]) -> int:
    """Every rubric problem at once; exit 2 when a rubric does not load, 1 when only languages are missing."""
    from grader.lint import lint, render, rubric_files

    with _errors() as code:
        targets = [Path(p) for p in paths] or [_bundled()]
        files = sum(len(rubric_files(t)) for t in targets)
        problems = lint(targets)
        from grader.safety import terminal_safe

        print(terminal_safe(render(problems, files)), end="")
        code[0] = 2 if any(p.fatal for p in problems) else 1 if problems else 0
    return code[0]


def _history(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        from grader.batch import HISTORY
        from grader.history import render_history
        from grader.safety import terminal_safe
        from grader.store import Store

        db = args.db or Path(args.out) / HISTORY
        if not db.is_file():
            raise _usage(f"{db}: no gradebook history yet — run grade first (or pass --db FILE / --out DIR)")
        store = Store.open(db)
        try:
            for learner in args.learners:
                name = Path(learner).name or Path(learner).resolve().name
                print(terminal_safe(render_history(store.history(name, args.lab), name, db=db, lab=args.lab,
                                                                lang=_terminal_language(args.lang, []))), end="")
        finally:
            store.close()
    return code[0]


def _doctor() -> int:
    with _errors() as code:
        from grader.layers import doctor_text

        print(doctor_text(), end="")
    return code[0]


def _autograder(args: argparse.Namespace) -> int:
    with _errors(args.lang) as code:
        from grader.autograder import run_autograder

        code[0] = run_autograder(Path(args.gradescope_autograder), rubrics_dir=args.rubrics, lab=args.lab,
                                 limits=_limits(args))
    return code[0]
