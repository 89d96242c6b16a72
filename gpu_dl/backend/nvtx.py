"""NVTX ranges in one ``gpu_dl`` domain, so ``nsys profile`` shows time per layer, step and epoch.

``nvtx_range(name)`` is a context manager. Without the ``nvtx`` package, or
with ``GPU_DL_NVTX=0``, it returns one shared no-op context: nothing is
allocated and nothing is called. With the package but no profiler attached,
nvtx itself hands out a dummy domain whose calls do nothing.
"""
from __future__ import annotations

import contextlib
import os

_NULL = contextlib.nullcontext()
_domain = None
_attributes: dict = {}
_state = {"checked": False, "enabled": False}


def _enable():
    global _domain
    _state["checked"] = True
    if os.environ.get("GPU_DL_NVTX", "1").strip().lower() in ("0", "false", "off", "no"):
        return
    try:
        import nvtx
        _domain = nvtx.get_domain("gpu_dl")
    except Exception:   # not installed, or a build without domains: profile without ranges
        return
    _state["enabled"] = True


class _Range:
    __slots__ = ("attributes",)

    def __init__(self, attributes):
        self.attributes = attributes

    def __enter__(self):
        _domain.push_range(self.attributes)
        return self

    def __exit__(self, *exc):
        _domain.pop_range()
        return False


def nvtx_range(name: str):
    """A context manager marking ``name`` on the ``gpu_dl`` NVTX domain (a no-op without nvtx)."""
    if not _state["checked"]:
        _enable()
    if not _state["enabled"]:
        return _NULL
    attributes = _attributes.get(name)
    if attributes is None:
        attributes = _attributes[name] = _domain.get_event_attributes(message=name)
    return _Range(attributes)


def nvtx_enabled() -> bool:
    if not _state["checked"]:
        _enable()
    return _state["enabled"]
