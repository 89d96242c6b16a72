"""Normalization (Keras's preprocessing layer): adapt() against NumPy's mean and population variance, the output
against (x - mean) / max(sqrt(variance), 1e-7), the gradient against float64 finite differences, given statistics,
batched data, weights, files, a tabular model, and bad input. Against Keras itself:
tests/test_keras_oracle_normalization_preprocessing.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.backend import array_module, to_numpy
from gradcheck import assert_gradient


def formula(x, mean, variance, invert=False):
    scale = numpy.maximum(numpy.sqrt(variance), 1e-7)
    return mean + x * scale if invert else (x - mean) / scale


@pytest.mark.parametrize("shape,axis,reduce", [((17, 3), -1, (0,)), ((1, 1), -1, (0,)), ((5, 4, 3), -1, (0, 1)),
                                               ((5, 4, 3), 1, (0, 2)), ((5, 4, 3), (1, 2), (0,)),
                                               ((6, 2, 3), None, (0, 1, 2)), ((6, 2, 3), (-2,), (0, 2))])
def test_adapt_takes_numpy_s_mean_and_population_variance_over_the_other_axes(xp, rng, shape, axis, reduce):
    data = rng.standard_normal(shape) * 3 + 2
    layer = layers.Normalization(axis=axis, dtype="float64")
    layer.adapt(xp.asarray(data))
    mean, variance = data.mean(axis=reduce), data.var(axis=reduce)
    got_mean, got_variance, count = layer.get_weights()
    numpy.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    numpy.testing.assert_allclose(got_variance, variance, rtol=1e-12)
    assert got_mean.shape == mean.shape and count.shape == () and count.dtype == numpy.int32 and count == 0
    keep = [d for d in range(len(shape)) if d not in reduce]
    broadcast = [shape[d] if d in keep else 1 for d in range(len(shape))]
    x = rng.standard_normal(shape)
    expected = formula(x, mean.reshape(broadcast), variance.reshape(broadcast))
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected, rtol=1e-12)


@pytest.mark.parametrize("invert", [False, True])
def test_backward_matches_finite_differences(xp, rng, invert):
    layer = layers.Normalization(invert=invert, dtype="float64")
    layer.adapt(xp.asarray(rng.standard_normal((20, 3, 5)) * [1, 4, 0.5, 2, 3]))
    x = xp.asarray(rng.standard_normal((3, 3, 5)))
    w = xp.asarray(rng.standard_normal((3, 3, 5)))
    layer(x, training=True)
    dx = layer.backward(w)
    assert_gradient(lambda v: (layer(v, training=True) * w).sum(), x, dx, rng, what=f"Normalization(invert={invert})")


def test_invert_undoes_the_normalization(xp, rng):
    data = rng.standard_normal((40, 4)) * [1, 10, 0.1, 3] + [0, -5, 2, 1]
    forward, backward = layers.Normalization(dtype="float64"), layers.Normalization(invert=True, dtype="float64")
    forward.adapt(xp.asarray(data))
    backward.adapt(xp.asarray(data))
    numpy.testing.assert_allclose(to_numpy(backward(forward(xp.asarray(data)))), data, rtol=1e-12, atol=1e-12)


def test_a_constant_feature_divides_by_the_epsilon(xp):
    data = numpy.array([[1.0, 5.0], [3.0, 5.0]])
    layer = layers.Normalization(dtype="float64")
    layer.adapt(xp.asarray(data))
    y = to_numpy(layer(xp.asarray([[2.0, 5.0], [2.0, 5.0 + 1e-9]])))
    numpy.testing.assert_allclose(y, [[0.0, 0.0], [0.0, 1e-9 / 1e-7]], atol=1e-12)


def test_float32_adapt_rounds_the_statistics_as_keras_stores_them(xp, rng):
    data = (rng.standard_normal((50, 3)) * 3 + 1).astype("float32")
    layer = layers.Normalization()
    layer.adapt(data)            # NumPy's mean and var in float32, as Keras takes them for a NumPy array
    mean, variance, _ = layer.get_weights()
    numpy.testing.assert_array_equal(mean, numpy.mean(data, axis=(0,)).astype("float32"))
    numpy.testing.assert_array_equal(variance, numpy.var(data, axis=(0,)).astype("float32"))
    assert layer(xp.asarray(data)).dtype == numpy.float32


# ------------------------------------------------------------------ given statistics
@pytest.mark.parametrize("axis,mean,variance,shape", [
    (-1, 3.0, 2.0, (4, 3)),
    (-1, [1.0, 2.0, 3.0], [1.0, 4.0, 9.0], (4, 3)),
    ((1, 2), [1.0, -1.0], [4.0, 0.25], (3, 5, 2)),           # one axis given: it is the last kept axis
    ((1, 2), [[0.0, 1.0]] * 5, [[1.0, 2.0]] * 5, (3, 5, 2)),
    (None, 1.5, 0.0, (2, 3)),
])
def test_given_statistics_broadcast_as_keras_broadcasts_them(xp, rng, axis, mean, variance, shape):
    layer = layers.Normalization(axis=axis, mean=mean, variance=variance, dtype="float64")
    x = rng.standard_normal(shape)
    keep = sorted(a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis or ()))
    expanded = [1] * len(shape)
    for i in range(1, numpy.ndim(mean) + 1):
        expanded[keep[-i]] = numpy.shape(mean)[-i]
    expected = formula(x, numpy.reshape(mean, expanded), numpy.reshape(variance, expanded))
    numpy.testing.assert_allclose(to_numpy(layer(xp.asarray(x))), expected, rtol=1e-12)
    assert layer.weights == []
    config = layer.get_config()
    assert config["mean"] == numpy.asarray(mean).tolist() and config["variance"] == numpy.asarray(variance).tolist()
    assert layers.Normalization.from_config(config).get_config() == config


def test_given_statistics_that_do_not_broadcast_are_an_error(xp):
    layer = layers.Normalization(mean=[1.0, 2.0], variance=[1.0, 1.0], name="norm")
    with pytest.raises(ValueError, match=r"Normalization layer 'norm': `mean` of shape \(2,\) does not broadcast to "
                                         r"the sizes \(3,\)"):
        layer(xp.ones((2, 3)))
    with pytest.raises(ValueError, match="was given its mean and variance; adapt\\(\\) would replace them"):
        layers.Normalization(mean=0.0, variance=1.0, name="norm").adapt(numpy.ones((3, 2)))


# ------------------------------------------------------------------ batched data
def test_adapt_merges_batches_as_keras_does(xp, rng):
    data = rng.standard_normal((37, 4, 3)) * [1, 2, 3] + [0, 5, -1]
    labels = rng.standard_normal(37)
    whole = layers.Normalization(dtype="float64")
    whole.adapt(xp.asarray(data))
    cuts = [0, 5, 6, 20, 37]
    pieces = [data[a:b] for a, b in zip(cuts, cuts[1:])]

    def generator():
        for a, b in zip(cuts, cuts[1:]):
            yield xp.asarray(data[a:b]), labels[a:b]
    for source in (pieces, generator(), [(p, None) for p in pieces]):
        batched = layers.Normalization(dtype="float64")
        batched.adapt(source)
        for a, b in zip(batched.get_weights(), whole.get_weights()):
            numpy.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_a_bad_batch_changes_nothing(xp, rng):
    layer = layers.Normalization(name="norm")
    good = rng.standard_normal((4, 3)).astype("float32")
    with pytest.raises(ValueError, match=r"'norm': adapt\(\) got batches of incompatible shapes: batch 0 \(4, 3\), "
                                         r"batch 2 \(4, 2\)"):
        layer.adapt([good, good, good[:, :2]])
    assert not layer.built and layer.weights == []
    layer.adapt(good)
    before = layer.get_weights()
    with pytest.raises(ValueError, match=r"'norm' was built for inputs of shape \(4, 3\).*batch 1 has shape \(2, 5\)"):
        layer.adapt(iter([good, numpy.ones((2, 5))]))
    with pytest.raises(TypeError, match=r"'norm': adapt\(\) takes arrays; batch 0 is a list"):
        layer.adapt([[1.0, 2.0, 3.0]])
    with pytest.raises(ValueError, match="empty iterable"):
        layer.adapt([])
    with pytest.raises(ValueError, match=r"the data of shape \(0, 3\) holds no values"):
        layer.adapt(numpy.ones((0, 3)))
    with pytest.raises(TypeError, match="takes real numbers; the data holds"):
        layer.adapt(numpy.array([["a", "b", "c"]]))
    with pytest.raises(TypeError, match=r"adapt\(\) takes a NumPy or CuPy array, or an iterable of batches"):
        layer.adapt({"x": good})
    for a, b in zip(before, layer.get_weights()):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ weights, shapes, masks
def test_weights_are_keras_s_non_trainable_mean_variance_and_count(xp, rng):
    layer = layers.Normalization(axis=(1, 2), name="norm")
    layer.adapt(rng.standard_normal((6, 2, 3)))
    assert [(w.path, w.shape, numpy.dtype(w.dtype).name) for w in layer.weights] == [
        ("norm/mean", (2, 3), "float32"), ("norm/variance", (2, 3), "float32"), ("norm/count", (), "int32")]
    assert layer.trainable_weights == [] and len(layer.non_trainable_weights) == 3
    assert layer.count_params() == 13
    mean, variance, count = numpy.ones((2, 3)), numpy.full((2, 3), 4.0), numpy.array(7)
    layer.set_weights([mean, variance, count])
    numpy.testing.assert_allclose(to_numpy(layer(xp.full((1, 2, 3), 5.0))), numpy.full((1, 2, 3), 2.0))
    assert layer.get_weights()[2].dtype == numpy.int32


def test_axis_none_keeps_scalar_statistics(xp, rng):
    layer = layers.Normalization(axis=None)
    layer.adapt(rng.standard_normal((5, 3)))
    assert [w.shape for w in layer.weights] == [(), (), ()]


def test_built_shapes_and_inputs_that_do_not_fit(xp):
    layer = layers.Normalization(name="norm")
    layer.adapt(numpy.ones((10, 3)))
    assert layer(xp.ones((2, 3))).shape == (2, 3)     # any batch size
    with pytest.raises(ValueError, match=r"'norm' was built for inputs of shape \(10, 3\).*the input has shape "
                                         r"\(2, 4\)"):
        layer(xp.ones((2, 4)))
    with pytest.raises(ValueError, match="the input has shape"):
        layer(xp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"'norm': all `axis` values to be kept must have a known size"):
        layers.Normalization(axis=1, name="norm").build((None, None, 3))
    with pytest.raises(ValueError, match=r"'norm': all `axis` values must be in the range \[-ndim, ndim\)"):
        layers.Normalization(axis=2, name="norm")(xp.ones((2, 3)))
    with pytest.raises(ValueError, match="names one axis twice"):
        layers.Normalization(axis=(1, -1), name="norm")(xp.ones((2, 3)))


def test_passes_masks_on(xp, rng):
    x = rng.standard_normal((2, 4, 3))
    x[0, 2:] = 0
    norm = layers.Normalization()
    norm.adapt(x)
    model = gpu_dl.Sequential([layers.Input((4, 3)), layers.Masking(), norm])
    model(xp.asarray(x))
    numpy.testing.assert_array_equal(to_numpy(model.output_mask), [[True, True, False, False], [True] * 4])


@pytest.mark.parametrize("kwargs,error,match", [
    ({"axis": "last"}, TypeError, "axis must be an integer, a tuple of integers or None"),
    ({"axis": 1.0}, TypeError, "axis must be"),
    ({"mean": 1.0}, ValueError, "both `mean` and `variance` must be set"),
    ({"variance": 1.0}, ValueError, "both `mean` and `variance` must be set"),
    ({"mean": [1.0, 2.0], "variance": [1.0]}, ValueError, "must have the same shape"),
    ({"mean": [[1.0]], "variance": [[1.0]]}, ValueError, r"the rank of `mean` must be at most the number of axes"),
    ({"mean": 0.0, "variance": -1.0}, ValueError, "`variance` must be >= 0"),
    ({"mean": "zero", "variance": 1.0}, ValueError, "`mean` must be a finite number"),
    ({"mean": float("nan"), "variance": 1.0}, ValueError, "`mean` must be a finite number"),
])
def test_bad_arguments_name_the_layer(kwargs, error, match):
    with pytest.raises(error, match=f"Normalization layer 'norm'.*{match}"):
        layers.Normalization(name="norm", **kwargs)


# ------------------------------------------------------------------ in a model
def test_a_tabular_model_adapts_trains_saves_and_loads(xp, rng, tmp_path):
    """norm.adapt(x_train); Sequential([norm, Dense, ...]): features of very different scales train."""
    x = rng.standard_normal((96, 4)) * [1000, 0.01, 5, 1] + [5e4, 0, -20, 3]
    y = ((x[:, 0] - 5e4) / 1000 + (x[:, 1] / 0.01) > 0).astype("float32")
    norm = layers.Normalization()
    norm.adapt(x)
    gpu_dl.utils.set_random_seed(6)
    model = gpu_dl.Sequential([norm, layers.Dense(8, activation="relu"), layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.02), loss="binary_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=15, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0)[1] > 0.9
    statistics = norm.get_weights()
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert all(numpy.array_equal(a, b) for a, b in zip(statistics, norm.get_weights()))    # not trained
    lines = []
    model.summary(print_fn=lambda text: lines.extend(text.splitlines()))
    assert any("Non-trainable params: 9" in line for line in lines)
    model.save(tmp_path / "m.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "m.keras")
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert isinstance(loaded.layers[0], layers.Normalization) and array_module(loaded.layers[0].count.value) is xp
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = gpu_dl.Sequential([layers.Input((4,)), layers.Normalization(), layers.Dense(8, activation="relu"),
                               layers.Dense(1, activation="sigmoid")])
    fresh.load_weights(tmp_path / "m.weights.h5")
    numpy.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


def test_given_statistics_load_from_a_file(xp, rng, tmp_path):
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 1.0, 0.25],
                                                                         invert=True), layers.Dense(2)])
    model.save(tmp_path / "m.keras")
    x = rng.standard_normal((5, 3)).astype("float32")
    numpy.testing.assert_array_equal(gpu_dl.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                                     model.predict(x, verbose=0))
