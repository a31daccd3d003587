"""A Jupyter notebook as a submission: its code cells are the module, its Markdown cells the deliverable.

Read with nbformat (validated as nbformat 4), in the grader's process but never run here: the module the
code cells make is loaded in the learner's sandboxed worker like any ``.py``. Cells that only display or
time things, IPython magics (``%timeit``) and shell lines (``!pip install``) are left out and named.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from grader.errors import SubmissionError
from grader.i18n import Message, msg
from grader.learnerfiles import read_bytes

MAX_CELLS, MAX_OUTPUTS = 5_000, 2_000  # read of a notebook: no lab is longer; outputs beyond are not looked at
MAX_BYTES = 16 * 1024 * 1024  # stored outputs (plots) make notebooks large; only sources and text outputs are used
MAX_OUTPUT = 4000  # characters of one cell's printed output kept in the deliverable
_ANSI = re.compile(r"\x1b\[[0-9;]{0,20}[A-Za-z]")
_KEEP_CELL_MAGICS = ("%%time", "%%timeit", "%%capture")


@dataclass(frozen=True)
class Notebook:
    source: str  # the module: the kept code cells, in order
    left_out: tuple[Message, ...]  # "cell 3 (it only displays)", "cell 9: its %%time line", for the learner
    markdown: str  # the Markdown cells, with each code cell and its printed output as fenced blocks
    cells: tuple[tuple[int, int], ...]  # (first line in ``markdown``, cell number)
    functions: tuple[str, ...]  # names the code cells define with ``def``
    files: tuple[tuple[str, str], ...] = ()  # what %%writefile cells write, (relative name, text), beside the module


def read_notebook(path: Path, root: Path, shown: str | None = None) -> Notebook:
    """The notebook's cells; a file that is not a valid nbformat 4 notebook is one SubmissionError line."""
    name = shown or path.name
    data = read_bytes(path, root, MAX_BYTES, name)
    if len(data) > MAX_BYTES:
        raise SubmissionError(msg("notebook.too_large", name=name, mb=MAX_BYTES >> 20))
    try:
        raw = json.loads(data.decode("utf-8-sig"))
    except RecursionError:
        raise SubmissionError(msg("notebook.too_deep", name=name)) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        line = exc.lineno if isinstance(exc, json.JSONDecodeError) else None
        raise SubmissionError(msg("notebook.not_json.line" if line else "notebook.not_json", name=name, line=line)) from None
    version = raw.get("nbformat") if isinstance(raw, dict) else None
    if version != 4:
        raise SubmissionError(msg("notebook.not_v4", name=name, version=repr(version)))
    import nbformat  # heavy: loaded only when a notebook is graded

    dropped = _text_outputs_only(raw)
    try:
        notebook = nbformat.from_dict(raw)
        nbformat.validate(notebook)
    except Exception as exc:  # noqa: BLE001 - nbformat's validation errors are many kinds
        reason = " ".join(str(exc).split())[:160]  # nbformat's own words: data
        raise SubmissionError(msg("notebook.invalid", name=name, reason=reason)) from None
    converted = _convert(notebook)
    if dropped:
        more = msg("notebook.cells_dropped", n=dropped, first=MAX_CELLS)
        return dataclasses.replace(converted, left_out=(*converted.left_out, more))
    return converted


def _text_outputs_only(raw: dict) -> int:
    """Stored plots and HTML are most of a notebook's bytes and none of what is graded: dropped before validation
    (which costs time in proportion to what it walks), with cells and outputs beyond the caps."""
    cells = raw.get("cells")
    if not isinstance(cells, list):
        return 0
    dropped = max(0, len(cells) - MAX_CELLS)
    del cells[MAX_CELLS:]
    budget = MAX_OUTPUTS
    for cell in cells:
        outputs = cell.get("outputs") if isinstance(cell, dict) else None
        if not isinstance(outputs, list):
            continue
        del outputs[max(0, min(budget, 50)):]
        budget -= len(outputs)
        for output in outputs:
            data = output.get("data") if isinstance(output, dict) else None
            if isinstance(data, dict):
                for kind in [k for k in data if k != "text/plain"]:
                    del data[kind]
    return dropped


