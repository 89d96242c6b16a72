"""``optimizer.iterations`` against Keras 3 itself (where Keras is installed): the same program in both libraries
gives the same ``iteration`` variable (name, path, dtype, value, identity with ``variables[0]``) after n steps of
``fit``, also with gradient accumulation, in a LossScaleOptimizer and in a MultiOptimizer; and assigning the count
moves a learning-rate schedule and Adam's bias correction as in Keras (the same rates and the same weights)."""
import os

import numpy
import pytest

import gpu_dl
import keras_steps

fresh_sessions = keras_steps.fresh_sessions     # autouse: both sessions cleared around each test


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _data(n=28):
    rng = numpy.random.default_rng(4)
    return rng.standard_normal((n, 3)).astype("float32"), rng.standard_normal((n, 2)).astype("float32")


def _model(lib, optimizer):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(4, activation="tanh"), lib.layers.Dense(2)])
    model.compile(optimizer=optimizer, loss="mse")
    model.set_weights([numpy.linspace(-1, 1, w.size).reshape(w.shape).astype("float32")
                       for w in model.get_weights()])        # the same weights in both libraries
    return model


def _described(lib, variable):
    return (variable.name, variable.path, str(numpy.dtype(variable.dtype)), int(lib.ops.convert_to_numpy(variable)))


def _fit_program(lib, make_optimizer, epochs=2):
    optimizer = make_optimizer(lib)
    model = _model(lib, optimizer)
    before = (_described(lib, optimizer.variables[0]), optimizer.variables[0] is optimizer.iterations)
    x, y = _data()
    model.fit(x, y, batch_size=4, epochs=epochs, shuffle=False, verbose=0)
    return [before, int(lib.ops.convert_to_numpy(optimizer.iterations)), optimizer.variables[0] is optimizer.iterations,
            [_described(lib, v) for v in optimizer.variables if "iteration" in v.path],
            str(optimizer.iterations.numpy().dtype)], model


MAKERS = {
    "adam": lambda lib: lib.optimizers.Adam(0.01),
    "named sgd": lambda lib: lib.optimizers.SGD(0.01, momentum=0.9, name="descent"),
    "accumulating": lambda lib: lib.optimizers.Adam(0.01, gradient_accumulation_steps=3),
    "loss scale": lambda lib: lib.optimizers.LossScaleOptimizer(lib.optimizers.SGD(0.01), initial_scale=8.0),
    "multi": lambda lib: lib.optimizers.MultiOptimizer(lib.optimizers.OptimizerMap(
        lib.optimizers.SGD(0.01), {"sequential/dense/.*": lib.optimizers.Adam(0.01)})),
}


@pytest.mark.parametrize("kind", list(MAKERS))
def test_the_iteration_variable_after_fit_matches_keras(keras, kind):
    ours, ours_model = _fit_program(gpu_dl, MAKERS[kind])
    theirs, theirs_model = _fit_program(keras, MAKERS[kind])
    assert ours == theirs
    assert ours[1] == (4 if kind == "accumulating" else 14)
    for a, b in zip(ours_model.get_weights(), theirs_model.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def test_identity_and_counts_where_keras_has_them(keras):
    ours, _ = _fit_program(gpu_dl, MAKERS["adam"])
    assert ours[0] == (("iteration", "adam/iteration", "int32", 0), True) and ours[2] is True
    ours, _ = _fit_program(gpu_dl, MAKERS["loss scale"])
    # its own variable stays 0; iterations is the inner optimizer's, which counts the steps
    assert ours[2] is False and ours[3] == [("iteration", "loss_scale_optimizer/iteration", "int32", 0),
                                            ("iteration", "sgd/iteration", "int32", 14)]


def _assign_program(lib, make_optimizer, count):
    """Assign the count before training and after it: the rates each reads, and the trained weights."""
    optimizer = make_optimizer(lib)
    model = _model(lib, optimizer)
    rates = []
    optimizer.iterations.assign(count)
    rates.append(float(lib.ops.convert_to_numpy(optimizer.learning_rate)))
    x, y = _data(8)
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    rates.append((int(lib.ops.convert_to_numpy(optimizer.iterations)),
                  float(lib.ops.convert_to_numpy(optimizer.learning_rate))))
    optimizer.iterations.assign_add(5)
    rates.append((int(lib.ops.convert_to_numpy(optimizer.iterations)),
                  float(lib.ops.convert_to_numpy(optimizer.learning_rate))))
    return rates, model.get_weights()


@pytest.mark.parametrize("count", [0, 7, 1000])
@pytest.mark.parametrize("name", ["Adam", "Nadam", "SGD"])
def test_assigning_the_count_moves_the_schedule_and_bias_correction_as_in_keras(keras, name, count):
    def make(lib):
        schedule = lib.optimizers.schedules.ExponentialDecay(0.05, decay_steps=4, decay_rate=0.5)
        return getattr(lib.optimizers, name)(schedule)
    ours, ours_weights = _assign_program(gpu_dl, make, count)
    theirs, theirs_weights = _assign_program(keras, make, count)
    assert ours[0] == pytest.approx(theirs[0], rel=1e-6)
    assert [c for c, _ in ours[1:]] == [c for c, _ in theirs[1:]] == [count + 2, count + 7]
    assert [r for _, r in ours[1:]] == pytest.approx([r for _, r in theirs[1:]], rel=1e-6)
    for a, b in zip(ours_weights, theirs_weights):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)


def _apply_program(lib, make_optimizer):
    """Three steps by ``apply_gradients`` and one by ``apply``: what each returned, described."""
    optimizer = make_optimizer(lib)
    variable = lib.Variable(numpy.array([1.0, -2.0, 0.5], "float32"), name="w")
    returned = []
    for _ in range(3):
        result = optimizer.apply_gradients([(lib.ops.convert_to_tensor(numpy.array([0.5, 1.0, -1.0], "float32")),
                                             variable)])
        returned.append((_described(lib, result), result is optimizer.variables[0]))
    applied = optimizer.apply([lib.ops.convert_to_tensor(numpy.array([1.0, 1.0, 1.0], "float32"))], [variable])
    return returned, applied, lib.ops.convert_to_numpy(variable).tolist()


@pytest.mark.parametrize("kind", ["adam", "named sgd", "accumulating", "loss scale", "multi"])
def test_apply_gradients_returns_the_iteration_variable_and_apply_none_as_keras(keras, kind):
    ours = _apply_program(gpu_dl, MAKERS[kind])
    theirs = _apply_program(keras, MAKERS[kind])
    assert ours[:2] == theirs[:2]
    numpy.testing.assert_allclose(ours[2], theirs[2], rtol=1e-6)
    assert ours[1] is None
    assert [identical for _, identical in ours[0]] == [True] * 3
    counts = [described[3] for described, _ in ours[0]]
    # the raw count of calls also with accumulation; a LossScaleOptimizer's own variable, which stays 0
    assert counts == ([0, 0, 0] if kind == "loss scale" else [1, 2, 3])
