"""``custom_object_scope`` / ``CustomObjectScope``: inside the block, loading finds the given objects by name as
Keras 3 does; the scope before comes back on exit, even by an exception; the precedence between the registry,
the scope and ``custom_objects`` is Keras 3.15's (checked against Keras itself where it is installed)."""
import os
import threading

import numpy
import pytest

import gpu_dl
from gpu_dl import backend, layers, losses, optimizers
from gpu_dl.catalogue import scoped_custom_objects
from gpu_dl.models import Sequential, load_model
from gpu_dl.saving import CustomObjectScope, custom_object_scope, get_custom_objects, get_registered_object


class NotedDense(layers.Dense):
    """A layer of the caller's own: a Dense with one more argument."""

    def __init__(self, units, note="x", **kwargs):
        super().__init__(units, **kwargs)
        self.note = note

    def get_config(self):
        return {**super().get_config(), "note": self.note}


class HalfMSE(losses.Loss):
    """``mean((y_pred - y_true)**2) / 2`` with its gradient."""

    def call(self, y_true, y_pred):
        return 0.5 * ((y_pred - y_true) ** 2).mean(axis=-1)

    def grad(self, y_true, y_pred):
        return (y_pred - y_true) / y_pred.shape[-1]


class SlowAdam(optimizers.Adam):
    pass


def _data(n=8):
    rng = numpy.random.default_rng(0)
    return rng.standard_normal((n, 4)).astype("float32"), rng.standard_normal((n, 2)).astype("float32")


@pytest.fixture
def saved(tmp_path):
    """A compiled, trained model with a custom layer, loss and optimizer, saved: (path, model)."""
    backend.set_random_seed(0)
    model = Sequential([layers.Input((4,)), NotedDense(3, note="kept", activation="tanh"), layers.Dense(2)])
    model.compile(optimizer=SlowAdam(0.01), loss=HalfMSE())
    model.fit(*_data(), epochs=1, batch_size=4, verbose=0)
    model.save(tmp_path / "m.keras")
    return tmp_path / "m.keras", model


ALL = {"NotedDense": NotedDense, "HalfMSE": HalfMSE, "SlowAdam": SlowAdam}


def test_a_model_with_custom_objects_loads_only_inside_the_scope(saved):
    path, model = saved
    with pytest.raises(ValueError, match="'NotedDense'.*custom_objects.*register_keras_serializable"):
        load_model(path)
    with custom_object_scope(ALL) as scope:
        assert isinstance(scope, CustomObjectScope)
        loaded = load_model(path)
    assert type(loaded.layers[0]) is NotedDense and loaded.layers[0].note == "kept"
    assert type(loaded.loss) is HalfMSE and type(loaded.optimizer) is SlowAdam
    assert loaded.optimizer.iterations == model.optimizer.iterations == 2
    x, y = _data()
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    with pytest.raises(ValueError, match="'NotedDense'.*custom_objects"):     # the scope has ended
        load_model(path)


def test_the_compiled_objects_are_looked_up_in_the_scope_too(saved):
    path, _ = saved
    with custom_object_scope({"NotedDense": NotedDense}):
        assert type(load_model(path, compile=False).layers[0]) is NotedDense
        with pytest.raises(ValueError, match="'SlowAdam'.*custom_objects"):
            load_model(path)
    with custom_object_scope({"NotedDense": NotedDense, "SlowAdam": SlowAdam}):
        with pytest.raises(ValueError, match="'HalfMSE'.*custom_objects"):
            load_model(path)
        # the scope and custom_objects together
        assert type(load_model(path, custom_objects={"HalfMSE": HalfMSE}).loss) is HalfMSE


def test_a_functional_model_with_a_custom_layer_loads_inside_the_scope(tmp_path):
    inputs = layers.Input((4,), name="x")
    model = gpu_dl.Model(inputs, layers.Add()([NotedDense(3, name="a")(inputs), NotedDense(3, name="b")(inputs)]))
    model.save(tmp_path / "f.keras")
    with pytest.raises(ValueError, match="'NotedDense'"):
        load_model(tmp_path / "f.keras")
    with CustomObjectScope({"NotedDense": NotedDense}):
        loaded = load_model(tmp_path / "f.keras")
    assert [type(l) for l in loaded.layers[1:3]] == [NotedDense, NotedDense]
    x, _ = _data()
    numpy.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_the_catalogues_deserialize_in_the_scope():
    config = optimizers.serialize(SlowAdam(0.003))
    with pytest.raises(ValueError, match="SlowAdam"):
        optimizers.deserialize(config)
    with custom_object_scope({"SlowAdam": SlowAdam}):
        rebuilt = optimizers.deserialize(config)
    assert type(rebuilt) is SlowAdam and rebuilt.learning_rate == pytest.approx(0.003)
    with custom_object_scope({"HalfMSE": HalfMSE}):
        assert type(losses.deserialize(losses.serialize(HalfMSE()))) is HalfMSE


