"""gpu_dl's public catalogues against Keras 3.15's (torch backend, where Keras is installed), name by name: every
class and function of keras.layers, losses, metrics, optimizers (the classes), callbacks, initializers,
regularizers, constraints, activations and applications that gpu_dl has takes the same parameters (names, order,
kinds, defaults), and every class but the callbacks' (which Keras does not configure) made with its defaults (or
the fewest arguments) gives the same get_config().

Where gpu_dl differs on purpose the difference is written out below with its reason; any other difference, or an
allowed one that went away, fails the test."""
import inspect
import json
import os
import re

import numpy
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


SIGNATURE_DIFFERENCES = {
    # --- gpu_dl-only arguments
    **{f"layers.{name}": Allowed("gpu_dl's colour layers also read channels_first images", ours_only=["data_format"])
       for name in ("AutoContrast", "RandomBrightness", "RandomContrast", "Solarization")},
    "layers.dot": Allowed("the functional form of Dot takes Dot's normalize", ours_only=["normalize"]),
    "layers.LayerNormalization": Allowed("rms_scaling, the variant earlier Keras 3 releases had (deprecated, "
                                         "with a warning)",
                                         ours_only=["rms_scaling"]),
    **{f"layers.{name}": Allowed("the other recurrent layers' unroll and zero_output_for_mask (what a masked step "
                                 "outputs)", ours_only=["unroll", "zero_output_for_mask"])
       for name in ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")},
    **{f"layers.{name}": Allowed("the vocabulary's size when the vocabulary is adapted later (Keras's "
                                 "vocabulary_size() method as an argument)", ours_only=["vocabulary_size"])
       for name in ("IntegerLookup", "TextVectorization")},
    "layers.StringLookup": Allowed("IntegerLookup's oov_method (the out-of-vocabulary ids' hashing), and the "
                                   "vocabulary's size as IntegerLookup's", ours_only=["oov_method", "vocabulary_size"]),
    "metrics.get": Allowed("keyword-only hints (the loss, the targets' and outputs' shapes) that let 'accuracy' "
                           "and 'crossentropy' resolve as compile() resolves them",
                           ours_only=["loss", "y_true_shape", "y_pred_shape"]),
    "callbacks.ProgbarLogger": Allowed("gpu_dl's progress bar takes fit()'s verbose (2: one line an epoch)",
                                       ours_only=["verbose"]),
    # --- Keras-only arguments
    "layers.Embedding": Allowed("input_length is Keras 2's, accepted and ignored", ours_only=["input_length"]),
    "layers.Bidirectional": Allowed("Keras 3.15 keeps its weights argument as initial_weights that nothing reads; "
                                    "gpu_dl does not take it",
                                    keras_only=["weights"]),
    "layers.InputLayer": Allowed("input_shape, Keras 2's name of shape, keyword-only", ours_only=["input_shape"]),
    # --- base classes: Keras's forward *args and **kwargs to the class they stand for; gpu_dl's name their
    # arguments (keyword-only for Layer)
    "layers.Layer": Allowed("Layer's arguments named, keyword-only (no positional ones)", keras_only=["args"]),
    "optimizers.Optimizer": Allowed("the arguments of Keras's BaseOptimizer named (test_optimizer_base_arguments_"
                                    "are_keras_s)", keras_only=["args"],
                                    ours_only=["learning_rate", *_optimizer_base()]),
    "callbacks.CallbackList": Allowed("gpu_dl's fit() makes its History and progress bar itself, and passes the "
                                      "model and params it has", keras_only=["add_history", "add_progbar"],
                                      changed=["callbacks", "model", "params"]),
}
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
            # Keras's takes name and dtype only (SpatialDropout1D, Discretization, ...): gpu_dl's all Layer's
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


# ----------------------------------------------------------------------------------------------- configs
# Values of required arguments, by parameter name (a function of the library where the value is an object of it).
REQUIRED = {
    "kernel_size": 3, "filters": 2, "factor": 0.2, "units": 3, "output_size": 2, "rate": 0.5, "pool_size": 2,
    "num_classes": 3, "height": 4, "width": 4, "input_dim": 5, "output_dim": 3, "num_bins": 4, "height_factor": 0.2,
    "width_factor": 0.3, "target_class_ids": [0, 1], "activation": "relu", "axes": 1, "equation": "ab,bc->ac",
    "output_shape": 3, "stddev": 0.1, "head_dim": 2, "num_query_heads": 2, "num_key_value_heads": 1, "max_number": 2,
    "num_heads": 2, "key_dim": 2, "dims": [1], "n": 2, "scale": 0.5, "target_shape": [2], "recall": 0.5,
    "precision": 0.5, "specificity": 0.5, "sensitivity": 0.5,
    "layer": lambda lib: lib.layers.LSTM(2), "layers": lambda lib: [lib.layers.Identity()],
    "cell": lambda lib: lib.layers.SimpleRNNCell(2), "cells": lambda lib: [lib.layers.SimpleRNNCell(2)],
    "fn": lambda lib: lib.losses.mean_squared_error, "inner_optimizer": lambda lib: lib.optimizers.SGD(),
    "function": lambda lib: lib.activations.relu,
}
# Arguments Keras's class needs though its signature gives them defaults, by class.
MORE_ARGUMENTS = {"layers.CategoryEncoding": {"num_tokens": 3}, "layers.Discretization": {"num_bins": 3},
                  "layers.InputLayer": {"shape": [2]}, "layers.RandomPosterization": {"factor": 2},
                  "optimizers.Optimizer": {"learning_rate": 0.1}}
# Classes whose configs are not compared, and why.
NO_CONFIG = {
    **{f"layers.{name}": "Keras's layer needs TensorFlow" for name in (
        "HashedCrossing", "Hashing", "IntegerLookup", "StringLookup", "TextVectorization")},
    "optimizers.MultiOptimizer": "Keras's needs an optimizer map", "optimizers.OptimizerMap": "as MultiOptimizer",
    "regularizers.Regularizer": "Keras's base class has no get_config",
    # Not deliberate, still to do: gpu_dl's config holds the function itself where Keras's holds it serialized
    # (gpu_dl's saving serializes it when it writes the config).
    "metrics.MeanMetricWrapper": "gpu_dl's holds the function itself",
}
# gpu_dl writes a nested layer (a wrapper's layer, an RNN's cell) as {class_name, config}, Keras adds the module
# and registered name; both read either form.
NESTED = ("module", "registered_name")
KERAS_ROUND_TRIP_LOSES = "Keras's get_config leaves it out, so Keras's from_config loses it (a Keras 3.15 bug)"
CONFIG_DIFFERENCES = {
    "layers.LSTM": Allowed("gpu_dl writes use_cudnn, which Keras's takes but does not write", ours_only=["use_cudnn"]),
    "layers.GRU": Allowed("as LSTM", ours_only=["use_cudnn"]),
    "layers.SimpleRNN": Allowed("the dropout masks' seed, which Keras's takes but does not write (another Keras "
                                "3.15 round-trip loss)", ours_only=["seed"]),
    "layers.RandomGrayscale": Allowed(KERAS_ROUND_TRIP_LOSES, ours_only=["seed"]),
    "layers.RandomCrop": Allowed("for seed=None Keras writes a seed it draws (not the one its generator uses); "
                                 "gpu_dl writes None", changed=["seed"]),
    "layers.Layer": Allowed("Keras's base Layer records its constructor's arguments; gpu_dl's writes "
                            "activity_regularizer only when set and autocast never (Keras's layers do the same)",
                            keras_only=["activity_regularizer", "autocast"]),
    "layers.Bidirectional": Allowed("nested layers (NESTED); the LSTMs' use_cudnn (LSTM); gpu_dl's get_config "
                                    "names the forward layer as given, Keras's 'forward_<name>' as its copy is "
                                    "named (both read either; gpu_dl's file writer writes Keras's)", keras_only=[
                                        f"{k}.{n}" for k in ("layer", "backward_layer") for n in NESTED],
                                    ours_only=["layer.config.use_cudnn", "backward_layer.config.use_cudnn"],
                                    changed=["layer.config.name"]),
    **{f"layers.{name}": Allowed("nested layer (NESTED); the LSTM's use_cudnn (LSTM)", keras_only=[
        f"layer.{n}" for n in NESTED], ours_only=["layer.config.use_cudnn"])
       for name in ("SpectralNormalization", "TimeDistributed", "Wrapper")},
    "layers.RNN": Allowed("nested cell (NESTED)", keras_only=[f"cell.{n}" for n in NESTED]),
    "layers.StackedRNNCells": Allowed("nested cells (NESTED)", keras_only=[f"cells.0.{n}" for n in NESTED]),
    "optimizers.LossScaleOptimizer": Allowed("Keras's inner optimizer's module is the torch backend's class "
                                             "(keras.src.backend.torch.optimizers...); gpu_dl's is keras.optimizers",
                                             changed=[f"inner_optimizer.{n}" for n in NESTED]),
    "losses.Huber": Allowed(KERAS_ROUND_TRIP_LOSES, ours_only=["delta"]),
    "losses.CosineSimilarity": Allowed(KERAS_ROUND_TRIP_LOSES, ours_only=["axis"]),
    "losses.SparseCategoricalCrossentropy": Allowed(KERAS_ROUND_TRIP_LOSES, ours_only=["axis"]),
    "metrics.CosineSimilarity": Allowed(KERAS_ROUND_TRIP_LOSES, ours_only=["axis"]),
    **{f"initializers.{name}": Allowed(KERAS_ROUND_TRIP_LOSES, ours_only=["gain"])
       for name in ("Identity", "IdentityInitializer", "identity")},
}
CONFIG_MODULES = ("layers", "losses", "metrics", "optimizers", "initializers", "regularizers", "constraints")


def _config_pairs():
    for module_name in CONFIG_MODULES:
        for module_name_, name in PAIRS:
            if module_name_ == module_name and inspect.isclass(getattr(getattr(keras, module_name), name)) \
                    and f"{module_name}.{name}" not in NO_CONFIG:
                yield module_name, name


CONFIG_PAIRS = list(_config_pairs())


def _made(lib, module_name, name):
    cls = getattr(getattr(lib, module_name), name)
    parameters = inspect.signature(getattr(keras, module_name).__dict__[name]).parameters.values()
    arguments = {p.name: REQUIRED[p.name] for p in parameters if p.default is inspect.Parameter.empty
                 and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    arguments.update(MORE_ARGUMENTS.get(f"{module_name}.{name}", {}))
    return cls(**{k: v(lib) if callable(v) else v for k, v in arguments.items()})


def _plain(value):
    """A config as JSON holds it, each object's auto-made name without its number ('dense_4': 'dense'), Keras's
    dtype policies by their names (gpu_dl's get_config gives the policy's name, which both libraries read; its
    .keras file writer writes Keras's policy dict)."""
    if isinstance(value, dict):
        if value.get("class_name") == "DTypePolicy" and value.get("module") == "keras":
            return value["config"]["name"]
        return {k: (re.sub(r"_\d+$", "", v) if k == "name" and isinstance(v, str) else _plain(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _config_difference(ours, theirs, path=""):
    """(paths only in ours, paths only in theirs, paths where both hold other values): dotted keys, nested configs
    included; floats compared as float32 (Keras keeps some, e.g. its optimizers' learning rates and its L1/L2
    factors, as float32 values)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = ({f"{path}{k}" for k in ours.keys() - theirs.keys()},
                 {f"{path}{k}" for k in theirs.keys() - ours.keys()}, set())
        for k in ours.keys() & theirs.keys():
            for mine, nested in zip(found, _config_difference(ours[k], theirs[k], f"{path}{k}.")):
                mine |= nested
        return found
    if isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        found = (set(), set(), set())
        for i, (a, b) in enumerate(zip(ours, theirs)):
            for mine, nested in zip(found, _config_difference(a, b, f"{path}{i}.")):
                mine |= nested
        return found
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (ours, theirs)):
        same = numpy.float32(ours) == numpy.float32(theirs)     # 0 and 0.0 read back alike
    else:
        same = type(ours) is type(theirs) and ours == theirs
    return set(), set(), set() if same else {path.rstrip(".")}


@pytest.mark.parametrize("module_name,name", CONFIG_PAIRS, ids=[f"{m}.{n}" for m, n in CONFIG_PAIRS])
def test_config_is_keras_s(module_name, name):
    theirs = _plain(json.loads(json.dumps(_made(keras, module_name, name).get_config())))
    ours = _plain(json.loads(json.dumps(_made(gpu_dl, module_name, name).get_config())))
    allowed = CONFIG_DIFFERENCES.get(f"{module_name}.{name}", Allowed(""))
    assert _config_difference(ours, theirs) == (allowed.ours_only, allowed.keras_only, allowed.changed), (
        f"{module_name}.{name}: gpu_dl {ours}, Keras {theirs}")


def test_every_allowed_config_difference_names_a_compared_class():
    compared = {f"{m}.{n}" for m, n in CONFIG_PAIRS}
    assert set(CONFIG_DIFFERENCES) <= compared and not set(NO_CONFIG) & compared
    assert all(entry.why for entry in CONFIG_DIFFERENCES.values())


@pytest.mark.parametrize("module_name,name,argument,value", [
    ("losses", "Huber", "delta", 2.0), ("losses", "CosineSimilarity", "axis", 0),
    ("initializers", "Identity", "gain", 2.0)])
def test_what_keras_s_configs_leave_out_survives_gpu_dl_s_round_trip(module_name, name, argument, value):
    """The arguments allowed as gpu_dl-only config entries (KERAS_ROUND_TRIP_LOSES): Keras's round trip returns
    them to their defaults, gpu_dl's keeps them."""
    theirs = getattr(getattr(keras, module_name), name)(**{argument: value})
    assert argument not in theirs.get_config()
    ours = getattr(getattr(gpu_dl, module_name), name)(**{argument: value})
    again = type(ours).from_config(json.loads(json.dumps(ours.get_config())))
    assert again.get_config()[argument] == value


@pytest.mark.parametrize("name,positional", [
    ("LSTM", (4, "relu", "hard_sigmoid", False, "ones")), ("GRU", (4, "relu", "hard_sigmoid", False, "ones")),
    ("SimpleRNN", (4, "relu", False, "ones"))])
def test_recurrent_arguments_by_position_mean_what_they_mean_in_keras(name, positional):
    ours, theirs = getattr(gpu_dl.layers, name)(*positional), getattr(keras.layers, name)(*positional)
    given = list(inspect.signature(type(theirs)).parameters)[:len(positional)]
    assert [ours.get_config()[k] for k in given] == [theirs.get_config()[k] for k in given]
    assert ours.get_config()["activation"] == "relu" and ours.use_bias is False


def _custom_objects(lib):
    """A custom class of each catalogue (and an activation function), as a user's program defines them."""
    class Halved(lib.regularizers.Regularizer):
        def __call__(self, x):
            return 0.5 * lib.ops.sum(x)

        def get_config(self):
            return {}

    class Clipped(lib.constraints.Constraint):
        def __call__(self, w):
            return lib.ops.clip(w, -1.0, 1.0)

    class Twos(lib.initializers.Initializer):
        def __call__(self, shape, dtype=None):
            return lib.ops.full(shape, 2.0, dtype=dtype)

    class Doubled(lib.losses.Loss):
        def call(self, y_true, y_pred):
            return 2.0 * lib.ops.mean(lib.ops.abs(y_true - y_pred), axis=-1)

    class Total(lib.metrics.Sum):
        pass

    def shifted_relu(x):
        return lib.ops.relu(x - 1.0)

    return {"regularizers": Halved, "constraints": Clipped, "initializers": Twos, "losses": Doubled,
            "metrics": Total, "activations": shifted_relu}


@pytest.mark.parametrize("module_name", ["regularizers", "constraints", "initializers", "losses", "metrics",
                                         "activations"])
def test_deserialize_takes_custom_objects_as_keras_s(module_name):
    """A config Keras writes of a custom object, read back by each library's deserialize with custom_objects."""
    theirs = _custom_objects(keras)[module_name]
    made = theirs if module_name == "activations" else theirs()
    config = json.loads(json.dumps(getattr(keras, module_name).serialize(made)))
    for lib in (keras, gpu_dl):
        custom = _custom_objects(lib)[module_name]
        name = custom.__name__
        back = getattr(lib, module_name).deserialize(config, custom_objects={name: custom})
        if module_name != "activations":
            assert type(back) is custom
        else:       # Keras's gives the function, gpu_dl's an activation that runs it
            x = numpy.array([-1.0, 0.5, 3.0], dtype="float32")
            assert numpy.allclose(numpy.asarray(back(lib.ops.convert_to_tensor(x))), [0.0, 0.0, 2.0])


def test_input_layer_config_is_keras_s_and_reads_back_both_ways():
    ours = gpu_dl.layers.InputLayer(shape=(3, 2), batch_size=4, dtype="int32", name="ids")
    theirs = keras.layers.InputLayer(shape=(3, 2), batch_size=4, dtype="int32", name="ids")
    assert json.loads(json.dumps(ours.get_config())) == json.loads(json.dumps(theirs.get_config()))
    assert keras.layers.InputLayer.from_config(ours.get_config()).batch_shape == (4, 3, 2)
    again = gpu_dl.layers.InputLayer.from_config(theirs.get_config())
    assert (again.batch_size, again.shape, again.dtype) == (4, (3, 2), "int32")


@pytest.mark.parametrize("argument,value", [("sparse", True), ("ragged", True), ("optional", True),
                                            ("tensor", numpy.zeros((2, 3)))])
def test_input_refuses_what_gpu_dl_has_no_use_for(argument, value):
    with pytest.raises(ValueError, match=f"Input: `{argument}="):
        gpu_dl.Input((3,), **{argument: value})
    assert gpu_dl.Input((3,), **{argument: None if argument != "optional" else False}).shape == (None, 3)


def test_mean_metric_wrapper_is_named_as_keras_s():
    ours = gpu_dl.metrics.MeanMetricWrapper(gpu_dl.losses.mean_squared_error)
    theirs = keras.metrics.MeanMetricWrapper(keras.losses.mean_squared_error)
    assert ours.name == theirs.name == "mean_metric_wrapper"
    assert ours.get_config()["fn"] is gpu_dl.losses.mean_squared_error
    assert gpu_dl.metrics.MeanMetricWrapper(gpu_dl.losses.mean_squared_error, name="mse").name == "mse"
