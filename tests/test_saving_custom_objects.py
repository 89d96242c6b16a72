"""Custom objects in saved models: losses, metrics, layers and optimizers of the caller's own, found again
through `custom_objects` or `gpu_dl.saving.register_keras_serializable`, as Keras finds them; what gpu_dl
cannot train with is refused with what it takes instead; nothing a file names is imported or run."""
import json
import os
import sys
import zipfile

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, losses, metrics, optimizers
from gpu_dl.models import Sequential, load_model
from gpu_dl.saving import get_registered_name, get_registered_object, register_keras_serializable


# ------------------------------------------------------------ the caller's objects
class ScaledMSE(losses.Loss):
    """``scale * mean((y_pred - y_true)**2)`` with its gradient: a loss gpu_dl can train with."""

    def __init__(self, scale=2.0, name="scaled_mse", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.scale = scale

    def call(self, y_true, y_pred):
        return self.scale * ((y_pred - y_true) ** 2).mean(axis=-1)

    def grad(self, y_true, y_pred):
        return self.scale * 2.0 * (y_pred - y_true) / y_pred.shape[-1]

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


def cubic_loss(y_true, y_pred):
    return (abs(y_pred - y_true) ** 3).mean(axis=-1)


def cubic_loss_grad(y_true, y_pred):
    d = y_pred - y_true
    return 3.0 * d * abs(d) / y_pred.shape[-1]


def worst_error(y_true, y_pred):
    """A per-sample metric function."""
    return abs(y_pred - y_true).max(axis=-1)


class ErrorCount(metrics.Metric):
    def __init__(self, threshold=0.5, name="error_count", dtype=None):
        self.threshold = threshold
        super().__init__(name=name, dtype=dtype)

    def reset_state(self):
        self.count = 0.0

    def update_state(self, y_true, y_pred, sample_weight=None):
        self.count += float((backend.to_numpy(abs(y_pred - y_true)) > self.threshold).sum())

    def result(self):
        return self.count

    def get_config(self):
        return {**super().get_config(), "threshold": self.threshold}


class TwiceDense(layers.Dense):
    """A layer of the caller's own (a Dense with one more argument)."""

    def __init__(self, units, note="x", **kwargs):
        super().__init__(units, **kwargs)
        self.note = note

    def get_config(self):
        return {**super().get_config(), "note": self.note}


@register_keras_serializable(package="TestPkg")
class RegisteredLoss(ScaledMSE):
    pass


@register_keras_serializable(package="TestPkg", name="renamed_metric")
def registered_metric(y_true, y_pred):
    return abs(y_pred - y_true).mean(axis=-1)


def regression_model(loss, metrics_=None, seed=0, first=None):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((5,)), first or layers.Dense(6, activation="tanh"), layers.Dense(2)])
    model.compile(optimizer=optimizers.Adam(0.01), loss=loss, metrics=metrics_)
    return model


def data(n=32, seed=1):
    rng = numpy.random.default_rng(seed)
    return rng.standard_normal((n, 5)).astype("float32"), rng.standard_normal((n, 2)).astype("float32")


def fit(model, epochs=2):
    x, y = data()
    return model.fit(x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0).history


def saved_config(path):
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("config.json"))


def rewrite_config(path, edit):
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    config = json.loads(members["config.json"])
    edit(config)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)


def assert_trains_on_the_same(original, loaded):
    """Both continue from the same state with the same loss: the same losses and weights, bit for bit."""
    assert fit(loaded) == fit(original)
    for a, b in zip(original.get_weights(), loaded.get_weights()):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------ losses
def test_custom_loss_class_is_found_through_custom_objects_and_trains_on(tmp_path):
    model = regression_model(ScaledMSE(scale=3.0))
    fit(model)
    model.save(tmp_path / "m.keras")
    entry = saved_config(tmp_path / "m.keras")["compile_config"]["loss"]
    assert entry["class_name"] == "ScaledMSE" and entry["registered_name"] == "ScaledMSE"
    assert entry["config"]["scale"] == 3.0

    loaded = load_model(tmp_path / "m.keras", custom_objects={"ScaledMSE": ScaledMSE})
    assert type(loaded.loss) is ScaledMSE and loaded.loss.scale == 3.0
    assert loaded.optimizer.iterations == model.optimizer.iterations
    assert_trains_on_the_same(model, loaded)


