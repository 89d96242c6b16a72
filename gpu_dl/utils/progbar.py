"""A progress bar like Keras's, that stays quiet when output is not a terminal.

On a terminal (verbose=1) one line is redrawn in place with a carriage
return, at most every ``interval`` seconds. Elsewhere (a log file, a CI job,
a pipe) nothing is printed until the target is reached, then one final line:
no carriage returns, no hundreds of partial lines. verbose=2 prints only the
final line, without the bar.
"""
from __future__ import annotations

import sys
import time

import numpy

from . import io_utils


def _stream_is_terminal(stream):
    try:
        return stream.isatty()
    except Exception:
        return False


def _can_encode(stream, text):
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
        return True
    except (UnicodeEncodeError, LookupError):
        return False


def format_duration(seconds):
    if seconds >= 3600:
        return f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:{int(seconds % 60):02d}"
    if seconds >= 60:
        return f"{int(seconds // 60)}:{int(seconds % 60):02d}"
    return f"{int(seconds)}s"


def format_per_unit(seconds, unit):
    if seconds >= 1:
        return f"{seconds:.0f}s/{unit}"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.0f}ms/{unit}"
    return f"{seconds * 1e6:.0f}us/{unit}"


def format_value(value, verbose=1):
    """A metric's value as Keras 3's bar writes it: four decimals above 1e-3 in magnitude (zero too is in
    scientific notation, ``0.0000e+00``), else scientific notation; the one-line-per-epoch mode (``verbose=2``)
    compares the signed value, so a negative one is written in scientific notation there, as in Keras."""
    if isinstance(value, (list, tuple)) or getattr(value, "ndim", 0) > 0:
        value = numpy.mean(numpy.asarray(value, dtype=numpy.float64))   # per-class scores: their mean, as Keras
    value = float(value)
    if (value if verbose == 2 else abs(value)) > 1e-3:
        return f"{value:.4f}"
    return f"{value:.4e}"


class Progbar:
    """``Progbar(target)``; call ``update(current, values)`` as work proceeds.

    ``values`` is a mapping of name to number (or a zero-argument callable
    returning one, so a GPU scalar is read only when a line is drawn).
    """

    def __init__(self, target, width=20, verbose=1, interval=0.05, unit_name="step", stream=None):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        # With interactive logging disabled (io_utils), a bar on the default stream logs its finished lines.
        self._logged = stream is None and not io_utils.is_interactive_logging_enabled()
        self.stream = stream if stream is not None else sys.stdout
        self.dynamic = verbose == 1 and not self._logged and _stream_is_terminal(self.stream)
        self.fancy = _can_encode(self.stream, "━")
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._last_len = 0
        self._finished = False

    def wants_values(self, current):
        """Whether ``update(current, ...)`` would draw, so the caller can skip computing values."""
        if self.verbose == 0 or self._finished:
            return False
        if self.target is not None and current >= self.target:
            return True
        return self.dynamic and time.perf_counter() - self._last_draw >= self.interval

    def _bar(self, current):
        if self.target is None:
            return ""
        done = int(self.width * min(current, self.target) / self.target)
        if self.fancy:
            if self.dynamic:
                return "\x1b[1m" + "━" * done + "\x1b[0m\x1b[2m" + "━" * (self.width - done) + "\x1b[0m"
            return "━" * self.width if done == self.width else "━" * done + "─" * (self.width - done)
        return "[" + "=" * done + "." * (self.width - done) + "]"

    def _write(self, text):
        if self._logged:
            io_utils.LOGGER.info(text.rstrip("\n"))
        else:
            self.stream.write(text)
            self.stream.flush()

    def update(self, current, values=None, finalize=None):
        if not self.wants_values(current) and not finalize:
            return
        if finalize is None:
            finalize = self.target is not None and current >= self.target
        now = time.perf_counter()
        elapsed = now - self._start
        per_unit = elapsed / max(current, 1)
        items = []
        for name, value in (values or {}).items():
            value = value() if callable(value) else value
            items.append(f"{name}: {format_value(value, self.verbose)}")
        metrics = "".join(f" - {item}" for item in items)
        counter = f"{current}/{self.target}" if self.target is not None else f"{current}/Unknown"   # as Keras
        if self.verbose == 2:
            if finalize:
                self._write(f"{counter} - {format_duration(elapsed)} - "
                            f"{format_per_unit(per_unit, self.unit_name)}{metrics}\n")
                self._finished = True
            return
        if finalize:
            timing = f"{format_duration(elapsed)} {format_per_unit(per_unit, self.unit_name)}"
        else:
            eta = per_unit * (self.target - current) if self.target is not None else 0
            timing = (f"ETA: {format_duration(eta)}" if self.target is not None
                      else format_per_unit(per_unit, self.unit_name))
        line = f"{counter} {self._bar(current)} {timing}{metrics}"
        if self.dynamic:
            pad = " " * max(0, self._last_len - len(line))
            self.stream.write("\r" + line + pad + ("\n" if finalize else ""))
            self._last_len = len(line)
        elif finalize:
            self._write(line + "\n")
        self.stream.flush()
        self._last_draw = now
        self._finished = bool(finalize)
