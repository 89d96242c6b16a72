"""gpu_dl.distillation: the combined loss against NumPy's formulas, its gradient against float64 finite
differences, the teacher frozen, the refusals, the configs, and a few fitted epochs against Keras 3's Distiller
where Keras is installed."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl.distillation import Distiller, FeatureDistillation, LogitsDistillation


def pair(lib, seed=1):
    """A teacher (hid 6, deep 8, out 3) and a smaller student (hid 6, out 3) with NumPy-drawn weights."""
    def model(deep, name, s):
        inputs = lib.Input((4,))
        h = lib.layers.Dense(6, activation="tanh", name="hid")(inputs)
        if deep:
            h = lib.layers.Dense(8, activation="tanh", name="deep")(h)
        m = lib.Model(inputs, lib.layers.Dense(3, name="out")(h), name=name)
        rng = numpy.random.default_rng(s)
        m.set_weights([0.7 * rng.standard_normal(w.shape).astype("float32") for w in m.get_weights()])
        return m
    return model(True, "teacher", seed), model(False, "student", seed + 1)


def distiller(lib, student_loss_weight=0.3, seed=1):
    teacher, student = pair(lib, seed)
    d = lib.distillation
    return d.Distiller(teacher, student,
                       [d.LogitsDistillation(temperature=2.0, loss=lib.losses.KLDivergence()),
                        d.FeatureDistillation("mse", teacher_layer_name="hid", student_layer_name="hid"),
                        d.LogitsDistillation()],
                       distillation_loss_weights=[1.0, 0.5, 0.2], student_loss_weight=student_loss_weight)


# ---------------------------------------------------------------- NumPy's formulas
def dense(x, kernel, bias, tanh):
    out = x @ kernel + bias
    return numpy.tanh(out) if tanh else out


def softmax(z):
    e = numpy.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, q):
    p, q = numpy.clip(p, 1e-7, 1.0), numpy.clip(q, 1e-7, 1.0)
    return numpy.sum(p * numpy.log(p / q), axis=-1)


def expected_losses(teacher_weights, student_weights, x, y, w=0.3):
    """(total, student, distillation) of the configuration of ``distiller``, in float64."""
    x = x.astype("float64")
    tw = [a.astype("float64") for a in teacher_weights]
    sw = [a.astype("float64") for a in student_weights]
    t_hid = dense(x, tw[0], tw[1], True)
    t_out = dense(dense(t_hid, tw[2], tw[3], True), tw[4], tw[5], False)
    s_hid = dense(x, sw[0], sw[1], True)
    s_out = dense(s_hid, sw[2], sw[3], False)
    # sparse categorical cross-entropy of the logits (compiled with from_logits=True)
    shifted = s_out - s_out.max(axis=-1, keepdims=True)
    log_probs = shifted - numpy.log(numpy.exp(shifted).sum(axis=-1, keepdims=True))
    student = -numpy.mean(log_probs[numpy.arange(len(y)), y])
    tempered_kl = numpy.mean(kl(softmax(t_out / 2.0), softmax(s_out / 2.0))) * 4.0
    features = numpy.mean((t_hid - s_hid) ** 2)
    named_kl = numpy.mean(kl(t_out / 3.0, s_out / 3.0))      # Keras 3.15's default: the tempered logits as they are
    distillation = tempered_kl + 0.5 * features + 0.2 * named_kl
    return w * student + (1 - w) * distillation, student, distillation


def data(n=10):
    rng = numpy.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype("float32"), rng.integers(0, 3, n)


def compiled(lib, optimizer, **kwargs):
    d = distiller(lib, **kwargs)
    d.compile(optimizer=optimizer, loss=lib.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=["accuracy"])
    return d


@pytest.mark.parametrize("weight", [0.0, 0.3, 1.0])
def test_combined_loss_is_numpys(xp, weight):
    x, y = data()
    d = compiled(gpu_dl, "sgd", student_loss_weight=weight)
    logs = d.evaluate(x, y, batch_size=10, verbose=0, return_dict=True)
    total, student, distillation = expected_losses(d.teacher.get_weights(), d.student.get_weights(), x, y, weight)
    assert logs["loss"] == pytest.approx(total, rel=1e-5)
    assert logs["total_loss"] == pytest.approx(total, rel=1e-5)
    # Keras's: a weight of 0 leaves the student loss out (0), a weight of 1 the distillation loss.
    assert logs["student_loss"] == pytest.approx(student if weight > 0 else 0.0, rel=1e-5, abs=1e-12)
    assert logs["distillation_loss"] == pytest.approx(distillation if weight < 1 else 0.0, rel=1e-5, abs=1e-12)
    assert set(logs) == {"loss", "total_loss", "student_loss", "distillation_loss", "accuracy"}


@pytest.mark.parametrize("weight", [0.3, 1.0, 0.0])
def test_gradient_is_the_float64_finite_difference(xp, weight):
    """One SGD step of rate 1 moves the student's weights by minus the gradient; the finite difference of NumPy's
    float64 loss along a random direction must agree with it."""
    x, y = data()
    d = compiled(gpu_dl, gpu_dl.optimizers.SGD(1.0), student_loss_weight=weight)
    teacher_before = [w.copy() for w in d.teacher.get_weights()]
    before = [w.astype("float64") for w in d.student.get_weights()]
    d.train_on_batch(x, y)
    grads = [b - a for b, a in zip(before, d.student.get_weights())]
    rng = numpy.random.default_rng(7)
    direction = [rng.standard_normal(w.shape) for w in before]
    eps = 1e-5

    def loss_at(sign):
        moved = [w + sign * eps * v for w, v in zip(before, direction)]
        return expected_losses(teacher_before, moved, x, y, weight)[0]

    numeric = (loss_at(1) - loss_at(-1)) / (2 * eps)
    analytic = sum(float(numpy.sum(g * v)) for g, v in zip(grads, direction))
    assert analytic == pytest.approx(numeric, rel=2e-3, abs=1e-5)
    for a, b in zip(d.teacher.get_weights(), teacher_before):      # the teacher is frozen
        numpy.testing.assert_array_equal(a, b)


def test_teacher_frozen_student_trained(on_cpu):
    d = distiller(gpu_dl)
    assert d.teacher.trainable is False
    assert [id(v) for v in d.trainable_weights] == [id(v) for v in d.student.trainable_weights]
    x, y = data(16)
    d.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    history = d.fit(x, y, batch_size=4, epochs=3, verbose=0)
    assert history.history["loss"] == pytest.approx(history.history["total_loss"], rel=1e-6)
    numpy.testing.assert_allclose(d.predict(x, verbose=0), d.student.predict(x, verbose=0), rtol=1e-6)


def test_sequential_models_validation_and_a_subclassed_student(on_cpu):
    def sequential():
        return gpu_dl.Sequential([gpu_dl.Input((4,)), gpu_dl.layers.Dense(6, activation="relu", name="hid"),
                                  gpu_dl.layers.Dense(3, name="out")])

    x, y = data(16)
    d = Distiller(sequential(), sequential(),
                  [LogitsDistillation(), FeatureDistillation(teacher_layer_name="hid", student_layer_name="hid")])
    d.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = d.fit(x, y, epochs=2, verbose=0, validation_split=0.25).history
    assert sorted(history) == sorted(["accuracy", "distillation_loss", "loss", "student_loss", "total_loss"] +
                                     ["val_accuracy", "val_distillation_loss", "val_loss", "val_student_loss",
                                      "val_total_loss"])

    class Student(gpu_dl.Model):
        def __init__(self):
            super().__init__()
            self.hidden = gpu_dl.layers.Dense(5, activation="relu")
            self.out = gpu_dl.layers.Dense(3)

        def call(self, inputs, training=None):
            return self.out(self.hidden(inputs))

    student = Student()
    student(x[:2])
    teacher = sequential()
    before, teacher_before = [w.copy() for w in student.get_weights()], [w.copy() for w in teacher.get_weights()]
    d = Distiller(teacher, student, LogitsDistillation(loss=gpu_dl.losses.KLDivergence()))
    d.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    d.fit(x, y, epochs=2, verbose=0)
    assert all(not numpy.array_equal(a, b) for a, b in zip(student.get_weights(), before))
    for a, b in zip(teacher.get_weights(), teacher_before):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="requires Functional or Sequential models. The student model"):
        Distiller(teacher, student, FeatureDistillation(teacher_layer_name="hid", student_layer_name="hidden"))


def test_bad_arguments_are_refused(on_cpu):
    teacher, student = pair(gpu_dl)
    logits = LogitsDistillation()
    with pytest.raises(ValueError, match="student_loss_weight must be between"):
        Distiller(teacher, student, logits, student_loss_weight=1.5)
    with pytest.raises(ValueError, match="student_loss_weight must be a number"):
        Distiller(teacher, student, logits, student_loss_weight="half")
    with pytest.raises(ValueError, match="cannot be `None`"):
        Distiller(teacher, student, None)
    with pytest.raises(ValueError, match=r"Number of distillation_loss_weights \(1\) must match"):
        Distiller(teacher, student, [logits, logits], distillation_loss_weights=[1.0])
    with pytest.raises(ValueError, match="Teacher must be a gpu_dl Model"):
        Distiller("teacher", student, logits)
    with pytest.raises(TypeError, match="must be a DistillationLoss"):
        Distiller(teacher, student, ["kl_divergence"])
    other = gpu_dl.Sequential([gpu_dl.Input((5,)), gpu_dl.layers.Dense(3)])
    with pytest.raises(ValueError, match="input shapes are incompatible"):
        Distiller(teacher, other, logits)
    with pytest.raises(ValueError, match="In student model: .*nope"):
        Distiller(teacher, student, FeatureDistillation(teacher_layer_name="hid", student_layer_name="nope"))
    with pytest.raises(ValueError, match="temperature must be positive"):
        LogitsDistillation(temperature=0)
    with pytest.raises(ValueError, match="temperature must be a number"):
        LogitsDistillation(temperature="3")
    with pytest.raises(ValueError, match="at least one non-`None`"):
        FeatureDistillation(loss=[None, None])
    with pytest.raises(ValueError, match="'loss' cannot be `None`"):
        Distiller(teacher, student, logits).compile(optimizer="adam")
    with pytest.raises(ValueError, match="Loss structure mismatch"):
        FeatureDistillation(loss=["mse", "mae"]).validate_outputs(numpy.zeros(2), numpy.zeros(2))


def test_configs_round_trip(on_cpu):
    logits = LogitsDistillation(temperature=4.0, loss=["kl_divergence", None])
    again = LogitsDistillation.from_config(logits.get_config())
    assert again.temperature == 4.0 and again.loss[1] is None and type(again.loss[0]) is type(logits.loss[0])
    features = FeatureDistillation(loss=gpu_dl.losses.MeanAbsoluteError(), teacher_layer_name="a",
                                   student_layer_name="b")
    again = FeatureDistillation.from_config(features.get_config())
    assert (again.teacher_layer_name, again.student_layer_name) == ("a", "b")
    assert isinstance(again.loss, gpu_dl.losses.MeanAbsoluteError)
    config = distiller(gpu_dl).get_config()
    assert [e["class_name"] for e in config["distillation_losses"]] == \
        ["LogitsDistillation", "FeatureDistillation", "LogitsDistillation"]
    rebuilt = Distiller.from_config(config)
    assert rebuilt.distillation_loss_weights == [1.0, 0.5, 0.2] and rebuilt.student_loss_weight == 0.3
    shapes = [w.shape for w in distiller(gpu_dl).student.get_weights()]
    assert [w.shape for w in rebuilt.student.get_weights()] == shapes


# ---------------------------------------------------------------- Keras 3 as the oracle

@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("weight", [0.3, 0.0])
def test_same_fit_as_keras_distiller(keras, weight, on_cpu):
    x, y = data(12)
    results = {}
    for name, lib in (("ours", gpu_dl), ("theirs", keras)):
        d = compiled(lib, lib.optimizers.Adam(0.01), student_loss_weight=weight)
        history = d.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0).history
        results[name] = (history, d.evaluate(x, y, verbose=0, return_dict=True), d.student.get_weights())
    (ours, our_eval, our_weights), (theirs, their_eval, their_weights) = results["ours"], results["theirs"]
    assert sorted(ours) == sorted(theirs)
    for key in theirs:
        numpy.testing.assert_allclose(ours[key], theirs[key], rtol=2e-5, atol=1e-7, err_msg=key)
    for key in their_eval:
        assert our_eval[key] == pytest.approx(their_eval[key], rel=2e-5, abs=1e-7), key
    for a, b in zip(our_weights, their_weights):
        numpy.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert any(not numpy.allclose(a, b) for a, b in zip(our_weights, pair(gpu_dl)[1].get_weights()))
