"""Attention, AdditiveAttention and MultiHeadAttention: forward against plain NumPy, backward against float64
finite differences for every input and weight, masks, the causal mask, returned scores, dropout, functional
models, saving, and the errors they raise. One body per backend."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient
from toy_data import assert_trains_and_reloads


def _softmax(s, keep=None, replace=False):
    if keep is not None:
        s = numpy.where(keep, s, -1e9) if replace else numpy.where(keep, s, s - 1e9)
    e = numpy.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return numpy.where(keep, p, 0.0) if replace and keep is not None else p


def _expected_attention(layer, q, v, k, q_mask=None, v_mask=None, causal=False):
    w = {var.name: var.numpy() for var in layer.weights}
    if isinstance(layer, layers.AdditiveAttention):
        t = numpy.tanh(q[:, :, None, :] + k[:, None, :, :])
        scores = (t * w["scale"]).sum(-1) if "scale" in w else t.sum(-1)
    elif layer.score_mode == "dot":
        scores = numpy.einsum("btd,bsd->bts", q, k) * w.get("scale", 1.0)
    else:
        scores = w["concat_score_weight"] * numpy.tanh(w.get("scale", 1.0) * (q[:, :, None] + k[:, None])).sum(-1)
    keep = numpy.ones(scores.shape, bool)
    if v_mask is not None:
        keep &= v_mask[:, None, :]
    if causal:
        keep &= numpy.tril(numpy.ones(scores.shape[1:], bool))[None]
    p = _softmax(scores, keep)
    out = numpy.einsum("bts,bsd->btd", p, v)
    if q_mask is not None:
        out = out * q_mask[:, :, None]
    return out, p


def _expected_mha(layer, q, v, k, mask=None, dropped=None):
    w = {var.path.split("/", 1)[1]: var.numpy() for var in layer.weights}

    def project(name, x):
        return numpy.einsum("btd,dnk->btnk", x, w[f"{name}/kernel"]) + w.get(f"{name}/bias", 0.0)
    qh, kh, vh = project("query", q), project("key", k), project("value", v)
    scores = numpy.einsum("btnk,bsnk->bnts", qh, kh) / numpy.sqrt(layer.key_dim)
    p = _softmax(scores, None if mask is None else mask[:, None], replace=True)
    heads = numpy.einsum("bnts,bsnv->btnv", p if dropped is None else p * dropped, vh)
    out = numpy.einsum("btnv,nvo->bto", heads, w["attention_output/kernel"].reshape(
        layer.num_heads, layer.value_dim, -1)) + w.get("attention_output/bias", numpy.zeros(1)).reshape(-1)
    return out.reshape(out.shape[:2] + w["attention_output/kernel"].shape[2:]), p


def _randomise(layer, rng):
    layer.set_weights([rng.standard_normal(v.shape) * 0.5 + 0.7 for v in layer.weights])


def _check_gradients(layer, call, xs, rng, xp):
    """Every input's and weight's gradient of sum(output * w1) + sum(scores * w2)."""
    out, scores = call(xs)
    w1, w2 = xp.asarray(rng.standard_normal(out.shape)), xp.asarray(rng.standard_normal(scores.shape))
    grads = layer.backward([w1, w2])
    assert len(grads) == len(xs)

    def f_of(i):
        def f(x):
            o, s = call(xs[:i] + [x] + xs[i + 1:])
            return (o * w1).sum() + (s * w2).sum()
        return f
    for i, g in enumerate(grads):
        assert_gradient(f_of(i), xs[i], g, rng, what=f"{layer.name} input {i}")
    weight_grads = [v.grad for v in layer.trainable_weights]
    for var, g in zip(layer.trainable_weights, weight_grads):
        original = var.value.copy()

        def f(value, var=var, original=original):
            var.value[...] = value
            o, s = call(xs)
            var.value[...] = original
            return (o * w1).sum() + (s * w2).sum()
        # atol: the key bias's gradient is 0 (a shift of every score of a row), its difference quotient noise
        assert_gradient(f, original.copy(), g, rng, atol=1e-7, what=f"{layer.name} weight {var.path}")


ATTENTION_CASES = [
    ("dot", dict()), ("dot-scale", dict(use_scale=True)), ("concat", dict(score_mode="concat")),
    ("concat-scale", dict(score_mode="concat", use_scale=True)), ("additive", None), ("additive-noscale", False),
]
SIZES = [(1, 1, 1, False), (3, 5, 17, True), (3, 17, 5, False), (1, 5, 5, True)]


def _make_attention(kind):
    if kind is None or kind is False:
        return layers.AdditiveAttention(use_scale=kind is None, dtype="float64")
    return layers.Attention(dtype="float64", **kind)


@pytest.mark.parametrize("name,kind", ATTENTION_CASES, ids=[c[0] for c in ATTENTION_CASES])
@pytest.mark.parametrize("batch,tq,tv,with_key", SIZES)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "masks+causal"])
def test_attention_forward_and_gradients(xp, rng, name, kind, batch, tq, tv, with_key, masked):
    layer = _make_attention(kind)
    dv = 3 if with_key else 4           # without a key the value is the key: its features meet the query's
    q, v, k = (rng.standard_normal((batch, tq, 4)), rng.standard_normal((batch, tv, dv)),
               rng.standard_normal((batch, tv, 4)))
    hosts = [q, v, k] if with_key else [q, v]
    q_mask = v_mask = None
    if masked:
        q_mask, v_mask = rng.random((batch, tq)) > 0.3, rng.random((batch, tv)) > 0.3
        v_mask[:, 0] = True
    xs = [xp.asarray(h) for h in hosts]
    masks = None if not masked else [xp.asarray(q_mask), xp.asarray(v_mask)]
    layer(xs, mask=masks)
    _randomise(layer, rng)

    def call(inputs):
        return layer(inputs, mask=masks, training=True, return_attention_scores=True, use_causal_mask=masked)
    out, p = call(xs)
    want_out, want_p = _expected_attention(layer, q, v, k if with_key else v, q_mask, v_mask, causal=masked)
    numpy.testing.assert_allclose(to_numpy(out), want_out, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(to_numpy(p), want_p, rtol=1e-10, atol=1e-12)
    assert layer.compute_output_shape([h.shape for h in hosts]) == (batch, tq, dv)
    _check_gradients(layer, call, xs, rng, xp)


MHA_SIZES = [(1, 1, 1, False), (3, 5, 17, True), (3, 17, 5, False)]


@pytest.mark.parametrize("options", [dict(), dict(value_dim=3, output_shape=(2, 3)), dict(use_bias=False)],
                         ids=["default", "value_dim+output_shape", "no-bias"])
@pytest.mark.parametrize("batch,tq,tv,with_key", MHA_SIZES)
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "masks+causal"])
def test_mha_forward_and_gradients(xp, rng, options, batch, tq, tv, with_key, masked):
    layer = layers.MultiHeadAttention(2, 3, dtype="float64", **options)
    q, v, k = (rng.standard_normal((batch, tq, 4)), rng.standard_normal((batch, tv, 5)),
               rng.standard_normal((batch, tv, 2)))
    key = k if with_key else v
    kwargs = {}
    mask = None
    if masked:
        attention = rng.random((batch, tq, tv)) > 0.2
        q_mask, v_mask = rng.random((batch, tq)) > 0.2, rng.random((batch, tv)) > 0.2
        kwargs = dict(attention_mask=xp.asarray(attention), query_mask=xp.asarray(q_mask),
                      value_mask=xp.asarray(v_mask), use_causal_mask=True)
        mask = attention & q_mask[:, :, None] & v_mask[:, None, :] & numpy.tril(numpy.ones((tq, tv), bool))[None]
    xs = [xp.asarray(q), xp.asarray(v)] + ([xp.asarray(k)] if with_key else [])
    layer(xs[0], xs[1], key=xs[2] if with_key else None)
    _randomise(layer, rng)

    def call(inputs):
        return layer(inputs[0], inputs[1], key=inputs[2] if with_key else None, training=True,
                     return_attention_scores=True, **kwargs)
    out, p = call(xs)
    want_out, want_p = _expected_mha(layer, q, v, key, mask)
    numpy.testing.assert_allclose(to_numpy(out), want_out, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(to_numpy(p), want_p, rtol=1e-10, atol=1e-12)
    assert out.shape == (batch, tq) + (options.get("output_shape") or (4,))
    _check_gradients(layer, call, xs, rng, xp)


def test_dropout_acts_in_training_only_and_repeats_under_a_seed(xp, rng):
    q = xp.asarray(rng.standard_normal((2, 5, 4)).astype("float32"))
    for make in (lambda: layers.Attention(dropout=0.5, seed=3),
                 lambda: layers.MultiHeadAttention(2, 4, dropout=0.5, seed=3, kernel_initializer="ones")):
        def run(layer, training):
            if isinstance(layer, layers.MultiHeadAttention):
                return layer(q, q, training=training, return_attention_scores=True)
            return layer([q, q], training=training, return_attention_scores=True)
        a, b = make(), make()
        if isinstance(a, layers.MultiHeadAttention):
            run(a, False)
            run(b, False)
            b.set_weights(a.get_weights())
        plain = to_numpy(run(a, False)[0])
        first, second = to_numpy(run(a, True)[0]), to_numpy(run(b, True)[0])
        numpy.testing.assert_array_equal(first, second)          # the same seed, the same draws
        assert not numpy.allclose(first, plain)
        numpy.testing.assert_array_equal(to_numpy(run(a, False)[0]), plain)


def keras_numpy_keep(seed, counter, shape, rate):
    """The scaled keep-mask Keras's NumPy backend's dropout draws for the seed pair (seed, counter)."""
    uniform = numpy.random.default_rng(numpy.array([seed, counter], numpy.uint32)).uniform(size=shape)
    return (uniform < 1 - rate) / (1 - rate)


@pytest.mark.parametrize("kind", ["Attention", "AdditiveAttention"])
def test_dropout_draws_from_the_seed_generator_keras_numpy_backend_s_masks(rng, kind):
    q, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    layer = getattr(layers, kind)(dropout=0.4, seed=5, dtype="float64")
    assert layer.seed_generator.state.numpy().tolist() == [5, 0] and layer.variables[-1] is layer.seed_generator.state
    layer([q, v])
    assert layer.seed_generator.state.numpy().tolist() == [5, 0]         # inference draws nothing
    for counter in (0, 1):
        out, weights = layer([q, v], training=True, return_attention_scores=True)
        _, p = _expected_attention(layer, q, v, v)
        dropped = p * keras_numpy_keep(5, counter, p.shape, 0.4)
        numpy.testing.assert_allclose(weights, dropped, rtol=1e-12)
        numpy.testing.assert_allclose(out, numpy.einsum("bts,bsd->btd", dropped, v), rtol=1e-10, atol=1e-12)
    assert layer.seed_generator.state.numpy().tolist() == [5, 2]
    assert not hasattr(getattr(layers, kind)(dropout=0.0), "seed_generator")


def test_mha_dropout_draws_from_its_dropout_sublayer_keras_numpy_backend_s_masks(rng):
    q, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    layer = layers.MultiHeadAttention(2, 3, dropout=0.25, seed=8, dtype="float64")
    assert layer.variables == []
    layer(q, v)
    generator = layer._dropout_layer.seed_generator
    assert [v.name for v in layer.variables][5:8] == ["bias", "seed_generator_state", "kernel"]
    out = layer(q, v, training=True)
    want, p = _expected_mha(layer, q, v, v, dropped=keras_numpy_keep(8, 0, (2, 2, 3, 5), 0.25))
    numpy.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    layer(q, v)
    assert generator.state.numpy().tolist() == [8, 1]
    plain = layers.MultiHeadAttention(2, 3)
    plain(q, v)
    assert plain._dropout_layer.rate == 0 and not plain._dropout_layer._seed_generators


def test_a_fully_masked_row(xp):
    """Attention (Keras's score - 1e9) spreads a row evenly; MultiHeadAttention (Softmax(mask)) gives zeros."""
    x = xp.asarray(numpy.arange(12, dtype="float32").reshape(1, 3, 4) / 10)
    p = to_numpy(layers.Attention()([x, x], mask=[None, xp.zeros((1, 3), bool)], return_attention_scores=True)[1])
    numpy.testing.assert_allclose(p, numpy.full((1, 3, 3), 1 / 3), rtol=1e-6)
    mha = layers.MultiHeadAttention(1, 2)
    _, p = mha(x, x, attention_mask=xp.zeros((1, 3, 3), bool), return_attention_scores=True)
    numpy.testing.assert_array_equal(to_numpy(p), numpy.zeros((1, 1, 3, 3)))


# ------------------------------------------------------------------ models
def test_functional_models_train_summarise_and_load(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # a wide terminal: no label wraps
    gpu_dl.backend.set_random_seed(0)
    q, v = layers.Input((5, 4), name="q"), layers.Input((7, 3), name="v")
    x = layers.MultiHeadAttention(2, 8, name="mha")(q, v)
    y = layers.Attention(use_scale=True, name="att")([x, layers.Dense(4, name="proj")(v)], use_causal_mask=False)
    z = layers.AdditiveAttention(name="add")([y, x])
    out = layers.Dense(2, name="out")(layers.GlobalAveragePooling1D()(z))
    model = gpu_dl.Model([q, v], out)
    assert x.shape == (None, 5, 4) and model.get_layer("mha").count_params() == 276
    model.summary()
    printed = capsys.readouterr().out
    assert "mha (MultiHeadAttention)" in printed and "276" in printed
    xs = [rng.standard_normal((16, 5, 4)).astype("float32"), rng.standard_normal((16, 7, 3)).astype("float32")]
    assert_trains_and_reloads(model, xs, rng.integers(0, 2, 16), tmp_path, load_model, every_weight_moves=True)


def test_functional_options_key_mask_causal_and_scores(tmp_path, rng):
    q, v, k = layers.Input((5, 4)), layers.Input((5, 3)), layers.Input((5, 2))
    m = layers.Input((5, 5), dtype="bool")
    y, scores = layers.MultiHeadAttention(2, 3, name="mha")(q, v, key=k, attention_mask=m, use_causal_mask=True,
                                                            return_attention_scores=True)
    a, weights = layers.Attention(name="att")([q, q], use_causal_mask=True, return_attention_scores=True)
    assert scores.shape == (None, 2, 5, 5) and weights.shape == (None, 5, 5)
    # outputs are named after their layers: the second output of each gets a layer (and a name) of its own
    scores = layers.Activation("linear", name="scores")(scores)
    weights = layers.Activation("linear", name="weights")(weights)
    model = gpu_dl.Model([q, v, k, m], [y, scores, a, weights])
    xs = [rng.standard_normal((2, 5, d)).astype("float32") for d in (4, 3, 2)] + [rng.random((2, 5, 5)) > 0.3]
    got = model.predict(xs, verbose=0)
    layer = model.get_layer("mha")
    want = layer(xs[0], xs[1], key=xs[2], attention_mask=xs[3], use_causal_mask=True, return_attention_scores=True)
    for g, w in zip(got[:2], want):
        numpy.testing.assert_allclose(g, to_numpy(w), rtol=1e-6)
    assert numpy.triu(got[3][0], 1).max() == 0
    model.save(tmp_path / "o.keras")
    for g, w in zip(load_model(tmp_path / "o.keras").predict(xs, verbose=0), got):
        numpy.testing.assert_array_equal(g, w)


def test_configs_round_trip():
    layer = layers.MultiHeadAttention(3, 4, value_dim=5, dropout=0.1, output_shape=7, name="m",
                                      kernel_regularizer="l2")
    again = layers.MultiHeadAttention.from_config(layer.get_config())
    assert (again.num_heads, again.key_dim, again.value_dim, again.output_shape) == (3, 4, 5, (7,))
    assert layers.Attention.from_config(layers.Attention(score_mode="concat").get_config()).score_mode == "concat"
    assert "score_mode" not in layers.AdditiveAttention().get_config()


# ------------------------------------------------------------------ errors
def test_bad_arguments_and_inputs_name_the_layer(xp):
    with pytest.raises(ValueError, match=r"Attention layer 'a'.*score_mode.*'bad'"):
        layers.Attention(score_mode="bad", name="a")
    for value in (0, -1, 2.0):
        with pytest.raises(ValueError, match=r"MultiHeadAttention layer 'm'.*num_heads"):
            layers.MultiHeadAttention(value, 4, name="m")
        with pytest.raises(ValueError, match=r"MultiHeadAttention layer 'm'.*key_dim"):
            layers.MultiHeadAttention(2, value, name="m")
    with pytest.raises(ValueError, match="attention_axes"):
        layers.MultiHeadAttention(2, 4, attention_axes=(1, 2))
    with pytest.raises(ValueError, match=r"Attention layer 'a'.*rank 3"):
        layers.Attention(name="a")([xp.ones((2, 3)), xp.ones((2, 3))])
    with pytest.raises(ValueError, match=r"Attention layer 'a'.*list of inputs"):
        layers.Attention(name="a")(xp.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"Attention layer 'a'.*length 2 or 3"):
        layers.Attention(name="a")([xp.ones((2, 3, 4))])
    with pytest.raises(ValueError, match=r"Attention layer 'a'.*same feature size"):
        layers.Attention(name="a")([xp.ones((2, 3, 4)), xp.ones((2, 3, 5))])
    added = layers.AdditiveAttention(name="d")
    added([xp.ones((2, 3, 4)), xp.ones((2, 3, 4))])
    with pytest.raises(ValueError, match=r"AdditiveAttention layer 'd'.*built for queries of 4 features"):
        added([xp.ones((2, 3, 5)), xp.ones((2, 3, 5))])
    mha = layers.MultiHeadAttention(2, 4, name="m")
    mha(xp.ones((2, 3, 4)), xp.ones((2, 5, 6)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer 'm'.*built for a key of 6 features"):
        mha(xp.ones((2, 3, 4)), xp.ones((2, 5, 7)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer 'm'.*rank 3"):
        mha(xp.ones((2, 3, 2, 4)), xp.ones((2, 5, 2, 6)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer 'm'.*value` and `key`"):
        mha(xp.ones((2, 3, 4)), xp.ones((2, 5, 6)), key=xp.ones((2, 4, 6)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention layer 'm'.*attention_mask must have shape"):
        mha(xp.ones((2, 3, 4)), xp.ones((2, 5, 6)), attention_mask=xp.ones((2, 5, 3), bool))


def test_mha_takes_keras_s_positional_order(xp, rng):
    """Keras 3's call order: query, value, key, query_mask, value_mask, key_mask, attention_mask, ..."""
    layer = layers.MultiHeadAttention(2, 3, dtype="float64")
    q, v = xp.asarray(rng.standard_normal((2, 4, 5))), xp.asarray(rng.standard_normal((2, 3, 5)))
    query_mask = xp.asarray(numpy.array([[True, True, False, True]] * 2))
    value_mask = xp.asarray(numpy.array([[True, False, True]] * 2))
    by_keyword = to_numpy(layer(q, v, None, query_mask=query_mask, value_mask=value_mask))
    by_position = to_numpy(layer(q, v, None, query_mask, value_mask))
    numpy.testing.assert_array_equal(by_position, by_keyword)
    assert not numpy.allclose(by_keyword, to_numpy(layer(q, v)))      # the value mask changed the result
