"""``BatchNormalization``, ``LayerNormalization``, ``RMSNormalization`` and ``UnitNormalization``, as Keras 3
has them.

BatchNormalization normalizes each feature (the size along ``axis``) with the
batch's mean and biased variance over all other axes while training, and
with its moving statistics otherwise; each training call moves them
(``moving = moving * momentum + batch * (1 - momentum)``). Its weights are
gamma, beta (trainable), moving_mean and moving_variance (non-trainable:
saved and loaded with the model, never touched by the optimizer), in that
order. As in Keras 3, a layer with ``trainable = False`` runs in inference
mode even inside ``fit``, and a mask of padded steps (``(batch, timesteps)``
for a ``(batch, timesteps, features)`` input) leaves those steps out of the
batch statistics.

LayerNormalization normalizes each sample over ``axis`` (an int or a list),
with gamma and beta spanning those axes.

RMSNormalization scales each sample by the reciprocal root mean square over
``axis`` (an int or a list), then by its ``scale``; it does not centre.

UnitNormalization scales each slice along ``axis`` (an int or a list) to an
L2 norm of 1, as Keras's ``ops.normalize(x, axis, order=2, epsilon=1e-12)``
does; it has no weights and takes inputs of any rank.

The arithmetic lives in ``gpu_dl.ops.normalization``. On the GPU,
LayerNormalization (but for ``rms_scaling=True``) and RMSNormalization over
the trailing axes of a contiguous float32/float64 input run as the fused
kernels of ``kernels/normalization.cu``, and BatchNormalization over the last
axis (channels_last) of such an input as those of ``kernels/batchnorm.cu``
(unmasked, outside ``statistics_per_step``); other axes, strided inputs,
masked batches and per-step statistics run as CuPy array operations.
"""
from __future__ import annotations

import contextlib
import math
import numbers

from ..backend.user_warnings import warn
from ..ops.device_reduction import is_cupy
from ..ops.normalization import (ChannelStatistics, RowStatistics, batch_norm_fused, batch_norm_fused_backward,
                                 batch_norm_fused_inference, batch_norm_inference, batch_norm_train,
                                 fused_channels_apply, fused_rows_apply, l2_normalize, l2_normalize_backward,
                                 layer_norm_fused, layer_norm_fused_backward, normalize_backward, rms_norm_fused,
                                 rms_norm_fused_backward, rms_normalize, rms_normalize_backward, rms_scale,
                                 rms_scale_backward)
from .base import Layer, writable_value