def _source(cell: object) -> str:
    text = getattr(cell, "source", "")
    return "".join(text) if isinstance(text, list) else str(text)


def _convert(notebook: object) -> Notebook:
    kept: list[str] = []
    left_out: list[Message] = []
    lines: list[str] = []
    cells: list[tuple[int, int]] = []
    functions: list[str] = []
    files: list[tuple[str, str]] = []
    for number, cell in enumerate(getattr(notebook, "cells", []), start=1):
        kind = getattr(cell, "cell_type", "")
        text = _source(cell)
        cells.append((len(lines) + 1, number))
        if kind == "markdown":
            lines.extend(text.splitlines())
            lines.append("")
            continue
        if kind != "code":
            continue
        lines.extend(["```python", *text.splitlines(), "```", ""])
        printed = _printed(cell)
        if printed:
            lines.extend(["```text", *printed.splitlines(), "```", ""])
        written = _written_file(text)
        if written is not None:
            files.append(written)
            continue
        code, why = _code(text)
        if why:
            left_out.append(msg("notebook.cell" if not code.strip() else "notebook.cell_lines", n=number, why=why))
        if code.strip():
            kept.append(f"# --- cell {number} ---\n{code}")
            functions.extend(_defined(code))
    return Notebook("\n\n".join(kept) + "\n", tuple(left_out), "\n".join(lines), tuple(cells), tuple(dict.fromkeys(functions)),
                    tuple(files))


def _written_file(text: str) -> tuple[str, str] | None:
    """``%%writefile fdcheck.py``: the file the cell writes, so that a later ``import fdcheck`` finds it — a plain
    name inside the learner's folder only, and at most 1 MB."""
    stripped = text.lstrip()
    if not stripped.startswith("%%writefile"):
        return None
    first, _, body = stripped.partition("\n")
    parts = first.split()
    name = parts[-1] if len(parts) >= 2 and not parts[-1].startswith("-") else ""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or len(name) > 100 or len(body) > 1 << 20:
        return None
    return path.as_posix(), body


def _code(text: str) -> tuple[str, Message | str]:
    """The Python of one code cell, and why (part of) it was left out (the magic and shell words as they are written)."""
    first = text.lstrip().split("\n", 1)[0].strip()
    why: list[str] = []
    if first.startswith("%%"):
        magic = first.split()[0]
        if magic not in _KEEP_CELL_MAGICS:
            return "", msg("notebook.why.magic", magic=magic)
        text = text.lstrip().split("\n", 1)[1] if "\n" in text.lstrip() else ""
        why.append(magic)
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("%", "!")) or "get_ipython(" in stripped:
            word = stripped.split()[0] if stripped.split() else stripped
            why.append(word[:30])
            continue
        out.append(line)
    code = "\n".join(out)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = getattr(exc, "lineno", None)
        return "", msg("notebook.why.syntax.line" if line else "notebook.why.syntax", line=line)
    if tree.body and all(isinstance(stmt, ast.Expr) for stmt in tree.body):
        return "", msg("notebook.why.times" if why else "notebook.why.displays", magics=", ".join(why))
    return code, ", ".join(dict.fromkeys(why))


def _defined(code: str) -> list[str]:
    names = []
    for line in code.splitlines():
        if line.startswith("def "):
            names.append(line[4:].split("(", 1)[0].strip())
    return names


def _printed(cell: object) -> str:
    """What a code cell printed (streams, text results, tracebacks), as stored in the notebook."""
    pieces: list[str] = []
    for output in getattr(cell, "outputs", []) or []:
        kind = output.get("output_type")
        if kind == "stream":
            pieces.append(_source_of(output.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {}) or {}
            if "text/plain" in data:
                pieces.append(_source_of(data["text/plain"]))
        elif kind == "error":
            pieces.append("\n".join(_ANSI.sub("", line) for line in output.get("traceback", []) or []))
    text = "\n".join(p.rstrip("\n") for p in pieces if p)
    return text[:MAX_OUTPUT].replace("```", "'''")


def _source_of(value: object) -> str:
    return "".join(value) if isinstance(value, list) else str(value)
