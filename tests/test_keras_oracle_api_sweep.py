"""gpu_dl's public catalogues against Keras 3.15's (torch backend, where Keras is installed), name by name: every
class and function of keras.layers, losses, metrics, optimizers (the classes), callbacks, initializers,
regularizers, constraints, activations and applications that gpu_dl has takes the same parameters (names, order,
kinds, defaults), and every class made with its defaults (or the fewest arguments) gives the same get_config().

Where gpu_dl differs on purpose the difference is written out below with its reason; any other difference, or an
allowed one that went away, fails the test."""
import inspect
import json
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
import gpu_dl.applications  # noqa: E402,F401
import gpu_dl.callbacks  # noqa: E402,F401

MODULES = ("layers", "losses", "metrics", "optimizers", "callbacks", "initializers", "regularizers", "constraints",
           "activations", "applications")

# Keras names gpu_dl does not have, and why.
NOT_IN_GPU_DL = {
    # wrappers of other frameworks' modules and of TensorFlow SavedModels: gpu_dl runs its own kernels only
    "layers.FlaxLayer": "wraps a Flax module", "layers.JaxLayer": "wraps a JAX function",
    "layers.TFSMLayer": "wraps a TensorFlow SavedModel", "layers.TorchModuleWrapper": "wraps a torch module",
    "optimizers.legacy": "a module of TensorFlow-only optimizer stand-ins that raise on use",
    "callbacks.OrbaxCheckpoint": "writes JAX's Orbax checkpoints",
}


def _public(module_name):
    """The public classes and functions of keras.<module_name>, by name (submodules left out)."""
    module = getattr(keras, module_name)
    return {name: getattr(module, name) for name in dir(module)
            if not name.startswith("_") and not inspect.ismodule(getattr(module, name))}


def _pairs():
    for module_name in MODULES:
        for name, theirs in sorted(_public(module_name).items()):
            if callable(theirs) and f"{module_name}.{name}" not in NOT_IN_GPU_DL:
                yield module_name, name


PAIRS = list(_pairs())


def test_gpu_dl_has_every_keras_name_but_the_listed_ones():
    missing = {f"{m}.{name}" for m in MODULES for name in dir(getattr(keras, m))
               if not name.startswith("_") and not hasattr(getattr(gpu_dl, m), name)}
    assert missing == set(NOT_IN_GPU_DL)


# ----------------------------------------------------------------------------------------------- signatures
def _optimizer_base():
    from keras.src.optimizers.base_optimizer import BaseOptimizer
    return [p for p in inspect.signature(BaseOptimizer.__init__).parameters
            if p not in ("self", "learning_rate", "kwargs")]


class Allowed:
    """A deliberate difference between gpu_dl's signature and Keras's: the parameters only gpu_dl takes, those
    only Keras takes, the shared ones whose kind or default differ, and whether the shared ones come in another
    order. The test requires exactly this difference, so a new one fails and so does one that went away."""

    def __init__(self, why, ours_only=(), keras_only=(), changed=(), order=False):
        self.why, self.ours_only, self.keras_only = why, set(ours_only), set(keras_only)
        self.changed, self.order = set(changed), order


def _rnn_extras(*names):
    return Allowed("gpu_dl's LSTM/GRU/SimpleRNN-style layers also take zero_output_for_mask (what a masked step "
                   "outputs, as Keras 2's RNN layers did) and unroll", ours_only=names)


