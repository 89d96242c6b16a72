"""Core layers: Input/InputLayer, Dense, Dropout, Flatten."""
from __future__ import annotations

import numbers

import numpy

from .. import activations, backend
from ..ops.dense import dense_backward, dense_forward
from ..ops.device_reduction import sum_axes
from . import awq_weights, float8_training, lora, quantized
from .. import gptq
from .base import Layer, shape_tuple
from .regularization import KeepMaskDropout, dropout_rate, layer_seed_generator
from .symbolic import KerasTensor, Node


def positive_int(value, what):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}.")
    return int(value)


class InputLayer(Layer):
    """Declares the shape of one sample (without the batch axis) at the start of a model.

    Its ``output`` is the symbolic tensor ``Input(...)`` returns, the start of a functional graph. Besides the
    float dtypes it takes integer and bool ones, as Keras does for the ids an Embedding reads.
    """

    keeps_input_dtype = True
    _path_at_build = False      # Keras's InputLayer has no path

    def __init__(self, shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None,
                 input_tensor=None, optional=False, name=None, *, input_shape=None, **kwargs):
        _refuse_unsupported_input(sparse=sparse, ragged=ragged, input_tensor=input_tensor, optional=optional)
        if shape is None:
            shape = input_shape
        if batch_shape is not None:
            if shape is not None or batch_size is not None:
                raise ValueError("Input: give `shape` (and `batch_size`) or `batch_shape`, not both.")
            batch_shape = _shape_argument(batch_shape, "batch_shape")
            if not batch_shape:
                raise ValueError("Input: `batch_shape` needs a batch axis and at least one more.")
            batch_size, shape = batch_shape[0], batch_shape[1:]
        elif shape is None:
            raise ValueError("InputLayer needs `shape`, the shape of one sample without the batch axis, "
                             "e.g. shape=(64,).")
        else:
            shape = _shape_argument(shape, "shape")
        input_dtype = _input_dtype(dtype)
        super().__init__(name=name, dtype=None if input_dtype is not None else dtype, **kwargs)
        if input_dtype is not None:
            self.dtype = input_dtype
        self.shape = shape_tuple(shape, "Input: shape")
        if batch_size is not None:
            batch_size = positive_int(batch_size, "Input: batch_size")
        self.batch_size = batch_size
        self.declared_input_shape = (batch_size,) + self.shape
        self.built = True
        # Its one node's output is its ``output`` (Layer.output): the tensor Input(...) gives.
        Node(self, outputs=[KerasTensor((batch_size,) + self.shape, dtype=self.dtype, name=self.name)])

    def call(self, x, training=False):
        return x

    def backward(self, dy):
        return dy

    def get_config(self):
        return {"batch_shape": (self.batch_size,) + self.shape, "dtype": self.dtype, "sparse": False,
                "ragged": False, "name": self.name, "optional": False}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _shape_argument(shape, what):
    """Input's ``shape`` or ``batch_shape`` as a tuple: a sequence of sizes (or None), as Keras takes it; a bare
    int is refused, as Keras refuses it ("Cannot convert '784' to a shape")."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
        raise ValueError(f"Input: cannot convert `{what}`={shape!r} to a shape: give a tuple of sizes such as "
                         f"({shape!r},) (Keras takes no bare int here).")
    return tuple(shape)


def _input_dtype(dtype):
    """The name of an integer, bool or float16 dtype (an input of float16 tensors: those a layer under
    "mixed_float16" computes, as a composite layer's traced call takes them), or None for anything else (left to
    the float dtype check)."""
    if dtype is None:
        return None
    if dtype in ("string", str):
        return "string"         # text inputs: host arrays of str, for the layers that read text
    try:
        kind = numpy.dtype(dtype).kind
    except TypeError:
        return None
    return numpy.dtype(dtype).name if kind in "biu" or numpy.dtype(dtype) == numpy.float16 else None


def _refuse_unsupported_input(**given):
    """Keras's Input arguments gpu_dl has no use for, accepted at their defaults only: it has no sparse or
    ragged tensors, no optional inputs and no backend tensors to wrap."""
    for argument, value in given.items():
        if value is not None and value is not False:
            raise ValueError(f"Input: `{argument}={value!r:.60}` is not supported (gpu_dl has no sparse or ragged "
                             f"tensors, optional inputs or backend tensors to wrap); leave it at its default.")


def Input(shape=None, batch_size=None, dtype=None, sparse=None, ragged=None, batch_shape=None, name=None,
          tensor=None, optional=False, **kwargs):
    """``keras.Input``: a symbolic tensor of shape ``(batch_size,) + shape``, the start of a functional model
    (``keras.Model(inputs, outputs)``) or the first entry of a ``Sequential`` list."""
    _refuse_unsupported_input(tensor=tensor)
    return InputLayer(shape=shape, batch_size=batch_size, dtype=dtype, sparse=sparse, ragged=ragged,
                      batch_shape=batch_shape, optional=optional, name=name, **kwargs).output


class Dense(lora.LoraLayer, Layer):
    """``activation(x @ kernel + bias)`` over the last axis; kernel (in, units), bias (units,).

    ``quantize("int8")`` (or a ``dtype`` of ``"int8_from_float32"``) keeps the kernel as int8 values with a float
    ``kernel_scale`` per unit, both non-trainable, and computes as Keras's int8 path (``layers/quantized.py``);
    the bias trains as before. ``quantize("int4")`` packs two 4-bit values per byte along the units, as Keras
    does: by default in groups of 128 input rows with a scale and a zero point per group and unit
    (``kernel_zero``, and ``g_idx`` the group of each row), or with ``Int4QuantizationConfig(block_size=None)``
    symmetric with one scale per unit; the product runs on the dequantized kernel (or, with an inputs quantizer,
    exact in integers as int8's). ``quantize("float8")`` (or ``"float8_from_float32"``) trains with float8
    fake-quantized products and delayed scaling, as Keras does (``layers/float8_training.py``).
    ``quantize("awq", config=AWQConfig(...))`` (the model's, which calibrates it) keeps 4-bit activation-aware
    weights (``layers/awq_weights.py``, ``gpu_dl/awq.py``).
    ``quantize("gptq", config=GPTQConfig(...))`` (``gpu_dl/gptq.py``) adds Keras's GPTQ variables, which
    calibration fills (the float kernel computes until then).

    ``lora_rank`` and ``enable_lora`` as Keras's (``layers/lora.py``), on the float kernel and on the int8 and
    int4 ones (before or after ``quantize``).
    """

    fixed_input_axes = (-1,)
    supports_masking = True
    quantization_modes = ("int8", "int4", "float8", "awq", "gptq")
    gptq_quantizes = True
    kernel = lora.merged_weight("kernel")
    lora_build_keeps_alpha = False
    lora_quantization_modes = ("int8", "int4")
    leaves_activation_to_loss = True

    def __init__(self, units, activation=None, use_bias=True, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None,
                 activity_regularizer=None, kernel_constraint=None, bias_constraint=None, lora_rank=None,
                 lora_alpha=None, quantization_config=None, **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.init_lora(lora_rank, lora_alpha, f"Dense layer '{self.name}'")
        self.quantization_config = quantized.quantization_config_of(quantization_config,
                                                                    f"Dense layer '{self.name}'")
        self.units = positive_int(units, f"Dense layer '{self.name}': units")
        self.activation = activations.get_keeping_shape(activation, f"Dense layer '{self.name}'")
        self.use_bias = bool(use_bias)
        self.set_weight_arguments(kernel_initializer=kernel_initializer, bias_initializer=bias_initializer,
                                  kernel_regularizer=kernel_regularizer, bias_regularizer=bias_regularizer,
                                  kernel_constraint=kernel_constraint, bias_constraint=bias_constraint)
        self.kernel = self.bias = None

    def build(self, input_shape):
        if len(input_shape) < 2 or input_shape[-1] is None:
            raise ValueError(
                f"Dense layer '{self.name}' needs inputs of rank >= 2 with a known last axis, "
                f"got shape {tuple(input_shape)}."
            )
        mode = self.dtype_policy.quantization_mode
        if mode == "float8":
            float8_training.build(self)
        if mode == "int8":
            self._int8_build((input_shape[-1], self.units))
        elif mode == "int4":
            self._int4_build((input_shape[-1], self.units))
        elif mode == "awq":
            self.kernel = awq_weights.build(self, input_shape[-1], self.units)[0]
        elif mode == "gptq":
            gptq.build_gptq_weights(self, input_shape[-1], self.units, self.dtype_policy)
            self.is_gptq_calibrated = True      # a layer made quantized takes its values from a file
        else:
            self.kernel = self.add_weight((input_shape[-1], self.units), self.kernel_initializer, name="kernel",
                                          regularizer=self.kernel_regularizer, constraint=self.kernel_constraint)
        if self.use_bias:
            self.bias = self.add_weight((self.units,), self.bias_initializer, name="bias",
                                        regularizer=self.bias_regularizer, constraint=self.bias_constraint)
        self._number_for_files()
        self.build_lora()

    def _int8_build(self, kernel_shape):
        from ..quantizers import AbsMaxQuantizer, QuantizationConfig
        self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(self.quantization_config,
                                                                                   AbsMaxQuantizer())
        self.kernel = self.add_weight(kernel_shape, "zeros", dtype="int8", trainable=False, name="kernel")
        self.kernel_scale = self.add_weight((self.units,), "ones", trainable=False, name="kernel_scale")
        return self._kernel, self.kernel_scale

    def _int4_block_size(self):
        """The int4 groups' rows: the config's block size, else the policy's; None: one scale per unit."""
        return quantized.int4_block_size(self)

    def _int4_build(self, kernel_shape):
        return quantized.build_int4_kernel(self, kernel_shape[0], self.units)

    def _lora_weight_shape(self):
        return (self._kernel.shape[0], self.units)      # an int4 kernel is packed along the units

    def _number_for_files(self):
        if self.dtype_policy.quantization_mode == "float8":
            quantized.number_for_files(*float8_training.file_variables(self, self.bias if self.use_bias else None))
        elif self.dtype_policy.quantization_mode == "awq":
            awq_weights.number_for_files(self)
        elif self.dtype_policy.quantization_mode == "gptq":
            quantized.number_for_files(self.bias if self.use_bias else None, self.quantized_kernel, self.kernel_scale,
                                       self.kernel_zero, self.g_idx)
        elif self.dtype_policy.quantization_mode is not None:
            quantized.number_for_files(self._kernel, self.bias if self.use_bias else None, self.kernel_scale,
                                       getattr(self, "kernel_zero", None), getattr(self, "g_idx", None))

    def quantize(self, mode=None, type_check=True, config=None):
        """Keras's ``quantize``: ``"int8"`` replaces the float kernel by its int8 values, quantized per unit
        (``AbsMaxQuantizer(axis=0)`` unless ``config`` gives a weight quantizer), and ``kernel_scale``; the layer's
        policy becomes ``"int8_from_<its policy>"``. ``"int4"`` packs the kernel (see the class docstring); the
        policy becomes ``"int4/<block size or -1>_from_<its policy>"``."""
        config = quantized.checked_request(self, Dense, mode, config, type_check)
        self.check_quantize_lora(config.mode)
        if config.mode == "int4":
            self._quantize_int4(config)
        elif config.mode == "awq":
            awq_weights.prepare(self, self.kernel.shape[0], self.units, config)
        elif config.mode == "float8":
            float8_training.quantize(self, self.kernel)
        elif config.mode == "gptq":
            gptq.prepare_layer(self, config, self.kernel.shape[0], self.units)
        else:
            quantized.quantize_weight(self, Dense, None, config, False, "kernel", 0, self._int8_build)
        self._number_for_files()

    def _quantize_int4(self, config):
        from .. import quantizers
        self.quantization_config = config
        block_size = self._int4_block_size()
        kernel = self._kernel
        if block_size is None:
            quantizer = quantizers.QuantizationConfig.weight_quantizer_or_default(
                config, quantizers.AbsMaxQuantizer(axis=0, value_range=(-8, 7), output_dtype="int8"))
            values, scale = quantizer(kernel.value, to_numpy=True)
            arrays = [scale.reshape(-1)]
        else:
            values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(kernel.value, block_size,
                                                                                      to_numpy=True)
            arrays = [scale, zero]
        quantized.install_int4(self, kernel, values, arrays, block_size)

    def _int4_kernel(self, dtype):
        """The float kernel an int4 one stands for: per unit ``values / scale``; in groups
        ``(values - zero) * scale`` of each row's group."""
        return quantized.int4_dequantized(self, self.units, dtype)

    def _lora_dequantized(self):
        if self.dtype_policy.quantization_mode == "int8":
            return quantized.dequantized(self._kernel.value, self.kernel_scale.value, self.compute_dtype)
        return self._int4_kernel(self.compute_dtype)

    def compute_output_shape(self, input_shape):
        if len(input_shape) < 2:
            raise ValueError(f"Dense layer '{self.name}' needs inputs of rank >= 2, got shape {tuple(input_shape)}.")
        return tuple(input_shape[:-1]) + (self.units,)

    def call(self, x, training=False):
        mode = self.dtype_policy.quantization_mode
        if mode == "int8":
            product = quantized.int8_forward(x, self._kernel.value, self.kernel_scale.value, self.inputs_quantizer,
                                             self.compute_dtype)
        elif mode == "int4" and self.kernel_zero is None:
            from ..quantizers import unpack_int4
            product = quantized.int8_forward(x, unpack_int4(self._kernel.value, self.units, axis=-1),
                                             self.kernel_scale.value, self.inputs_quantizer, self.compute_dtype)
        elif mode == "int4":
            product = x @ self._int4_kernel(self.compute_dtype)
        elif mode == "gptq":
            product = x @ gptq.dequantized_kernel(self, self.compute_dtype)
        elif mode == "float8":
            product = float8_training.product(self, x, training, dense_forward)
        elif mode == "awq":
            product = x @ awq_weights.kernel(self, self.units, self.compute_dtype)
        else:
            product = dense_forward(x, self.kernel.value)
        product = self.add_low_rank_product(x, product)
        # The matrix product alone, then the bias and activation in one pass (one kernel on the GPU).
        bias = self.bias.value if self.use_bias else None
        bias = float8_training.bias_value(self, bias) if mode == "float8" else bias
        if self.activation_left_to_loss:
            # The model's loss computes the softmax from the logits and its probabilities are the model's output:
            # the logits alone, with the bias added as the activation's array path adds it.
            if bias is not None:
                product += bias
            z = y = product
        else:
            z, y = self.activation.with_bias(product, bias, want_z=self._wants_preactivation(training))
        self._saved = (x, z, y) if training else None
        self._preactivation = z if self.keep_preactivation else None
        return y

    def backward(self, dy, through_activation=True):
        x, z, y = self.saved()
        dz = self._activation_gradient(z, y, dy) if through_activation else dy
        mode = self.dtype_policy.quantization_mode
        if mode == "float8":
            x, kernel, dq = float8_training.backward(self, dz)
            dx, dkernel, _ = dense_backward(x, kernel, dq, need_input_grad=self.input_gradient_wanted,
                                            need_weight_grads=self.trainable, has_bias=False)
            if self.trainable:
                self.kernel.grad = dkernel
                if self.use_bias:
                    self.bias.grad = float8_training.bias_gradient(self, sum_axes(dz.reshape(-1, self.units), 0))
            return dx
        if mode is not None:
            # Keras's gradient of a quantized kernel: the inputs' through the dequantized kernel; none for the
            # kernel and its scales
            kernel = quantized.dequantized(self._kernel.value, self.kernel_scale.value, dz.dtype) if mode == "int8" \
                else awq_weights.kernel(self, self.units, dz.dtype) if mode == "awq" \
                else gptq.dequantized_kernel(self, dz.dtype) if mode == "gptq" else self._int4_kernel(dz.dtype)
            if self.trainable and self.use_bias:
                self.bias.grad = sum_axes(dz.reshape(-1, self.units), 0)
            return self.add_low_rank_backward(x, dz, dz @ kernel.T if self.input_gradient_wanted else None)
        dx, dkernel, dbias = dense_backward(x, self.kernel.value, dz, need_input_grad=self.input_gradient_wanted,
                                            need_weight_grads=self.trainable, has_bias=self.use_bias)
        if self.trainable:
            self.kernel.grad = dkernel
            if self.use_bias:
                self.bias.grad = dbias
        return dx

    def get_config(self):
        config = super().get_config()
        config.update({
            "units": self.units,
            "activation": activations.serialize(self.activation),
            "use_bias": self.use_bias,
            **self.weight_arguments_config(),
            "quantization_config": quantized.serialized_config(self.quantization_config),
            **self.lora_config(),
        })
        return config


class Dropout(KeepMaskDropout, Layer):
    """Zeroes a fraction ``rate`` of the inputs in training and scales the rest by 1/(1-rate)."""

    fixed_input_axes = ()
    supports_masking = True

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = dropout_rate(rate, f"Dropout layer '{self.name}': rate")
        self.noise_shape = None if noise_shape is None else tuple(noise_shape)
        self.seed = seed
        if self.rate > 0:
            self.seed_generator = layer_seed_generator(self, seed)

    def mask_shape(self, shape):
        if self.noise_shape is None:
            return shape
        if len(self.noise_shape) != len(shape):
            raise ValueError(f"Dropout layer '{self.name}': noise_shape {self.noise_shape} must have the input's "
                             f"rank {len(shape)}.")
        return tuple(s if n is None else n for n, s in zip(self.noise_shape, shape))

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "noise_shape": self.noise_shape, "seed": self.seed})
        return config


