"""``gpu_dl.random``'s draws as operations of a graph: what ``keras.random.normal``, ``dropout``, ``shuffle``, ...
record on symbolic tensors, chiefly in the traced ``call`` of a composite layer (``models/composite.py``).

Each run of the graph draws afresh from the operation's ``seed``: a SeedGenerator moves on at every run, so a
model trained with ``SeedGenerator(1337)`` sees new noise at each step and the same sequence of noise run after
run; None draws from the global generator; an int gives the same values at every run, as Keras's does. Tracing
draws nothing. No gradient goes into the noise: a draw of a shape (``RandomDraw``) sends none back to the tensor it
reads, dropout's backward multiplies by its kept mask and the same ``1 / (1 - rate)``, and shuffle's puts each
gradient back where its element came from.

A draw of a shape reads the first input of the traced call (``symbolic.trace_anchor``): a None in its shape (as
``ops.shape`` gives for the batch axis) is that input's batch size at each run. Keras records no operation for
its random functions (they run eagerly in its layers' calls), so a functional model holding one of these cannot be
saved as a Keras config: ``get_config`` says so. The maths is ``ops/random_draws.py``.
"""
from __future__ import annotations

import numpy

from ...ops import random_draws
from ..seed_generator import draw_seed
from ..symbolic import is_symbolic
from .base import KerasOperation, _xp


class RandomOperation(KerasOperation):
    """A draw of ``seed`` (an int, a SeedGenerator or None) at every run; no Keras class."""

    keras_module = None
    what = "a random draw"

    def __init__(self, seed=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.seed = seed

    def get_config(self):
        raise ValueError(f"{self._where()}: {self.what} (keras.random) cannot be written in a model config: Keras "
                         "records no operation for its random functions. Draw in the call of a layer (a composite "
                         "Layer subclass, whose config is its own), or use a layer such as Dropout or GaussianNoise.")

    def __call__(self, x, training=None, mask=None, initial_state=None):
        y = super().__call__(x, training=training, mask=mask, initial_state=initial_state)
        drawn = self.__dict__.pop("_drawn", None)
        if not is_symbolic(y) and self._saved is not None:
            self._saved = (self._saved[0], drawn)    # the backward needs what was drawn, not the output
        return y


class RandomDraw(RandomOperation):
    """``normal``, ``uniform``, ``truncated_normal``, ``randint``, ``gamma``, ``beta`` or ``binomial`` of ``shape``
    (None: the batch size of the tensor read), with the function's other arguments in ``parameters``."""

    casts_inputs = False

    def __init__(self, kind, shape, parameters, dtype, seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.kind = kind
        self.shape = tuple(shape)
        self.parameters = dict(parameters)
        self.target = dtype
        self.what = f"a draw of keras.random.{kind}"

    def result_dtype(self, tensors, arguments):
        return self.target

    def output_shape_of(self, arguments, shapes):
        return self.shape

    def forward_function(self, anchor):
        shape = tuple(anchor.shape[0] if n is None else n for n in self.shape)
        return getattr(random_draws, self.kind)(_xp(anchor), draw_seed(self.seed), shape, dtype=self.target,
                                                **self.parameters)

    def backward(self, dy):
        return None


class RandomDropout(RandomOperation):
    """``dropout(x, rate, noise_shape, seed)``: x scaled by ``1 / (1 - rate)`` where a uniform draw of
    ``noise_shape`` (None: x's size) falls below ``1 - rate``, 0 elsewhere."""

    what = "keras.random.dropout"

    def __init__(self, rate, noise_shape=None, seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.rate = rate
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def forward_function(self, x):
        if self.rate == 0:
            return x
        xp = _xp(x)
        if self.rate == 1:
            self._drawn = False
            return xp.zeros_like(x)
        shape = x.shape if self.noise_shape is None else tuple(
            x.shape[i] if n is None else n for i, n in enumerate(self.noise_shape))
        keep = random_draws.dropout_mask(xp, draw_seed(self.seed), shape) < 1.0 - self.rate
        self._drawn = keep
        return random_draws.dropout_forward(x, keep, self.rate)

    def backward_function(self, dy, operands, keep):
        if keep is None:
            return [dy]
        if keep is False:
            return [_xp(dy).zeros_like(dy)]
        return [random_draws.dropout_backward(dy, keep, self.rate)]


class RandomShuffle(RandomOperation):
    """``shuffle(x, axis, seed)``: each 1-D slice of x along ``axis`` in an order of its own."""

    what = "keras.random.shuffle"

    def __init__(self, axis=0, seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.axis = axis

    def output_shape_of(self, arguments, shapes):
        return tuple(shapes[0])

    def forward_function(self, x):
        xp = _xp(x)
        indices = random_draws.shuffle_indices(xp, draw_seed(self.seed), x.shape, self.axis)
        self._drawn = indices
        return xp.take_along_axis(x, indices, axis=self.axis)

    def backward_function(self, dy, operands, indices):
        xp = _xp(dy)
        return [xp.take_along_axis(dy, xp.argsort(indices, axis=self.axis), axis=self.axis)]


class RandomCategorical(RandomOperation):
    """``categorical(logits, num_samples, dtype, seed)``: class ids of each row's softmax; no gradient."""

    casts_inputs = False
    what = "keras.random.categorical"

    def __init__(self, num_samples, dtype="int32", seed=None, name=None, **kwargs):
        super().__init__(seed=seed, name=name, **kwargs)
        self.num_samples = num_samples
        self.target = dtype

    def result_dtype(self, tensors, arguments):
        return self.target

    def output_shape_of(self, arguments, shapes):
        return (shapes[0][0], self.num_samples)

    def forward_function(self, logits):
        return random_draws.categorical(logits, draw_seed(self.seed), self.num_samples, numpy.dtype(self.target))

    def backward(self, dy):
        return None
