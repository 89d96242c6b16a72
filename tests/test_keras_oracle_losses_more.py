"""The focal, generalized, overlap and Circle losses against Keras 3 itself (where Keras is installed):
the same values for random inputs and configurations, the same training steps of small models compiled
with each loss, and configs and .keras files that load both ways."""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend, losses  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


def _binary(rng, shape, logits):
    t = rng.integers(0, 2, shape).astype("float32")
    return t, (rng.standard_normal(shape) * 3 if logits else rng.uniform(0, 1, shape)).astype("float32")


def _onehot(rng, shape, logits, axis=-1):
    classes = shape[axis]
    rest = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    t = numpy.moveaxis(numpy.eye(classes, dtype="float32")[rng.integers(0, classes, rest)], -1, axis)
    return t, (rng.standard_normal(shape) * 3 if logits else rng.uniform(0, 1, shape)).astype("float32")


def _overlap(rng, shape, logits):
    return rng.integers(0, 2, shape).astype("float32"), rng.uniform(0, 1, shape).astype("float32")


CASES = [
    ("BinaryFocalCrossentropy", {}, _binary),
    ("BinaryFocalCrossentropy", {"from_logits": True}, _binary),
    ("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.6, "gamma": 3.0}, _binary),
    ("BinaryFocalCrossentropy", {"from_logits": True, "label_smoothing": 0.2, "gamma": 0.5}, _binary),
    ("BinaryFocalCrossentropy", {"axis": 1, "reduction": "sum"}, _binary),
    ("CategoricalFocalCrossentropy", {}, _onehot),
    ("CategoricalFocalCrossentropy", {"from_logits": True}, _onehot),
    ("CategoricalFocalCrossentropy", {"alpha": [0.1, 0.3, 0.2, 0.4, 1.0], "gamma": 1.0}, _onehot),
    ("CategoricalFocalCrossentropy", {"label_smoothing": 0.1, "from_logits": True, "reduction": None}, _onehot),
    ("CategoricalFocalCrossentropy", {"gamma": 0.0, "alpha": 1.0, "reduction": "mean_with_sample_weight"}, _onehot),
    ("Dice", {}, _overlap),
    ("Dice", {"axis": (1, 2)}, _overlap),
    ("Dice", {"axis": -1, "reduction": "sum"}, _overlap),
    ("Tversky", {}, _overlap),
    ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": (1, 2)}, _overlap),
    ("Tversky", {"alpha": 0.9, "beta": 0.2, "axis": 2, "reduction": None}, _overlap),
]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("name,kwargs,make", CASES, ids=[f"{c[0]}{c[1] or ''}" for c in CASES])
def test_values_match_keras(name, kwargs, make, seed):
    rng = numpy.random.default_rng(seed)
    shape = [(6, 4, 5), (3, 7, 5), (1, 2, 5), (9, 1, 5)][seed]
    t, p = make(rng, shape, kwargs.get("from_logits", False))
    if seed == 3:
        p[0, 0, 0] = 0.0 if not kwargs.get("from_logits") else 40.0   # at a clip bound
    ours, theirs = getattr(losses, name)(**kwargs), getattr(keras.losses, name)(**kwargs)
    sw = rng.uniform(0, 2, shape[:2]).astype("float32") if "axis" not in kwargs or kwargs["axis"] == -1 else None
    for weights in (None, sw):
        expected = keras.ops.convert_to_numpy(theirs(t, p, sample_weight=weights))
        numpy.testing.assert_allclose(numpy.asarray(ours(t, p, sample_weight=weights)), expected,
                                      rtol=2e-5, atol=2e-6)
    fn = getattr(losses, losses.FUNCTIONS[type(ours)].__name__)
    fn_kwargs = {k: v for k, v in kwargs.items() if k != "reduction"}
    numpy.testing.assert_allclose(fn(t, p, **fn_kwargs),
                                  keras.ops.convert_to_numpy(getattr(keras.losses, fn.__name__)(t, p, **fn_kwargs)),
                                  rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kwargs", [{}, {"gamma": 16.0, "margin": 0.25}, {"remove_diagonal": False, "gamma": 2.0},
                                    {"reduction": "sum"}, {"reduction": None}], ids=str)
