"""Name lookup shared by the Keras catalogues (losses, optimizers, activations, ...).

Each catalogue keeps a dict from lower-case name to object; ``lookup`` turns a
user's string into the entry, or raises a ``ValueError`` that names what was
asked for, suggests the nearest names and lists the rest.
"""
from __future__ import annotations

import difflib
import re


def snake_case(name: str) -> str:
    """'MeanSquaredError' -> 'mean_squared_error', as Keras serialises class names."""
    name = re.sub(r"(.)([A-Z][a-z0-9]+)", r"\1_\2", name)
    return re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower()


def lookup(kind: str, identifier: str, table: dict):
    """The entry of ``table`` for ``identifier``, matched without regard to case.

    ``kind`` is a plural noun for the message ("losses", "optimizers").
    """
    if not isinstance(identifier, str):
        raise TypeError(f"expected the name of one of the {kind} as a string, got {identifier!r}.")
    key = identifier.strip()
    for candidate in (key, key.lower(), snake_case(key)):
        if candidate in table:
            return table[candidate]
    known = sorted(table)
    close = difflib.get_close_matches(key.lower(), known, n=3, cutoff=0.6)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"Unknown name {identifier!r} among the {kind}.{hint} Known {kind}: {', '.join(known)}.")
