"""Keras's ``keras.utils.Config``: a dict of named values that also reads and writes them as attributes, can be
frozen against changes, and writes itself as JSON."""
from __future__ import annotations

import copy
import difflib
import json


class Config:
    """``Config(learning_rate=0.1, momentum=0.9)``: entries read and set as ``config.momentum`` or
    ``config["momentum"]``; ``keys()``/``values()``/``items()``/``get``/``pop``/``update`` as a dict's (iterating
    gives the keys sorted, as Keras's does); ``as_dict()`` a copy of the entries; ``to_json()`` them as JSON;
    ``freeze()`` makes every change a ValueError until ``unfreeze()``. Reading an unknown attribute is an
    AttributeError naming the closest entry."""

    # The names of the class's own attributes and methods, set once the instance is made: other attribute names
    # are entries.
    __attrs__ = None

    def __init__(self, **kwargs):
        self._config = kwargs
        self._frozen = False
        self.__attrs__ = set(dir(self))

    @property
    def frozen(self):
        """Whether the config is frozen."""
        return self._frozen

    def freeze(self):
        """Refuse every change from now on (until ``unfreeze``)."""
        self._frozen = True

    def unfreeze(self):
        self._frozen = False

    def _raise_if_frozen(self):
        if self._frozen:
            raise ValueError("Cannot mutate attribute(s) because the config is frozen.")

    def as_dict(self):
        return copy.copy(self._config)

    def to_json(self):
        return json.dumps(self._config)

    def keys(self):
        return self._config.keys()

    def values(self):
        return self._config.values()

    def items(self):
        return self._config.items()

    def pop(self, *args):
        self._raise_if_frozen()
        return self._config.pop(*args)

    def update(self, *args, **kwargs):
        self._raise_if_frozen()
        return self._config.update(*args, **kwargs)

    def get(self, keyname, value=None):
        return self._config.get(keyname, value)

    def __setattr__(self, name, value):
        own = object.__getattribute__(self, "__attrs__")
        if own is None or name in own:
            object.__setattr__(self, name, value)
            return
        self._raise_if_frozen()
        self._config[name] = value

    def __getattr__(self, name):
        # Reached only for names that are not attributes of the instance or its class: the entries.
        config = object.__getattribute__(self, "_config")
        if name in config:
            return config[name]
        message = f"Unknown attribute: '{name}'."
        closest = difflib.get_close_matches(name, list(config), n=1, cutoff=0.7)
        if closest:
            message += f" Did you mean '{closest[0]}'?"
        raise AttributeError(message)

    def __setitem__(self, key, item):
        self._raise_if_frozen()
        self._config[key] = item

    def __getitem__(self, key):
        return self._config[key]

    def __delitem__(self, key):
        self._raise_if_frozen()
        del self._config[key]

    def __contains__(self, item):
        return item in self._config

    def __iter__(self):
        return iter(sorted(self._config))

    def __len__(self):
        return len(self._config)

    def __repr__(self):
        return f"<Config {self._config}>"
