"""Human-readable sizes and the memory-summary table of a caching pool's statistics."""
from __future__ import annotations

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def format_bytes(nbytes) -> str:
    """``512 B``, ``1.50 KiB``, ``2.00 MiB``, ``3.25 GiB``; ``unknown`` for None."""
    if nbytes is None:
        return "unknown"
    nbytes = int(nbytes)
    if abs(nbytes) < 1024:
        return f"{nbytes} B"
    value = float(nbytes)
    for unit in _UNITS:
        value /= 1024.0
        if abs(value) < 1024.0 or unit == _UNITS[-1]:
            return f"{value:.2f} {unit}"
    raise AssertionError("unreachable")


_NAME_WIDTH = 28
_CELL_WIDTH = 12
_COLUMNS = ("Current", "Peak", "Total alloc", "Total freed")

# (row label, stats key per column or None for a dash, whether the figures are bytes)
_MEMORY_ROWS = (
    ("Allocated memory", ("allocated_bytes", "peak_allocated_bytes",
                          "total_allocated_bytes", "total_freed_bytes"), True),
    ("Requested memory", ("requested_bytes", "peak_requested_bytes", None, None), True),
    ("Reserved memory", ("reserved_bytes", "peak_reserved_bytes",
                         "total_reserved_bytes", "total_released_bytes"), True),
    ("Cached (reserved, free)", ("cached_bytes", None, None, None), True),
    ("Active blocks", ("active_blocks", "peak_active_blocks", "num_allocs", "num_frees"), False),
    ("Device allocations", ("segments", "peak_segments",
                            "num_device_allocs", "num_device_frees"), False),
)


def _row(cells) -> str:
    name, *rest = cells
    return "| " + name.ljust(_NAME_WIDTH) + " |" + "|".join(c.rjust(_CELL_WIDTH) + " " for c in rest) + "|"


def _width() -> int:
    return len(_row(("",) + ("",) * len(_COLUMNS)))


def _rule(char: str) -> str:
    return "|" + char * (_width() - 2) + "|"


def _line(text: str) -> str:
    return "| " + text.ljust(_width() - 4) + " |"


def _cell(stats, key, is_bytes) -> str:
    if key is None:
        return "-"
    value = stats.get(key, 0)
    return format_bytes(value) if is_bytes else str(int(value))


def format_summary(stats: dict, title: str) -> str:
    """A table of a pool's ``stats()`` in the spirit of ``torch.cuda.memory_summary()``."""
    requests = stats.get("cache_hits", 0) + stats.get("cache_misses", 0)
    hit_rate = f" ({100.0 * stats.get('cache_hits', 0) / requests:.1f}% of requests)" if requests else ""
    lines = [
        _rule("="),
        "|" + title.center(_width() - 2) + "|",
        _rule("-"),
        _row(("Metric",) + _COLUMNS),
        _rule("-"),
    ]
    for label, keys, is_bytes in _MEMORY_ROWS:
        lines.append(_row((label,) + tuple(_cell(stats, key, is_bytes) for key in keys)))
    lines += [
        _rule("-"),
        _line(f"Cache hits: {stats.get('cache_hits', 0)}{hit_rate}"),
        _line(f"Cache misses: {stats.get('cache_misses', 0)}"),
        _line(f"Retries after releasing the cache: {stats.get('num_oom_retries', 0)}"),
        _line(f"Out-of-memory errors: {stats.get('num_ooms', 0)}"),
        _rule("="),
    ]
    return "\n".join(lines)
