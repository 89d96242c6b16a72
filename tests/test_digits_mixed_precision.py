"""A Sequential MLP and the small CNN trained under "mixed_float16" on the scikit-learn digits reach the test
accuracy the same models reach in float32 (within 2 points), with float32 weights and a loss scale that moved as
Keras's does."""
import pytest

import gpu_dl
from gpu_dl import backend, data, layers, mixed_precision, models, optimizers
from gpu_dl.models.examples import build_cnn


@pytest.fixture(autouse=True)
def global_policy_restored():
    yield
    gpu_dl.utils.clear_session(free_memory=False)      # the global policy follows floatx again


def mlp():
    return models.Sequential([layers.Input((64,)), layers.Dense(64, activation="relu"),
                              layers.Dense(32, activation="relu"), layers.Dense(10, activation="softmax")])


def _accuracy(policy, make, image_shape, epochs):
    mixed_precision.set_global_policy(policy)
    backend.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = data.load_digits(image_shape=image_shape)
    model = make()
    model.compile(optimizer=optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    return model, accuracy


def _compare(make, image_shape, epochs):
    mixed, mixed_accuracy = _accuracy("mixed_float16", make, image_shape, epochs)
    _, plain_accuracy = _accuracy("float32", make, image_shape, epochs)
    assert all(l.compute_dtype == "float16" for l in mixed.layers)
    assert all(w.dtype == "float32" for w in mixed.get_weights())
    assert isinstance(mixed.optimizer, optimizers.LossScaleOptimizer)
    assert mixed.optimizer.iterations > 0
    assert plain_accuracy >= 0.95
    assert mixed_accuracy >= plain_accuracy - 0.02, (mixed_accuracy, plain_accuracy)


@pytest.mark.slow
def test_mixed_precision_mlp_reaches_float32_accuracy_on_digits(xp):
    _compare(mlp, False, 20)


@pytest.mark.slow
def test_mixed_precision_cnn_reaches_float32_accuracy_on_digits(xp):
    _compare(lambda: build_cnn((8, 8, 1), 10), True, 15)
