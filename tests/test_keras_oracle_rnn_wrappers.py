"""Bidirectional's states and TimeDistributed against Keras 3 itself (where Keras is installed): same
weights, same outputs, gradients and training steps; .keras files written by either load in the other."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402
from gpu_dl.models import keras_config  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402

MERGE_MODES = ["concat", "sum", "mul", "ave", None]


def as_numpy(value):
    return keras.ops.convert_to_numpy(value)


def both_bidirectional(name, merge_mode, **kwargs):
    ours = layers.Bidirectional(getattr(layers, name)(4, **kwargs), merge_mode=merge_mode)
    theirs = keras.layers.Bidirectional(getattr(keras.layers, name)(4, **kwargs), merge_mode=merge_mode)
    return ours, theirs


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("merge_mode", MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_states_match_keras(rng, name, merge_mode, return_sequences):
    x = rng.standard_normal((3, 6, 2)).astype("float32")
    initial = [rng.standard_normal((3, 4)).astype("float32") for _ in range(4 if name == "LSTM" else 2)]
    ours, theirs = both_bidirectional(name, merge_mode, return_sequences=return_sequences, return_state=True)
    got = ours(x, initial_state=initial)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    want = theirs(x, initial_state=initial)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        numpy.testing.assert_allclose(g, as_numpy(w), rtol=1e-5, atol=1e-6)
    assert [tuple(s) for s in ours.compute_output_shape((None, 6, 2))] == \
        [tuple(s) for s in theirs.compute_output_shape((None, 6, 2))]
    for g, w in zip(ours(x), theirs(x)):         # from zeros
        numpy.testing.assert_allclose(g, as_numpy(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_bidirectional_states_of_masked_sequences_match_keras(rng, name):
    x = rng.standard_normal((3, 6, 2)).astype("float32")
    mask = numpy.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [0, 0, 0, 0, 0, 0]], bool)
    initial = [rng.standard_normal((3, 4)).astype("float32") for _ in range(4 if name == "LSTM" else 2)]
    ours, theirs = both_bidirectional(name, "concat", return_sequences=True, return_state=True)
    got = ours(x, mask=mask, initial_state=initial)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    for g, w in zip(got, theirs(x, mask=mask, initial_state=initial)):
        numpy.testing.assert_allclose(g, as_numpy(w), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,merge_mode", [("LSTM", "concat"), ("GRU", "mul"), ("SimpleRNN", None)])
def test_bidirectional_gradients_of_input_and_initial_states_match_torch_autograd(rng, name, merge_mode):
    if keras.backend.backend() != "torch":
        pytest.skip("the gradients are taken with torch autograd")
    import torch
    gpu_dl.backend.set_random_seed(11)     # the weights' draw fixed: Keras's float64 SimpleRNN is ~1e-7 off
    x = rng.standard_normal((2, 5, 3))
    initial = [rng.standard_normal((2, 4)) for _ in range(4 if name == "LSTM" else 2)]
    ours = layers.Bidirectional(getattr(layers, name)(4, return_sequences=True, return_state=True, dtype="float64"),
                                merge_mode=merge_mode, dtype="float64")
    theirs = keras.layers.Bidirectional(getattr(keras.layers, name)(4, return_sequences=True, return_state=True,
                                                                    dtype="float64"), merge_mode=merge_mode,
                                        dtype="float64")
    outputs = ours(x, initial_state=initial, training=True)
    weights = [rng.standard_normal(o.shape) for o in outputs]
    weights[-2] = None                                 # one state unused
    dx = ours.backward(weights)
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    tx = torch.tensor(x, requires_grad=True)
    ts = [torch.tensor(s, requires_grad=True) for s in initial]
    loss = sum((o * torch.tensor(w)).sum() for o, w in zip(theirs(tx, initial_state=ts), weights) if w is not None)
    loss.backward()
    # float32-sized tolerances: Keras's float64 SimpleRNN (torch backend) is itself about 1e-7 off the
    # float64 formula; LSTM and GRU agree to 1e-15.
    numpy.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-5, atol=1e-7)
    for ours_grad, state in zip(ours.initial_state_gradients, ts):
        numpy.testing.assert_allclose(ours_grad, state.grad.numpy(), rtol=1e-5, atol=1e-7)


def test_bidirectional_return_state_config_moves_between_keras_and_gpu_dl(rng):
    x = rng.standard_normal((2, 5, 3)).astype("float32")
    ours = layers.Bidirectional(layers.GRU(3, return_state=True, go_backwards=False), merge_mode="ave")
    ours.build(x.shape)
    theirs = keras.saving.deserialize_keras_object(keras_config._jsonable(keras_config._layer_entry(ours), "test"))
    assert theirs.return_state and theirs.merge_mode == "ave"
    theirs.build(x.shape)
    theirs.set_weights(ours.get_weights())
    for g, w in zip(ours(x), theirs(x)):
        numpy.testing.assert_allclose(g, as_numpy(w), rtol=1e-5, atol=1e-6)
    entry = keras_config._decode(keras.saving.serialize_keras_object(theirs), "test")
    back = keras_config._layer_from_entry(entry, "test")
    assert back.return_state and back.backward_layer.return_state and back.merge_mode == "ave"


# ========================================================================================= TimeDistributed
WRAPPED = [
    ("Dense", (5,), {"activation": "relu"}, (3, 4, 6)),
    ("Conv2D", (2, (2, 3)), {"strides": (2, 1), "padding": "same", "activation": "tanh"}, (2, 3, 5, 6, 2)),
    ("Conv1D", (3, 2), {"padding": "causal"}, (2, 3, 7, 2)),
    ("Flatten", (), {}, (2, 3, 4, 5, 2)),
    ("MaxPooling2D", (), {"pool_size": (2, 2)}, (2, 3, 4, 5, 2)),
    ("AveragePooling2D", (), {"pool_size": (3, 1), "padding": "same"}, (2, 3, 4, 5, 2)),
    ("GlobalAveragePooling2D", (), {}, (2, 3, 4, 5, 2)),
    ("Dropout", (0.5,), {}, (2, 3, 4)),
    ("LSTM", (3,), {}, (2, 3, 4, 2)),
    ("BatchNormalization", (), {}, (2, 3, 4)),
]


@pytest.mark.parametrize("name,args,kwargs,shape", WRAPPED, ids=[w[0] for w in WRAPPED])
def test_time_distributed_layer_matches_keras(rng, name, args, kwargs, shape):
    x = rng.standard_normal(shape).astype("float32")
    ours = layers.TimeDistributed(getattr(layers, name)(*args, **kwargs))
    theirs = keras.layers.TimeDistributed(getattr(keras.layers, name)(*args, **kwargs))
    theirs.build(x.shape)
    ours.build(x.shape)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()]
    if name == "BatchNormalization":
        weights[-1] = numpy.abs(weights[-1]) + 0.5      # a variance
    ours.set_weights(weights)
    theirs.set_weights(weights)
    y = ours(x)
    numpy.testing.assert_allclose(y, as_numpy(theirs(x)), rtol=1e-5, atol=1e-5)
    assert tuple(ours.compute_output_shape((None,) + shape[1:])) == \
        tuple(theirs.compute_output_shape((None,) + shape[1:])) == (None,) + y.shape[1:]


@pytest.mark.parametrize("shape,masked", [((5, 4, 3), False), ((5, 4, 3), True), ((3, 2, 4, 5, 2), False)])
def test_time_distributed_batch_norm_trains_per_step_as_keras_does(rng, shape, masked):
    """Keras calls the wrapped layer once per step: per-step batch statistics, one moving update per step,
    each step's mask leaving its padded samples out."""
    kwargs = {"momentum": 0.6, "gamma_initializer": "random_normal", "beta_initializer": "random_normal"}
    ours = layers.TimeDistributed(layers.BatchNormalization(**kwargs))
    theirs = keras.layers.TimeDistributed(keras.layers.BatchNormalization(**kwargs))
    ours.build(shape)
    theirs.build(shape)
    theirs.set_weights(ours.get_weights())
    for call in range(3):
        x = (rng.standard_normal(shape) * 2 + rng.standard_normal(shape[1:])).astype("float32")
        mask = rng.random(shape[:2]) < 0.7 if masked else None
        if masked:
            mask[0] = True
        got = ours(x, training=True, mask=mask)
        want = as_numpy(theirs(x, training=True, mask=None if mask is None else keras.ops.convert_to_tensor(mask)))
        numpy.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5, err_msg=f"call {call}")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, as_numpy(b), rtol=1e-5, atol=1e-6)


