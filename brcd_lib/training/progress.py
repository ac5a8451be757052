"""Progress bars of the whole kit: one factory, three destinations.

Every loop that may take a while (grids, training epochs, feature extraction, worker pools) asks
:func:`tqdm` for its bar; where the bar goes is decided here, not at each call:

- in a Jupyter kernel with ipywidgets installed (JupyterLab): a live widget bar (``tqdm.notebook``);
- when ``$BRCD_PROGRESS_TO`` names a file or terminal (the notebook runner sets it to its own
  terminal): a text bar written there, so the console shows the grid's progress while the
  executed notebook keeps no progress output at all;
- otherwise (scripts, a kernel without ipywidgets): a text bar on stderr.

``tqdm.auto`` is never imported: without ipywidgets it warns (a red ``TqdmWarning``) in every
notebook that imports the kit. A bar over a grid's jobs shows the run it is working on (method,
variant, code length, seed) next to the count and the ETA.
"""
from __future__ import annotations

import functools
import os
import sys
from typing import Any

ENV_PROGRESS_TO = "BRCD_PROGRESS_TO"

_RUN_KEYS = ("variant", "method", "bits", "seed")


def run_label(item: Any) -> str | None:
    """A short description of a grid job (a keyword dict of a student run, or a tuple holding
    one): ``"brcd 16 bits seed 0"``; ``None`` for other items (epochs, batches)."""
    if isinstance(item, tuple):
        head = [str(x) for x in item if isinstance(x, (str, int, float)) and not isinstance(x, bool)]
        jobs = [x for x in item if isinstance(x, dict)]
        inner = run_label(jobs[0]) if jobs else None
        return " ".join(head + ([inner] if inner else [])) or None
    if not isinstance(item, dict) or not any(k in item for k in _RUN_KEYS):
        return None
    parts = []
    name = item.get("variant") or item.get("method")
    if name:
        parts.append(str(name))
    if "bits" in item:
        parts.append(f"{item['bits']} bits")
    if "seed" in item:
        parts.append(f"seed {item['seed']}")
    return " ".join(parts) or None


def in_kernel() -> bool:
    """True inside a Jupyter (IPython) kernel."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    shell = ipython.get_ipython()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def has_widgets() -> bool:
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _stream(path: str):
    """The text stream of ``$BRCD_PROGRESS_TO`` (opened once per process and destination)."""
    return open(path, "w", buffering=1, encoding="utf-8", errors="replace")  # noqa: SIM115


def destination() -> str:
    """Where the next bar goes: ``"file"``, ``"widget"`` or ``"stderr"``."""
    if os.environ.get(ENV_PROGRESS_TO, "").strip():
        return "file"
    if in_kernel() and has_widgets():
        return "widget"
    return "stderr"


@functools.lru_cache(maxsize=None)
def _bar_class(kind: str):
    if kind == "widget":
        from tqdm.notebook import tqdm as base
    else:
        from tqdm.std import tqdm as base

    class Bar(base):
        """A tqdm bar that names the grid job it is working on."""

        def __iter__(self):
            for item in super().__iter__():
                label = run_label(item)
                if label is not None:
                    self.set_postfix_str(label, refresh=True)
                yield item

    Bar.__name__ = f"Bar[{kind}]"
    return _WidgetBar.over(Bar) if kind == "widget" else Bar


class _WidgetBar:
    """A live widget while it runs, text once it is closed.

    A widget view saved in a notebook refers to a model that lives in the kernel; after a page
    reload, a restarted kernel or in a copy opened elsewhere it shows "Error displaying widget:
    model not found". So the bar is displayed with a display id and, when it closes, that output
    is replaced by the bar's last line as plain text (nothing for ``leave=False`` bars) and the
    widget models are closed: a notebook keeps no widget view of a finished bar."""

    @staticmethod
    def over(base):
        class WidgetBar(base):
            def __init__(self, *args, **kwargs):
                kwargs["display"] = False  # displayed below, with a handle to replace it later
                self._view = None
                super().__init__(*args, **kwargs)
                if not self.disable and getattr(self, "container", None) is not None:
                    from IPython.display import display

                    self._view = display(self.container, display_id=True)
                    self.displayed = True

            def close(self):
                view, self._view = getattr(self, "_view", None), None
                stopped = bool(self.total and self.n < self.total)
                super().close()
                if view is None:
                    return
                text = ""
                if self.leave:
                    text = self.format_meter(**{**self.format_dict, "ncols": 80})
                    text += " (stopped)" if stopped else ""
                view.update({"text/plain": text}, raw=True)
                container = getattr(self, "container", None)
                for widget in [container, *getattr(container, "children", ())]:
                    if widget is not None:
                        widget.close()

        WidgetBar.__name__ = base.__name__
        return WidgetBar


def tqdm(iterable: Any = None, *args: Any, **kwargs: Any):
    """``tqdm.tqdm(iterable, ...)`` with the destination of :func:`destination` (same arguments;
    ``disable=True`` gives a silent bar)."""
    if kwargs.get("disable"):
        from tqdm.std import tqdm as silent

        return silent(iterable, *args, **kwargs)
    kind = destination()
    if kind == "file":
        try:
            kwargs.setdefault("file", _stream(os.environ[ENV_PROGRESS_TO].strip()))
        except OSError:  # the runner's terminal went away: no bar rather than an error
            kwargs["disable"] = True
            kind = "stderr"
    if kind == "widget":
        kwargs.pop("file", None)
    return _bar_class("widget" if kind == "widget" else "text")(iterable, *args, **kwargs)