def test_custom_loss_function_with_its_gradient_is_found_through_custom_objects(tmp_path):
    model = regression_model(losses.LossFunctionWrapper(cubic_loss, grad_fn=cubic_loss_grad))
    fit(model)
    model.save(tmp_path / "m.keras")
    config = saved_config(tmp_path / "m.keras")["compile_config"]["loss"]["config"]
    # Keras's form for a function: its name, never its code.
    assert config["fn"] == {"module": "builtins", "class_name": "function", "config": "cubic_loss",
                            "registered_name": "function"}
    assert config["grad_fn"]["config"] == "cubic_loss_grad"

    loaded = load_model(tmp_path / "m.keras",
                        custom_objects={"cubic_loss": cubic_loss, "cubic_loss_grad": cubic_loss_grad})
    assert loaded.loss.fn is cubic_loss and loaded.loss.grad_fn is cubic_loss_grad
    assert_trains_on_the_same(model, loaded)

    with pytest.raises(ValueError, match=r"compile_config.loss \(grad_fn\) names the function 'cubic_loss_grad'"):
        load_model(tmp_path / "m.keras", custom_objects={"cubic_loss": cubic_loss})


def test_without_custom_objects_the_error_names_the_missing_object(tmp_path):
    model = regression_model(ScaledMSE())
    model.save(tmp_path / "class.keras")
    with pytest.raises(ValueError) as info:
        load_model(tmp_path / "class.keras")
    assert "'ScaledMSE'" in str(info.value) and "custom_objects" in str(info.value)
    assert "register_keras_serializable" in str(info.value)
    assert load_model(tmp_path / "class.keras", compile=False).layers      # the architecture loads regardless

    regression_model(losses.LossFunctionWrapper(cubic_loss, grad_fn=cubic_loss_grad)).save(tmp_path / "fn.keras")
    with pytest.raises(ValueError, match=r"compile_config.loss \(fn\) names the function 'cubic_loss'.*custom_objects"):
        load_model(tmp_path / "fn.keras")


def test_a_loss_saved_as_a_plain_function_is_traced_and_needs_gpu_dl_ops_to_train(tmp_path):
    # Keras writes `compile(loss=my_function)` as a function entry; gpu_dl traces the function for its gradient,
    # which a function written with NumPy's array methods does not allow.
    model = regression_model(ScaledMSE())
    model.save(tmp_path / "m.keras")

    def keras_style(config):
        config["compile_config"]["loss"] = {"module": "builtins", "class_name": "function", "config": "cubic_loss",
                                            "registered_name": "function"}
    rewrite_config(tmp_path / "m.keras", keras_style)
    loaded = load_model(tmp_path / "m.keras", custom_objects={"cubic_loss": cubic_loss})
    assert loaded.loss.fn is cubic_loss and loaded.loss.traced and loaded.loss.name == "cubic_loss"
    before = loaded.get_weights()
    with pytest.raises(TypeError, match="Loss function 'cubic_loss' cannot be trained.*'KerasTensor' object has no "
                                        "attribute 'mean'.*gpu_dl.ops.*grad_fn"):
        fit(loaded)
    for a, b in zip(before, loaded.get_weights()):       # refused before the step changed anything
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="names the function 'cubic_loss'.*custom_objects"):
        load_model(tmp_path / "m.keras")
    wrapped = losses.LossFunctionWrapper(cubic_loss, grad_fn=cubic_loss_grad)
    assert load_model(tmp_path / "m.keras", custom_objects={"cubic_loss": wrapped}).loss is wrapped
    assert type(load_model(tmp_path / "m.keras", custom_objects={"cubic_loss": ScaledMSE}).loss) is ScaledMSE
    # a function entry naming one of gpu_dl's own losses needs nothing more
    rewrite_config(tmp_path / "m.keras", lambda c: c["compile_config"]["loss"].update(config="mean_squared_error"))
    assert type(load_model(tmp_path / "m.keras").loss) is losses.MeanSquaredError


