"""The focal, generalized, overlap and Circle losses: values against written-out NumPy formulas,
gradients (plain, weighted, through Keras's reductions) against float64 finite differences, argument
checks, the registry, the model's choice not to fuse a softmax into them, and the metric functions and
initializer aliases Keras exports."""
import numpy
import pytest

import gpu_dl
from gpu_dl import initializers, layers, losses, metrics
from gpu_dl.backend import to_numpy
from gradcheck import assert_gradient

EPS = 1e-7


# ------------------------------------------------- written-out expectations
def sigmoid(z):
    return 1 / (1 + numpy.exp(-z))


def softmax(z, axis=-1):
    e = numpy.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def expected_bfce(t, p, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                  axis=-1):
    t = t * (1 - label_smoothing) + 0.5 * label_smoothing
    p = sigmoid(p) if from_logits else p
    c = numpy.clip(p, EPS, 1 - EPS)
    bce = -(t * numpy.log(c) + (1 - t) * numpy.log(1 - c))
    p_t = t * p + (1 - t) * (1 - p)
    out = (1 - p_t) ** gamma * bce
    if apply_class_balancing:
        out = (t * alpha + (1 - t) * (1 - alpha)) * out
    return out.mean(axis=axis)


def expected_cfce(t, p, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1):
    t = t * (1 - label_smoothing) + label_smoothing / t.shape[-1]
    p = softmax(p, axis) if from_logits else p
    c = numpy.clip(p / p.sum(axis=axis, keepdims=True), EPS, 1 - EPS)
    return (numpy.asarray(alpha) * (1 - c) ** gamma * -t * numpy.log(c)).sum(axis=axis)


def expected_dice(t, p, axis=None):
    return 1 - 2 * (t * p).sum(axis=axis) / (t.sum(axis=axis) + p.sum(axis=axis) + EPS)


def expected_tversky(t, p, alpha=0.5, beta=0.5, axis=None):
    tp = (t * p).sum(axis=axis)
    fp = ((1 - p) * t).sum(axis=axis)
    fn = (p * (1 - t)).sum(axis=axis)
    return 1 - tp / (tp + alpha * fp + beta * fn + EPS)


def expected_gce(labels, p, q):
    return (1 - p[numpy.arange(len(labels)), labels] ** q) / q


def expected_circle(labels, e, gamma=80.0, margin=0.4, remove_diagonal=True):
    n = len(labels)
    d = numpy.maximum(1 - e @ e.T, 0)
    out = numpy.zeros(n)
    for i in range(n):
        pos = [j for j in range(n) if labels[j] == labels[i] and (j != i or not remove_diagonal)]
        neg = [j for j in range(n) if labels[j] != labels[i]]
        sp = [-gamma * max(margin + d[i, j], 0) * (margin - d[i, j]) for j in pos]
        sn = [gamma * max(1 + margin - d[i, j], 0) * (1 - margin - d[i, j]) for j in neg]
        lp = numpy.logaddexp.reduce(sp) if sp else -numpy.inf
        ln = numpy.logaddexp.reduce(sn) if sn else -numpy.inf
        out[i] = numpy.logaddexp(0, lp + ln)
    return out


# ------------------------------------------------------------ inputs
def binary_inputs(rng, shape, from_logits):
    t = rng.integers(0, 2, shape).astype(float)
    p = rng.standard_normal(shape) * 2 if from_logits else rng.uniform(0.05, 0.95, shape)
    return t, p


def categorical_inputs(rng, shape, from_logits, axis=-1):
    classes = shape[axis]
    ids = rng.integers(0, classes, shape[:axis % len(shape)] + shape[axis % len(shape) + 1:])
    t = numpy.moveaxis(numpy.eye(classes)[ids], -1, axis)
    p = rng.standard_normal(shape) * 2 if from_logits else rng.uniform(0.05, 1.0, shape)
    return t, p


def unit_rows(rng, shape):
    e = rng.standard_normal(shape)
    return e / numpy.linalg.norm(e, axis=-1, keepdims=True)


SHAPES = [(1, 1), (3, 1), (17, 3), (3, 33), (2, 3, 5)]

