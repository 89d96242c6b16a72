"""GroupQueryAttention: forward against plain NumPy (the key/value heads repeated for their query heads),
backward against float64 finite differences for every input and weight, masks, the causal mask, returned
scores, dropout, a functional model that trains, summarises and reloads, and the errors. One body per backend."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import to_numpy
from gpu_dl.models import load_model
from gradcheck import assert_gradient
from toy_data import assert_trains_and_reloads


def _softmax_replace(s, keep=None):
    if keep is not None:
        s = numpy.where(keep, s, -1e9)
    e = numpy.exp(s - s.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    return p if keep is None else numpy.where(keep, p, 0.0)


def _expected(layer, q, v, k, mask=None, dropped=None):
    w = {var.path.split("/", 1)[1]: var.numpy() for var in layer.weights}

    def project(name, x):
        return numpy.einsum("btd,dnh->btnh", x, w[f"{name}/kernel"]) + w.get(f"{name}/bias", 0.0)
    repeats = layer.num_query_heads // layer.num_key_value_heads
    qh = project("query", q)
    kh = numpy.repeat(project("key", k), repeats, axis=2)
    vh = numpy.repeat(project("value", v), repeats, axis=2)
    scores = numpy.einsum("bquh,bkuh->buqk", qh / numpy.sqrt(layer.head_dim), kh)
    p = _softmax_replace(scores, None if mask is None else mask[:, None])
    heads = numpy.einsum("buqk,bkuh->bquh", p if dropped is None else p * dropped, vh)
    out = numpy.einsum("bquh,uhm->bqm", heads, w["attention_output/kernel"]) + w.get("attention_output/bias", 0.0)
    return out, p


HEADS = [(4, 2, 3), (3, 1, 2), (2, 2, 3), (6, 3, 1)]         # (num_query_heads, num_key_value_heads, head_dim)
SIZES = [(1, 1, 1, False), (3, 5, 17, True), (3, 17, 5, False)]


@pytest.mark.parametrize("heads", HEADS, ids=[f"{n}q{g}kv{h}d" for n, g, h in HEADS])
@pytest.mark.parametrize("batch,tq,tv,with_key", SIZES)
@pytest.mark.parametrize("masked,use_bias", [(False, True), (True, True), (True, False)],
                         ids=["nomask", "masks+causal", "masks+causal-nobias"])
def test_forward_and_gradients(xp, rng, heads, batch, tq, tv, with_key, masked, use_bias):
    n, g, h = heads
    layer = layers.GroupQueryAttention(h, n, g, use_bias=use_bias, dtype="float64")
    q, v, k = (rng.standard_normal((batch, tq, 4)), rng.standard_normal((batch, tv, 5)),
               rng.standard_normal((batch, tv, 2)))
    key = k if with_key else v
    kwargs, mask = {}, None
    if masked:
        attention = rng.random((batch, tq, tv)) > 0.2
        q_mask, v_mask = rng.random((batch, tq)) > 0.2, rng.random((batch, tv)) > 0.2
        kwargs = dict(attention_mask=xp.asarray(attention), query_mask=xp.asarray(q_mask),
                      value_mask=xp.asarray(v_mask), use_causal_mask=True)
        mask = attention & q_mask[:, :, None] & v_mask[:, None, :] & numpy.tril(numpy.ones((tq, tv), bool))[None]
    xs = [xp.asarray(q), xp.asarray(v)] + ([xp.asarray(k)] if with_key else [])
    layer(xs[0], xs[1], key=xs[2] if with_key else None)
    assert [tuple(w.shape) for w in layer.weights] == [
        (4, n, h), (n, h), (key.shape[2], g, h), (g, h), (5, g, h), (g, h), (n, h, 4), (4,)][::1 if use_bias else 2]
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 + 0.3 for w in layer.weights])

    def call(inputs):
        return layer(inputs[0], inputs[1], key=inputs[2] if with_key else None, training=True,
                     return_attention_scores=True, **kwargs)
    out, p = call(xs)
    want_out, want_p = _expected(layer, q, v, key, mask)
    numpy.testing.assert_allclose(to_numpy(out), want_out, rtol=1e-10, atol=1e-12)
    numpy.testing.assert_allclose(to_numpy(p), want_p, rtol=1e-10, atol=1e-12)
    assert out.shape == (batch, tq, 4) and p.shape == (batch, n, tq, tv)

    w1, w2 = xp.asarray(rng.standard_normal(out.shape)), xp.asarray(rng.standard_normal(p.shape))
    grads = layer.backward([w1, w2])
    assert len(grads) == len(xs)

    def f_of(i):
        def f(x):
            o, s = call(xs[:i] + [x] + xs[i + 1:])
            return (o * w1).sum() + (s * w2).sum()
        return f
    for i, grad in enumerate(grads):
        assert_gradient(f_of(i), xs[i], grad, rng, what=f"input {i}")
    for var in layer.trainable_weights:
        grad, original = var.grad, var.value.copy()

        def f(value, var=var, original=original):
            var.value[...] = value
            o, s = call(xs)
            var.value[...] = original
            return (o * w1).sum() + (s * w2).sum()
        # atol: the key bias's gradient is 0 (a shift of every score of a row), its difference quotient noise
        assert_gradient(f, original.copy(), grad, rng, atol=1e-7, what=f"weight {var.path}")


def test_one_key_value_head_per_query_head_is_multi_head_attention(xp, rng):
    q, v = xp.asarray(rng.standard_normal((2, 3, 4))), xp.asarray(rng.standard_normal((2, 5, 4)))
    gqa, mha = layers.GroupQueryAttention(3, 2, 2, dtype="float64"), layers.MultiHeadAttention(2, 3, dtype="float64")
    gqa(q, v)
    mha(q, v)
    mha.set_weights(gqa.get_weights())
    numpy.testing.assert_allclose(to_numpy(gqa(q, v, use_causal_mask=True)), to_numpy(mha(q, v, use_causal_mask=True)),
                                  rtol=1e-12)


def test_dropout_acts_in_training_only_and_repeats_under_a_seed(xp, rng):
    q = xp.asarray(rng.standard_normal((2, 5, 4)).astype("float32"))
    a, b = (layers.GroupQueryAttention(2, 4, 2, dropout=0.5, seed=3) for _ in range(2))
    a(q, q)
    b(q, q)
    b.set_weights(a.get_weights())
    plain = to_numpy(a(q, q))
    first, second = to_numpy(a(q, q, training=True)), to_numpy(b(q, q, training=True))
    numpy.testing.assert_array_equal(first, second)
    assert not numpy.allclose(first, plain)
    numpy.testing.assert_array_equal(to_numpy(a(q, q)), plain)


def test_dropout_draws_keras_numpy_backend_s_masks_from_its_dropout_sublayer(rng):
    q, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 5, 4))
    layer = layers.GroupQueryAttention(3, 4, 2, dropout=0.3, seed=6, dtype="float64")
    layer(q, v)
    assert layer.variables[6] is layer._dropout_layer.seed_generator.state
    uniform = numpy.random.default_rng(numpy.array([6, 0], numpy.uint32)).uniform(size=(2, 4, 3, 5))   # (B, N, T, S)
    want, _ = _expected(layer, q, v, v, dropped=(uniform < 0.7) / 0.7)
    numpy.testing.assert_allclose(layer(q, v, training=True), want, rtol=1e-10, atol=1e-12)
    assert layer._dropout_layer.seed_generator.state.numpy().tolist() == [6, 1]


def test_functional_models_train_summarise_and_load(tmp_path, rng, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # a wide terminal: no label wraps
    gpu_dl.backend.set_random_seed(0)
    q, v = layers.Input((5, 6), name="q"), layers.Input((7, 6), name="v")
    x = layers.GroupQueryAttention(2, 4, 2, name="gqa")(q, v, use_causal_mask=True)
    y, scores = layers.GroupQueryAttention(3, 2, 1, name="self")(x, x, return_attention_scores=True)
    assert x.shape == (None, 5, 6) and scores.shape == (None, 2, 5, 5)
    out = layers.Dense(2, activation="softmax", name="out")(layers.GlobalAveragePooling1D()(y))
    model = gpu_dl.Model([q, v], out)
    # query 6*4*2 + 4*2, key and value 2 * (6*2*2 + 2*2), output 4*2*6 + 6
    assert model.get_layer("gqa").count_params() == 56 + 56 + 54
    model.summary()
    # the class's own name, as Keras's summary shows it (the layer is exported under both names)
    assert "gqa (GroupedQueryAttention)" in capsys.readouterr().out
    assert layers.GroupQueryAttention is layers.GroupedQueryAttention
    xs = [rng.standard_normal((16, 5, 6)).astype("float32"), rng.standard_normal((16, 7, 6)).astype("float32")]
    assert_trains_and_reloads(model, xs, rng.integers(0, 2, 16), tmp_path, load_model, every_weight_moves=True)
    again = layers.GroupQueryAttention.from_config(model.get_layer("gqa").get_config())
    assert (again.head_dim, again.num_query_heads, again.num_key_value_heads) == (2, 4, 2)


def test_bad_arguments_and_inputs_name_the_layer(xp):
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*divisible"):
        layers.GroupQueryAttention(2, 3, 2, name="g")
    for value in (0, -1, 2.0):
        with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*head_dim"):
            layers.GroupQueryAttention(value, 2, 1, name="g")
        with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*num_key_value_heads"):
            layers.GroupQueryAttention(2, 2, value, name="g")
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*flash_attention=True"):
        layers.GroupQueryAttention(2, 2, 1, flash_attention=True, name="g")
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*sliding_window"):
        layers.GroupQueryAttention(2, 2, 1, sliding_window=3, name="g")
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*last dimension of `query_shape`"):
        layers.GroupQueryAttention(2, 2, 1, name="g")(layers.Input((3, 4)), layers.Input((5, 6)))
    gqa = layers.GroupQueryAttention(2, 4, 2, name="g")
    gqa(xp.ones((2, 3, 4)), xp.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*built for a key of 4 features"):
        gqa(xp.ones((2, 3, 4)), xp.ones((2, 5, 7)))
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*built for a query of 4 features"):
        gqa(xp.ones((2, 3, 5)), xp.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*rank 3"):
        gqa(xp.ones((2, 3, 2, 4)), xp.ones((2, 5, 2, 4)))
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*value` and `key`"):
        gqa(xp.ones((2, 3, 4)), xp.ones((2, 5, 4)), key=xp.ones((2, 4, 4)))
    with pytest.raises(ValueError, match=r"GroupedQueryAttention layer 'g'.*attention_mask must have shape"):
        gqa(xp.ones((2, 3, 4)), xp.ones((2, 5, 4)), attention_mask=xp.ones((2, 5, 3), bool))
