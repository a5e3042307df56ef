"""Progress of long loops: tqdm bars, or plain log lines for headless runs.

`progress(...)` is `tqdm.auto.tqdm` (a widget bar in JupyterLab, a text bar in a terminal) unless the
environment variable `EMO_LLAMA_PROGRESS=lines` is set: then it prints one line now and then
("train: 30/150 (20%) 41 s, ETA 2.7 min, loss=1.234"), flushed at once. A notebook run by
papermill has no frontend to draw widget bars, but `papermill --log-output` streams printed lines to
the terminal as they come: `make train` sets this variable for that reason.

`without_weight_loading_bar()` keeps transformers' per-tensor "Loading weights" bar out of model loads.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

ENV = "EMO_LLAMA_PROGRESS"
WEIGHT_LOADING_BAR = "Loading weights"  # the desc of transformers' bar over a checkpoint's tensors


class LineProgress:
    """The part of tqdm's interface the package uses, printing a line at most every `interval` seconds."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "",
                 initial: int = 0, interval: float = 10.0, disable: bool = False, stream=None):
        self.iterable, self.desc, self.n, self.interval, self.disable = iterable, desc, initial, interval, disable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.total, self.postfix, self.stream = total, "", stream
        self.start = self.last = time.perf_counter()
        self.start_n, self.closed = initial, False
        self._print(f"{self.desc}: started" + (f", {self.total} to do" if self.total is not None else ""))

    def __iter__(self):
        for item in self.iterable:
            yield item
            self.update(1)
        self.close()

    def __len__(self) -> int:
        return self.total or 0

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            self._print(self._status(now))

    def set_postfix(self, **values) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._print(self._status(time.perf_counter(), done=True))

    def _status(self, now: float, done: bool = False) -> str:
        elapsed = now - self.start
        text = f"{self.desc}: {self.n}" + (f"/{self.total} ({100 * self.n / max(self.total, 1):.0f}%)"
                                            if self.total else "")
        text += f" {_duration(elapsed)}"
        rate = (self.n - self.start_n) / elapsed if elapsed > 0 else 0.0
        if not done and self.total and rate > 0:
            text += f", ETA {_duration((self.total - self.n) / rate)}"
        if done:
            text += ", done"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _print(self, text: str) -> None:
        if not self.disable:
            print(text, file=self.stream or sys.stdout, flush=True)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "",
             disable: bool = False, initial: int = 0):
    """A progress bar over `iterable` (or a manual one of `total` steps); see the module docstring."""
    if os.environ.get(ENV, "").lower() == "lines":
        return LineProgress(iterable, total=total, desc=desc, initial=initial, disable=disable)
    from tqdm.auto import tqdm

    return tqdm(iterable, total=total, desc=desc, disable=disable, initial=initial)


@contextmanager
def without_weight_loading_bar() -> Iterator[None]:
    """Model loads inside this block (or a function it decorates) draw no "Loading weights" bar.

    transformers draws that bar over every tensor of a checkpoint (272 for SmolLM2; the load takes seconds). In a
    notebook it is a widget, and a headless run (papermill: `make train`, the tests, refreshed notebooks) keeps
    only the widget's text form from the moment it appeared, "Loading weights: 0%| 0/272", stuck in the saved
    outputs for good. Only that bar goes: download bars and every other bar of the libraries stay.
    """
    from transformers.utils import logging as hf_logging

    def hook(factory, args, kwargs):
        if kwargs.get("desc") == WEIGHT_LOADING_BAR:
            kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous is not None else factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)
