"""Keras's ``keras.ops.nn`` convolutions ``Conv`` and ``ConvTranspose``: 1-, 2- and 3-D, with Keras's class,
module and config, a forward and an exact backward in the input and in the kernel.

They run the convolutions the ``Conv*`` layers run, on channels_last data (channels_first inputs are transposed
in and out): ``ops/convolution.py`` for 1-D inputs (images of height 1, the kernel (1, k, in, out)) and 2-D
ones, which on CuPy arrays launches the implicit-GEMM kernels of ``kernels/conv2d.cu``; ``ops/conv3d.py`` for
3-D ones (one 2-D convolution per kernel depth tap). A transposed convolution is the input gradient of the
convolution that maps its output back to its input (``ops/transposed_convolution.py``), so both classes' passes
are the same three functions read in different orders.

Layouts are Keras's: ``conv``'s kernel is ``window + (in_channels / groups, out_channels)``, where an input of
more channels than the kernel's ``in`` is a grouped convolution of ``channels / in`` groups, as Keras's torch
backend computes on arrays (Keras's symbolic call refuses it: a model holding one does not load in Keras);
``conv_transpose``'s kernel is ``window + (out_channels, in_channels)``. "same" pads as Keras does (the odd pad
after); ``output_padding`` sets a transposed output's length as in Keras.
"""
from __future__ import annotations

from ...ops import conv3d
from ...ops.convolution import conv2d_backward_input, conv2d_backward_kernel, conv2d_forward, conv_padding
from ...ops.transposed_convolution import transpose_output_length, transpose_padding
from .base import _xp
from .nn_base import NNOperation, _data_format, _first_shape, _from_last, _last_shape, _padding, _spatial_rank, \
    _to_last, _tuple

__all__ = ["Conv", "ConvTranspose", "OPERATIONS"]


def _setting(value):
    """A per-axis setting as Keras keeps it: an int, or a list (tuples are written as lists)."""
    return list(value) if isinstance(value, (list, tuple)) else value


class _Convolution(NNOperation):
    """What ``Conv`` and ``ConvTranspose`` share: the settings, the input's rank and the passes by rank."""

    positional = ("inputs", "kernel")
    required = 2

    def _window(self, last_shape, kernel_shape):
        """(spatial rank, window, strides, dilation) for a channels_last input shape and a kernel shape."""
        where = self._where()
        rank = _spatial_rank(last_shape, where)
        if len(kernel_shape) != rank + 2:
            raise ValueError(f"{where}: the kernel of an input of {rank} spatial axes has rank {rank + 2} "
                             f"({self.layout}), got shape {tuple(kernel_shape)} for the input {tuple(last_shape)} "
                             f"({self.data_format}).")
        strides = _tuple(self.strides, rank, "strides", where)
        dilation = _tuple(self.dilation_rate, rank, "dilation_rate", where)
        window = tuple(int(k) for k in kernel_shape[:rank])
        if min(window) < 1:
            raise ValueError(f"{where}: the kernel's window must be at least 1 along every axis, got "
                             f"{tuple(kernel_shape)}.")
        return rank, window, strides, dilation

    @staticmethod
    def _planar(x):
        """A 1-D input as an image of height 1 (a view); 2-D and 3-D inputs as they are. C-contiguous."""
        return _xp(x).ascontiguousarray(x[:, None] if x.ndim == 3 else x)

    @staticmethod
    def _planar_kernel(kernel, rank):
        return kernel[None] if rank == 1 else kernel

    @staticmethod
    def _planar_geometry(rank, strides, pads, dilation):
        """The 2-D (or 3-D) ops' keyword arguments: a 1-D geometry gains a height axis of size 1."""
        if rank == 1:
            return {"strides": (1,) + strides, "padding": ((0, 0),) + tuple(pads), "dilation": (1,) + dilation}
        return {"strides": strides, "padding": tuple(pads), "dilation": dilation}

    @staticmethod
    def _convolved(rank, x, kernel, groups=1, **geometry):
        return (conv3d.conv3d_forward if rank == 3 else conv2d_forward)(x, kernel, groups=groups, **geometry)

    @staticmethod
    def _input_gradient(rank, dy, kernel, shape, groups=1, **geometry):
        gradient = conv3d.conv3d_backward_input if rank == 3 else conv2d_backward_input
        return gradient(dy, kernel, tuple(shape), groups=groups, **geometry)

    @staticmethod
    def _kernel_gradient(rank, x, dy, shape, groups=1, **geometry):
        gradient = conv3d.conv3d_backward_kernel if rank == 3 else conv2d_backward_kernel
        return gradient(x, dy, tuple(shape), groups=groups, **geometry)

    def _unplanar(self, y, rank):
        """The output of the planar ops back in the input's layout, C-contiguous (the kernels read it so)."""
        return _xp(y).ascontiguousarray(_from_last(y[:, 0] if rank == 1 else y, self.data_format))


