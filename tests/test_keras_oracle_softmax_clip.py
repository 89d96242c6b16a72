"""The fused softmax + cross-entropy where the softmax saturates, against Keras 3 itself (torch backend).

Keras computes a softmax output's (sparse) categorical cross-entropy from its
probabilities: renormalised, clipped to [1e-7, 1 - 1e-7], logged. gpu_dl fuses
the loss with the softmax; these tests hold it to Keras's loss and gradient
where probabilities fall outside the clip: torch's autograd through Keras's own
loss function, and whole models trained a few steps by both libraries (on
NumPy, and on CuPy where a GPU is present: the kernel).
"""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")
from keras.src.backend.torch import nn as keras_torch_nn  # noqa: E402

import gpu_dl  # noqa: E402
from gpu_dl import layers, losses, optimizers  # noqa: E402
from gpu_dl.ops.softmax_xent import softmax_xent  # noqa: E402

LOGITS = numpy.array([[30.0, 0.0, -30.0, 1.0], [10.0, 0.0, -30.0, 2.0], [0.0, 17.0, 1.0, -5.0],
                      [-2.0, 3.0, 1.0, 0.5], [40.0, 39.0, -3.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
LABELS = numpy.array([0, 1, 0, 2, 3, 1])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("targets", ["sparse", "onehot", "soft", "smoothed"])
def test_loss_and_gradient_are_torch_autograd_through_keras_loss(dtype, targets):
    rng = numpy.random.default_rng(3)
    logits = numpy.concatenate([LOGITS, rng.standard_normal((11, 4)) * 15]).astype(dtype)
    labels = numpy.concatenate([LABELS, rng.integers(0, 4, 11)])
    if targets == "soft":
        t = rng.dirichlet(numpy.ones(4), len(labels)).astype(dtype)
    else:
        t = numpy.eye(4, dtype=dtype)[labels]
    smoothing = 0.1 if targets == "smoothed" else 0.0
    z = torch.tensor(logits, requires_grad=True)
    probs = torch.softmax(z, dim=-1)
    if targets == "sparse":
        keras_loss = keras_torch_nn.sparse_categorical_crossentropy(torch.tensor(labels), probs)
    else:
        smoothed = t * (1 - smoothing) + smoothing / 4 if smoothing else t
        keras_loss = keras_torch_nn.categorical_crossentropy(torch.tensor(smoothed), probs)
    keras_loss.sum().backward()
    p = probs.detach().numpy().astype(float)
    assert (p < 1e-7).any() and (p > 1 - 1e-7).any()   # both bounds clip somewhere
    assert (keras_loss.detach().numpy() < 16.2).all()
    loss, _, dlogits = softmax_xent(logits, labels if targets == "sparse" else t, sparse=targets == "sparse",
                                    label_smoothing=smoothing, epsilon=1e-7)
    tol = dict(rtol=2e-6, atol=1e-6) if dtype == "float32" else dict(rtol=1e-10, atol=1e-13)
    numpy.testing.assert_allclose(loss, keras_loss.detach().numpy(), **tol)
    numpy.testing.assert_allclose(dlogits, z.grad.numpy(), **tol)


def _pair(name, kwargs, rng):
    def stack(lib):
        return [lib.layers.Dense(7, activation="tanh"), lib.layers.Dense(4, activation="softmax")]
    ours = gpu_dl.Sequential([layers.Input((5,))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((5,))] + stack(keras))
    weights = ours.get_weights()
    weights[2] = (rng.standard_normal(weights[2].shape) * 12).astype("float32")   # logits tens apart: saturated
    ours.set_weights(weights)
    theirs.set_weights(weights)
    ours.compile(optimizer=optimizers.SGD(learning_rate=0.05), loss=getattr(losses, name)(**kwargs))
    theirs.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss=getattr(keras.losses, name)(**kwargs))
    return ours, theirs


def _batch(rng, sparse):
    x = rng.standard_normal((16, 5)).astype("float32")
    labels = rng.integers(0, 4, 16)
    return x, labels, labels if sparse else numpy.eye(4, dtype="float32")[labels]


@pytest.mark.parametrize("name,kwargs", [("SparseCategoricalCrossentropy", {}), ("CategoricalCrossentropy", {}),
                                         ("CategoricalCrossentropy", {"label_smoothing": 0.1})],
                         ids=["sparse", "onehot", "smoothed"])
@pytest.mark.parametrize("weighted", [False, True])
def test_saturated_model_trains_as_keras(xp, name, kwargs, weighted):
    # On CuPy the step runs the softmax_xent kernel (the _narrow_ one: 4 classes).
    rng = numpy.random.default_rng(7)
    ours, theirs = _pair(name, kwargs, rng)
    sparse = name.startswith("Sparse")
    below = 0
    for step in range(4):
        x, labels, y = _batch(rng, sparse)
        sw = rng.random(16).astype("float32") if weighted else None
        below += int((theirs.predict(x, verbose=0)[numpy.arange(16), labels] < 1e-7).sum())
        ours_loss = ours.train_on_batch(x, y, sample_weight=sw)
        theirs_loss = float(theirs.train_on_batch(x, y, sample_weight=sw))
        assert ours._fused_softmax   # the loss this test is about
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
    assert below >= 4   # targets below the clip, each capped at -log(1e-7) by Keras, with no gradient
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-6)
    x, _, y = _batch(rng, sparse)
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=2e-5)
