"""How a committed report names a path: relative to the repository, never a machine's folder.

Reports under ``results/`` are committed, and ``tests/test_lab.py`` fails on any absolute path in
them; every benchmark that writes a path or its own command line into a report goes through
:func:`shown` / :func:`command_line`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

REPO = Path(__file__).resolve().parents[1]

__all__ = ["REPO", "shown", "command_line"]


def shown(path: str | Path, *, repo: Path = REPO) -> str:
    """``path`` relative to ``repo`` when it lies inside it; outside it, only the file's name
    after a placeholder for the folder."""
    try:
        return str(Path(path).resolve().relative_to(repo))
    except ValueError:
        return f"<a folder outside the repository>/{Path(path).name}"


def command_line(script: str, argv: Iterable[str], path_options: Iterable[str], *,
                 repo: Path = REPO) -> str:
    """``python <script> <argv>`` with the value of every option in ``path_options`` shown by
    :func:`shown`, in both spellings (``--out-dir PATH`` and ``--out-dir=PATH``)."""
    options = tuple(path_options)
    out, previous = [], None
    for token in argv:
        name, eq, value = token.partition("=")
        if previous in options:
            token = shown(token, repo=repo)
        elif eq and name in options:
            token = f"{name}={shown(value, repo=repo)}"
        out.append(token)
        previous = token if not eq else None
    return " ".join(["python", script, *out])