# (name, loss class kwargs, inputs(rng, shape) -> (t, p), expected(t, p)).
CASES = []
for _kw in [{}, {"from_logits": True}, {"label_smoothing": 0.3}, {"from_logits": True, "label_smoothing": 0.1},
            {"apply_class_balancing": True, "alpha": 0.7, "gamma": 1.5}, {"gamma": 0.0}, {"gamma": 0.5},
            {"axis": 0}]:
    CASES.append(("BinaryFocalCrossentropy", _kw,
                  lambda rng, s, kw=_kw: binary_inputs(rng, s, kw.get("from_logits", False)),
                  lambda t, p, kw=_kw: expected_bfce(t, p, **kw)))
for _kw in [{}, {"from_logits": True}, {"label_smoothing": 0.2}, {"from_logits": True, "label_smoothing": 0.2},
            {"alpha": 1.0, "gamma": 0.0}, {"gamma": 3.0, "alpha": 0.5}, {"axis": 0}, {"axis": 0, "from_logits": True}]:
    CASES.append(("CategoricalFocalCrossentropy", _kw,
                  lambda rng, s, kw=_kw: categorical_inputs(rng, s, kw.get("from_logits", False), kw.get("axis", -1)),
                  lambda t, p, kw=_kw: expected_cfce(t, p, **kw)))
for _kw in [{}, {"axis": -1}, {"axis": (0,)}, {"axis": [1]}]:
    CASES.append(("Dice", _kw, lambda rng, s: (rng.uniform(0, 1, s), rng.uniform(0.05, 1, s)),
                  lambda t, p, kw=_kw: expected_dice(t, p, axis=None if kw.get("axis") is None
                                                     else tuple(numpy.atleast_1d(kw["axis"])))))
for _kw in [{}, {"alpha": 0.2, "beta": 0.8}, {"alpha": 0.7, "beta": 0.1, "axis": -1}]:
    CASES.append(("Tversky", _kw, lambda rng, s: (rng.integers(0, 2, s).astype(float), rng.uniform(0.05, 1, s)),
                  lambda t, p, kw=_kw: expected_tversky(t, p, **kw)))
