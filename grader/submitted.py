"""When a lab was handed in: the learner's git history, a submissions manifest, or the files' modification times.

The first that knows wins, and the answer says which it was: a commit time is what the learner's repository
records (a learner can set it; a server-side clone's push log cannot be read from here), a manifest is the
platform's own record, and modification times are the weakest (a copy may reset them), so reports name the source.
Learner repositories are untrusted: git runs with no system or global configuration, no pager, no fsmonitor or
hooks, a time limit and a bounded output.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from grader.model import Submitted

GIT_SECONDS = 5.0
MAX_FILES = 10_000  # walked for modification times; a folder with more is judged on these
_SAFE_GIT = ("-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null", "-c", "safe.directory=*",
             "-c", "core.pager=cat", "-c", "log.showSignature=false", "--no-pager")


def enclosing_repository(folder: Path) -> Path | None:
    """The folder holding ``.git`` at or above ``folder`` (a stat per level: no git process for a plain folder)."""
    try:
        here = folder.resolve()
    except OSError:
        return None
    for candidate in (here, *here.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def git_time(folder: Path, lab_folder: Path) -> datetime | None:
    """The committer time of the last commit touching ``lab_folder``, or None (no repository, never committed)."""
    repo = enclosing_repository(folder)
    if repo is None:
        return None
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "GIT_TERMINAL_PROMPT": "0", "HOME": os.devnull, "LC_ALL": "C"}
    def git(*argv: str) -> subprocess.CompletedProcess[bytes] | None:
        try:
            return subprocess.run(["git", *_SAFE_GIT, "--no-optional-locks", "-C", str(repo), *argv, "--",
                                   str(lab_folder.resolve())], capture_output=True, timeout=GIT_SECONDS, env=env,
                                  stdin=subprocess.DEVNULL, check=False)
        except (OSError, subprocess.SubprocessError):
            return None

    done = git("log", "-1", "--format=%cI")
    text = done.stdout[:200].decode("ascii", "replace").strip() if done is not None else ""
    if done is None or done.returncode != 0 or not text:
        return None
    status = git("status", "--porcelain", "--untracked-files=all")
    if status is None or status.returncode != 0 or any(_counts(line) for line in status.stdout[:1_000_000].splitlines()):
        return None  # the files graded are not the commit: their own times say when they were last changed
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _counts(line: bytes) -> bool:
    """A ``git status --porcelain`` line about a file the grader reads (caches and hidden files are not the work)."""
    from grader.learnerfiles import CLUTTER_DIRS

    path = line[3:].decode("utf-8", "replace").strip('"')
    parts = path.replace("\\", "/").split("/")
    return bool(path) and not any(part in CLUTTER_DIRS or part.startswith(".") for part in parts)


def manifest_time(manifest: Path) -> datetime | None:
    """Gradescope's ``submission_metadata.json``: ``created_at``, when the learner uploaded."""
    try:
        if manifest.stat().st_size > 1_000_000:
            return None
        data = json.loads(manifest.read_text(encoding="utf-8"))
        moment = datetime.fromisoformat(str(data["created_at"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def mtime(lab_folder: Path) -> datetime | None:
    """The newest modification time of the lab folder's files (hidden ones and caches left out)."""
    newest: float | None = None
    seen = 0
    try:
        for root, dirs, files in os.walk(lab_folder):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d != "__pycache__"]
            for name in files:
                if name.startswith("."):
                    continue
                seen += 1
                if seen > MAX_FILES:
                    break
                try:
                    stamp = os.lstat(os.path.join(root, name)).st_mtime
                except OSError:
                    continue
                newest = stamp if newest is None else max(newest, stamp)
            if seen > MAX_FILES:
                break
    except OSError:
        return None
    return None if newest is None else datetime.fromtimestamp(newest).astimezone()


def submission_time(learner: Path, lab_folder: Path, manifest: Path | None = None,
                    sources: tuple[str, ...] = ("git", "manifest", "mtime")) -> Submitted | None:
    """In order: git, the manifest, modification times (those of ``sources``); None when none of them knows."""
    if "git" in sources:
        moment = git_time(learner, lab_folder)
        if moment is not None:
            return Submitted(moment.isoformat(timespec="seconds"), "git")
    if manifest is not None and "manifest" in sources:
        moment = manifest_time(manifest)
        if moment is not None:
            return Submitted(moment.isoformat(timespec="seconds"), "manifest")
    if "mtime" in sources:
        moment = mtime(lab_folder)
        if moment is not None:
            return Submitted(moment.isoformat(timespec="seconds"), "mtime")
    return None
