"""The calibration driver of Keras's data-driven quantization modes, GPTQ (``gpu_dl/gptq.py``) and AWQ
(``gpu_dl/awq.py``), as Keras shares one between them: the refusals of a request made before any layer changes
(``resolve_structure``), calibration samples from a dataset (``get_dataloader``), and a layer-wise pass over a
model's blocks that shows each block's layers their inputs and then quantizes them, before the block's outputs
become the next block's inputs (``apply_layerwise``). What a layer gathers from its inputs (GPTQ's Hessian, AWQ's
largest activation magnitudes) and how it is quantized are the callers' own.

A model's structure is Keras's ``{"pre_block_layers": [...], "sequential_blocks": [...]}``: the config's
``quantization_layer_structure`` or the model's ``get_quantization_layer_structure(mode)`` (KerasHub's models give
theirs through that method; a plain model needs one written out). The calibration samples (token ids, shape (1,
sequence_length)) go through the pre-block layers, then through the blocks one after the other. Within a block,
the layers quantized are its Dense and EinsumDense layers without sublayers (the block itself where it is one), in
the order Keras walks them.
"""
from __future__ import annotations

import contextlib
import math

import numpy

from .backend.device import to_numpy


def get_dataloader(tokenizer, sequence_length, dataset, num_samples=128, *, strategy="strided", seed=42,
                   stride=None, eos_id=None):
    """Keras's calibration samples: the dataset's token ids (strings through ``tokenizer.tokenize``, with
    ``eos_id`` between documents where given; arrays as they are) joined, repeated up to ``num_samples *
    sequence_length`` tokens, and ``num_samples`` windows of ``sequence_length`` of them, their starts
    ``"strided"`` (Keras's offset and stride), ``"linspace"`` or ``"random"`` (``seed``). Returns an int32 array
    (num_samples, 1, sequence_length)."""
    check_dataset(dataset)
    items = list(dataset)
    if not items:
        raise ValueError("Provided dataset is empty: the calibration `dataset` is empty, and needs at least one "
                         "text or array of token ids.")
    pieces = []
    if isinstance(items[0], str):
        if tokenizer is None or not hasattr(tokenizer, "tokenize"):
            raise ValueError("A dataset of strings needs a `tokenizer` with a `tokenize` method, got "
                             f"{tokenizer!r}.")
        for i, text in enumerate(items):
            pieces.append(to_numpy(tokenizer.tokenize(text)).reshape(-1))
            if eos_id is not None and i < len(items) - 1:
                pieces.append(numpy.array([eos_id], dtype=numpy.int32))
    else:
        pieces = [to_numpy(item).reshape(-1).astype(numpy.int32, copy=False) for item in items]
    tokens = numpy.concatenate(pieces).astype(numpy.int32, copy=False)
    required = num_samples * sequence_length
    if tokens.size < required:
        tokens = numpy.tile(tokens, math.ceil(required / max(1, tokens.size)))
    max_start = tokens.size - sequence_length
    if max_start < 0:
        raise ValueError(f"Not enough tokens to form one sample of length {sequence_length} (have {tokens.size}).")
    if strategy == "random":
        starts = numpy.random.default_rng(seed).integers(0, max_start + 1, size=num_samples, dtype=numpy.int64)
    elif strategy == "linspace":
        starts = numpy.linspace(0, max_start, num_samples, dtype=numpy.int64)
    elif strategy == "strided":
        if stride is None:
            stride = max(1, (max_start + 1) // num_samples)
        # Keras's offset: the process's hash of ("gptq-calib", seed), so that a process picks Keras's windows
        offset = abs(hash(("gptq-calib", seed))) % (max_start + 1) if max_start > 0 else 0
        starts = (offset + numpy.arange(num_samples, dtype=numpy.int64) * stride) % (max_start + 1)
    else:
        raise ValueError(f"Unknown strategy: {strategy}")
    windows = numpy.lib.stride_tricks.sliding_window_view(tokens, sequence_length)
    return windows[starts].astype(numpy.int32)[:, None, :]


def check_dataset(dataset):
    """Keras's TypeError for a calibration dataset that is not an iterable of items (text itself included)."""
    if not hasattr(dataset, "__iter__") or isinstance(dataset, (str, bytes)):
        raise TypeError("The `dataset` argument must be an iterable (e.g., a list of strings, a generator, or a "
                        f"NumPy array). Got type: {type(dataset).__name__}. Please pass the loaded dataset "
                        "directly.")


def find_layers_in_block(block, kinds):
    """The layers of ``block`` (itself included) of the classes ``kinds`` that have no sublayers, by path, in
    the order Keras's ``_flatten_layers`` walks them."""
    from .layers.layer_losses import flatten_layers
    found = {}
    for layer in [block] + flatten_layers(block):
        if isinstance(layer, kinds) and not layer._loss_sublayers():
            found[layer.path] = layer
    return found


@contextlib.contextmanager
def stream_inputs(layers_map, consumer):
    """Within the block, each layer of ``layers_map`` (by name) hands the input of each of its calls to
    ``consumer(name, inputs)`` before computing; the layers' own calls come back on exit."""
    patched = []

    def hook(name, call):
        def hooked(*args, **kwargs):
            consumer(name, args[0] if args else kwargs["inputs"])
            return call(*args, **kwargs)
        return hooked

    try:
        for name, layer in layers_map.items():
            patched.append((layer, layer.__dict__.get("call")))
            layer.call = hook(name, layer.call)
        yield
    finally:
        for layer, own in patched:
            if own is None:
                del layer.call
            else:
                layer.call = own


# Keras's refusal of a config without calibration data, worded per mode as Keras words it
_NO_DATA = {
    "gptq": "GPTQ quantization requires a dataset and a tokenizer. Please provide them in the `GPTQConfig`.",
    "awq": "AWQ quantization requires a dataset and tokenizer. Please provide them in the AWQConfig (a dataset of "
           "token-id arrays takes any tokenizer, e.g. `tokenizer=str`; it is not used).",
}


def resolve_structure(model, config):
    """The structure a data-driven quantization (``config.mode``: ``"gptq"``, ``"awq"``) of ``model`` walks: the
    config's, else the model's ``get_quantization_layer_structure(mode)``. Keras's refusals come first, made here
    before any layer changes (Keras makes them after quantizing the layers): a config without a dataset or a
    tokenizer, a dataset that is not an iterable, no structure, one that is not a dict of lists, one without
    blocks."""
    mode = config.mode
    if config.dataset is None or config.tokenizer is None:
        raise ValueError(_NO_DATA[mode])
    check_dataset(config.dataset)
    structure = config.quantization_layer_structure
    if structure is None:
        structure = model.get_quantization_layer_structure(mode)
    if structure is None:
        raise ValueError(f"For mode='{mode}', a valid quantization structure must be provided either via "
                         "`config.quantization_layer_structure` or by overriding "
                         "`model.get_quantization_layer_structure(mode)`. The structure should be a dictionary "
                         "with keys 'pre_block_layers' and 'sequential_blocks'.")
    if not isinstance(structure, dict) or not isinstance(structure.get("sequential_blocks", []), (list, tuple)) \
            or not isinstance(structure.get("pre_block_layers", []), (list, tuple)):
        raise ValueError(f"{mode.upper()}: the quantization structure must be a dict with the keys 'pre_block_layers' "
                         "(a list of layers) and 'sequential_blocks' (a list of blocks). Received: "
                         f"{structure!r:.200}")
    if not structure.get("sequential_blocks"):
        raise ValueError("No sequential blocks found in the provided structure to quantize.")
    return structure


def _batched(x):
    # a sample without its batch axis (a block's output row) gets it back
    return x[None] if x.ndim == 2 else x


def apply_layerwise(samples, num_samples, structure, chosen, make_state, update, finish):
    """Keras's layer-wise calibration: the ``samples`` (int32 token ids) go through the structure's pre-block
    layers; then for each block, each of its Dense and EinsumDense layers that ``chosen(layer)`` keeps gets a
    state (``make_state(layer)``), sees its inputs (``update(state, inputs)``) while the first ``num_samples``
    inputs go through the block, and is quantized (``finish(layer, state)``) once the block has seen them all;
    the block's outputs (the first item of each) are the next block's inputs."""
    from .layers import Dense, EinsumDense
    inputs = []
    for batch in samples[:num_samples]:
        batch = numpy.asarray(batch, dtype=numpy.int32)
        for layer in structure.get("pre_block_layers", []):
            batch = layer(batch)
        inputs.append(batch)
    num_samples = min(num_samples, len(inputs))
    blocks = list(structure["sequential_blocks"])
    for index, block in enumerate(blocks):
        layers_map = {name: layer for name, layer in find_layers_in_block(block, (Dense, EinsumDense)).items()
                      if chosen(layer)}
        if layers_map:
            states = {name: make_state(layer) for name, layer in layers_map.items()}
            with stream_inputs(layers_map, lambda name, x: update(states[name], x)):
                for sample in inputs[:num_samples]:
                    block(_batched(sample))
            for name, layer in layers_map.items():
                finish(layer, states[name])
        if index < len(blocks) - 1:
            # the first output of a block giving several, else the sample's row (Keras's ``block(x)[0]``)
            inputs = [block(_batched(sample))[0] for sample in inputs[:num_samples]]