def test_a_custom_object_of_the_wrong_kind_is_named(tmp_path):
    regression_model(ScaledMSE()).save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="'ScaledMSE', which custom_objects .* gives as .*TwiceDense.*Loss subclass"):
        load_model(tmp_path / "m.keras", custom_objects={"ScaledMSE": TwiceDense})


# ----------------------------------------------------------------------- metrics
def test_custom_metric_function_and_class_round_trip(tmp_path):
    model = regression_model("mse", ["mae", worst_error, ErrorCount(threshold=0.25)])
    fit(model)
    model.save(tmp_path / "m.keras")
    saved = saved_config(tmp_path / "m.keras")["compile_config"]["metrics"]
    assert saved[0] == "mae" and saved[1]["config"] == "worst_error" and saved[2]["class_name"] == "ErrorCount"

    loaded = load_model(tmp_path / "m.keras", custom_objects={"worst_error": worst_error, "ErrorCount": ErrorCount})
    x, y = data()
    assert loaded.evaluate(x, y, verbose=0) == model.evaluate(x, y, verbose=0)
    assert [m.name for m in loaded._metrics] == ["mae", "worst_error", "error_count"]
    assert loaded._metrics[2].threshold == 0.25

    with pytest.raises(ValueError, match=r"compile_config.metrics\[1\] names the function 'worst_error'"):
        load_model(tmp_path / "m.keras", custom_objects={"ErrorCount": ErrorCount})
    with pytest.raises(ValueError, match="'ErrorCount'.*custom_objects"):
        load_model(tmp_path / "m.keras", custom_objects={"worst_error": worst_error})


def test_a_lambda_metric_is_left_out_with_a_warning(tmp_path):
    model = regression_model("mse", [lambda t, p: abs(p - t).mean(axis=-1)])
    with pytest.warns(UserWarning, match="cannot be written down.*lambda"):
        model.save(tmp_path / "m.keras")
    assert saved_config(tmp_path / "m.keras")["compile_config"]["metrics"] is None


# ------------------------------------------------------------------- registration
def test_registered_objects_load_without_custom_objects(tmp_path):
    assert get_registered_name(RegisteredLoss) == "TestPkg>RegisteredLoss"
    assert get_registered_name(registered_metric) == "TestPkg>renamed_metric"
    assert get_registered_object("TestPkg>renamed_metric") is registered_metric
    assert get_registered_name(ScaledMSE) == "ScaledMSE"
    assert gpu_dl.utils.register_keras_serializable is register_keras_serializable

    model = regression_model(RegisteredLoss(scale=1.5), [registered_metric])
    fit(model)
    model.save(tmp_path / "m.keras")
    cc = saved_config(tmp_path / "m.keras")["compile_config"]
    assert cc["loss"]["registered_name"] == "TestPkg>RegisteredLoss"
    assert cc["metrics"][0]["config"] == "TestPkg>renamed_metric"
    loaded = load_model(tmp_path / "m.keras")
    assert type(loaded.loss) is RegisteredLoss and loaded.loss.scale == 1.5
    assert_trains_on_the_same(model, loaded)


def test_register_keras_serializable_arguments():
    with pytest.raises(ValueError, match="get_config"):
        register_keras_serializable()(type("NoConfig", (), {}))
    with pytest.raises(TypeError, match="package"):
        register_keras_serializable(package=3)
    with pytest.raises(TypeError, match="classes and functions"):
        register_keras_serializable()(42)


def test_function_entries_are_what_keras_writes():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from gpu_dl.models.keras_config import function_entry
    assert function_entry(cubic_loss) == keras.saving.serialize_keras_object(cubic_loss)


