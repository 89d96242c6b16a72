"""Warnings attributed to the caller's own code.

A warning about the caller's data, model or arguments (an input that ran out, a variable without a gradient, a
metric a callback monitors that is not logged, a deprecated argument, a weight a load skips) is raised inside
gpu_dl, at a depth that depends on the path taken (fit, evaluate, predict or their ``*_on_batch`` forms, the fused
step or a ``train_step`` of the caller's, a callback, a layer's call, a save or a load). A fixed ``stacklevel``
would name a line of gpu_dl on some of those paths; ``warn``, which gpu_dl raises the warnings users see with,
instead names the innermost frame outside gpu_dl (and outside the standard library, through which gpu_dl may
call back into itself: ``contextlib``, ``functools``), which is the caller's line that led there: the ``fit`` or
``load_weights`` call, a layer's constructor call, or the ``optimizer.apply`` line in a ``train_step`` of the
caller's.
"""
from __future__ import annotations

import os
import sys
import sysconfig
import warnings

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_STDLIB = os.path.abspath(sysconfig.get_paths()["stdlib"]) + os.sep
_INSTALLED = tuple({os.path.abspath(sysconfig.get_paths()[k]) + os.sep for k in ("purelib", "platlib")})


def _internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    if path.startswith(_PACKAGE):
        return True
    return path.startswith(_STDLIB) and not path.startswith(_INSTALLED)


def _stacklevel() -> int:
    """The stack level, counted from the function that calls ``warn`` (1), of the innermost frame outside gpu_dl
    and the standard library (the outermost frame when every frame is internal)."""
    frame = sys._getframe(2)        # 0: this function, 1: warn, 2: the function that calls warn
    level = 1
    while frame.f_back is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    return level


def warn(message: str, category: type = UserWarning) -> None:
    """``warnings.warn(message, category)`` attributed to the caller's code (see the module's docstring)."""
    warnings.warn(message, category, stacklevel=_stacklevel() + 1)