def test_the_catalogues_deserialize_registered_classes_and_functions_without_a_scope():
    """As Keras's deserialize: a config's registered name is looked up in the registry, which a scope's object of
    the same name overrides; a function config gives back the registered function."""
    @gpu_dl.saving.register_keras_serializable(package="ScopeTests")
    class TenthL2(gpu_dl.regularizers.L2):
        pass

    @gpu_dl.saving.register_keras_serializable(package="ScopeTests")
    def doubled_error(y_true, y_pred):
        return 2 * ((y_pred - y_true) ** 2).mean(axis=-1)

    config = gpu_dl.regularizers.serialize(TenthL2(0.1))
    assert config["registered_name"] == "ScopeTests>TenthL2"
    rebuilt = gpu_dl.regularizers.deserialize(config)
    assert type(rebuilt) is TenthL2 and rebuilt.l2 == pytest.approx(0.1)

    class Other(gpu_dl.regularizers.L2):
        pass
    with custom_object_scope({"ScopeTests>TenthL2": Other}):
        assert type(gpu_dl.regularizers.deserialize(config)) is Other       # the scope first, as in Keras

    function_config = {"module": None, "class_name": "function", "config": "doubled_error",
                       "registered_name": "ScopeTests>doubled_error"}
    assert losses.deserialize(function_config) is doubled_error
    unknown = dict(function_config, config="missing", registered_name="ScopeTests>missing")
    with pytest.raises(ValueError, match="function 'missing'.*neither registered"):
        losses.deserialize(unknown)
    with custom_object_scope({"missing": doubled_error}):
        assert losses.deserialize(unknown) is doubled_error


# ------------------------------------------------------------------ entering and leaving
def test_exit_restores_the_scope_before_even_after_an_exception():
    outer = {"NotedDense": NotedDense}
    with custom_object_scope(outer):
        with pytest.raises(RuntimeError, match="inside"):
            with custom_object_scope({"HalfMSE": HalfMSE}):
                assert get_registered_object("HalfMSE") is HalfMSE
                raise RuntimeError("inside")
        assert scoped_custom_objects() == outer
        assert get_registered_object("HalfMSE") is None
    assert scoped_custom_objects() == {} and get_registered_object("NotedDense") is None


def test_a_nested_scope_replaces_the_outer_one_until_it_exits(saved):
    """As in Keras 3.15 (test_scope_semantics_match_keras checks it there): the scopes are not merged."""
    path, _ = saved
    with custom_object_scope({"NotedDense": NotedDense, "HalfMSE": HalfMSE, "SlowAdam": SlowAdam}):
        with custom_object_scope({"Unrelated": SlowAdam}):
            assert get_registered_object("NotedDense") is None and get_registered_object("Unrelated") is SlowAdam
            with pytest.raises(ValueError, match="'NotedDense'"):
                load_model(path)
        assert type(load_model(path).layers[0]) is NotedDense
        assert get_registered_object("Unrelated") is None


def test_one_scope_object_may_be_entered_again_inside_itself():
    scope = custom_object_scope({"NotedDense": NotedDense})
    with scope:
        with custom_object_scope({"HalfMSE": HalfMSE}):
            with scope:
                assert scoped_custom_objects() == {"NotedDense": NotedDense}
            assert scoped_custom_objects() == {"HalfMSE": HalfMSE}
        assert scoped_custom_objects() == {"NotedDense": NotedDense}
    assert scoped_custom_objects() == {}


def test_the_scope_holds_a_copy_and_stays_out_of_the_registry():
    given = {"NotedDense": NotedDense}
    with custom_object_scope(given):
        given["HalfMSE"] = HalfMSE                   # a change after the scope was made is not seen
        assert get_registered_object("HalfMSE") is None
        assert "NotedDense" not in get_custom_objects()
    with custom_object_scope(None):
        assert scoped_custom_objects() == {}


