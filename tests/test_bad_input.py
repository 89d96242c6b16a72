"""Every rejected call names what is wrong and changes nothing: weights, optimizer state, history."""
import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.models import Sequential


def compiled(loss="sparse_categorical_crossentropy", outputs=3, activation="softmax"):
    backend.set_random_seed(0)
    model = Sequential([layers.Input((4,)), layers.Dense(5, activation="relu"),
                        layers.Dense(outputs, activation=activation)])
    model.compile(optimizer="adam", loss=loss, metrics=["accuracy"])
    return model


def data(n=12):
    rng = numpy.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype("float32"), rng.integers(0, 3, n)


def snapshot(model):
    opt = model.optimizer
    return [w.copy() for w in model.get_weights()], int(opt.iterations), model.history


def assert_unchanged(model, before):
    weights, iterations, history = before
    for a, b in zip(weights, model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert model.optimizer.iterations == iterations
    assert model.history is history


def trained():
    model = compiled()
    x, y = data()
    model.fit(x, y, epochs=1, verbose=0)
    return model


x_ok, y_ok = data()
CASES = [
    ("wrong feature size", dict(x=numpy.ones((12, 5), "float32")), ValueError,
     r"expects `x` of shape \(None, 4\).*got \(12, 5\)"),
    ("wrong rank", dict(x=numpy.ones((12, 4, 1), "float32")), ValueError, r"expects `x` of shape \(None, 4\)"),
    ("x/y lengths differ", dict(y=y_ok[:10]), ValueError, "x has 12.*y has 10"),
    ("empty x", dict(x=numpy.zeros((0, 4)), y=numpy.zeros(0, int)), ValueError, "`x` is empty"),
    ("strings", dict(x=numpy.array([["a"] * 4] * 12)), TypeError, "`x` must hold numbers.*<U1"),
    ("ragged list", dict(x=[[1, 2, 3, 4], [1, 2]]), (ValueError, TypeError), "`x`"),
    ("NaN in x", dict(x=numpy.where(numpy.eye(12, 4) > 0, numpy.nan, 1.0)), ValueError,
     r"`x` contains NaN or Inf \(first at index \(0, 0\)\)"),
    ("Inf in x", dict(x=numpy.full((12, 4), numpy.inf)), ValueError, "NaN or Inf"),
    ("label out of range", dict(y=numpy.full(12, 3)), ValueError, r"\[0, 3\)"),
    ("negative label", dict(y=numpy.full(12, -1)), ValueError, "label"),
    ("batch_size 0", dict(batch_size=0), ValueError, "`batch_size` must be a positive integer"),
    ("batch_size float", dict(batch_size=2.5), ValueError, "`batch_size`"),
    ("epochs < 0", dict(epochs=-1), ValueError, "`epochs` must be an integer >= 0"),
    ("validation_split 1", dict(validation_split=1.0), ValueError, r"`validation_split` must be a number in \[0, 1\)"),
    ("validation_split negative", dict(validation_split=-0.1), ValueError, "validation_split"),
    ("verbose 3", dict(verbose=3), ValueError, "`verbose`"),
    ("bad validation_data", dict(validation_data=(x_ok,)), ValueError, "validation_data"),
    ("validation x wrong size", dict(validation_data=(numpy.ones((3, 2)), y_ok[:3])), ValueError,
     r"validation_data\[0\]"),
    ("callbacks not callbacks", dict(callbacks=[print]), TypeError, "callbacks"),
]


@pytest.mark.parametrize("what,change,error,message", CASES, ids=[c[0] for c in CASES])
def test_fit_rejects_bad_input_and_changes_nothing(what, change, error, message):
    model = trained()
    before = snapshot(model)
    kwargs = dict(x=x_ok, y=y_ok, epochs=1, verbose=0)
    kwargs.update(change)
    with pytest.raises(error, match=message):
        model.fit(**kwargs)
    assert_unchanged(model, before)


def test_integer_labels_with_categorical_crossentropy_say_what_to_do():
    model = compiled(loss="categorical_crossentropy")
    x, y = data()
    with pytest.raises(ValueError, match="sparse_categorical_crossentropy"):
        model.fit(x, y, verbose=0)
    assert not model.optimizer.iterations


def test_fit_before_compile():
    model = Sequential([layers.Input((4,)), layers.Dense(2)])
    for call in (lambda: model.fit(x_ok, y_ok), lambda: model.evaluate(x_ok, y_ok),
                 lambda: model.train_on_batch(x_ok, y_ok)):
        with pytest.raises(ValueError, match=r"must call `compile\(\)` before"):
            call()


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(loss="mean_squared_eror"), ValueError, "mean_squared_error"),
    (dict(loss="mse", optimizer="adamm"), ValueError, "adam"),
    (dict(loss="mse", metrics=["acuracy"]), ValueError, "acuracy"),
    (dict(loss="mse", optimizer=42), TypeError, "optimizer"),
])
def test_compile_rejects_unknown_names_and_keeps_previous_setup(kwargs, error, message):
    model = trained()
    optimizer, loss = model.optimizer, model.loss
    with pytest.raises(error, match=message):
        model.compile(**kwargs)
    assert model.optimizer is optimizer and model.loss is loss


def test_evaluate_and_predict_reject_bad_input():
    model = trained()
    with pytest.raises(ValueError, match=r"expects `x` of shape \(None, 4\)"):
        model.predict(numpy.ones((2, 3)))
    with pytest.raises(ValueError, match="`y` is required"):
        model.evaluate(x_ok)
    with pytest.raises(ValueError, match="`batch_size`"):
        model.predict(x_ok, batch_size=-1)


def test_rejected_train_on_batch_changes_nothing():
    model = trained()
    before = snapshot(model)
    with pytest.raises(ValueError, match="NaN"):
        model.train_on_batch(numpy.full((2, 4), numpy.nan), numpy.zeros(2, int))
    assert_unchanged(model, before)


def test_layers_take_nested_lists_and_refuse_complex_or_text(xp):
    dense = layers.Dense(2, name="d")
    y = dense([[1.0, 2.0, 3.0]])                       # as Keras converts a list
    assert type(y) is type(xp.zeros(1)) and y.shape == (1, 2)
    with pytest.raises(TypeError, match=r"Layer 'd' \(Dense\) takes real numbers, got an array of complex128"):
        dense(xp.ones((1, 3)) * (1 + 1j))
    with pytest.raises(TypeError, match=r"Layer 'd' \(Dense\) takes real numbers, got an array of str"):
        dense([["a", "b", "c"]])