def _integer(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{what} must be an integer (an axis of the input), got {value!r}.")
    return int(value)


def _number(value, what, low, high=math.inf):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not low <= value <= high:
        span = f"in [{low}, {high}]" if high != math.inf else f">= {low}"
        raise ValueError(f"{what} must be a number {span}, got {value!r}.")
    return float(value)


class _Normalization(Layer):
    """What both layers share: their axes resolved against an input's rank, and the input check."""

    supports_masking = True
    rank_fixed = True       # BatchNormalization fixes the rank, as Keras's input spec does

    def _axes(self):
        raise NotImplementedError

    def _set_parameter_gradients(self, dgamma, dbeta):
        """A backward pass's gradients of gamma and beta, where the layer has them and trains."""
        if self.trainable:
            for weight, gradient in ((self.gamma, dgamma), (self.beta, dbeta)):
                if weight is not None:
                    weight.grad = gradient.reshape(weight.shape)

    def _positions(self, rank):
        """The normalized axes as positions in an input of ``rank``; a ValueError naming the layer when one
        lies outside it, is the batch axis, or repeats."""
        axes = self._axes()
        if any(not -rank <= a < rank for a in axes):
            raise ValueError(f"{type(self).__name__} layer '{self.name}': axis {self.axis} is out of bounds for "
                             f"inputs of rank {rank} (axes -{rank} to {rank - 1}, 0 being the batch).")
        positions = sorted(a % rank for a in axes)
        if 0 in positions:
            raise ValueError(f"{type(self).__name__} layer '{self.name}': axis {self.axis} names the batch axis; its "
                             "weights would be sized by the batch. Normalize a feature axis (-1, the last, usually).")
        if len(set(positions)) != len(positions):
            raise ValueError(f"{type(self).__name__} layer '{self.name}': axis {self.axis} names one axis twice "
                             f"for inputs of rank {rank}.")
        return tuple(positions)

    def _built_sizes(self, input_shape):
        positions = self._positions(len(input_shape))
        sizes = tuple(input_shape[p] for p in positions)
        if any(s is None for s in sizes):
            raise ValueError(f"{type(self).__name__} layer '{self.name}' needs a known size along axis {self.axis}, "
                             f"got input shape {tuple(input_shape)}.")
        self._sizes = sizes
        return positions, sizes

    def compute_output_shape(self, input_shape):
        self._positions(len(input_shape))
        return tuple(input_shape)

    def check_input_shape(self, shape):
        spec = self.input_spec
        if spec is None:
            return
        shape = tuple(shape)
        fixed_rank = self.rank_fixed or any(a >= 0 for a in self._axes())
        wrong = fixed_rank and len(shape) != len(spec)
        if not wrong:
            try:
                positions = self._positions(len(shape))
            except ValueError:
                wrong = True
            else:
                wrong = any(shape[p] is not None and shape[p] != s for p, s in zip(positions, self._sizes))
        if wrong:
            held = "the rank and " if fixed_rank else ""
            raise ValueError(f"Input of layer '{self.name}' ({type(self).__name__}) is incompatible: expected shape "
                             f"{spec}, got {shape} (only {held}axis {self.axis} must match).")

    def _param(self, variable, shape):
        return None if variable is None else variable.value.reshape(shape)

    def _broadcast_shape(self, x, positions):
        shape = [1] * x.ndim
        for p in positions:
            shape[p] = x.shape[p]
        return tuple(shape)


class BatchNormalization(_Normalization):
    """Keras 3's ``BatchNormalization(axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, ...)``.

    ``synchronized`` is accepted and changes nothing (one device); batch renormalization (``renorm=True``)
    is not implemented. Keras takes a momentum outside [0, 1] and a negative epsilon; gpu_dl refuses them
    (the moving averages would diverge, the square root of a negative variance is NaN).
    """

    # As Keras's, under a float16 policy it normalizes in float32 (its statistics, its moving averages).
    computes_in_float32 = True

    takes_mask = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, beta_initializer="zeros",
                 gamma_initializer="ones", moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None, gamma_constraint=None,
                 renorm=False, renorm_clipping=None, renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        where = f"BatchNormalization layer '{self.name}'"
        self.axis = _integer(axis, f"{where}: axis")
        self.momentum = _number(momentum, f"{where}: momentum", 0.0, 1.0)
        self.epsilon = _number(epsilon, f"{where}: epsilon", 0.0)
        self.center, self.scale = bool(center), bool(scale)
        if renorm:
            raise ValueError(f"{where}: batch renormalization (renorm=True) is not implemented in gpu_dl.")
        self.renorm, self.renorm_clipping, self.renorm_momentum = False, renorm_clipping, renorm_momentum
        self.synchronized = bool(synchronized)
        self.set_weight_arguments(beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                                  moving_mean_initializer=moving_mean_initializer,
                                  moving_variance_initializer=moving_variance_initializer,
                                  beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                                  beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None
        self._per_step = None       # (steps, mask) within statistics_per_step

    def _axes(self):
        return (self.axis,)

    def build(self, input_shape):
        _, sizes = self._built_sizes(input_shape)
        if self.scale:
            self.gamma = self.add_weight(sizes, self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center:
            self.beta = self.add_weight(sizes, self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)
        self.moving_mean = self.add_weight(sizes, self.moving_mean_initializer, name="moving_mean", trainable=False)
        self.moving_variance = self.add_weight(sizes, self.moving_variance_initializer, name="moving_variance",
                                               trainable=False)

    @contextlib.contextmanager
    def statistics_per_step(self, steps, mask=None):
        """Within this context, a training call on ``(batch * steps, ...)`` takes its statistics over each
        step's slice alone, as Keras's ``TimeDistributed(BatchNormalization())`` does by calling the layer once
        per step: the input is viewed as ``(batch, steps, ...)``, the moments are taken per step, and the moving
        statistics move once per step, in step order. ``mask`` is the (batch, steps) mask of padded steps, which
        Keras hands each step's call (it fits only a (batch, features) slice, as Keras's mask check demands)."""
        self._per_step = (int(steps), mask)
        try:
            yield
        finally:
            self._per_step = None

    def _stat_axes(self, x, grouped=False):
        """The statistics' axes and the parameters' broadcast shape; ``grouped``: ``x`` is (batch, steps, ...)
        with per-step statistics, the step axis kept."""
        (position,) = self._positions(x.ndim - grouped)
        position += grouped
        kept = (position, 1) if grouped else (position,)
        return tuple(i for i in range(x.ndim) if i not in kept), self._broadcast_shape(x, (position,))

    def call(self, x, training=False, mask=None):
        # As in Keras 3, a frozen layer normalizes with its moving statistics even in training.
        through_statistics = bool(training and self.trainable)
        steps, step_mask = self._per_step or (None, None)
        if steps is not None:
            grouped = x.reshape((-1, steps) + tuple(x.shape[1:]))
            kept = self._kept(grouped, step_mask, per_step=True)    # checked at every call, as Keras does
            if through_statistics:
                return self._call_per_step(x, grouped, kept)
            mask = None         # the moving statistics: the mask changes nothing
        stat_axes, shape = self._stat_axes(x)
        gamma, beta = self._param(self.gamma, shape), self._param(self.beta, shape)
        kept = self._kept(x, mask)
        moving = self.moving_mean.value.reshape(shape), self.moving_variance.value.reshape(shape)
        if through_statistics and kept is None and fused_channels_apply(x, self.axis, gamma, beta):
            y, saved = self._train_fused(x, gamma, beta)
        elif through_statistics:
            y, mean, variance, saved = batch_norm_train(x, stat_axes, self.epsilon, gamma, beta, kept)
            self._move_statistics(mean, variance)
        elif fused_channels_apply(x, self.axis, gamma, beta, *moving):
            y, saved = batch_norm_fused_inference(x, *moving, self.epsilon, gamma, beta)
        else:
            y, saved = batch_norm_inference(x, *moving, self.epsilon, gamma, beta)
        self._saved = (saved, through_statistics, False) if training else None
        return y

    def _train_fused(self, x, gamma, beta):
        """A training call through kernels/batchnorm.cu: ``(y, ChannelStatistics)``. The moving statistics move
        in the kernel that finishes the batch statistics where their arrays can be written there (contiguous,
        of x's dtype), else as ``_move_statistics`` moves them."""
        targets = [writable_value(v) for v in (self.moving_mean, self.moving_variance)]
        in_kernel = all(is_cupy(t) and t.dtype == x.dtype and t.flags.c_contiguous for t in targets)
        flat = [t.reshape(-1) for t in targets] if in_kernel else [None, None]
        y, mean, variance, saved = batch_norm_fused(x, self.epsilon, gamma, beta, moving_mean=flat[0],
                                                    moving_variance=flat[1], momentum=self.momentum)
        if not in_kernel:
            self._move_statistics(mean, variance)
        return y, saved

    def _call_per_step(self, x, grouped, kept):
        """The training call within ``statistics_per_step``: ``grouped`` is ``x`` viewed as (batch, steps, ...)."""
        stat_axes, shape = self._stat_axes(grouped, grouped=True)
        gamma, beta = self._param(self.gamma, shape), self._param(self.beta, shape)
        y, mean, variance, saved = batch_norm_train(grouped, stat_axes, self.epsilon, gamma, beta, kept)
        for step in range(grouped.shape[1]):     # one update per step, in Keras's order
            self._move_statistics(mean.take(step, axis=1), variance.take(step, axis=1))
        self._saved = (saved, True, True)
        return y.reshape(x.shape)

    def _move_statistics(self, mean, variance):
        dtype = mean.dtype.type
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            # Keras's order of operations: moving * momentum + batch * (1 - momentum).
            target = writable_value(moving)     # the variable's array, or its value in a StatelessScope
            target[...] = target * dtype(self.momentum) + batch.reshape(moving.shape) * dtype(1.0 - self.momentum)

    def _kept(self, x, mask, per_step=False):
        """The mask as positions kept in the statistics (broadcastable to ``x``), or None."""
        if mask is None:
            return None
        if mask.ndim != x.ndim - 1:
            if per_step:
                raise ValueError(f"BatchNormalization layer '{self.name}': inside TimeDistributed each step's "
                                 f"slice of shape {tuple(x.shape[:1] + x.shape[2:])} gets the mask of that step, "
                                 f"of shape {tuple(mask.shape[:1])}; as in Keras, the mask must have one axis "
                                 "less than the input, so a masked TimeDistributed(BatchNormalization) takes "
                                 "(batch, timesteps, features) inputs only.")
            raise ValueError(f"BatchNormalization layer '{self.name}': the mask must have one axis less than "
                             f"the input, as in Keras; got a mask of shape {tuple(mask.shape)} for an input "
                             f"of shape {tuple(x.shape)}.")
        return mask[..., None]

    def backward(self, dy):
        saved, through_statistics, grouped = self.saved()
        if isinstance(saved, ChannelStatistics):     # the forward ran kernels/batchnorm.cu
            return self._backward_fused(dy, saved)
        dy_shape = dy.shape
        if grouped:
            dy = dy.reshape(saved.x.shape)
        stat_axes, shape = self._stat_axes(dy, grouped)
        # The parameters span every axis but the features', the steps' included.
        param_axes = tuple(sorted(set(stat_axes) | {1})) if grouped else stat_axes
        dx, dgamma, dbeta = normalize_backward(
            dy, saved, stat_axes, param_axes, self._param(self.gamma, shape), through_statistics=through_statistics,
            need_input_grad=self.input_gradient_wanted,
            need_param_grads=self.trainable and (self.scale or self.center))
        if dx is not None:
            dx = dx.reshape(dy_shape)
        self._set_parameter_gradients(dgamma, dbeta)
        return dx

    def _backward_fused(self, dy, saved):
        gamma = None if self.gamma is None else self.gamma.value
        dx, dgamma, dbeta = batch_norm_fused_backward(dy, saved, gamma, need_input_grad=self.input_gradient_wanted)
        self._set_parameter_gradients(dgamma, dbeta)
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, **self.weight_arguments_config(),
                "synchronized": self.synchronized, "renorm": self.renorm, "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum}


class LayerNormalization(_Normalization):
    """Keras 3's ``LayerNormalization(axis=-1, epsilon=1e-3, center=True, scale=True, ...)``.

    ``rms_scaling=True`` is Keras's deprecated variant (``x / sqrt(variance + epsilon) * gamma``, no beta),
    kept so that files using it load; Keras warns about it, and so does gpu_dl. A negative epsilon is
    refused (Keras takes it).
    """

    # As Keras's, under a float16 policy it normalizes in float32.
    computes_in_float32 = True

    rank_fixed = False      # with negative axes only, as in Keras, any rank whose normalized sizes match

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, rms_scaling=False, beta_initializer="zeros",
                 gamma_initializer="ones", beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, **kwargs):
        super().__init__(**kwargs)
        where = f"LayerNormalization layer '{self.name}'"
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise ValueError(f"{where}: axis must name at least one axis, got {axis!r}.")
            self.axis = [_integer(a, f"{where}: axis") for a in axis]
        else:
            self.axis = _integer(axis, f"{where}: axis (an integer or a list of them)")
        self.epsilon = _number(epsilon, f"{where}: epsilon", 0.0)
        self.center, self.scale, self.rms_scaling = bool(center), bool(scale), bool(rms_scaling)
        if self.rms_scaling:
            warn(f"{where}: rms_scaling=True is deprecated in Keras 3: it divides by the standard "
                 "deviation, not the root mean square.")
        self.set_weight_arguments(beta_initializer=beta_initializer, gamma_initializer=gamma_initializer,
                                  beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                                  beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        self.gamma = self.beta = None

    def _axes(self):
        return tuple(self.axis) if isinstance(self.axis, list) else (self.axis,)

    def build(self, input_shape):
        _, sizes = self._built_sizes(input_shape)
        # Keras keeps the axes as a sorted list once built (and saves them so).
        self.axis = sorted(self._axes())
        if self.scale or self.rms_scaling:
            self.gamma = self.add_weight(sizes, self.gamma_initializer, name="gamma",
                                         regularizer=self.gamma_regularizer, constraint=self.gamma_constraint)
        if self.center and not self.rms_scaling:
            self.beta = self.add_weight(sizes, self.beta_initializer, name="beta",
                                        regularizer=self.beta_regularizer, constraint=self.beta_constraint)

    def _axes_of(self, x):
        positions = self._positions(x.ndim)
        other = tuple(i for i in range(x.ndim) if i not in positions)
        return positions, other, self._broadcast_shape(x, positions)

    def call(self, x, training=False):
        positions, _, shape = self._axes_of(x)
        gamma = self._param(self.gamma, shape)
        beta = self._param(self.beta, shape)
        if self.rms_scaling:
            y, saved = rms_scale(x, positions, self.epsilon, gamma)
        elif fused_rows_apply(x, positions, gamma, beta):
            y, saved = layer_norm_fused(x, positions, self.epsilon, gamma, beta, want_stats=training)
        else:
            y, _, _, saved = batch_norm_train(x, positions, self.epsilon, gamma, beta)
        self._saved = saved if training else None
        return y

    def backward(self, dy):
        saved = self.saved()
        positions, other, shape = self._axes_of(dy)
        gamma = self._param(self.gamma, shape)
        want = dict(need_input_grad=self.input_gradient_wanted,
                    need_param_grads=self.trainable and (self.gamma is not None or self.beta is not None))
        if isinstance(saved, RowStatistics):     # the forward ran the fused kernel
            dx, dgamma, dbeta = layer_norm_fused_backward(
                dy, saved, gamma, need_input_grad=want["need_input_grad"],
                want_gamma=want["need_param_grads"] and self.gamma is not None,
                want_beta=want["need_param_grads"] and self.beta is not None)
        elif self.rms_scaling:
            (dx, dgamma), dbeta = rms_scale_backward(dy, saved, positions, other, gamma, **want), None
        else:
            dx, dgamma, dbeta = normalize_backward(dy, saved, positions, other, gamma, through_statistics=True,
                                                   **want)
        self._set_parameter_gradients(dgamma, dbeta)
        return dx

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon, "center": self.center,
                "scale": self.scale, "rms_scaling": self.rms_scaling, **self.weight_arguments_config()}


class RMSNormalization(_Normalization):
    """Keras 3's ``RMSNormalization(axis=-1, epsilon=1e-6)``: ``x / sqrt(mean(x**2) + epsilon) * scale`` over
    ``axis`` (an int or a list of them), ``scale`` starting at ones and spanning those axes. As in Keras, the
    axis becomes a sorted list once built, and masks are not passed on. A negative epsilon is refused."""

    call_first_argument = "x"       # Keras's RMSNormalization.call(x)
    rank_fixed = False
    supports_masking = False

    def __init__(self, axis=-1, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        where = f"RMSNormalization layer '{self.name}'"
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise ValueError(f"{where}: axis must name at least one axis, got {axis!r}.")
            self.axis = [_integer(a, f"{where}: axis") for a in axis]
        else:
            self.axis = _integer(axis, f"{where}: axis (an integer or a list of them)")
        self.epsilon = _number(epsilon, f"{where}: epsilon", 0.0)
        self.scale = None

    def _axes(self):
        return tuple(self.axis) if isinstance(self.axis, list) else (self.axis,)

    def build(self, input_shape):
        _, sizes = self._built_sizes(input_shape)
        self.axis = sorted(self._axes())
        self.scale = self.add_weight(sizes, "ones", name="scale")

    def _axes_of(self, x):
        positions = self._positions(x.ndim)
        other = tuple(i for i in range(x.ndim) if i not in positions)
        return positions, other, self._broadcast_shape(x, positions)

    def call(self, x, training=False):
        positions, _, shape = self._axes_of(x)
        # Keras computes in float32 at least (a float16 input included).
        work = x if x.dtype.itemsize >= 4 else x.astype("float32")
        scale = self._param(self.scale, shape).astype(work.dtype, copy=False)    # no copy in the same dtype
        if fused_rows_apply(work, positions, scale):
            y, saved = rms_norm_fused(work, positions, self.epsilon, scale, want_stats=training)
            self._saved = (work, saved) if training else None     # saved.x is work: kept once
        else:
            y, inv = rms_normalize(work, positions, self.epsilon, scale)
            self._saved = (work, inv) if training else None
        return y.astype(x.dtype, copy=False)

    def backward(self, dy):
        x, inv = self.saved()
        positions, other, shape = self._axes_of(dy)
        scale = self._param(self.scale, shape).astype(x.dtype, copy=False)
        want = dict(need_input_grad=self.input_gradient_wanted, need_param_grads=self.trainable)
        if isinstance(inv, RowStatistics):     # the forward ran the fused kernel
            dx, dscale = rms_norm_fused_backward(dy, inv, scale, **want)
        else:
            dx, dscale = rms_normalize_backward(dy.astype(x.dtype, copy=False), x, inv, positions, other, scale,
                                                **want)
        if self.trainable:
            self.scale.grad = dscale.reshape(self.scale.shape).astype(self.scale.dtype, copy=False)
        return None if dx is None else dx.astype(dy.dtype, copy=False)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}


class UnitNormalization(Layer):
    """Keras 3's ``UnitNormalization(axis=-1)``: ``x / sqrt(sum(x**2))`` over ``axis`` (an int or a list of
    them; the batch axis too, as Keras allows), a zero slice left zero. Passes masks on."""

    fixed_input_axes = ()
    supports_masking = True
    epsilon = 1e-12           # Keras's, fixed: 1 / epsilon caps the factor of a near-zero slice

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        where = f"UnitNormalization layer '{self.name}': axis"
        if isinstance(axis, (list, tuple)):
            if not axis:
                raise ValueError(f"{where} must name at least one axis, got {axis!r}.")
            if any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axis):
                raise TypeError(f"{where} must be an integer or a list of integers, got {axis!r}.")
            self.axis = [int(a) for a in axis]
        elif isinstance(axis, numbers.Integral) and not isinstance(axis, bool):
            self.axis = int(axis)
        else:
            raise TypeError(f"{where} must be an integer or a list of integers, got {axis!r}.")

    def _positions(self, rank):
        axes = self.axis if isinstance(self.axis, list) else [self.axis]
        if any(not -rank <= a < rank for a in axes):
            raise ValueError(f"UnitNormalization layer '{self.name}': axis {self.axis} is out of bounds for inputs "
                             f"of rank {rank} (axes -{rank} to {rank - 1}, 0 being the batch).")
        positions = tuple(sorted(a % rank for a in axes))
        if len(set(positions)) != len(positions):
            raise ValueError(f"UnitNormalization layer '{self.name}': axis {self.axis} names one axis twice for "
                             f"inputs of rank {rank}.")
        return positions

    def check_input_shape(self, shape):
        self._positions(len(shape))

    def build(self, input_shape):
        self._positions(len(input_shape))

    def compute_output_shape(self, input_shape):
        self._positions(len(input_shape))
        return tuple(input_shape)

    def call(self, x, training=False):
        positions = self._positions(x.ndim)
        y, inv = l2_normalize(x, positions, self.epsilon)
        self._saved = (x, inv, positions) if training else None
        return y

    def backward(self, dy):
        x, inv, positions = self.saved()
        if not self.input_gradient_wanted:
            return None
        return l2_normalize_backward(dy, x, inv, positions, self.epsilon)

    def get_config(self):
        return {**super().get_config(), "axis": self.axis}
