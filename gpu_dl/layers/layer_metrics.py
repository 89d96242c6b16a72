"""Metrics held by layers: Keras 3's ``Layer.metrics``, and the metrics a model reports beside its compiled ones.

As Keras's layers track them, a ``Metric`` set as an attribute of a layer (or held in a list, tuple or dict
there) belongs to the layer, in the order the attributes were set. ``layer.metrics`` lists the layer's own, then
its sublayers' ``metrics`` (so a metric of a layer two levels down is listed by each layer above it). A model's
``metrics`` (``Model.metrics``) are its compiled metrics, then those it holds itself, then each layer's
``metrics``, the layers walked as Keras's ``_flatten_layers`` walks them, models among them left out (their
compiled metrics are theirs): a metric may thus be listed more than once, as in Keras, which logs it once and
resets it as often. ``model_metrics`` gives that list without the compiled metrics: they are what fit and
evaluate reset at each epoch and report after them.
"""
from __future__ import annotations

from .layer_losses import flatten_layers


def own_metrics(holder, skip=()):
    """The metrics held in ``holder``'s attributes (but those named in ``skip``), or in lists, tuples and dicts
    there, each once, in the order the attributes were set."""
    from ..metric_base import Metric     # the catalogue sits above the layers; import late
    found, seen = [], set()
    for name, value in holder.__dict__.items():
        if name in skip:
            continue
        items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) \
            else (value,)
        for item in items:
            if isinstance(item, Metric) and id(item) not in seen:
                seen.add(id(item))
                found.append(item)
    return found


def layer_metrics(layer):
    """``layer.metrics``: its own metrics, then each sublayer's ``metrics``."""
    found = own_metrics(layer)
    for sublayer in layer._sublayers():
        found.extend(sublayer.metrics)
    return found


def model_metrics(model, skip=(), is_model=lambda layer: False):
    """The metrics a model reports beside its compiled ones: those it holds (but the attributes named in
    ``skip``), then those of its layers, walked as Keras walks them, the models among them (``is_model``) left
    out."""
    found = own_metrics(model, skip)
    for layer in flatten_layers(model):
        if not is_model(layer):
            found.extend(layer.metrics)
    return found