class Flatten(Layer):
    """Reshapes (batch, d1, d2, ...) to (batch, d1*d2*...)."""

    fixed_input_axes = ()

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = backend.standardize_data_format(data_format, f"Flatten layer '{self.name}': data_format")

    def compute_output_shape(self, input_shape):
        rest = input_shape[1:]
        size = None if any(d is None for d in rest) else int(numpy.prod(rest, dtype=numpy.int64))
        return (input_shape[0], size)

    def _to_channels_last(self, x):
        return (x.transpose((0,) + tuple(range(2, x.ndim)) + (1,))
                if self.data_format == "channels_first" and x.ndim > 2 else x)

    def call(self, x, training=False):
        self._saved = (x.shape,) if training else None
        return self._to_channels_last(x).reshape(x.shape[0], -1)

    def backward(self, dy):
        (shape,) = self.saved()
        if self.data_format == "channels_first" and len(shape) > 2:
            last = (shape[0],) + tuple(shape[2:]) + (shape[1],)
            inverse = (0, len(shape) - 1) + tuple(range(1, len(shape) - 1))
            return dy.reshape(last).transpose(inverse)
        return dy.reshape(shape)

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class Reshape(Layer):
    """Reshapes each sample to ``target_shape`` (one entry may be -1: whatever the rest leaves)."""

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        try:
            shape = tuple(int(d) for d in target_shape)
        except (TypeError, ValueError):
            raise TypeError(f"Reshape layer '{self.name}': target_shape must be a tuple of integers, "
                            f"got {target_shape!r}.") from None
        if shape.count(-1) > 1 or any(d == 0 or d < -1 for d in shape):
            raise ValueError(f"Reshape layer '{self.name}': target_shape must hold positive sizes and at most "
                             f"one -1, got {target_shape!r}.")
        self.target_shape = shape

    def compute_output_shape(self, input_shape):
        known = [d for d in input_shape[1:]]
        if any(d is None for d in known):
            return (input_shape[0],) + self.target_shape
        size = int(numpy.prod(known, dtype=numpy.int64))
        fixed = int(numpy.prod([d for d in self.target_shape if d != -1], dtype=numpy.int64))
        if -1 in self.target_shape:
            if size % fixed:
                raise ValueError(f"Reshape layer '{self.name}': {size} values per sample (input shape "
                                 f"{tuple(input_shape[1:])}) do not divide into target_shape {self.target_shape}.")
            shape = tuple(size // fixed if d == -1 else d for d in self.target_shape)
        elif size != fixed:
            raise ValueError(f"Reshape layer '{self.name}': input shape {tuple(input_shape[1:])} has {size} values "
                             f"per sample, target_shape {self.target_shape} has {fixed}.")
        else:
            shape = self.target_shape
        return (input_shape[0],) + shape

    def build(self, input_shape):
        self.compute_output_shape(input_shape)

    def call(self, x, training=False):
        self._saved = (x.shape,) if training else None
        return x.reshape((x.shape[0],) + tuple(self.compute_output_shape(x.shape)[1:]))

    def backward(self, dy):
        (shape,) = self.saved()
        return dy.reshape(shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": self.target_shape}
