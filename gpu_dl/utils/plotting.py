"""Training curves: one panel per logged quantity, training and validation per epoch.

``plot_history(history, path)`` draws ``fit``'s ``History`` (or its
``history`` dict) into an image file; the ``TrainingCurves`` callback and the
``gpu-dl`` command call it. Drawing uses matplotlib's Agg canvas directly:
no pyplot state, no window, whatever ``MPLBACKEND`` says. The file is written
to a temporary name in the same folder and moved over ``path`` with
``os.replace``, so a viewer that reloads it never sees half an image.
"""
from __future__ import annotations

import importlib
import math
import numbers
import os
import tempfile

INSTALL_HINT = 'pip install matplotlib'
_FORMATS = ("png", "svg", "pdf", "jpg", "jpeg")


def require_matplotlib():
    """Import matplotlib, or raise an ImportError that says how to install it."""
    try:
        for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
            importlib.import_module(name)
    except ImportError as error:
        raise ImportError(f"Drawing training curves needs matplotlib, a dependency of gpu_dl that is missing "
                          f"here: {INSTALL_HINT}.") from error


def as_number(value):
    """A logged value as a Python float, or None when it is not a single number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if getattr(value, "shape", None) == () and getattr(getattr(value, "dtype", None), "kind", "") in "fiu":
        return float(value)
    return None


def _pairs(values, steps=None):
    """A series as (epoch, value) pairs: kept if already pairs, else numbered 1, 2, ... (or by ``steps``)."""
    values = list(values)
    if values and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in values):
        return [(float(e), as_number(v)) for e, v in values]
    xs = list(steps) if steps is not None and len(steps) == len(values) else range(1, len(values) + 1)
    return [(float(x), as_number(v)) for x, v in zip(xs, values)]


def _series(history):
    """name -> (epochs, values) from a History, a dict of lists, or a dict of (epoch, value) lists."""
    epochs = None
    if hasattr(history, "history") and isinstance(history.history, dict):
        epochs = [e + 1 for e in getattr(history, "epoch", [])]
        history = history.history
    if not isinstance(history, dict):
        raise TypeError(f"plot_history expects a History or a dict of per-epoch values, got {type(history).__name__}.")
    series, numbered = {}, set()
    for name, values in history.items():
        values = list(values)
        if not (values and all(isinstance(v, (tuple, list)) and len(v) == 2 for v in values)):
            numbered.add(str(name))
        series[str(name)] = _pairs(values, epochs)
    # A validation series shorter than its training series (validation_freq=k): its values
    # belong to every k-th epoch.
    for name in numbered:
        pairs, train = series[name], series.get(name[4:]) if name.startswith("val_") else None
        if train and pairs and len(pairs) < len(train) and len(train) % len(pairs) == 0:
            k = len(train) // len(pairs)
            series[name] = [(train[(i + 1) * k - 1][0], v) for i, (_, v) in enumerate(pairs)]
    out = {}
    for name, pairs in series.items():
        pairs = [(x, y if y is not None and math.isfinite(y) else math.nan) for x, y in pairs if y is not None]
        if pairs:
            out[name] = ([x for x, _ in pairs], [y for _, y in pairs])
    return out


def _panels(series, metrics):
    """Panel names in order: loss first, then the others as logged; val_ series join their twin."""
    if metrics is not None:
        names = [m[4:] if m.startswith("val_") else m for m in metrics]
        missing = [m for m in names if m not in series and "val_" + m not in series]
        if missing and len(missing) == len(names):
            return [], missing
        return [m for m in dict.fromkeys(names) if m in series or "val_" + m in series], missing
    names = []
    for name in series:
        base = name[4:] if name.startswith("val_") else name
        if base not in names:
            names.append(base)
    names.sort(key=lambda n: n != "loss")
    return names, []


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def plot_history(history, path="training_curves.png", metrics=None, title=None):
    """Draw loss and metrics per epoch (training solid, validation dashed) into ``path``; returns ``path``.

    ``history``: a ``History`` from ``fit``, its ``history`` dict (name ->
    one value per epoch), or a dict of (epoch, value) pairs. ``metrics``:
    the panels to draw (``None``: every quantity). The format follows the
    extension (png, svg, pdf, jpg); the file is replaced atomically.
    """
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = os.fspath(path)
    extension = os.path.splitext(path)[1].lower().lstrip(".")
    fmt = extension if extension in _FORMATS else "png"
    series = _series(history)
    if isinstance(metrics, str):
        metrics = [metrics]
    names, missing = _panels(series, None if metrics is None else list(metrics))

    cols = min(max(len(names), 1), 3)
    rows = max(-(-len(names) // cols), 1)
    figure = Figure(figsize=(4.8 * cols, 3.4 * rows), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    if not names:
        axes = figure.add_subplot(1, 1, 1)
        text = "no values logged yet" if not missing else f"not logged: {', '.join(missing)}"
        axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    for index, name in enumerate(names):
        axes = figure.add_subplot(rows, cols, index + 1)
        for key, label, style in ((name, "train", "-"), ("val_" + name, "validation", "--")):
            if key in series:
                xs, ys = series[key]
                axes.plot(xs, ys, style, marker="o" if len(xs) < 30 else None, markersize=3, label=label)
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.grid(True, alpha=0.3)
        axes.xaxis.get_major_locator().set_params(integer=True)
        values = [y for key in (name, "val_" + name) if key in series for y in series[key][1]]
        finite = [y for y in values if math.isfinite(y)]
        if name in ("learning_rate", "lr") and finite and min(finite) > 0 and max(finite) > 10 * min(finite):
            axes.set_yscale("log")
        if "val_" + name in series:
            axes.legend(loc="best", fontsize="small")
    if title:
        figure.suptitle(title)

    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".tmp-", suffix="." + fmt, dir=folder)
    try:
        with os.fdopen(handle, "wb") as stream:
            figure.savefig(stream, format=fmt)
        os.chmod(temporary, 0o666 & ~_umask())   # mkstemp makes it private; a plain file is not
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path
