"""``grade PATH...``: parse the flags, call the library, map errors to exit codes (here only)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

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
        epilog="Exit codes: 0 every graded lab passed, 1 one did not, 2 bad usage, path or rubric, "
               "3 the sandbox could not start, 130 interrupted.",
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="a learner folder (it has phase-NN/ folders) or a folder of learners")
    parser.add_argument("--rubrics", type=Path, default=None, metavar="DIR",
                        help="folder of rubric YAML files (default: ./rubrics, else the bundled ones)")
    parser.add_argument("--lab", default=None, metavar="LAB", help="grade only this lab, e.g. phase-04/lab-00")
    parser.add_argument("--out", default="reports", metavar="DIR",
                        help="where the HTML and Markdown reports go (default: reports/)")
    parser.add_argument("--json", default=None, metavar="FILE",
                        help="also write the results as JSON (- for standard output; the summary then goes to stderr)")
    parser.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                        help="wall-time limit for one call of a learner function (default: 10)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing; rely on the exit code and files")
    parser.add_argument("--version", action="version", version=f"grade {__version__}")
    return parser


@contextlib.contextmanager
def _errors() -> Iterator[list[int]]:
    """The one place grader errors become a message and an exit code."""
    code = [EXIT_PASSED]
    try:
        yield code
    except GraderError as exc:
        print(f"grade: {exc}", file=sys.stderr)
        code[0] = exc.exit_code
    except KeyboardInterrupt:
        print("grade: interrupted", file=sys.stderr)
        code[0] = EXIT_INTERRUPTED


def _check_outputs(out: str, json_path: str | None) -> None:
    """Refuse an output that cannot work before spending time on grading."""
    from grader.errors import UsageError

    if not out.strip():
        raise UsageError("--out needs a folder for the reports, e.g. --out reports")
    if Path(out).exists() and not Path(out).is_dir():
        raise UsageError(f"--out {out}: a file is there, not a folder — choose another --out")
    if json_path is not None:
        if not json_path.strip():
            raise UsageError("--json needs a file name (or - for standard output)")
        if Path(json_path).suffix.lower() in (".html", ".md"):
            raise UsageError(f"--json {json_path}: that name is for a report — give a .json file name")
        if json_path != "-" and Path(json_path).is_dir():
            raise UsageError(f"--json {json_path}: that is a folder — give a file name such as {Path(json_path) / 'results.json'}")


def main(argv: Sequence[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a non-UTF-8 terminal must not turn "✗" into a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    with _errors() as code:
        from grader import zygote

        zygote.get()  # the fork server imports numpy while this process imports the rest
        from grader.errors import UsageError
        from grader.grading import grade
        from grader.reports import render_summary, write_reports
        from grader.results import dumps, write_json
        from grader.sandbox import Limits

        if args.timeout is not None and not 0.05 <= args.timeout <= 3600:
            raise UsageError(f"--timeout {args.timeout:g}: give a number of seconds between 0.05 and 3600")
        _check_outputs(args.out, args.json)
        limits = Limits() if args.timeout is None else Limits(call_seconds=args.timeout)

        def note(text: str) -> None:
            if not args.quiet:
                print(f"grade: note: {text}", file=sys.stderr)

        results = grade(args.paths, rubrics_dir=args.rubrics, lab=args.lab, limits=limits, note=note)
        paths = write_reports(results, Path(args.out))
        to_stdout = args.json == "-"
        if to_stdout:
            sys.stdout.write(dumps(results))
        elif args.json is not None:
            write_json(Path(args.json), results)
        if not args.quiet:
            one_learner = len({r.learner for r in results}) == 1
            print(render_summary(results, paths, detailed=one_learner), end="", file=sys.stderr if to_stdout else sys.stdout)
        code[0] = EXIT_PASSED if all(r.passed for r in results) else EXIT_NOT_PASSED
    return code[0]
