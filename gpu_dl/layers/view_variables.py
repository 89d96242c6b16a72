"""Variables over state kept elsewhere in its own form: an optimizer's learning rate and step count (Python numbers
the updates read on the host), a metric's running sums (arrays and counts its updates keep). Keras has Variables
there; these read as such (``value``, ``numpy()``, the arithmetic, a state tree's entries) and write back through
``assign``, while the code that keeps the state goes on as before, paying nothing for the view."""
from __future__ import annotations

import numpy

from .. import backend
from .base import Variable
from .symbolic import active_trace, is_symbolic

_NAMES = {"assign": "assign", "add": "assign_add", "sub": "assign_sub"}


class ViewVariable(Variable):
    """A non-trainable Variable of path ``path`` whose value is ``_read()`` (an array, read each time) and whose
    ``assign``/``assign_add``/``assign_sub(value)`` call ``_write(kind, value, what)`` ("assign", "add" or
    "sub"; the method's name for messages), which returns the new value. ``initial`` gives the dtype and shape
    at construction; what sets the state is named by ``_set_with`` in the error of an update inside a traced
    call."""

    _set_with = "with numbers"

    def __init__(self, initial, name, path, **arguments):
        super().__init__(initial, name, trainable=False, path=path, host=True, **arguments)
        self._made = True       # from now on, setting `value` is an assignment

    def __setstate__(self, state):
        self.__dict__.update(state)     # a copy reads its copied owner's state: no array of its own to register

    @property
    def _value(self):
        return self._read()

    @_value.setter
    def _value(self, array):
        pass    # the state lives in its owner (Variable.__init__ clears and sets the array it would hold)

    @property
    def value(self):
        return self._stored()

    @value.setter
    def value(self, array):
        if self.__dict__.get("_made"):
            self.assign(array)

    def _update(self, kind, value):
        what = _NAMES[kind]
        if is_symbolic(value) or active_trace() is not None:
            raise TypeError(f"Variable '{self.path}' is set {self._set_with}, not in a traced call ({what}).")
        return self._write(kind, value.numpy() if isinstance(value, Variable) else value, what)

    def _number(self, value, what, kinds, wanted):
        """``value`` as a 0-d NumPy array of a dtype kind among ``kinds`` ("fiu", "iu"); else a ValueError saying
        the variable is ``wanted`` ("a scalar learning rate; ... give a number")."""
        array = numpy.asarray(backend.to_numpy(value))
        if array.shape != () or array.dtype.kind not in kinds:
            raise ValueError(f"Variable '{self.path}' is {wanted.replace('...', f'cannot {what} {value!r}')}.")
        return array

    def _read(self):
        raise NotImplementedError

    def _write(self, kind, value, what):
        raise NotImplementedError
