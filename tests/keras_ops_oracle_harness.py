"""The comparisons with Keras every keras.ops family's oracle tests make of functional models written with either
library's ops: the operations their configs hold, their outputs for the same weights, their training steps, and
their .keras files read by the other library. ``keras`` comes in as an argument: the test files import it only
where it is installed."""
import json

import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.models import load_model
from keras_steps import assert_training_steps_match, keras_loads_our_file, ours_loads_keras_file


def operations(config):
    """(module, class, settings) of each operation entry, names left out."""
    return sorted(((e["module"], e["class_name"], json.dumps({k: v for k, v in e["config"].items() if k != "name"},
                                                           sort_keys=True))
                   for e in config["layers"] if e["module"].startswith("keras.src.ops")), key=str)


def assert_same_operations_and_outputs(keras, ours, theirs, x, same_layer_names=False):
    """gpu_dl's ``ours`` and Keras's ``theirs`` hold the same operations and output shape, and, given ours's
    weights, predict the same for ``x``."""
    assert operations(ours.get_config()) == operations(theirs.get_config())
    assert not same_layer_names or [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    assert ours.output_shape == theirs.output_shape
    theirs.set_weights(ours.get_weights())
    expected = keras.ops.convert_to_numpy(theirs(x))
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=2e-5, atol=2e-6)


def builder_tests(keras, builders, data, sample_shape, *, batch=6, same_layer_names=False):
    """The four tests of the model builders ``builders`` (``build(lib)`` with lib gpu_dl or keras): same operations
    and outputs, same training steps, Keras's files read by gpu_dl and gpu_dl's by Keras.

    ``data(rng, n, build)`` draws n inputs and class ids for ``build``'s model, ``sample_shape(build)`` is the shape
    of one of its inputs; ``batch`` is the training steps' batch."""
    parametrized = pytest.mark.parametrize("build", builders, ids=[b.__name__ for b in builders])

    def same_operations_and_outputs(build, rng):
        backend.set_random_seed(0)
        ours, theirs = build(gpu_dl), build(keras)
        assert_same_operations_and_outputs(keras, ours, theirs, data(rng, 5, build)[0], same_layer_names)

    def training_steps(build, rng):
        backend.set_random_seed(1)
        assert_training_steps_match(keras, build(gpu_dl), build(keras), rng, sample_shape(build), classes=3,
                                    batch=batch)

    def keras_files(build, tmp_path, rng):
        keras.utils.set_random_seed(0)
        ours_loads_keras_file(keras, build(keras), *data(rng, 9, build), tmp_path, load_model)

    def our_files(build, tmp_path, rng):
        backend.set_random_seed(2)
        theirs, written = keras_loads_our_file(keras, build(gpu_dl), *data(rng, 8, build), tmp_path)
        assert operations(written) == operations(theirs.get_config())

    return tuple(parametrized(test) for test in (same_operations_and_outputs, training_steps, keras_files, our_files))