def test_the_scope_belongs_to_the_thread_that_entered_it():
    seen = []
    with custom_object_scope({"NotedDense": NotedDense}):
        worker = threading.Thread(target=lambda: seen.append(get_registered_object("NotedDense")))
        worker.start()
        worker.join()
        assert get_registered_object("NotedDense") is NotedDense
    assert seen == [None]


def test_bad_scopes_are_refused_when_made_and_change_nothing():
    with custom_object_scope({"NotedDense": NotedDense}):
        with pytest.raises(TypeError, match="custom_object_scope: custom_objects must be a dict from the names"):
            custom_object_scope([NotedDense])
        with pytest.raises(TypeError, match="must be a dict"):
            CustomObjectScope({NotedDense: NotedDense})
        with pytest.raises(TypeError, match=r"custom_object_scope: custom_objects\['x'\] is 3: give the class"):
            custom_object_scope({"x": 3})
        assert scoped_custom_objects() == {"NotedDense": NotedDense}


def test_the_keras_names_are_there():
    assert gpu_dl.saving.custom_object_scope is gpu_dl.saving.CustomObjectScope is CustomObjectScope
    assert gpu_dl.utils.custom_object_scope is gpu_dl.utils.CustomObjectScope is CustomObjectScope


# ------------------------------------------------------------------ precedence
def _tagged(base, tag):
    """A subclass of ``base`` named ``MyLayer`` that says where it came from."""
    return type("MyLayer", (base,), {"TAG": tag, "__module__": __name__})


def _precedence(lib, load, path, scope, registry):
    """Which of (argument, scope, registry) each way of giving ``MyLayer`` loads, and ``get_registered_object``'s
    answer inside a scope: the outcomes Keras and gpu_dl must agree on."""
    argument, scoped, registered = (_tagged(lib.layers.Dense, tag) for tag in ("argument", "scope", "registry"))

    def loaded(**kwargs):
        try:
            return type(load(path, **kwargs).layers[0]).TAG
        except (TypeError, ValueError):
            return "error"

    outcomes = {"argument": loaded(custom_objects={"MyLayer": argument})}
    with scope({"MyLayer": scoped}):
        outcomes["scope"] = loaded()
        outcomes["scope, argument"] = loaded(custom_objects={"MyLayer": argument})
        with scope({"Other": argument}):
            outcomes["nested scope"] = loaded()
    outcomes["after the scope"] = loaded()
    registry["MyLayer"] = registered
    try:
        outcomes["registry, argument"] = loaded(custom_objects={"MyLayer": argument})
        with scope({"MyLayer": scoped}):
            outcomes["registry, scope"] = loaded()
            outcomes["registry, scope, argument"] = loaded(custom_objects={"MyLayer": argument})
            outcomes["get_registered_object"] = lib.saving.get_registered_object("MyLayer").TAG
    finally:
        del registry["MyLayer"]
    return outcomes


def test_precedence_of_registry_scope_and_custom_objects(tmp_path):
    Sequential([layers.Input((3,)), _tagged(layers.Dense, "saved")(2)]).save(tmp_path / "m.keras")
    outcomes = _precedence(gpu_dl, load_model, tmp_path / "m.keras", custom_object_scope, get_custom_objects())
    assert outcomes == {"argument": "argument", "scope": "scope", "scope, argument": "scope",
                        "nested scope": "error", "after the scope": "error",
                        "registry, argument": "registry", "registry, scope": "registry",
                        "registry, scope, argument": "registry", "get_registered_object": "scope"}


def test_scope_semantics_match_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    assert keras.saving.custom_object_scope is keras.utils.custom_object_scope
    keras.Sequential([keras.Input((3,)), _tagged(keras.layers.Dense, "saved")(2)]).save(tmp_path / "k.keras")
    theirs = _precedence(keras, keras.models.load_model, tmp_path / "k.keras", keras.saving.custom_object_scope,
                         keras.saving.get_custom_objects())
    Sequential([layers.Input((3,)), _tagged(layers.Dense, "saved")(2)]).save(tmp_path / "g.keras")
    ours = _precedence(gpu_dl, load_model, tmp_path / "g.keras", custom_object_scope, get_custom_objects())
    assert ours == theirs
