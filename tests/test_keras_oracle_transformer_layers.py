"""EinsumDense, RMSNormalization and GroupQueryAttention against Keras 3 itself (where Keras is installed): the
same weights and inputs give the same outputs, configs and weight shapes; small models take the same training
steps and report the same parameter counts; `.keras` and `.weights.h5` files move both ways."""
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


def _config(layer):
    return {k: v for k, v in layer.get_config().items() if k not in ("name", "dtype")}


def _same_weights_same_outputs(ours, theirs, rng, *inputs, **kwargs):
    assert [w.path.split("/", 1)[1] for w in ours.weights] == [w.path.split("/", 1)[1] for w in theirs.weights]
    assert [w.shape for w in ours.weights] == [tuple(w.shape) for w in theirs.weights]
    ours.set_weights([rng.standard_normal(w.shape).astype("float32") for w in ours.weights])
    theirs.set_weights(ours.get_weights())
    got, want = ours(*inputs, **kwargs), theirs(*inputs, **kwargs)
    for g, w in zip(got if isinstance(got, (list, tuple)) else [got], want if isinstance(want, tuple) else [want]):
        numpy.testing.assert_allclose(numpy.asarray(g), _np(w), rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ EinsumDense
EINSUM = [("ab,bc->ac", 4, "c", (3, 5)), ("abc,cd->abd", (None, 4), "d", (3, 7, 5)),
          ("abc,cde->abde", (None, 2, 3), "de", (3, 7, 5)), ("abc,cde->abde", (None, 2, 3), "d", (3, 7, 5)),
          ("...b,bc->...c", 4, "c", (3, 2, 5)), ("ab,bcd->acd", (2, 3), None, (3, 5)),
          ("abc...,cd->abd...", (None, 4), "d", (3, 2, 5, 3)), ("abc,cd->ad", 4, "d", (3, 2, 5))]


@pytest.mark.parametrize("equation,out,bias_axes,shape", EINSUM, ids=[f"{e[0]}|{e[2]}" for e in EINSUM])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_einsum_dense_matches_keras(rng, equation, out, bias_axes, shape, activation):
    kwargs = dict(bias_axes=bias_axes, activation=activation)
    ours, theirs = layers.EinsumDense(equation, out, **kwargs), keras.layers.EinsumDense(equation, out, **kwargs)
    x = rng.standard_normal(shape).astype("float32")
    ours(x)
    theirs(x)
    _same_weights_same_outputs(ours, theirs, rng, x)
    assert ours.compute_output_shape((None,) + shape[1:]) == tuple(theirs.compute_output_shape((None,) + shape[1:]))
    assert _config(ours) == _config(theirs)


def _einsum_model(module):
    L = module.layers
    x = L.Input((4, 6))
    h = L.EinsumDense("abc,cde->abde", (4, 2, 3), bias_axes="de", activation="relu", name="e1")(x)
    h = L.EinsumDense("...de,def->...f", 5, bias_axes="f", name="e2")(h)
    y = L.EinsumDense("abf,bfk->ak", 3, bias_axes="k", activation="softmax", name="e3")(h)
    return module.Model(x, y)


def test_einsum_dense_models_train_count_and_save_as_keras(rng, tmp_path, capsys):
    backend.set_random_seed(0)
    ours, theirs = _einsum_model(gpu_dl), _einsum_model(keras)
    assert [layer.count_params() for layer in ours.layers] == [layer.count_params() for layer in theirs.layers]
    assert ours.count_params() == theirs.count_params()
    ours.summary()
    assert f"Total params: {theirs.count_params()}" in capsys.readouterr().out.replace(",", "")
    assert_training_steps_match(keras, ours, theirs, rng, (4, 6), 3, 8)
    _files_move_both_ways(ours, _einsum_model, rng.standard_normal((5, 4, 6)).astype("float32"), tmp_path)


def _files_move_both_ways(ours, make, x, tmp_path):
    ours.save(tmp_path / "g.keras")
    ours.save_weights(tmp_path / "g.weights.h5")
    want = ours.predict(x, verbose=0)
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "g.keras").predict(x, verbose=0), want,
                                  rtol=1e-5, atol=1e-6)
    fresh = make(keras)
    fresh.load_weights(tmp_path / "g.weights.h5")
    numpy.testing.assert_allclose(fresh.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)
    theirs = make(keras)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")
    want = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(gpu_dl.models.load_model(tmp_path / "k.keras").predict(x, verbose=0), want,
                                  rtol=1e-5, atol=1e-6)
    again = make(gpu_dl)
    again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(again.predict(x, verbose=0), want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ RMSNormalization
# A single inner axis (axis=1 of a rank-3 input) is left out: Keras's torch backend hands it to F.rms_norm, which
# normalizes trailing axes only, and fails.
@pytest.mark.parametrize("axis,shape", [(-1, (3, 5)), (-1, (3, 4, 17)), (2, (3, 4, 5)), ([1, 2], (3, 4, 5)),
                                        ([-1, -2], (2, 3, 4, 5))])
@pytest.mark.parametrize("epsilon", [1e-6, 0.1])
def test_rms_normalization_matches_keras(rng, axis, shape, epsilon):
    ours, theirs = layers.RMSNormalization(axis, epsilon), keras.layers.RMSNormalization(axis, epsilon)
    assert _config(ours) == _config(theirs)
    x = (rng.standard_normal(shape) * 3).astype("float32")
    ours(x)
    theirs(x)
    _same_weights_same_outputs(ours, theirs, rng, x)
    assert _config(ours) == _config(theirs)


def _rms_model(module):
    L = module.layers
    x = L.Input((4, 6))
    h = L.RMSNormalization(name="rms")(L.Dense(6, name="d1")(x))
    h = L.RMSNormalization(axis=[1, 2], epsilon=1e-3, name="rms2")(h)
    return module.Model(x, L.Dense(3, activation="softmax", name="d2")(L.Flatten()(h)))


def test_rms_normalization_models_train_count_and_save_as_keras(rng, tmp_path):
    backend.set_random_seed(0)
    ours, theirs = _rms_model(gpu_dl), _rms_model(keras)
    assert [layer.count_params() for layer in ours.layers] == [layer.count_params() for layer in theirs.layers]
    assert_training_steps_match(keras, ours, theirs, rng, (4, 6), 3, 8)
    _files_move_both_ways(ours, _rms_model, rng.standard_normal((5, 4, 6)).astype("float32"), tmp_path)


# ------------------------------------------------------------------ GroupQueryAttention
GQA = [(4, 4, 2, {}), (3, 2, 1, {}), (2, 2, 2, {"use_bias": False}), (2, 6, 3, {})]


@pytest.mark.parametrize("head_dim,n,g,options", GQA, ids=[f"{h}d{n}q{g}kv{o}" for h, n, g, o in GQA])
@pytest.mark.parametrize("batch,tq,tv,with_key", [(1, 1, 1, False), (3, 5, 17, True), (3, 17, 5, False)])
def test_gqa_matches_keras(rng, head_dim, n, g, options, batch, tq, tv, with_key):
    ours = layers.GroupQueryAttention(head_dim, n, g, **options)
    theirs = keras.layers.GroupQueryAttention(head_dim, n, g, **options)
    q = rng.standard_normal((batch, tq, 6)).astype("float32")
    v = rng.standard_normal((batch, tv, 6)).astype("float32")
    k = rng.standard_normal((batch, tv, 5)).astype("float32") if with_key else None
    ours(q, v, key=k)
    theirs(q, v, key=k)
    _same_weights_same_outputs(ours, theirs, rng, q, v, key=k)
    value_mask = rng.random((batch, tv)) > 0.3
    attention_mask = rng.random((batch, tq, tv)) > 0.2
    # Keras's fused dot_product_attention leaves a row masked throughout unnormalized: keep one step
    value_mask[:, 0] = attention_mask[:, :, 0] = True
    for extra in (dict(), dict(use_causal_mask=True), dict(value_mask=value_mask),
                  dict(attention_mask=attention_mask, use_causal_mask=True, value_mask=value_mask)):
        got = ours(q, v, key=k, return_attention_scores=True, **extra)
        want = theirs(q, v, key=k, return_attention_scores=True, **extra)
        for a, b in zip(got, want):
            numpy.testing.assert_allclose(a, _np(b), rtol=1e-5, atol=1e-5)
        numpy.testing.assert_allclose(ours(q, v, key=k, **extra), _np(theirs(q, v, key=k, **extra)),
                                      rtol=1e-5, atol=1e-5)
    assert _config(ours) == _config(theirs)



@pytest.mark.parametrize("query,value", [((3, 4), (5, 6)), ((3, None), (5, 4)), ((3, 4), (5, None)),
                                         ((None, None), (None, None)), ((3, 4), (5, 4))])
def test_gqa_refuses_the_symbolic_query_and_value_keras_refuses(query, value):
    """Keras compares the query's and value's feature sizes as they are: an unknown one differs from a known one
    (arrays of different feature sizes are still accepted, built or not, by both)."""
    results = []
    for module in (layers, keras.layers):
        eager = module.GroupQueryAttention(2, 2, 1)
        assert tuple(eager(numpy.ones((2, 3, 4), "float32"), numpy.ones((2, 5, 6), "float32")).shape) == (2, 3, 4)
        gqa = module.GroupQueryAttention(2, 2, 1)
        if None in query + value:   # built, so that the unknown sizes need no kernel built for them
            gqa(numpy.ones((2, 3, 4), "float32"), numpy.ones((2, 5, 4), "float32"))
        try:
            results.append(tuple(gqa(module.Input(query), module.Input(value)).shape))
        except ValueError as error:
            results.append(str(error))
    ours, theirs = results
    if isinstance(theirs, tuple):
        assert ours == theirs == (None,) + query
    else:
        want = (f"last dimension of `query_shape` and `value_shape` must be equal, but are {query[1]}, {value[1]}. "
                f"Received: query_shape={(None,) + query}, value_shape={(None,) + value}")
        assert want in theirs and want in ours

def _gqa_model(module):
    L = module.layers
    ids = L.Input((6,), dtype="int32")
    # No mask_zero: a padded query step's row is masked throughout, which Keras's fused path (taken without
    # the scores) leaves unnormalized where its Softmax(mask) path and gpu_dl give zeros.
    x = L.Embedding(11, 8)(ids)
    y = L.GroupQueryAttention(2, 4, 2, name="gqa")(x, x, use_causal_mask=True)
    y = L.RMSNormalization(name="rms")(L.Add()([x, y]))
    z = L.EinsumDense("abc,cd->abd", (6, 5), bias_axes="d", activation="relu", name="ffn")(y)
    out = L.Dense(3, activation="softmax")(L.GlobalAveragePooling1D()(z))
    return module.Model(ids, out)


def _ids(rng, batch):
    ids = rng.integers(1, 11, (batch, 6))
    ids[:, 4:] *= rng.random((batch, 1)) > 0.5          # some sequences padded at the end
    return ids.astype("int32")


def test_gqa_models_predict_train_count_and_save_as_keras(rng, tmp_path, capsys):
    backend.set_random_seed(0)
    ours, theirs = _gqa_model(gpu_dl), _gqa_model(keras)
    assert [layer.count_params() for layer in ours.layers] == [layer.count_params() for layer in theirs.layers]
    ours.summary()
    assert f"Total params: {theirs.count_params()}" in capsys.readouterr().out.replace(",", "")
    theirs.set_weights(ours.get_weights())
    ids = _ids(rng, 5)
    numpy.testing.assert_allclose(ours.predict(ids, verbose=0), theirs.predict(ids, verbose=0), rtol=1e-5, atol=1e-6)
    assert_training_steps_match(keras, ours, theirs, rng, None, classes=3, batch=8, inputs=_ids)
    _files_move_both_ways(ours, _gqa_model, _ids(rng, 4), tmp_path)


def test_gqa_training_steps_match_keras(rng):
    def build(module):
        L = module.layers
        x = L.Input((5, 3))
        y = L.GroupQueryAttention(2, 4, 2, name="gqa")(x, x)
        return module.Model(x, L.Dense(2, activation="softmax")(L.Flatten()(y)))
    backend.set_random_seed(1)
    assert_training_steps_match(keras, build(gpu_dl), build(keras), rng, (5, 3), 2, 8)


def test_a_keras_gqa_file_with_key_and_attention_mask_loads(rng, tmp_path):
    L = keras.layers
    q, v, k, m = L.Input((4, 3)), L.Input((5, 3)), L.Input((5, 6)), L.Input((4, 5), dtype="bool")
    y = L.GroupQueryAttention(2, 4, 2)(q, v, key=k, attention_mask=m)
    model = keras.Model([q, v, k, m], y)
    model.save(tmp_path / "k.keras")
    xs = [rng.standard_normal((2,) + s).astype("float32") for s in ((4, 3), (5, 3), (5, 6))]
    xs.append(rng.random((2, 4, 5)) > 0.3)
    xs[3][:, :, 0] = True
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(loaded.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    loaded.save(tmp_path / "g.keras")
    back = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(back.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)


def test_gqa_default_names_are_keras_s_and_key_a_model_s_layers(rng, tmp_path):
    import re
    import zipfile
    import json
    name = re.compile(r"grouped_query_attention(_\d+)?")
    assert name.fullmatch(keras.layers.GroupQueryAttention(2, 2, 1).name)
    assert name.fullmatch(layers.GroupQueryAttention(2, 2, 1).name)

    class Wider(layers.GroupQueryAttention):
        pass
    # A subclass is named after itself, as Keras names it
    assert Wider(2, 2, 1).name.startswith("wider")

    def build(module):
        x = module.layers.Input((3, 4))
        return module.Model(x, module.layers.GroupQueryAttention(2, 2, 1)(x, x))
    ours = build(gpu_dl)
    ours.save(tmp_path / "g.keras")
    with zipfile.ZipFile(tmp_path / "g.keras") as archive:
        names = [layer["config"]["name"] for layer in json.loads(archive.read("config.json"))["config"]["layers"]]
    assert name.fullmatch(names[1])
    back = keras.models.load_model(tmp_path / "g.keras")
    assert back.layers[1].name == ours.layers[1].name
    x = rng.standard_normal((2, 3, 4)).astype("float32")
    numpy.testing.assert_allclose(back.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