CASE_IDS = [f"{c[0]}{c[1] or ''}" for c in CASES]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,kwargs,inputs,expected", CASES, ids=CASE_IDS)
def test_values_match_formula(xp, rng, name, kwargs, inputs, expected, shape):
    t, p = inputs(rng, shape)
    loss = getattr(losses, name)(**kwargs)
    got = to_numpy(loss.call(xp.asarray(t), xp.asarray(p)))
    numpy.testing.assert_allclose(got, expected(t, p), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,kwargs,inputs,expected", CASES, ids=CASE_IDS)
def test_gradients_match_finite_differences(xp, rng, name, kwargs, inputs, expected, shape):
    """The plain gradient, the gradient of a weighted sum of the per-sample values, and the gradient of the
    reduced loss with sample weights (the weights the model trains with) against finite differences."""
    t, p = inputs(rng, shape)
    t, p = xp.asarray(t), xp.asarray(p)
    loss = getattr(losses, name)(**kwargs)
    assert_gradient(lambda x: loss.call(t, x).sum(), p, loss.grad(t, p), rng, what=name)
    values = loss.call(t, p)
    w = xp.asarray(rng.uniform(0.1, 2.0, values.shape))
    assert_gradient(lambda x: (w * loss.call(t, x)).sum(), p, loss.weighted_grad(t, p, w), rng, what=name)
    # Weights of the values' shape (one value for the batch: one weight per row, which Keras multiplies out).
    sw = xp.asarray(rng.uniform(0.1, 2.0, values.shape if values.ndim else shape[:1]))
    for reduction in ("sum_over_batch_size", "sum", "mean_with_sample_weight"):
        reduced = getattr(losses, name)(reduction=reduction, dtype="float64", **kwargs)
        weights = reduced.reduction_weights(t, p, values, sw)
        assert_gradient(lambda x: reduced(t, x, sample_weight=sw), p, reduced.weighted_grad(t, p, weights), rng,
                        what=f"{name} {reduction}")


def test_dice_axis_none_is_one_value_for_the_batch(xp, rng):
    t, p = rng.uniform(0, 1, (4, 6)), rng.uniform(0, 1, (4, 6))
    loss = losses.Dice()
    value = loss.call(xp.asarray(t), xp.asarray(p))
    assert value.shape == ()
    sw = numpy.array([1.0, 0.0, 2.0, 0.5])
    # Keras multiplies the single value by the weights, then averages over their number.
    got = float(to_numpy(losses.Dice(dtype="float64")(xp.asarray(t), xp.asarray(p), sample_weight=xp.asarray(sw))))
    assert got == pytest.approx(expected_dice(t, p) * sw.mean(), rel=1e-12)
    per_image = losses.Dice(axis=(1, 2), reduction=None)(xp.asarray(t[:, :, None]), xp.asarray(p[:, :, None]))
    assert per_image.shape == (4,)


@pytest.mark.parametrize("n,dim", [(1, 3), (5, 3), (9, 4), (17, 8)])
@pytest.mark.parametrize("kwargs", [{}, {"gamma": 10.0, "margin": 0.25}, {"remove_diagonal": False, "gamma": 4.0}],
                         ids=str)
def test_circle_values_and_gradients(xp, rng, n, dim, kwargs):
    labels = rng.integers(0, 3, n)
    labels[-1] = 7          # a class of its own: no positive partner, loss 0, masked out of the mean
    e = unit_rows(rng, (n, dim))
    loss = losses.Circle(dtype="float64", **kwargs)
    y, x = xp.asarray(labels), xp.asarray(e)
    values = to_numpy(loss.call(y, x))
    numpy.testing.assert_allclose(values, expected_circle(labels, e, **kwargs), rtol=1e-9, atol=1e-12)
    assert_gradient(lambda z: loss.call(y, z).sum(), x, loss.grad(y, x), rng, rtol=1e-5, what="circle")
    w = xp.asarray(rng.uniform(0.1, 2.0, n))
    assert_gradient(lambda z: (w * loss.call(y, z)).sum(), x, loss.weighted_grad(y, x, w), rng, rtol=1e-5,
                    what="circle weighted")
    positive = values > 0
    mean = values[positive].mean() if positive.any() else 0.0
    assert float(to_numpy(loss(y, x))) == pytest.approx(mean, rel=1e-12)
    weights = loss.reduction_weights(y, x, loss.call(y, x), w)
    assert_gradient(lambda z: loss(y, z, sample_weight=w), x, loss.weighted_grad(y, x, weights), rng, rtol=1e-5,
                    what="circle reduced")


def test_circle_takes_column_labels_and_reference_embeddings(xp, rng):
    labels, e = rng.integers(0, 2, 6), unit_rows(rng, (6, 3))
    a = losses.circle(xp.asarray(labels[:, None]), xp.asarray(e))
    numpy.testing.assert_allclose(to_numpy(a), expected_circle(labels, e), rtol=1e-9)
    ref_labels, ref = rng.integers(0, 2, 4), unit_rows(rng, (4, 3))
    values = to_numpy(losses.circle(xp.asarray(labels), xp.asarray(e), ref_labels=xp.asarray(ref_labels),
                                    ref_embeddings=xp.asarray(ref), remove_diagonal=False))
    assert values.shape == (6,) and numpy.isfinite(values).all()


@pytest.mark.parametrize("q", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("shape,column", [((1, 1), False), ((7, 3), False), ((7, 3), True), ((4, 33), False)])
def test_generalized_cross_entropy(xp, rng, q, shape, column):
    labels = rng.integers(0, shape[1], shape[0])
    p = rng.dirichlet(numpy.ones(shape[1]), shape[0]) * 0.9 + 0.1 / shape[1]
    y = xp.asarray(labels[:, None] if column else labels)
    loss = losses.CategoricalGeneralizedCrossEntropy(q=q, dtype="float64")
    numpy.testing.assert_allclose(to_numpy(loss.call(y, xp.asarray(p))), expected_gce(labels, p, q), rtol=1e-12)
    x = xp.asarray(p)
    assert_gradient(lambda z: loss.call(y, z).sum(), x, loss.grad(y, x), rng, what="gce")
    sw = xp.asarray(rng.uniform(0.1, 2, shape[0]))
    weights = loss.reduction_weights(y, x, loss.call(y, x), sw)
    assert_gradient(lambda z: loss(y, z, sample_weight=sw), x, loss.weighted_grad(y, x, weights), rng, what="gce")


def test_float32_stays_float32(xp, rng):
    t, p = binary_inputs(rng, (5, 4), False)
    t32, p32 = xp.asarray(t, dtype="float32"), xp.asarray(p, dtype="float32")
    labels = xp.asarray(rng.integers(0, 4, 5))
    for loss, y in [(losses.BinaryFocalCrossentropy(gamma=0.5), t32),
                    (losses.CategoricalFocalCrossentropy(alpha=[0.1, 0.2, 0.3, 0.4]), t32),
                    (losses.Dice(), t32), (losses.Tversky(axis=-1), t32), (losses.Circle(), labels),
                    (losses.CategoricalGeneralizedCrossEntropy(), labels)]:
        assert loss.call(y, p32).dtype == numpy.float32, loss
        assert loss.grad(y, p32).dtype == numpy.float32, loss
        assert loss(y, p32).dtype == numpy.float32, loss


def test_focal_with_gamma_zero_is_the_cross_entropy(xp, rng):
    t, p = binary_inputs(rng, (6, 5), False)
    t, p = xp.asarray(t), xp.asarray(p)
    numpy.testing.assert_allclose(to_numpy(losses.binary_focal_crossentropy(t, p, gamma=0.0)),
                                  to_numpy(losses.binary_crossentropy(t, p)), rtol=1e-12)
    t, p = categorical_inputs(rng, (6, 5), False)
    t, p = xp.asarray(t), xp.asarray(p)
    numpy.testing.assert_allclose(to_numpy(losses.categorical_focal_crossentropy(t, p, alpha=1.0, gamma=0.0)),
                                  to_numpy(losses.categorical_crossentropy(t, p)), rtol=1e-12)


def test_saturated_probabilities_stay_finite(xp):
    t = xp.asarray([[1.0, 0.0, 1.0, 0.0]])
    z = xp.asarray([[200.0, -200.0, -200.0, 200.0]])
    for kwargs in [{"from_logits": True}, {"from_logits": True, "gamma": 0.5}]:
        loss = losses.BinaryFocalCrossentropy(**kwargs)
        assert numpy.isfinite(to_numpy(loss.call(t, z))).all()
        assert numpy.isfinite(to_numpy(loss.grad(t, z))).all()
    p = xp.asarray([[1.0, 0.0, 0.0, 1.0]])
    loss = losses.BinaryFocalCrossentropy(gamma=0.5)
    assert numpy.isfinite(to_numpy(loss.grad(t, p))).all()
    oh = xp.asarray([[0.0, 1.0, 0.0]])
    for pred in (xp.asarray([[0.0, 1.0, 0.0]]), xp.asarray([[1e3, -1e3, 0.0]])):
        loss = losses.CategoricalFocalCrossentropy(from_logits=bool(pred.max() > 1))
        assert numpy.isfinite(to_numpy(loss.grad(oh, pred))).all()


@pytest.mark.parametrize("make,message", [
    (lambda: losses.BinaryFocalCrossentropy(gamma=-1), "BinaryFocalCrossentropy: `gamma`"),
    (lambda: losses.BinaryFocalCrossentropy(alpha=1.5), "BinaryFocalCrossentropy: `alpha`"),
    (lambda: losses.BinaryFocalCrossentropy(alpha=True), "BinaryFocalCrossentropy: `alpha`"),
    (lambda: losses.BinaryFocalCrossentropy(label_smoothing=2), "BinaryFocalCrossentropy: `label_smoothing`"),
    (lambda: losses.BinaryFocalCrossentropy(axis=1.0), "BinaryFocalCrossentropy: `axis`"),
    (lambda: losses.CategoricalFocalCrossentropy(gamma=-0.5), "CategoricalFocalCrossentropy: `gamma`"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=-0.1), "CategoricalFocalCrossentropy: `alpha`"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=[0.5, -1]), "CategoricalFocalCrossentropy: `alpha`"),
    (lambda: losses.CategoricalFocalCrossentropy(alpha=[]), "CategoricalFocalCrossentropy: `alpha`"),
    (lambda: losses.CategoricalFocalCrossentropy(label_smoothing=-1), "CategoricalFocalCrossentropy"),
    (lambda: losses.CategoricalGeneralizedCrossEntropy(q=0), "CategoricalGeneralizedCrossEntropy: `q`"),
    (lambda: losses.CategoricalGeneralizedCrossEntropy(q=1.0), "CategoricalGeneralizedCrossEntropy: `q`"),
    (lambda: losses.CategoricalGeneralizedCrossEntropy(q=1.5), "CategoricalGeneralizedCrossEntropy: `q`"),
    (lambda: losses.Tversky(alpha=-1), "Tversky: `alpha`"),
    (lambda: losses.Tversky(beta="x"), "Tversky: `beta`"),
    (lambda: losses.Tversky(axis=1.5), "Tversky: `axis`"),
    (lambda: losses.Dice(axis="x"), "Dice: `axis`"),
    (lambda: losses.Dice(reduction="avg"), "reduction"),
    (lambda: losses.Circle(gamma=0), "Circle: `gamma`"),
    (lambda: losses.Circle(margin=float("nan")), "Circle: `margin`"),
])
def test_bad_arguments(make, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make()


def test_bad_inputs_say_which_loss():
    with pytest.raises(ValueError, match="binary_focal_crossentropy"):
        losses.binary_focal_crossentropy(numpy.zeros((3, 2)), numpy.zeros((3, 4)))
    with pytest.raises(ValueError, match="categorical_focal_crossentropy: `alpha` has 2"):
        losses.categorical_focal_crossentropy(numpy.eye(3), numpy.eye(3), alpha=[0.5, 0.5])
    with pytest.raises(ValueError, match="dice"):
        losses.dice(numpy.zeros((3, 2)), numpy.zeros((3, 4)))
    with pytest.raises(ValueError, match="circle"):
        losses.circle(numpy.zeros(4), numpy.zeros((4, 2, 2)))
    with pytest.raises(ValueError, match="categorical_generalized_cross_entropy"):
        losses.categorical_generalized_cross_entropy(numpy.zeros((4, 2)), numpy.zeros((4, 3)), q=0.5)


def test_validate_targets():
    with pytest.raises(ValueError, match="targets must be in"):
        losses.BinaryFocalCrossentropy().validate_targets(numpy.array([[0.0], [2.0]]), (None, 1))
    with pytest.raises(ValueError, match="integer class labels"):
        losses.CategoricalFocalCrossentropy().validate_targets(numpy.array([0, 2, 1]), (None, 3))
    with pytest.raises(ValueError, match=r"in \[0, 3\)"):
        losses.CategoricalGeneralizedCrossEntropy().validate_targets(numpy.array([0, 3]), (None, 3))
    losses.CategoricalGeneralizedCrossEntropy().validate_targets(numpy.array([[0], [2]]), (None, 3))
    with pytest.raises(ValueError, match="one integer label per sample"):
        losses.Circle().validate_targets(numpy.eye(3), (None, 3))
    losses.Circle().validate_targets(numpy.array([0, 1, 1]), (None, 8))
    with pytest.raises(ValueError, match="do not fit"):
        losses.Dice().validate_targets(numpy.zeros((4, 3)), (None, 5))


NEW = {"BinaryFocalCrossentropy": "binary_focal_crossentropy",
       "CategoricalFocalCrossentropy": "categorical_focal_crossentropy", "Dice": "dice", "Tversky": "tversky",
       "Circle": "circle", "CategoricalGeneralizedCrossEntropy": "categorical_generalized_cross_entropy"}


@pytest.mark.parametrize("cls_name,fn_name", NEW.items())
def test_registry_names_and_config_round_trip(cls_name, fn_name):
    cls = getattr(losses, cls_name)
    assert isinstance(losses.get(cls_name), cls) and losses.get(cls_name).name == fn_name
    assert isinstance(losses.get(fn_name), cls) and losses.get(fn_name).name == fn_name
    assert losses.FUNCTIONS[cls] is getattr(losses, fn_name)
    loss = cls(reduction="sum", name="mine")
    config = losses.serialize(loss)
    assert config["class_name"] == cls_name and config["module"] == "keras.losses"
    again = losses.deserialize(config)
    assert type(again) is cls and again.get_config() == loss.get_config()


def test_configs_keep_keras_s_keys():
    assert losses.BinaryFocalCrossentropy().get_config() == {
        "name": "binary_focal_crossentropy", "reduction": "sum_over_batch_size", "apply_class_balancing": False,
        "alpha": 0.25, "gamma": 2.0, "from_logits": False, "label_smoothing": 0.0, "axis": -1}
    assert losses.CategoricalFocalCrossentropy(alpha=[1, 2]).get_config()["alpha"] == [1.0, 2.0]
    assert losses.Dice(axis=[1, 2]).get_config()["axis"] == (1, 2)
    assert losses.Tversky().get_config() == {"name": "tversky", "reduction": "sum_over_batch_size", "alpha": 0.5,
                                             "beta": 0.5, "axis": None}
    assert losses.Circle().get_config() == {"name": "circle", "reduction": "sum_over_batch_size", "gamma": 80.0,
                                            "margin": 0.4, "remove_diagonal": True}
    assert losses.CategoricalGeneralizedCrossEntropy().get_config()["q"] == 0.5


@pytest.mark.parametrize("loss", [losses.CategoricalFocalCrossentropy(), losses.BinaryFocalCrossentropy(),
                                  losses.CategoricalGeneralizedCrossEntropy()], ids=lambda loss: loss.name)
def test_a_softmax_output_is_not_fused_into_these_losses(xp, rng, loss):
    """The model fuses a last softmax only into losses that say so; these take the softmax's probabilities."""
    assert not loss.softmax_fusable
    gpu_dl.backend.set_random_seed(3)
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss=loss)
    x = rng.standard_normal((6, 4)).astype("float32")
    labels = rng.integers(0, 3, 6)
    y = labels if isinstance(loss, losses.CategoricalGeneralizedCrossEntropy) else numpy.eye(3)[labels]
    if isinstance(loss, losses.BinaryFocalCrossentropy):
        y = y.astype("float32")
    value = model.train_on_batch(x, y)
    assert not model._fused_softmax
    assert numpy.isfinite(value)