def test_circle_matches_keras(kwargs, seed):
    rng = numpy.random.default_rng(seed)
    n = [5, 8, 13, 2][seed]
    labels = rng.integers(0, 3, n)
    labels[0] = 9            # alone in its class: loss 0, which Keras masks out of the mean
    e = rng.standard_normal((n, 4)).astype("float32")
    e /= numpy.linalg.norm(e, axis=1, keepdims=True)
    sw = rng.uniform(0.5, 2, n).astype("float32")
    for weights in (None, sw):
        expected = keras.ops.convert_to_numpy(keras.losses.Circle(**kwargs)(labels, e, sample_weight=weights))
        got = numpy.asarray(losses.Circle(**kwargs)(labels, e, sample_weight=weights))
        numpy.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("q", [0.2, 0.5, 0.95])
def test_generalized_cross_entropy_matches_keras(q, seed):
    rng = numpy.random.default_rng(seed)
    n, c = [(6, 3), (1, 4), (11, 2), (5, 7)][seed]
    labels = rng.integers(0, c, n)
    p = rng.dirichlet(numpy.ones(c), n).astype("float32")
    sw = rng.uniform(0, 2, n).astype("float32")
    for weights in (None, sw):
        expected = keras.ops.convert_to_numpy(
            keras.losses.CategoricalGeneralizedCrossEntropy(q=q)(labels, p, sample_weight=weights))
        got = numpy.asarray(losses.CategoricalGeneralizedCrossEntropy(q=q)(labels, p, sample_weight=weights))
        numpy.testing.assert_allclose(got, expected, rtol=2e-5, atol=2e-6)


