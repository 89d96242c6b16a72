"""Keras 3's interactive logging switch: where progress bars and the training loop's messages go.

Enabled (the default), they are written to ``sys.stdout``, the progress bar
redrawing its line in a terminal. Disabled, as
``keras.utils.disable_interactive_logging()`` makes Keras send them to its
logger, each finished line goes to the ``logging`` logger ``"gpu_dl"`` at
INFO level, and bars never redraw: what a batch job or a service logging
through ``logging`` wants. A progress bar given a stream of its own writes
there either way.
"""
from __future__ import annotations

import logging
import sys
import threading

_STATE = threading.local()     # per thread, as Keras keeps it in its global state
LOGGER = logging.getLogger("gpu_dl")


def enable_interactive_logging():
    """Messages and progress bars go to ``sys.stdout`` (the default)."""
    _STATE.interactive = True


def disable_interactive_logging():
    """Messages and progress bars go, a line at a time, to the ``"gpu_dl"`` logger at INFO level."""
    _STATE.interactive = False


def is_interactive_logging_enabled():
    """Whether messages go to ``sys.stdout`` (True) or to the ``"gpu_dl"`` logger (False)."""
    return getattr(_STATE, "interactive", True)


def print_msg(message, line_break=True):
    """Write ``message`` as the switch says (Keras's ``io_utils.print_msg``)."""
    if is_interactive_logging_enabled():
        sys.stdout.write(message + ("\n" if line_break else ""))
        sys.stdout.flush()
    else:
        LOGGER.info(message)
