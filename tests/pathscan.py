"""Find this machine's absolute folders in generated files (results must stay portable)."""
from __future__ import annotations

import json
import re
from pathlib import Path

#: an absolute path under a machine's scratch, work or home folders
MACHINE_PATH = re.compile(r"(?<![\w.$<~])/(?:tmp|work|home|root|Users|private|var/folders)/\S{0,60}")
SCANNED = (".ipynb", ".md", ".json", ".csv", ".txt")


def _strip_images(obj):
    """A notebook without its embedded images (base64 can spell anything)."""
    if isinstance(obj, dict):
        return {k: _strip_images(v) for k, v in obj.items() if not k.startswith("image/")}
    if isinstance(obj, list):
        return [_strip_images(v) for v in obj]
    return obj


def machine_paths(path: Path) -> list[str]:
    """The machine paths in ``path`` (a generated text file)."""
    text = path.read_text(errors="replace")
    if path.suffix == ".ipynb":
        text = json.dumps(_strip_images(json.loads(text)))
    return [m.group(0) for m in MACHINE_PATH.finditer(text)]


def scan(folder: Path) -> dict[str, list[str]]:
    """``relative file -> machine paths`` for every scanned file under ``folder``."""
    hits = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix in SCANNED:
            found = machine_paths(path)
            if found:
                hits[str(path.relative_to(folder))] = found[:3]
    return hits
