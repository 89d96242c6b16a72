"""The model-level calibration of AWQ, as Keras 3's ``awq_quantize`` drives it (``model.quantize("awq",
config=AWQConfig(...))``).

The config's ``dataset`` becomes ``num_samples`` windows of ``sequence_length`` token ids (Keras's strided
sampling of the concatenated ids, repeated where too short). Each window, shaped ``(1, sequence_length)``, goes
through the structure's ``pre_block_layers``; then, block after block of ``sequential_blocks``, every window runs
through the block while the largest input magnitudes of the block's Dense and EinsumDense layers that
``quantize`` prepared for AWQ are recorded, those layers are quantized (``gpu_dl/awq.py``), and the first item
of the block's outputs for each window (a window's output without its batch axis, as Keras takes ``block(x)[0]``)
feeds the next block.

The structure is the config's ``quantization_layer_structure`` or the model's
``get_quantization_layer_structure("awq")``; KerasHub's models give theirs through that method, and a plain model
needs one written out, e.g. ``{"pre_block_layers": [embedding], "sequential_blocks": [block_1, block_2]}``.
"""
from __future__ import annotations

import contextlib
import math

import numpy

from . import backend


def calibration_windows(tokenizer, sequence_length, dataset, num_samples=128, seed=42):
    """``(num_samples, 1, sequence_length)`` int32 windows of the dataset's ids, as Keras's ``get_dataloader``
    takes them with its default strided strategy: strings go through ``tokenizer.tokenize``, arrays are
    flattened; the ids are concatenated and tiled to at least ``num_samples * sequence_length``, and the windows
    start ``stride = (len - sequence_length + 1) // num_samples`` apart from an offset Keras draws from
    ``hash(("gptq-calib", seed))`` (Python's string hash: the same within a process as Keras's)."""
    _check_dataset(dataset)
    items = list(dataset)
    if not items:
        raise ValueError("AWQConfig: the calibration `dataset` is empty.")
    if isinstance(items[0], str):
        if not callable(getattr(tokenizer, "tokenize", None)):
            raise ValueError("AWQConfig: a dataset of strings needs a `tokenizer` with a `tokenize` method, got "
                             f"{tokenizer!r:.100}.")
        pieces = [backend.to_numpy(numpy.asarray(tokenizer.tokenize(s))).reshape(-1) for s in items]
    else:
        pieces = [numpy.asarray(backend.to_numpy(s)).reshape(-1) for s in items]
    tokens = numpy.concatenate(pieces).astype(numpy.int32)
    required = num_samples * sequence_length
    if tokens.size < required:
        tokens = numpy.tile(tokens, math.ceil(required / max(1, tokens.size)))
    max_start = tokens.size - sequence_length
    if max_start < 0:
        raise ValueError(f"AWQConfig: not enough tokens to form one sample of length {sequence_length} (have "
                         f"{tokens.size}).")
    stride = max(1, (max_start + 1) // num_samples)
    offset = abs(hash(("gptq-calib", seed))) % (max_start + 1) if max_start > 0 else 0
    starts = (offset + numpy.arange(num_samples, dtype=numpy.int64) * stride) % (max_start + 1)
    windows = numpy.lib.stride_tricks.sliding_window_view(tokens, sequence_length)[starts]
    return windows.astype(numpy.int32)[:, None, :]


def _check_dataset(dataset):
    if not hasattr(dataset, "__iter__") or isinstance(dataset, (str, bytes)):
        raise TypeError("The `dataset` argument must be an iterable (e.g., a list of strings, a generator, or a "
                        f"NumPy array). Got type: {type(dataset).__name__}. Please pass the loaded dataset "
                        "directly.")


def _block_layers(block):
    """The Dense and EinsumDense layers within a block (the block itself included) waiting for AWQ's calibration,
    in Keras's order."""
    from .layers import layer_losses
    return [layer for layer in [block] + layer_losses.flatten_layers(block)
            if getattr(layer, "is_awq_calibrated", True) is False]


@contextlib.contextmanager
def _recording(layers, statistics):
    """Within it, each layer's calls record their inputs' largest magnitudes per channel."""
    def hook(layer, stats):
        call = layer.call

        def recorded(x, *args, **kwargs):
            stats.update(x)
            return call(x, *args, **kwargs)
        return recorded

    missing = object()
    own = [vars(layer).get("call", missing) for layer in layers]     # a call set on the layer itself, if any
    try:
        for layer, stats in zip(layers, statistics):
            layer.call = hook(layer, stats)
        yield
    finally:
        for layer, call in zip(layers, own):
            if call is missing:
                vars(layer).pop("call", None)
            else:
                layer.call = call


def _check_structure(structure):
    if not isinstance(structure, dict) or not isinstance(structure.get("sequential_blocks", []), (list, tuple)) \
            or not isinstance(structure.get("pre_block_layers", []), (list, tuple)):
        raise ValueError("AWQ: the quantization structure must be a dict with the keys 'pre_block_layers' (a list of "
                         "layers) and 'sequential_blocks' (a list of blocks). Received: "
                         f"{structure!r:.200}")
    if not structure.get("sequential_blocks"):
        raise ValueError("No sequential blocks found in the structure to quantize.")


def check_request(config, structure):
    """Keras's refusals of an AWQ calibration, made before any layer changes: no data or tokenizer, no
    structure (a plain model needs ``quantization_layer_structure``), a malformed one."""
    if config.dataset is None or config.tokenizer is None:
        raise ValueError("AWQ quantization requires a dataset and tokenizer. Please provide them in the AWQConfig "
                         "(a dataset of token-id arrays takes any tokenizer, e.g. `tokenizer=str`; it is not used).")
    _check_dataset(config.dataset)
    if structure is None:
        raise ValueError("For mode='awq', a valid quantization structure must be provided either via "
                         "`config.quantization_layer_structure` or by overriding "
                         "`model.get_quantization_layer_structure(mode)`. The structure should be a dictionary with "
                         "keys 'pre_block_layers' and 'sequential_blocks'.")
    _check_structure(structure)


def calibrate(config, structure):
    """Run the calibration (see the module docstring) and quantize the prepared layers of the structure's
    blocks."""
    from . import awq
    from .layers import awq_weights
    check_request(config, structure)
    windows = calibration_windows(config.tokenizer, config.sequence_length, config.dataset, config.num_samples)
    inputs = []
    for batch in windows[:config.num_samples]:
        for layer in structure.get("pre_block_layers", []):
            batch = layer(batch)
        inputs.append(batch)
    num_samples = min(config.num_samples, len(inputs))
    blocks = list(structure["sequential_blocks"])
    for index, block in enumerate(blocks):
        layers = _block_layers(block)
        statistics = [awq.ActivationStatistics(layer.awq_scales.shape[0], f"{type(layer).__name__} layer "
                                               f"'{layer.name}'") for layer in layers]
        if layers:
            with _recording(layers, statistics):
                for x in inputs[:num_samples]:
                    block(x[None] if x.ndim == 2 else x)
            for layer, stats in zip(layers, statistics):
                xp = backend.array_module(layer.kernel.value)
                awq_weights.calibrate(layer, layer.kernel.value.reshape(stats.channels, -1),
                                      xp.asarray(stats.magnitudes))
        if index < len(blocks) - 1:
            inputs = [block(x[None] if x.ndim == 2 else x)[0] for x in inputs[:num_samples]]
