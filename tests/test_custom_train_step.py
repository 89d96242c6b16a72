"""Overridable steps (gpu_dl/models/trainer.py): which classes leave the fused step, the data a step gets, the logs,
callbacks and History made of what it returns, compute_loss's gradient against float64 finite differences and
against the fused step, predict_step, and the errors. The guide's programs against Keras itself:
tests/test_keras_oracle_custom_train_step.py."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, losses
from gpu_dl.backend import to_numpy
from gpu_dl.callbacks import LambdaCallback
from gpu_dl.models import Functional, Model, Sequential
from gpu_dl.utils import PyDataset

import custom_step_classes as guide
from gradcheck import assert_gradient

F64 = "float64"


def dense(cls=Model, features=4, units=2, dtype="float32"):
    inputs = gpu_dl.Input((features,), dtype=dtype)
    return cls(inputs, layers.Dense(units, dtype=dtype)(inputs))


class Recording(Model):
    """Keeps what its steps got, and returns the logs it is told to."""

    returned = {"loss": 0.5}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.seen = []

    def train_step(self, data):
        self.seen.append(("train", data))
        return dict(self.returned) if isinstance(self.returned, dict) else self.returned

    def test_step(self, data):
        self.seen.append(("test", data))
        return dict(self.returned) if isinstance(self.returned, dict) else self.returned


def structure(data):
    if isinstance(data, tuple):
        return tuple(structure(d) for d in data)
    return None if data is None else tuple(data.shape)


def test_models_without_steps_of_their_own_keep_the_fused_step():
    class Subclassed(Model):
        def __init__(self):
            super().__init__()
            self.d = layers.Dense(2)

        def call(self, x):
            return self.d(x)

    for model in (dense(), Sequential([layers.Input((3,)), layers.Dense(2)]), Subclassed()):
        assert not type(model)._custom_steps and not type(model)._custom_predict
        for name in ("_train_step", "_test_step", "_logs", "reset_metrics", "_prepare"):
            assert getattr(type(model), name) is getattr(Model, name) or \
                getattr(type(model), name).__module__.startswith("gpu_dl.models."), name
        assert type(model)._train_step is Model._train_step
    assert type(dense(guide.compute_loss_model(gpu_dl)))._custom_steps
    only_predict = type("OnlyPredict", (Model,), {"predict_step": lambda self, data: self(data)})
    assert only_predict._custom_predict and not only_predict._custom_steps


def test_a_subclass_given_inputs_and_outputs_is_a_functional_model_of_its_class():
    cls = guide.own_metrics_model(gpu_dl)
    model = dense(cls)
    assert isinstance(model, cls) and isinstance(model, Functional) and type(model).__name__ == "CustomModel"
    assert [m.name for m in model.metrics] == ["loss", "mae"] and isinstance(model.loss_fn, losses.MeanSquaredError)
    assert model(numpy.ones((3, 4), "float32")).shape == (3, 2)
    assert type(dense(cls)) is type(model)          # one class per subclass
    plain = Recording()                             # without inputs and outputs: a subclassed model
    assert not isinstance(plain, Functional) and plain.seen == []
    with pytest.raises(TypeError, match="takes the arguments name, trainable and dtype"):
        Recording(name="r", units=3)


def test_steps_get_the_data_as_keras_hands_it():
    model = dense(Recording)
    model.compile(optimizer="sgd")
    x, y, sw = numpy.ones((6, 4), "float32"), numpy.zeros((6, 2), "float32"), numpy.ones(6, "float32")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False, validation_data=(x[:3], y[:3]))
    model.fit(x, y, sample_weight=sw, batch_size=6, epochs=1, verbose=0)
    model.fit(x, batch_size=6, epochs=1, verbose=0)
    model.evaluate(x, y, batch_size=6, verbose=0)
    model.train_on_batch(x, y)
    model.test_on_batch(x, y, sample_weight=sw)
    assert [(kind, structure(data)) for kind, data in model.seen] == [
        ("train", ((4, 4), (4, 2))), ("train", ((2, 4), (2, 2))), ("test", ((3, 4), (3, 2))),
        ("train", ((6, 4), (6, 2), (6,))),
        ("train", (6, 4)),
        ("test", ((6, 4), (6, 2))),
        ("train", ((6, 4), (6, 2), None)),
        ("test", ((6, 4), (6, 2), (6,)))]

    class Images(PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return numpy.full((3, 4), index, "float32")

    model.seen = []
    model.fit(Images(), epochs=1, verbose=0, shuffle=False)          # batches without targets: a GAN's images
    assert [(kind, structure(data)) for kind, data in model.seen] == [("train", (3, 4))] * 2
    numpy.testing.assert_array_equal(to_numpy(model.seen[1][1]), 1.0)


def test_logs_callbacks_and_history_take_what_a_step_returns_as_keras_does():
    model = dense(Recording)
    model.compile(optimizer="sgd")
    model.returned = {"b": numpy.float32(2.0), "a": {"y": numpy.array([3.0]), "x": 1}}
    batches, epochs, ends = [], [], []
    callback = LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(logs),
                              on_epoch_end=lambda epoch, logs: epochs.append(logs),
                              on_train_end=lambda logs: ends.append(logs))
    x = numpy.ones((4, 4), "float32")
    history = model.fit(x, numpy.ones((4, 2), "float32"), batch_size=2, epochs=2, verbose=0, callbacks=[callback],
                        validation_data=(x, numpy.ones((4, 2), "float32")))
    flat = {"x": 1.0, "y": 3.0, "b": 2.0}
    assert batches == [flat] * 4 and all(type(v) is float for v in batches[0].values())
    # an epoch's logs: the step's dict (its keys are not get_metrics_result's), then val_ of evaluate's
    assert [list(logs) for logs in epochs] == [["x", "y", "b", "val_b", "val_x", "val_y"]] * 2
    assert epochs[0] == {**flat, "val_b": 2.0, "val_x": 1.0, "val_y": 3.0} and ends == [epochs[-1]]
    assert history.history == {k: [v, v] for k, v in epochs[0].items()}
    assert model.evaluate(x, numpy.ones((4, 2), "float32"), verbose=0) == [2.0, 1.0, 3.0]      # no metrics: sorted



class ReturningItsLoss(Model):
    """Steps that apply no gradient and return the loss their code computed, in the form and under the key set."""

    form, key = "loss value", "loss"

    def _logs(self, data, training):
        x, y = data[0], data[1]
        loss = self.compute_loss(x, y, self(x, training=training))
        value = {"loss value": loss, "numpy scalar": numpy.float32(float(loss)),
                 "0-d array": numpy.asarray(float(loss))}[self.form]
        return {self.key: value}

    def train_step(self, data):
        return self._logs(data, True)

    def test_step(self, data):
        return self._logs(data, False)


@pytest.mark.parametrize("form", ["loss value", "numpy scalar", "0-d array"])
@pytest.mark.parametrize("key", ["loss", "total"])
def test_a_step_that_returns_its_loss_logs_it_per_batch(rng, form, key):
    inputs = gpu_dl.Input((3,))
    model = ReturningItsLoss(inputs, layers.Dense(1, kernel_initializer="ones")(inputs))
    model.form, model.key = form, key
    model.compile(optimizer="sgd", loss="mse")
    x, y = rng.standard_normal((8, 3)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")
    batches = []
    callback = LambdaCallback(on_train_batch_end=lambda batch, logs: batches.append(logs[key]),
                              on_test_batch_end=lambda batch, logs: batches.append(logs[key]))
    history = model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    evaluated = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True, callbacks=[callback])
    want = [float(numpy.mean((x[i:i + 4].sum(axis=1, keepdims=True) - y[i:i + 4]) ** 2)) for i in (0, 4)]
    assert batches == pytest.approx(want * 2, rel=1e-5) and all(type(v) is float for v in batches)
    # under the compiled metrics' keys the epoch logs their results (the loss tracker, never updated here: 0.0),
    # under others the last batch's logs
    epoch = 0.0 if key == "loss" else want[-1]
    assert history.history == {key: [pytest.approx(epoch, rel=1e-5)]}
    assert evaluated == {key: pytest.approx(epoch, rel=1e-5)}
    whole = float(numpy.mean((x.sum(axis=1, keepdims=True) - y) ** 2))
    assert model.train_on_batch(x, y, return_dict=True) == {key: pytest.approx(whole, rel=1e-5)}
    assert model.test_on_batch(x, y) == pytest.approx(whole, rel=1e-5)


def test_metrics_are_reset_at_each_epoch_and_at_evaluate():
    class Counting(Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.batches = gpu_dl.metrics.Sum(name="batches")

        def train_step(self, data):
            self.batches.update_state(1.0)
            return {"batches": self.batches.result()}

        def test_step(self, data):
            self.batches.update_state(10.0)
            return {"batches": self.batches.result()}

    model = dense(Counting)
    model.compile()
    assert [m.name for m in model.metrics] == ["loss", "batches"]     # held in an attribute: listed, as in Keras
    x = numpy.ones((5, 4), "float32")
    history = model.fit(x, batch_size=2, epochs=2, verbose=0, validation_data=(x, x[:, :2]))
    assert history.history == {"batches": [3.0, 3.0], "val_batches": [30.0, 30.0]}
    assert model.evaluate(x, x[:, :2], batch_size=5, verbose=0) == 10.0


def test_compute_loss_adds_the_layers_losses_and_its_gradient_is_the_total_losss(xp, rng):
    class Penalized(layers.Layer):
        def call(self, x):
            self.add_loss(0.3 * gpu_dl.ops.sum(gpu_dl.ops.square(x)))
            return x

    inputs = gpu_dl.Input((3,), dtype=F64)
    h = layers.Dense(4, activation="tanh", kernel_regularizer="l2", activity_regularizer="l1", dtype=F64)(inputs)
    model = Model(inputs, layers.Dense(2, dtype=F64)(Penalized(dtype=F64)(h)))
    model.set_weights([rng.standard_normal(w.shape) * 0.7 for w in model.get_weights()])
    model.compile(optimizer="sgd", loss=losses.MeanSquaredError(dtype=F64))
    x, y = xp.asarray(rng.standard_normal((5, 3))), xp.asarray(rng.standard_normal((5, 2)))
    loss = model.compute_loss(y=y, y_pred=model(x, training=True))
    assert len(model.losses) == 3           # the added loss, the activity penalty, the kernel's penalty
    model.zero_grad()
    loss.backward()

    def total():
        y_pred = model(x)
        return float(to_numpy(losses.MeanSquaredError(dtype=F64)(y, y_pred))) + \
            sum(float(to_numpy(v)) for v in model.losses)
    assert float(loss) == pytest.approx(total(), rel=1e-12)
    for var in model.trainable_weights:
        original = var.value.copy()

        def f(value, var=var):
            var.assign(value)
            return total()
        assert_gradient(f, original, var.grad, rng, what=var.path)
        var.assign(original)
    # a loss that leaves the added losses out would get their gradients from the model's backward: refused
    with pytest.raises(ValueError, match="added losses .* Use model.compute_loss"):
        losses.MeanSquaredError(dtype=F64)(y, model(x, training=True)).backward()


def test_the_built_in_step_with_compute_loss_overridden_matches_the_fused_step(rng):
    class Same(Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return super().compute_loss(x, y, y_pred, sample_weight, training)

    def make(cls):
        inputs = gpu_dl.Input((3,))
        h = layers.Dense(4, activation="relu", kernel_regularizer="l2")(inputs)
        return cls(inputs, layers.Dense(3, activation="softmax")(h))

    fused, generic = make(Model), make(Same)
    assert type(generic)._custom_steps and not type(generic)._free_data
    generic.set_weights(fused.get_weights())
    for model in (fused, generic):
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x, y = rng.standard_normal((20, 3)).astype("float32"), rng.integers(0, 3, 20)
    sw = rng.random(20).astype("float32")
    a = fused.fit(x, y, sample_weight=sw, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    b = generic.fit(x, y, sample_weight=sw, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    assert sorted(a.history) == sorted(b.history)
    for key in a.history:
        numpy.testing.assert_allclose(b.history[key], a.history[key], rtol=2e-5, err_msg=key)
    for w1, w2 in zip(fused.get_weights(), generic.get_weights()):
        numpy.testing.assert_allclose(w2, w1, rtol=1e-4, atol=1e-6)
    assert generic.metrics_names == ["loss", "compile_metrics"]
    numpy.testing.assert_allclose(generic.evaluate(x, y, verbose=0), fused.evaluate(x, y, verbose=0), rtol=2e-5)


def test_a_predict_step_of_its_own():
    class Both(Model):
        def predict_step(self, data):
            y = self(data, training=False)
            return {"y": y, "twice": [2 * y, None]}

    model = dense(Both)
    x = numpy.random.default_rng(0).standard_normal((7, 4)).astype("float32")
    seen = []
    out = model.predict(x, batch_size=3, verbose=0,
                        callbacks=[LambdaCallback(on_predict_batch_end=lambda b, logs: seen.append(b))])
    want = to_numpy(model(x))
    assert seen == [0, 1, 2] and sorted(out) == ["twice", "y"]
    # batches of 3 against one of 7: float32 matrix products of other shapes round differently
    numpy.testing.assert_allclose(out["y"], want, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(out["twice"][0], 2 * want, rtol=1e-5, atol=1e-6)
    assert out["twice"][1] is None
    model.compile(optimizer="sgd", loss="mse")          # fit and evaluate keep the fused step
    assert isinstance(model.evaluate(x, numpy.zeros((7, 2), "float32"), verbose=0), float)

    class Batches(PyDataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return (x[3 * index:3 * index + 3],)
    out = model.predict(Batches(), verbose=0)           # a PyDataset's batches as it yields them
    numpy.testing.assert_allclose(out["y"], want[:6], rtol=1e-5, atol=1e-6)


def test_generators_reach_the_steps_of_a_model_for_training_and_validation():
    model = dense(Recording)
    model.compile(optimizer="sgd")
    x, y = numpy.ones((4, 4), "float32"), numpy.zeros((4, 2), "float32")

    def batches():
        for i in range(2):
            yield x[2 * i:2 * i + 2], y[2 * i:2 * i + 2]
    model.fit(batches(), epochs=1, verbose=0, shuffle=False, validation_data=batches())
    assert [(kind, structure(data)) for kind, data in model.seen] == \
        [("train", ((2, 4), (2, 2)))] * 2 + [("test", ((2, 4), (2, 2)))] * 2


def test_clear_errors():
    model = dense(Recording)
    model.compile(optimizer="sgd")
    model.returned = None
    with pytest.raises(TypeError, match="Recording.train_step must return a dict of logs"):
        model.fit(numpy.ones((2, 4), "float32"), epochs=1, verbose=0)

    class NoLoss(Model):
        def compute_loss(self, *args, **kwargs):
            return super().compute_loss(*args, **kwargs)
    model = dense(NoLoss)
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="No loss to compute"):
        model.fit(numpy.ones((2, 4), "float32"), numpy.ones((2, 2), "float32"), epochs=1, verbose=0)

    class PlainArray(Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return gpu_dl.ops.mean((y_pred - y) ** 2)      # NumPy arithmetic on y_pred: no gradient to follow
    model = dense(PlainArray)
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(TypeError, match="compute_loss of model .* returned a .*a loss value"):
        model.fit(numpy.ones((2, 4), "float32"), numpy.ones((2, 2), "float32"), epochs=1, verbose=0)