def test_model_trains_with_dice_over_the_whole_batch_and_sample_weights(rng):
    """axis=None gives one value per batch: the weights scale it by their mean, the gradient too."""
    gpu_dl.backend.set_random_seed(5)
    model = gpu_dl.Sequential([layers.Input((5,)), layers.Dense(2, activation="sigmoid")])
    model.compile(optimizer="sgd", loss="dice")
    x = rng.standard_normal((8, 5)).astype("float32")
    y = rng.integers(0, 2, (8, 2)).astype("float32")
    w = rng.uniform(0.5, 1.5, 8).astype("float32")
    before = model.get_weights()
    value = model.train_on_batch(x, y, sample_weight=w)
    assert numpy.isfinite(value) and value > 0
    assert any(not numpy.allclose(a, b) for a, b in zip(before, model.get_weights()))
    model.set_weights(before)
    assert model.evaluate(x, y, sample_weight=w, verbose=0) == pytest.approx(
        expected_dice(y.astype(float), model.predict(x, verbose=0).astype(float)) * w.mean(), rel=1e-5)


def test_metric_function_forms_are_the_losses_own():
    names = ["mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
             "mean_squared_logarithmic_error", "binary_crossentropy", "categorical_crossentropy",
             "sparse_categorical_crossentropy", "binary_focal_crossentropy", "categorical_focal_crossentropy",
             "hinge", "squared_hinge", "categorical_hinge", "huber", "kl_divergence", "log_cosh", "poisson"]
    for name in names:
        assert getattr(metrics, name) is getattr(losses, name), name
    t, p = numpy.eye(3)[[0, 2, 1, 1]], numpy.full((4, 3), 0.3)
    assert metrics.categorical_focal_crossentropy(t, p).shape == (4,)
    assert metrics.sparse_categorical_crossentropy(numpy.array([0, 2, 1, 1]), p).shape == (4,)
    m = metrics.get(metrics.binary_focal_crossentropy)
    m.update_state(t, p)
    assert m.result() == pytest.approx(float(losses.binary_focal_crossentropy(t, p).mean()))


def test_initializer_class_name_aliases():
    assert initializers.IdentityInitializer is initializers.Identity
    assert initializers.OrthogonalInitializer is initializers.Orthogonal
    for name, cls in [("IdentityInitializer", initializers.Identity),
                      ("OrthogonalInitializer", initializers.Orthogonal)]:
        loaded = initializers.deserialize({"module": "keras.initializers", "class_name": name,
                                           "config": {"gain": 2.0}, "registered_name": None})
        assert type(loaded) is cls and loaded.gain == 2.0
        assert type(initializers.get(name)) is cls