def test_metric_functions_match_keras(rng):
    t, p = _onehot(rng, (7, 4), False)
    for name in ("binary_focal_crossentropy", "categorical_focal_crossentropy", "mean_squared_error", "huber",
                 "log_cosh", "kl_divergence", "poisson", "categorical_hinge", "binary_crossentropy"):
        numpy.testing.assert_allclose(getattr(gpu_dl.metrics, name)(t, p),
                                      keras.ops.convert_to_numpy(getattr(keras.metrics, name)(t, p)),
                                      rtol=2e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------ training steps
def _dense(lib, units, activation, inputs=6):
    return lib.Sequential([lib.Input((inputs,)), lib.layers.Dense(5, activation="tanh"),
                           lib.layers.Dense(units, activation=activation)])


def _conv(lib):
    L = lib.layers
    return lib.Sequential([lib.Input((5, 5, 2)), L.Conv2D(3, 3, padding="same", activation="tanh"),
                           L.Conv2D(1, 1, activation="sigmoid")])


def _embed(lib):
    return lib.Sequential([lib.Input((6,)), lib.layers.Dense(4), lib.layers.UnitNormalization()])


def _onehot_targets(classes):
    return lambda rng, n: numpy.eye(classes, dtype="float32")[rng.integers(0, classes, n)]


def _binary_targets(shape):
    return lambda rng, n: rng.integers(0, 2, (n,) + shape).astype("float32")


TRAINING = [
    ("BinaryFocalCrossentropy", {}, lambda lib: _dense(lib, 3, "sigmoid"), _binary_targets((3,))),
    ("BinaryFocalCrossentropy", {"from_logits": True, "apply_class_balancing": True, "label_smoothing": 0.1},
     lambda lib: _dense(lib, 3, None), _binary_targets((3,))),
    ("CategoricalFocalCrossentropy", {}, lambda lib: _dense(lib, 4, "softmax"), _onehot_targets(4)),
    ("CategoricalFocalCrossentropy", {"from_logits": True, "alpha": [0.2, 0.4, 0.6, 0.8], "gamma": 1.0},
     lambda lib: _dense(lib, 4, None), _onehot_targets(4)),
    ("CategoricalGeneralizedCrossEntropy", {"q": 0.7}, lambda lib: _dense(lib, 4, "softmax"),
     lambda rng, n: rng.integers(0, 4, n)),
    ("Dice", {}, _conv, _binary_targets((5, 5, 1))),
    ("Dice", {"axis": (1, 2, 3)}, _conv, _binary_targets((5, 5, 1))),
    ("Tversky", {"alpha": 0.3, "beta": 0.7, "axis": (1, 2)}, _conv, _binary_targets((5, 5, 1))),
    ("Circle", {"gamma": 8.0}, _embed, lambda rng, n: rng.integers(0, 3, n)),
]


@pytest.mark.parametrize("name,kwargs,model,targets", TRAINING, ids=[f"{c[0]}{c[1] or ''}" for c in TRAINING])
def test_training_steps_match_keras(rng, name, kwargs, model, targets):
    backend.set_random_seed(2)
    ours, theirs = model(gpu_dl), model(keras)
    sample_shape = tuple(ours.input_shape[1:])
    assert_training_steps_match(keras, ours, theirs, rng, sample_shape, classes=None, batch=8, steps=4,
                                loss=getattr(losses, name)(**kwargs),
                                keras_loss=getattr(keras.losses, name)(**kwargs), targets=targets)


# ------------------------------------------------------------ configs and files
CONFIGS = [("BinaryFocalCrossentropy", {"apply_class_balancing": True, "alpha": 0.4, "gamma": 1.0,
                                        "label_smoothing": 0.1, "from_logits": True}),
           ("CategoricalFocalCrossentropy", {"alpha": [0.5, 0.25, 0.25], "gamma": 3.0}),
           ("Dice", {"axis": (1, 2)}), ("Tversky", {"alpha": 0.2, "beta": 0.8, "reduction": "sum"}),
           ("Circle", {"gamma": 32.0, "margin": 0.3, "remove_diagonal": False}),
           ("CategoricalGeneralizedCrossEntropy", {"q": 0.3})]


@pytest.mark.parametrize("name,kwargs", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_configs_load_both_ways(name, kwargs):
    theirs = getattr(keras.losses, name)(**kwargs)
    ours = losses.deserialize(keras.losses.serialize(theirs))
    assert type(ours) is getattr(losses, name)
    assert _same(ours.get_config(), theirs.get_config())
    # Through Keras's generic deserializer: Keras 3.15's keras.losses.deserialize does not list
    # CategoricalGeneralizedCrossEntropy (and returns its name), the module path in the config finds it.
    back = keras.saving.deserialize_keras_object(losses.serialize(getattr(losses, name)(**kwargs)))
    assert type(back) is type(theirs)
    assert _same(back.get_config(), theirs.get_config())


def _same(a, b):
    def norm(v):
        return list(v) if isinstance(v, (tuple, list)) else v
    return {k: norm(v) for k, v in a.items()} == {k: norm(v) for k, v in b.items()}


@pytest.mark.parametrize("loss", ["binary_focal_crossentropy", "dice", "tversky",
                                  {"class_name": "BinaryFocalCrossentropy", "kwargs": {"gamma": 3.0, "alpha": 0.3,
                                                                                      "apply_class_balancing": True}},
                                  {"class_name": "Tversky", "kwargs": {"alpha": 0.7, "beta": 0.3}}],
                         ids=["bfce", "dice", "tversky", "BFCE", "Tversky"])
def test_keras_files_load_both_ways(tmp_path, rng, loss):
    def make(lib):
        if isinstance(loss, str):
            return loss
        return getattr(lib.losses, loss["class_name"])(**loss["kwargs"])

    x = rng.standard_normal((8, 6)).astype("float32")
    y = rng.integers(0, 2, (8, 3)).astype("float32")
    backend.set_random_seed(1)
    ours = _dense(gpu_dl, 3, "sigmoid")
    ours.compile(optimizer="adam", loss=make(gpu_dl))
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert theirs.evaluate(x, y, verbose=0) == pytest.approx(ours.evaluate(x, y, verbose=0), rel=1e-5, abs=1e-6)

    theirs = _dense(keras, 3, "sigmoid")
    theirs.compile(optimizer="adam", loss=make(keras))
    theirs.fit(x, y, epochs=1, batch_size=4, verbose=0)
    theirs.save(tmp_path / "k.keras")
    loaded = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert loaded.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5, abs=1e-6)
    if not isinstance(loss, str):
        assert type(loaded.loss) is getattr(losses, loss["class_name"])
        assert _same({k: v for k, v in loaded.loss.get_config().items() if k in loss["kwargs"]}, loss["kwargs"])


@pytest.mark.parametrize("name", ["IdentityInitializer", "OrthogonalInitializer"])
def test_initializer_aliases_load_keras_configs(name):
    inner = {"gain": 0.5} if name.startswith("Identity") else {"gain": 0.5, "seed": None}
    config = {"module": "keras.initializers", "class_name": name, "config": inner, "registered_name": None}
    theirs = keras.initializers.deserialize(config)
    ours = gpu_dl.initializers.deserialize(config)
    assert type(ours).__name__ == type(theirs).__name__ and ours.gain == theirs.gain == 0.5