def video_stack(lib):
    L = lib.layers
    return [L.TimeDistributed(L.Conv2D(3, 3, activation="relu")), L.TimeDistributed(L.MaxPooling2D()),
            L.TimeDistributed(L.Flatten()), L.TimeDistributed(L.Dense(5, activation="tanh")),
            L.TimeDistributed(L.Dropout(0.2)), L.LSTM(4), L.Dense(3, activation="softmax")]


def test_time_distributed_video_model_trains_as_keras_does(rng):
    gpu_dl.backend.set_random_seed(3)
    ours = gpu_dl.Sequential([layers.Input((4, 6, 6, 2))] + video_stack(gpu_dl)[:4] + video_stack(gpu_dl)[5:])
    theirs = keras.Sequential([keras.Input((4, 6, 6, 2))] + video_stack(keras)[:4] + video_stack(keras)[5:])
    assert_training_steps_match(keras, ours, theirs, rng, (4, 6, 6, 2), classes=3, batch=5)


def test_time_distributed_keras_files_load_both_ways(rng, tmp_path):
    theirs = keras.Sequential([keras.Input((4, 6, 6, 2))] + video_stack(keras)[:5] + [
        keras.layers.Bidirectional(keras.layers.GRU(3, return_sequences=True)),
        keras.layers.TimeDistributed(keras.layers.Dense(2, activation="softmax"))])
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.save(tmp_path / "keras.keras")
    ours = gpu_dl.models.load_model(tmp_path / "keras.keras")
    assert [type(layer).__name__ for layer in ours.layers][:5] == ["TimeDistributed"] * 5
    assert type(ours.layers[0].layer).__name__ == "Conv2D" and ours.layers[0].name == theirs.layers[0].name
    x = rng.standard_normal((3, 4, 6, 6, 2)).astype("float32")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)

    gpu_dl.backend.set_random_seed(5)
    # without the Dropout: the step after loading compares the two frameworks' updates
    mine = gpu_dl.Sequential([layers.Input((4, 6, 6, 2))] + video_stack(gpu_dl)[:4] + [
        layers.Bidirectional(layers.GRU(3, return_sequences=True)),
        layers.TimeDistributed(layers.Dense(2, activation="softmax"))])
    mine.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    mine.fit(x, rng.integers(0, 2, (3, 4)), epochs=1, verbose=0)
    mine.save(tmp_path / "gpu_dl.keras")
    loaded = keras.models.load_model(tmp_path / "gpu_dl.keras")
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), mine.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    # the optimizer's state moves too: one more step gives the same weights in both
    y = rng.integers(0, 2, (3, 4))
    mine.train_on_batch(x, y)
    loaded.train_on_batch(x, y)
    for a, b in zip(mine.get_weights(), loaded.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_masked_sequence_labelling_with_time_distributed_heads_trains_as_keras_does(rng):
    def stack(lib):
        L = lib.layers
        return [L.Embedding(9, 4, mask_zero=True), L.TimeDistributed(L.Dense(5, activation="relu")),
                L.Bidirectional(L.LSTM(3, return_sequences=True)),
                L.TimeDistributed(L.Dense(3, activation="softmax"))]
    gpu_dl.backend.set_random_seed(7)
    ours = gpu_dl.Sequential([layers.Input((6,))] + stack(gpu_dl))
    theirs = keras.Sequential([keras.Input((6,))] + stack(keras))
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for step in range(4):
        lengths = rng.integers(1, 7, 8)
        keep = numpy.arange(6)[None, :] < lengths[:, None]
        x = numpy.where(keep, rng.integers(1, 9, (8, 6)), 0)
        y = rng.integers(0, 3, (8, 6))
        numpy.testing.assert_allclose(ours.train_on_batch(x, y), theirs.train_on_batch(x, y), rtol=2e-5, atol=1e-6,
                                      err_msg=f"step {step}")
    assert ours._fused_softmax
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0), theirs.evaluate(x, y, verbose=0), rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("writer", ["keras", "gpu_dl"])
def test_time_distributed_recurrent_and_bidirectional_layers_load_both_ways(rng, tmp_path, writer):
    """Weights below the wrapper's 'layer' group: 'layer/cell/vars' and 'layer/forward_layer/cell/vars'."""
    def stack(lib):
        L = lib.layers
        return [L.TimeDistributed(L.LSTM(3)), L.TimeDistributed(L.Dense(2)),
                L.TimeDistributed(L.Reshape((2, 1))), L.TimeDistributed(L.Bidirectional(L.GRU(2), merge_mode="sum"))]
    lib, other = (keras, gpu_dl) if writer == "keras" else (gpu_dl, keras)
    model = lib.Sequential([lib.layers.Input((3, 4, 2))] + stack(lib))
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "nested.keras")
    loaded = (keras.models.load_model if other is keras else gpu_dl.models.load_model)(tmp_path / "nested.keras")
    x = rng.standard_normal((2, 3, 4, 2)).astype("float32")
    want = numpy.asarray(model.predict(x, verbose=0))
    assert want.shape == (2, 3, 2)
    numpy.testing.assert_allclose(numpy.asarray(loaded.predict(x, verbose=0)), want, rtol=1e-5, atol=1e-6)
