"""Attention, AdditiveAttention and MultiHeadAttention against Keras 3 itself (where Keras is installed): the
same weights and inputs give the same outputs and scores (masks, causal mask, key), small models take the same
training steps, and `.keras` / `.weights.h5` files move both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _np(x):
    return keras.ops.convert_to_numpy(x)


pytestmark = pytest.mark.usefixtures("on_cpu")


ATTENTION = [("Attention", {}), ("Attention", {"use_scale": True}), ("Attention", {"score_mode": "concat"}),
             ("Attention", {"score_mode": "concat", "use_scale": True}), ("AdditiveAttention", {}),
             ("AdditiveAttention", {"use_scale": False})]


@pytest.mark.parametrize("cls,kwargs", ATTENTION)
@pytest.mark.parametrize("batch,tq,tv,with_key", [(1, 1, 1, False), (3, 5, 17, True), (3, 17, 5, True)])
@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_keras(rng, cls, kwargs, batch, tq, tv, with_key, causal):
    ours, theirs = getattr(layers, cls)(**kwargs), getattr(keras.layers, cls)(**kwargs)
    q = rng.standard_normal((batch, tq, 4)).astype("float32")
    v = rng.standard_normal((batch, tv, 3 if with_key else 4)).astype("float32")
    k = rng.standard_normal((batch, tv, 4)).astype("float32")
    xs = [q, v, k] if with_key else [q, v]
    masks = [rng.random((batch, tq)) > 0.3, rng.random((batch, tv)) > 0.3]
    ours(xs)
    theirs(xs)
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [w.path.split("/", 1)[1] for w in theirs.weights]
    weights = [rng.standard_normal(w.shape).astype("float32") for w in ours.weights]
    ours.set_weights(weights)
    theirs.set_weights(weights)
    for mask in (None, masks):
        got = ours(xs, mask=mask, use_causal_mask=causal, return_attention_scores=True)
        want = theirs(xs, mask=mask, use_causal_mask=causal, return_attention_scores=True)
        for g, w in zip(got, want):
            numpy.testing.assert_allclose(g, _np(w), rtol=1e-5, atol=1e-5)
    config = {k: v for k, v in theirs.get_config().items() if k not in ("name", "dtype")}
    assert {k: v for k, v in ours.get_config().items() if k not in ("name", "dtype")} == config


MHA = [dict(), dict(value_dim=3, output_shape=(2, 3)), dict(use_bias=False), dict(output_shape=5)]


@pytest.mark.parametrize("options", MHA)
@pytest.mark.parametrize("batch,tq,tv,with_key", [(1, 1, 1, False), (3, 5, 17, True), (3, 17, 5, False)])
def test_mha_matches_keras(rng, options, batch, tq, tv, with_key):
    ours, theirs = layers.MultiHeadAttention(2, 4, **options), keras.layers.MultiHeadAttention(2, 4, **options)
    q = rng.standard_normal((batch, tq, 6)).astype("float32")
    v = rng.standard_normal((batch, tv, 3)).astype("float32")
    k = rng.standard_normal((batch, tv, 5)).astype("float32") if with_key else None
    ours(q, v, key=k)
    theirs(q, v, key=k)
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [w.path.split("/", 1)[1] for w in theirs.weights]
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    theirs.set_weights(ours.get_weights())
    value_mask = rng.random((batch, tv)) > 0.3
    attention_mask = rng.random((batch, tq, tv)) > 0.2
    # Keras's two paths disagree on a row masked throughout (its fused one does not zero it): keep one step
    value_mask[:, 0] = attention_mask[:, :, 0] = True
    for extra in (dict(), dict(use_causal_mask=True), dict(value_mask=value_mask),
                  dict(attention_mask=attention_mask, use_causal_mask=True, value_mask=value_mask)):
        got = ours(q, v, key=k, return_attention_scores=True, **extra)
        want = theirs(q, v, key=k, return_attention_scores=True, **extra)
        for g, w in zip(got, want):
            numpy.testing.assert_allclose(g, _np(w), rtol=1e-5, atol=1e-5)
        # without the scores Keras takes its fused dot_product_attention path: the same numbers
        numpy.testing.assert_allclose(ours(q, v, key=k, **extra), _np(theirs(q, v, key=k, **extra)),
                                      rtol=1e-5, atol=1e-5)
    config = {k: v for k, v in theirs.get_config().items() if k not in ("name", "dtype")}
    assert {k: v for k, v in ours.get_config().items() if k not in ("name", "dtype")} == config


def _models(module, seed=0):
    """The same functional model in gpu_dl (module=gpu_dl) or Keras: token ids with padding (mask_zero), self-
    and cross-attention, then a classifier."""
    L = module.layers
    ids = L.Input((6,), dtype="int32")
    x = L.Embedding(11, 8, mask_zero=True)(ids)
    y = L.MultiHeadAttention(2, 4, name="mha")(x, x, use_causal_mask=True)
    z = L.Attention(use_scale=True, name="att")([y, x])
    w = L.AdditiveAttention(name="add")([z, y])
    out = L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(w))
    return module.Model(ids, out)


def _ids(rng, batch):
    ids = rng.integers(1, 11, (batch, 6))
    ids[:, 4:] *= rng.random((batch, 1)) > 0.5          # some sequences padded at the end
    return ids.astype("int32")


def test_models_with_masks_predict_and_train_as_keras(rng):
    backend.set_random_seed(0)
    ours, theirs = _models(gpu_dl), _models(keras)
    theirs.set_weights(ours.get_weights())
    ids = _ids(rng, 5)
    numpy.testing.assert_allclose(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    for step in range(4):
        ids, y = _ids(rng, 8), rng.integers(0, 3, 8)
        assert ours.train_on_batch(ids, y) == pytest.approx(float(theirs.train_on_batch(ids, y)), rel=2e-5, abs=1e-6)
        ours.reset_metrics()
        theirs.reset_metrics()
    ours_weights, theirs_weights = ours.get_weights(), theirs.get_weights()
    # The padding id's embedding row (0) is left out: it is reached by no unmasked step, and Adam turns the
    # rounding-level gradients it gets in one framework and not the other into whole steps.
    ours_weights[0], theirs_weights[0] = ours_weights[0][1:], theirs_weights[0][1:]
    for a, b in zip(ours_weights, theirs_weights):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_training_steps_match_keras(rng):
    def build(module):
        L = module.layers
        x = L.Input((5, 3))
        y = L.MultiHeadAttention(3, 2, value_dim=4, name="mha")(x, x)
        return module.Model(x, L.Dense(2, activation="softmax")(L.Flatten()(y)))
    backend.set_random_seed(1)
    assert_training_steps_match(keras, build(gpu_dl), build(keras), rng, (5, 3), 2, 8)


def test_files_move_both_ways(rng, tmp_path):
    backend.set_random_seed(2)
    ours = _models(gpu_dl)
    ids = _ids(rng, 4)
    ours.save(tmp_path / "g.keras")
    ours.save_weights(tmp_path / "g.weights.h5")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(ids, verbose=0), ours.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
    fresh = _models(keras)
    fresh.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(ids, verbose=0), ours.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)

    keras_model = _models(keras)
    keras_model.save(tmp_path / "k.keras")
    keras_model.save_weights(tmp_path / "k.weights.h5")
    want = keras_model.predict(ids, verbose=0)
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(loaded.predict(ids, verbose=0), want, rtol=1e-5, atol=1e-6)
    again = _models(gpu_dl)
    again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(again.predict(ids, verbose=0), want, rtol=1e-5, atol=1e-6)


def test_a_keras_file_with_key_and_attention_mask_loads(rng, tmp_path):
    L = keras.layers
    q, v, k, m = L.Input((4, 3)), L.Input((5, 2)), L.Input((5, 6)), L.Input((4, 5), dtype="bool")
    y = L.MultiHeadAttention(2, 3)(q, v, key=k, attention_mask=m)
    model = keras.Model([q, v, k, m], y)
    model.save(tmp_path / "k.keras")
    xs = ([rng.standard_normal((2,) + s).astype("float32") for s in ((4, 3), (5, 2), (5, 6))]
          + [rng.random((2, 4, 5)) > 0.3])
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    loaded.save(tmp_path / "g.keras")
    back = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(back.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
