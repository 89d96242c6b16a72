"""The seed notes' convolutional network on the real scikit-learn digits reaches >= 97% test accuracy.

On two CPU cores this trains in about 2 s: the NumPy convolution is the CPU
fallback CI relies on.
"""
import time

import pytest

from gpu_dl import backend, data, optimizers
from gpu_dl.models.examples import build_cnn


@pytest.mark.slow
def test_digits_cnn_reaches_97_percent(xp):
    backend.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = data.load_digits(image_shape=True)
    assert x_train.shape[1:] == (8, 8, 1)
    model = build_cnn((8, 8, 1), 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds == ["Conv2D", "MaxPooling2D", "Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]
    model.compile(optimizer=optimizers.Adam(0.003), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=15, batch_size=32, verbose=0)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0] / 5
    assert accuracy >= 0.97, f"test accuracy {accuracy:.4f} after {seconds:.1f} s of training"