# ------------------------------------------------------------------------- layers
def test_custom_layer_round_trips_with_custom_objects(tmp_path):
    model = regression_model("mse", first=TwiceDense(6, note="kept", activation="tanh"))
    fit(model)
    model.save(tmp_path / "m.keras")
    entry = saved_config(tmp_path / "m.keras")["config"]["layers"][1]
    assert entry["class_name"] == "TwiceDense" and entry["registered_name"] == "TwiceDense"
    loaded = load_model(tmp_path / "m.keras", custom_objects={"TwiceDense": TwiceDense})
    assert type(loaded.layers[0]) is TwiceDense and loaded.layers[0].note == "kept"
    assert_trains_on_the_same(model, loaded)
    with pytest.raises(ValueError, match="'TwiceDense'.*custom_objects"):
        load_model(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="a layer must be a gpu_dl Layer subclass"):
        load_model(tmp_path / "m.keras", custom_objects={"TwiceDense": ScaledMSE})


def test_a_custom_activation_in_a_built_in_layer_is_refused_with_what_to_do(tmp_path):
    regression_model("mse").save(tmp_path / "m.keras")

    def custom_activation(config):
        config["config"]["layers"][1]["config"]["activation"] = {
            "module": "builtins", "class_name": "function", "config": "my_act", "registered_name": "function"}
    rewrite_config(tmp_path / "m.keras", custom_activation)
    with pytest.raises(ValueError, match="`activation` names 'my_act'.*gpu_dl's own activations.*gradient"):
        load_model(tmp_path / "m.keras", custom_objects={"my_act": numpy.tanh})
    with pytest.raises(ValueError, match="my_act"):
        load_model(tmp_path / "m.keras")


# -------------------------------------------------------------------- optimizers
class SlowAdam(optimizers.Adam):
    pass


def test_custom_optimizer_subclass_is_found_through_custom_objects(tmp_path):
    model = regression_model("mse")
    model.compile(optimizer=SlowAdam(0.003), loss="mse")
    fit(model)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", custom_objects={"SlowAdam": SlowAdam})
    assert type(loaded.optimizer) is SlowAdam
    assert_trains_on_the_same(model, loaded)
    with pytest.raises(ValueError, match="'SlowAdam'"):
        load_model(tmp_path / "m.keras")


# ------------------------------------------------------------ nothing is executed
@pytest.mark.parametrize("where", ["loss", "metric", "fn", "layer"])
def test_names_in_a_file_are_never_imported_or_called(where, tmp_path):
    sentinel = tmp_path / "ran"
    regression_model(losses.LossFunctionWrapper(cubic_loss, grad_fn=cubic_loss_grad), ["mae"]).save(
        tmp_path / "m.keras")
    command = {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"}
    foreign = {"module": "gpu_dl_never_imported_module", "class_name": "Payload",
               "config": {"cmd": f"touch {sentinel}"}, "registered_name": "Payload"}

    def edit(config):
        cc = config["compile_config"]
        if where == "loss":
            cc["loss"] = command
        elif where == "metric":
            cc["metrics"] = [foreign]
        elif where == "fn":
            cc["loss"]["config"]["fn"] = command
        else:
            config["config"]["layers"][1] = foreign
    rewrite_config(tmp_path / "m.keras", edit)
    with pytest.raises(ValueError, match="'system'|'Payload'"):
        load_model(tmp_path / "m.keras", custom_objects={"cubic_loss": cubic_loss, "cubic_loss_grad": cubic_loss_grad})
    assert not sentinel.exists()
    assert "gpu_dl_never_imported_module" not in sys.modules


def test_custom_objects_must_map_names_to_classes_or_functions(tmp_path):
    regression_model("mse").save(tmp_path / "m.keras")
    with pytest.raises(TypeError, match="custom_objects must be a dict from the names"):
        load_model(tmp_path / "m.keras", custom_objects={ScaledMSE: ScaledMSE})
    with pytest.raises(TypeError, match=r"custom_objects\['x'\] is 3"):
        load_model(tmp_path / "m.keras", custom_objects={"x": 3})
    assert os.path.exists(tmp_path / "m.keras")
