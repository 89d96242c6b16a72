"""keras.activations on symbolic tensors against Keras 3 itself (where Keras is installed): the same functional
models written with either library's activations record the same operations (module, class, settings), give the
same outputs and training steps for the same weights, and their .keras files load in the other library and predict
the same; Keras's guide's MLPBlock (a composite layer whose call uses keras.activations.relu) trains step for step
as Keras trains it."""
import json
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402
from keras_steps import assert_training_steps_match, keras_loads_our_file, ours_loads_keras_file  # noqa: E402


def activated(lib):
    """A model of every activation Keras records on a symbolic tensor, with settings where they take them."""
    A, L = lib.activations, lib.layers
    x = lib.Input(shape=(6,), name="x")
    h = L.Dense(8, name="h")(x)
    parts = [A.relu(h), A.relu(h, negative_slope=0.1, max_value=1.0, threshold=0.2), A.leaky_relu(h),
             A.leaky_relu(h, negative_slope=0.3), A.relu6(h * 4.0), A.elu(h), A.elu(h, alpha=0.5), A.selu(h),
             A.celu(h, alpha=2.0), A.softplus(h), A.softsign(h), A.squareplus(h, b=2), A.silu(h), A.swish(h),
             A.gelu(h), A.gelu(h, approximate=True), A.tanh(h), A.tanh_shrink(h), A.hard_tanh(h * 2.0),
             A.sigmoid(h), A.log_sigmoid(h), A.hard_sigmoid(h * 3.0), A.sparse_sigmoid(h * 2.0),
             A.sparse_plus(h * 2.0), A.hard_shrink(h, threshold=0.3), A.soft_shrink(h), A.threshold(h, 0.1, -1.0),
             A.exponential(h * 0.5), A.softmax(h), A.log_softmax(h, axis=-1), A.glu(h), A.linear(h)]
    joined = L.Concatenate(name="joined")(parts)
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(joined), name="activated")


def beyond_keras_symbolic(lib):
    """mish and hard_silu, which Keras 3.15's keras.activations cannot take on a symbolic tensor (they convert it to
    a tensor first): Keras records them as its Mish operation and ops.hard_silu's HardSilu, which gpu_dl's
    keras.activations record."""
    L = lib.layers
    x = lib.Input(shape=(6,), name="x")
    h = L.Dense(8, name="h")(x)
    if lib is keras:
        from keras.src.activations.activations import Mish
        parts = [Mish()(h), keras.ops.hard_silu(h * 3.0), keras.ops.hard_swish(h)]
    else:
        parts = [lib.activations.mish(h), lib.activations.hard_silu(h * 3.0), lib.activations.hard_swish(h)]
    return lib.Model(x, L.Dense(3, activation="softmax", name="probs")(L.Concatenate(name="joined")(parts)))


BUILDERS = [activated, beyond_keras_symbolic]
NAMES = ["activated", "beyond_keras_symbolic"]


def _data(rng, n):
    return rng.standard_normal((n, 6)).astype("float32"), rng.integers(0, 3, n)


def _operations(config):
    """(module, class, settings) of each operation entry, names left out."""
    return sorted((e["module"], e["class_name"], json.dumps({k: v for k, v in e["config"].items() if k != "name"},
                                                          sort_keys=True))
                  for e in config["layers"] if e["module"].startswith("keras.src.") and
                  e["class_name"] not in ("Dense", "Concatenate", "InputLayer"))


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_same_operations_and_outputs_as_keras(build, rng):
    backend.set_random_seed(0)
    ours, theirs = build(gpu_dl), build(keras)
    assert _operations(ours.get_config()) == _operations(theirs.get_config())
    assert len(_operations(ours.get_config())) >= 3
    assert ours.output_shape == theirs.output_shape
    theirs.set_weights(ours.get_weights())
    x, _ = _data(rng, 7)
    expected = keras.ops.convert_to_numpy(theirs(x))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_training_steps_match_keras(build, rng):
    backend.set_random_seed(1)
    assert_training_steps_match(keras, build(gpu_dl), build(keras), rng, (6,), classes=3, batch=8)


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_files_written_by_keras_load_and_predict_the_same(build, tmp_path, rng):
    keras.utils.set_random_seed(0)
    ours_loads_keras_file(keras, build(keras), *_data(rng, 9), tmp_path, load_model)


@pytest.mark.parametrize("build", BUILDERS, ids=NAMES)
def test_keras_loads_files_written_by_gpu_dl(build, tmp_path, rng):
    backend.set_random_seed(2)
    theirs, written = keras_loads_our_file(keras, build(gpu_dl), *_data(rng, 8), tmp_path)
    assert _operations(written) == _operations(theirs.get_config())


def test_sparsemax_is_recorded_as_keras_s_operation(tmp_path):
    # gpu_dl's sparsemax projects onto the simplex, which Keras 3.15's does not once two values are in the support
    # (gpu_dl/activations.py), so only what is recorded is compared here.
    def build(lib):
        x = lib.Input(shape=(5,), name="x")
        return lib.Model(x, lib.ops.sparsemax(lib.layers.Dense(5, name="h")(x), axis=-1))
    ours, theirs = build(gpu_dl), build(keras)
    assert _operations(ours.get_config()) == _operations(theirs.get_config()) == \
        [("keras.src.ops.nn", "Sparsemax", '{"axis": -1}')]
    ours.save(tmp_path / "m.keras")
    assert _operations(keras.models.load_model(tmp_path / "m.keras").get_config()) == _operations(theirs.get_config())


def mlp_block(lib):
    """Keras's guide's MLPBlock, as written there, in a Sequential model."""
    layers = lib.layers

    class MLPBlock(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1 = layers.Dense(32)
            self.linear_2 = layers.Dense(1)

        def call(self, inputs):
            x = self.linear_1(inputs)
            x = lib.activations.relu(x)
            return self.linear_2(x)

    return lib.Sequential([lib.Input((5,)), MLPBlock()])


def test_mlp_block_trains_step_for_step_as_keras_s(rng):
    backend.set_random_seed(3)
    ours, theirs = mlp_block(gpu_dl), mlp_block(keras)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert_training_steps_match(keras, ours, theirs, rng, (5,), classes=None, batch=16, steps=6, loss="mse",
                                targets=lambda rng, n: rng.standard_normal((n, 1)).astype("float32"))


def gated(lib):
    """A composite layer whose call mixes activations with settings, an axis-halving glu and a softmax."""
    A, L = lib.activations, lib.layers

    class Gated(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.wide = L.Dense(8)
            self.out = L.Dense(3)

        def call(self, inputs):
            h = self.wide(inputs)
            h = A.glu(h) + A.elu(h[:, :4], alpha=0.5) * A.hard_sigmoid(h[:, 4:])
            h = A.relu(h, negative_slope=0.1, max_value=3.0) + A.selu(h) + A.gelu(h) + A.softsign(h)
            return A.softmax(self.out(A.squareplus(h)))

    return lib.Sequential([lib.Input((6,)), Gated()])


def test_a_composite_layer_of_activations_trains_as_keras_s(rng):
    backend.set_random_seed(4)
    assert_training_steps_match(keras, gated(gpu_dl), gated(keras), rng, (6,), classes=3, batch=8)