class Conv(_Convolution):
    """``conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1)``: 1-, 2- or 3-D,
    kernel ``window + (in_channels / groups, out_channels)``."""

    config_keys = ("strides", "padding", "data_format", "dilation_rate")
    layout = "*window, in channels, out channels"

    def __init__(self, strides=1, padding="valid", data_format=None, dilation_rate=1, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.strides = _setting(strides)
        self.padding = _padding(padding, self._where())
        self.data_format = _data_format(data_format, self._where())
        self.dilation_rate = _setting(dilation_rate)

    def _geometry(self, last_shape, kernel_shape):
        """(rank, groups, the planar ops' geometry, output shape channels_last)."""
        where = self._where()
        rank, window, strides, dilation = self._window(last_shape, kernel_shape)
        channels, per_group, filters = last_shape[-1], kernel_shape[-2], kernel_shape[-1]
        groups = 1
        if channels is not None:
            if per_group < 1 or channels % per_group:
                raise ValueError(f"{where}: the input's {channels} channels ({tuple(last_shape)}, "
                                 f"{self.data_format}) must be a multiple of the kernel's {per_group} input channels "
                                 f"(kernel {tuple(kernel_shape)}: {self.layout}).")
            groups = channels // per_group
            if filters % groups:
                raise ValueError(f"{where}: an input of {channels} channels and a kernel of {per_group} input "
                                 f"channels make {groups} groups, which must divide the kernel's {filters} output "
                                 f"channels (kernel {tuple(kernel_shape)}).")
        pads = conv_padding(self.padding, last_shape[1:-1], window, strides, dilation)
        out = []
        for n, k, s, d, p in zip(last_shape[1:-1], window, strides, dilation, pads):
            size = None if n is None else (n + p[0] + p[1] - d * (k - 1) - 1) // s + 1
            if size is not None and size < 1:
                raise ValueError(f"{where}: a window of {k} (dilation {d}) does not fit an axis of {n} "
                                 f"(padding '{self.padding}'); use padding='same' or a longer input.")
            out.append(size)
        geometry = self._planar_geometry(rank, strides, pads, dilation) if None not in pads else None
        return rank, groups, geometry, (last_shape[0],) + tuple(out) + (filters,)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        last = _last_shape(given["inputs"], self.data_format)
        return _first_shape(self._geometry(last, given["kernel"])[3], self.data_format)

    def forward_function(self, x, kernel):
        x = _to_last(x, self.data_format)
        rank, groups, geometry, _ = self._geometry(x.shape, kernel.shape)
        y = self._convolved(rank, self._planar(x), self._planar_kernel(kernel, rank), groups, **geometry)
        return self._unplanar(y, rank)

    def backward_function(self, dy, operands, y):
        x, kernel = _to_last(operands[0], self.data_format), operands[1]
        rank, groups, geometry, _ = self._geometry(x.shape, kernel.shape)
        image, kernel2 = self._planar(x), self._planar_kernel(kernel, rank)
        dy = self._planar(_to_last(dy, self.data_format))
        dx = self._input_gradient(rank, dy, kernel2, image.shape, groups, **geometry)
        dk = self._kernel_gradient(rank, image, dy, kernel2.shape, groups, **geometry)
        return [self._unplanar(dx, rank), dk.reshape(kernel.shape)]


class ConvTranspose(_Convolution):
    """``conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
    dilation_rate=1)``: 1-, 2- or 3-D, kernel ``window + (out_channels, in_channels)``."""

    config_keys = ("strides", "padding", "output_padding", "data_format", "dilation_rate")
    layout = "*window, out channels, in channels"

    def __init__(self, strides=1, padding="valid", output_padding=None, data_format=None, dilation_rate=1,
                 name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.strides = _setting(strides)
        self.output_padding = _setting(output_padding)
        self.padding = _padding(padding, self._where())
        self.data_format = _data_format(data_format, self._where())
        self.dilation_rate = _setting(dilation_rate)

    def _extras(self, rank, strides):
        """The output padding per axis (None: Keras's default), each less than its axis's stride."""
        where = self._where()
        if self.output_padding is None:
            return (None,) * rank
        value = self.output_padding
        if isinstance(value, int) and not isinstance(value, bool):
            extras = (value,) * rank
        else:
            try:
                extras = tuple(int(v) for v in value)
            except TypeError:
                raise TypeError(f"{where}: `output_padding` must be None, an int or {rank} ints, got "
                                f"{value!r:.80}.") from None
        if len(extras) != rank or any(e < 0 for e in extras):
            raise ValueError(f"{where}: `output_padding` must be None, a non-negative int or {rank} of them for an "
                             f"input of {rank} spatial axes, got {value!r:.80}.")
        for axis, (e, s) in enumerate(zip(extras, strides)):
            if e >= s:
                raise ValueError(f"{where}: `output_padding` must be less than `strides` along every axis (as in "
                                 f"Keras); along spatial axis {axis} it is {e} with a stride of {s}.")
        return extras

    def _geometry(self, last_shape, kernel_shape):
        """(rank, the planar ops' geometry, output shape channels_last)."""
        where = self._where()
        rank, window, strides, dilation = self._window(last_shape, kernel_shape)
        if last_shape[-1] is not None and kernel_shape[-1] != last_shape[-1]:
            raise ValueError(f"{where}: the kernel {tuple(kernel_shape)} ({self.layout}) takes {kernel_shape[-1]} "
                             f"input channels, the input {tuple(last_shape)} has {last_shape[-1]} "
                             f"({self.data_format}).")
        extras = self._extras(rank, strides)
        axes = list(zip(last_shape[1:-1], window, strides, dilation, extras))
        out = tuple(transpose_output_length(n, k, s, d, self.padding, e) for n, k, s, d, e in axes)
        for (n, k, s, d, e), o in zip(axes, out):
            if o is not None and o < 1:
                raise ValueError(f"{where}: an axis of {n} gives an output of {o} (padding '{self.padding}', "
                                 f"strides {s}, output_padding {e}, a window of {k} spanning {d * (k - 1) + 1}); "
                                 f"use a larger output_padding or padding='valid'.")
        pads = tuple(transpose_padding(n, k, s, d, self.padding, e) for n, k, s, d, e in axes)
        geometry = self._planar_geometry(rank, strides, pads, dilation)
        return rank, geometry, (last_shape[0],) + out + (kernel_shape[-2],)

    def output_shape_of(self, arguments, shapes):
        given = self._shapes(arguments, shapes)
        last = _last_shape(given["inputs"], self.data_format)
        return _first_shape(self._geometry(last, given["kernel"])[2], self.data_format)

    def forward_function(self, x, kernel):
        x = _to_last(x, self.data_format)
        rank, geometry, out = self._geometry(x.shape, kernel.shape)
        out_shape = (out[0], 1) + out[1:] if rank == 1 else out
        # the convolution mapping the output back to x, read backwards: its input gradient
        y = self._input_gradient(rank, self._planar(x), self._planar_kernel(kernel, rank), out_shape, **geometry)
        return self._unplanar(y, rank)

    def backward_function(self, dy, operands, y):
        x, kernel = _to_last(operands[0], self.data_format), operands[1]
        rank, geometry, _ = self._geometry(x.shape, kernel.shape)
        image, kernel2 = self._planar(x), self._planar_kernel(kernel, rank)
        dy = self._planar(_to_last(dy, self.data_format))
        dx = self._convolved(rank, dy, kernel2, **geometry)
        dk = self._kernel_gradient(rank, dy, image, kernel2.shape, **geometry)
        return [self._unplanar(dx, rank), dk.reshape(kernel.shape)]


OPERATIONS = {cls.__name__: cls for cls in (Conv, ConvTranspose)}