LORA = ("lora_rank", "lora_alpha")
SIGNATURE_DIFFERENCES = {
    # --- gpu_dl-only arguments
    **{f"layers.{name}": Allowed("gpu_dl's colour layers also read channels_first images", ours_only=["data_format"])
       for name in ("AutoContrast", "RandomBrightness", "RandomContrast", "Solarization")},
    "layers.CenterCrop": Allowed("gpu_dl's CenterCrop takes a seed like the other image layers (unused)",
                                 ours_only=["seed"]),
    "layers.dot": Allowed("the functional form of Dot takes Dot's normalize", ours_only=["normalize"]),
    "layers.LayerNormalization": Allowed("Keras 3's later rms_scaling (RMS normalisation without centering)",
                                         ours_only=["rms_scaling"]),
    **{f"layers.{name}": _rnn_extras("unroll", "zero_output_for_mask") for name in
       ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")},
    **{f"layers.{name}": Allowed("the vocabulary's size when the vocabulary is adapted later (Keras's "
                                 "vocabulary_size() method as an argument)", ours_only=["vocabulary_size"])
       for name in ("IntegerLookup", "StringLookup", "TextVectorization")},
    "layers.StringLookup": Allowed("IntegerLookup's oov_method (the out-of-vocabulary ids' hashing), and the "
                                   "vocabulary's size as IntegerLookup's", ours_only=["oov_method", "vocabulary_size"]),
    "metrics.get": Allowed("keyword-only hints (the loss, the targets' and outputs' shapes) that let 'accuracy' "
                           "and 'crossentropy' resolve as compile() resolves them",
                           ours_only=["loss", "y_true_shape", "y_pred_shape"]),
    "callbacks.ProgbarLogger": Allowed("gpu_dl's progress bar takes fit()'s verbose (2: one line an epoch)",
                                       ours_only=["verbose"]),
    # --- the same defaults written another way
    **{f"layers.{name}": Allowed("strides=1 and dilation_rate=1 (Conv3D shares the convolutions' constructor): an "
                                 "int is the value along each axis", changed=["strides", "dilation_rate"])
       for name in ("Conv3D", "Convolution3D")},
    # --- Keras-only arguments
    "layers.Dense": Allowed("no LoRA in gpu_dl", keras_only=LORA),
    "layers.Embedding": Allowed("no LoRA in gpu_dl; input_length is Keras 2's, accepted and ignored",
                                keras_only=LORA, ours_only=["input_length"]),
    "layers.Bidirectional": Allowed("Keras's weights argument (initial weights of both layers) is not taken",
                                    keras_only=["weights"]),
    "layers.Input": Allowed("no sparse or ragged tensors, no optional inputs, no backend tensors to wrap in gpu_dl; "
                            "name before batch_shape; Keras 2's arguments through **kwargs",
                            keras_only=["sparse", "ragged", "tensor", "optional"], order=True),
    "layers.InputLayer": Allowed("as Input; input_shape (Keras 2's name of shape) keyword-only",
                                 keras_only=["sparse", "ragged", "input_tensor", "optional"],
                                 ours_only=["input_shape"], changed=["batch_shape"], order=True),
    # --- base classes: Keras's forward *args and **kwargs to the class they stand for; gpu_dl's name their
    # arguments (keyword-only for Layer)
    "layers.Layer": Allowed("Layer's arguments named, keyword-only (no positional ones)", keras_only=["args"]),
    "optimizers.Optimizer": Allowed("the arguments of Keras's BaseOptimizer named (test_optimizer_base_arguments_"
                                    "are_keras_s)", keras_only=["args"], ours_only=["learning_rate", *_optimizer_base()]),
    "callbacks.CallbackList": Allowed("gpu_dl's fit() makes its History and progress bar itself, and passes the "
                                      "model and params it has", keras_only=["add_history", "add_progbar"],
                                      changed=["callbacks", "model", "params"]),
}
# Not deliberate, still to do: LSTM, GRU and SimpleRNN take the arguments they share (activation, use_bias, ...,
# unroll) by keyword through **kwargs, in the same meaning and defaults, so a call that passes them by position
# past those the signature names differs from Keras's.
SIGNATURE_DIFFERENCES.update({
    "layers.SimpleRNN": Allowed("by keyword through **kwargs", keras_only=[
        "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer", "kernel_regularizer",
        "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
        "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout", "return_sequences",
        "return_state", "go_backwards", "stateful", "unroll", "seed"])})
SIGNATURE_DIFFERENCES.update({name: Allowed("by keyword through **kwargs", keras_only=[
    "activation", "recurrent_activation", *SIGNATURE_DIFFERENCES["layers.SimpleRNN"].keras_only])
    for name in ("layers.LSTM", "layers.GRU")})
# the deserialize functions of the catalogues take a config only (custom objects come from the registry and
# custom_object_scope)
SIGNATURE_DIFFERENCES.update({
    f"{m}.deserialize": Allowed("custom objects come from the registry and custom_object_scope",
                                keras_only=["custom_objects"]) for m in ("metrics", "initializers", "regularizers",
                                                                         "constraints")})
SIGNATURE_DIFFERENCES.update({
    "losses.deserialize": Allowed("custom objects come from the registry and custom_object_scope; the argument is "
                                  "a config or a name", keras_only=["custom_objects", "name"], ours_only=["config"]),
    "activations.deserialize": Allowed("custom objects come from the registry and custom_object_scope; the "
                                       "argument is a name or a config", keras_only=["custom_objects", "config"],
                                       ours_only=["name"]),
})

# Keras's Layer arguments that some Keras layers name in their signatures; gpu_dl's layers take them all (and
# Layer's other arguments: trainable, input_shape, ...) through **kwargs, with the same defaults.
LAYER_BASE = ("name", "dtype", "activity_regularizer")


def _signature(function):
    """(name, kind, default) of each parameter."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def _catalogue_rules(module_name, ours, theirs):
    """``ours`` and ``theirs`` (parameter lists) without the differences that hold for a whole catalogue."""
    takes_kwargs = any(kind is inspect.Parameter.VAR_KEYWORD for _, kind, _ in ours)
    names = {p[0] for p in ours}
    if module_name == "layers" and takes_kwargs:
        theirs = [p for p in theirs if p[0] not in LAYER_BASE or p[0] in names]
        if not any(kind is inspect.Parameter.VAR_KEYWORD for _, kind, _ in theirs):
            ours = [p for p in ours if p[1] is not inspect.Parameter.VAR_KEYWORD]
        if ours == _signature(gpu_dl.layers.Layer):
            # Layer's own constructor (merging layers, Identity): Keras's takes the same names through **kwargs
            ours = [p for p in ours if p[1] is inspect.Parameter.VAR_KEYWORD]
    if module_name == "optimizers" and takes_kwargs:
        # the arguments every optimizer passes to Optimizer (test_optimizer_base_arguments_are_keras_s)
        base = _optimizer_base()
        theirs = [p for p in theirs if p[0] not in base or p[0] in names]
    return ours, theirs


def _difference(ours, theirs):
    our_names, their_names = [p[0] for p in ours], [p[0] for p in theirs]
    shared = [n for n in our_names if n in their_names]
    changed = {a[0] for a in ours for b in theirs if a[0] == b[0] and (a[1], a[2]) != (b[1], b[2])}
    return (set(our_names) - set(their_names), set(their_names) - set(our_names), changed,
            shared != [n for n in their_names if n in our_names])


@pytest.mark.parametrize("module_name,name", PAIRS, ids=[f"{m}.{n}" for m, n in PAIRS])
def test_signature_is_keras_s(module_name, name):
    ours_function, theirs_function = getattr(getattr(gpu_dl, module_name), name), getattr(getattr(keras, module_name),
                                                                                          name)
    ours, theirs = _catalogue_rules(module_name, _signature(ours_function), _signature(theirs_function))
    allowed = SIGNATURE_DIFFERENCES.get(f"{module_name}.{name}", Allowed(""))
    difference = _difference(ours, theirs)
    assert difference == (allowed.ours_only, allowed.keras_only, allowed.changed, allowed.order), (
        f"{module_name}.{name}: gpu_dl {inspect.signature(ours_function)}, "
        f"Keras {inspect.signature(theirs_function)}")


def test_optimizer_base_arguments_are_keras_s():
    from keras.src.optimizers.base_optimizer import BaseOptimizer
    theirs = list(inspect.signature(BaseOptimizer.__init__).parameters.values())[1:]
    ours = inspect.signature(gpu_dl.optimizers.Optimizer).parameters.values()
    assert [(p.name, p.kind, p.default) for p in ours] == [(p.name, p.kind, p.default) for p in theirs]


def test_every_allowed_difference_names_a_compared_name():
    compared = {f"{m}.{n}" for m, n in PAIRS}
    assert set(SIGNATURE_DIFFERENCES) <= compared
    assert all(entry.why for entry in SIGNATURE_DIFFERENCES.values())


@pytest.mark.parametrize("name", ["AveragePooling1D", "AveragePooling2D", "AveragePooling3D"])
def test_average_poolings_need_a_pool_size_as_keras_s(name):
    for lib in (keras, gpu_dl):
        with pytest.raises(TypeError, match="pool_size"):
            getattr(lib.layers, name)()
    assert getattr(gpu_dl.layers, name)(3).pool_size == getattr(keras.layers, name)(3).pool_size


@pytest.mark.parametrize("name", ["MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "ZeroPadding2D"])
def test_default_windows_and_pads_are_keras_s(name):
    ours, theirs = getattr(gpu_dl.layers, name)().get_config(), getattr(keras.layers, name)().get_config()
    key = "padding" if name.startswith("Zero") else "pool_size"
    assert json.loads(json.dumps(ours[key])) == json.loads(json.dumps(theirs[key]))
