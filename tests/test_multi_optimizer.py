"""MultiOptimizer and OptimizerMap: each variable updated exactly as its own optimizer alone updates it (and as
NumPy's formulas say), the map's matching rules and refusals, the config and the saved state, and a short fit
against Keras 3's MultiOptimizer where Keras is installed."""
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import backend
from gpu_dl.layers.base import Variable
from gpu_dl.optimizers import SGD, Adam, LossScaleOptimizer, MultiOptimizer, OptimizerMap, RMSprop


def host(a):
    return numpy.asarray(backend.to_numpy(a))


def make_variables(xp, rng, paths=("enc/kernel", "enc/bias", "dec/kernel", "dec/bias"),
                   shapes=((3, 5), (5,), (5, 1), (1,))):
    return [Variable(xp.asarray(rng.standard_normal(s).astype("float32")), p.split("/")[1], path=p)
            for p, s in zip(paths, shapes)]


def twins(variables):
    module = backend.array_module(variables[0].value)
    return [Variable(module.asarray(host(v.value).copy()), v.name, path=v.path) for v in variables]


def test_each_variable_updated_as_its_own_optimizer_alone_and_as_numpy(xp, rng):
    variables = make_variables(xp, rng)
    adam, sgd = Adam(0.01), SGD(0.1, momentum=0.9)
    multi = MultiOptimizer(OptimizerMap(sgd, {"enc/.*": adam}))
    assert multi.optimizers == [adam, sgd]
    alone = twins(variables)
    adam_alone, sgd_alone = Adam(0.01), SGD(0.1, momentum=0.9)
    expected = [host(v.value).astype("float64") for v in variables]
    m = [numpy.zeros_like(e) for e in expected]
    v2 = [numpy.zeros_like(e) for e in expected]
    for step in range(1, 4):
        grads = [rng.standard_normal(v.shape).astype("float32") for v in variables]
        assert multi.apply([xp.asarray(g) for g in grads], variables) is None and int(multi.iterations) == step
        adam_alone.apply([xp.asarray(g) for g in grads[:2]], alone[:2])
        sgd_alone.apply([xp.asarray(g) for g in grads[2:]], alone[2:])
        for i, g in enumerate(grads):
            if i < 2:       # Keras's Adam
                m[i] += (g - m[i]) * 0.1
                v2[i] += (g * g - v2[i]) * 0.001
                alpha = 0.01 * numpy.sqrt(1 - 0.999 ** step) / (1 - 0.9 ** step)
                expected[i] -= alpha * m[i] / (numpy.sqrt(v2[i]) + 1e-7)
            else:           # Keras's SGD with momentum
                m[i] = 0.9 * m[i] - 0.1 * g
                expected[i] += m[i]
    for var, twin, e in zip(variables, alone, expected):
        numpy.testing.assert_array_equal(host(var.value), host(twin.value))
        numpy.testing.assert_allclose(host(var.value), e, rtol=1e-5, atol=1e-6)
    assert multi.iterations == 3 and adam.iterations == 3 and sgd.iterations == 3
    numpy.testing.assert_array_equal(host(multi.get_slot(variables[0], "momentum")),
                                     host(adam_alone.get_slot(alone[0], "momentum")))
    numpy.testing.assert_array_equal(host(multi.get_slot(variables[2], "momentum")),
                                     host(sgd_alone.get_slot(alone[2], "momentum")))
    assert multi.optimizer_of(variables[1]) is adam and multi.optimizer_of(variables[3]) is sgd


def test_a_callable_map_and_the_order_of_the_optimizers(xp, rng):
    variables = make_variables(xp, rng)
    made = {}

    def choose(variable):
        # A new optimizer for each layer, as the callable of Keras's docstring makes them.
        key = variable.path.split("/")[0]
        if key not in made:
            made[key] = RMSprop(0.01) if key == "dec" else SGD(0.05)
        return made[key]

    multi = MultiOptimizer(choose)
    assert multi.optimizers == []
    multi.build(variables)
    assert multi.optimizers == [made["enc"], made["dec"]]
    alone = twins(variables)
    grads = [rng.standard_normal(v.shape).astype("float32") for v in variables]
    multi.apply([xp.asarray(g) for g in grads], variables)
    SGD(0.05).apply([xp.asarray(g) for g in grads[:2]], alone[:2])
    RMSprop(0.01).apply([xp.asarray(g) for g in grads[2:]], alone[2:])
    for var, twin in zip(variables, alone):
        numpy.testing.assert_array_equal(host(var.value), host(twin.value))


def test_loss_scale_factor_goes_to_every_inner_optimizer(xp, rng):
    variables = make_variables(xp, rng)
    adam, sgd = Adam(0.01, loss_scale_factor=2.0), SGD(0.1)
    multi = MultiOptimizer(OptimizerMap(sgd, {"enc/.*": adam}), loss_scale_factor=4.0)
    assert adam.loss_scale_factor == 4.0 and sgd.loss_scale_factor == 4.0
    multi.loss_scale_factor = 8.0
    assert adam.loss_scale_factor == 8.0 and sgd.loss_scale_factor == 8.0 and multi.scale_loss(1.5) == 12.0
    alone = twins(variables)
    grads = [rng.standard_normal(v.shape).astype("float32") for v in variables]
    multi.apply([xp.asarray(g) for g in grads], variables)
    Adam(0.01).apply([xp.asarray(g / 8) for g in grads[:2]], alone[:2])      # divided once, not twice
    SGD(0.1).apply([xp.asarray(g / 8) for g in grads[2:]], alone[2:])
    for var, twin in zip(variables, alone):
        numpy.testing.assert_allclose(host(var.value), host(twin.value), rtol=1e-6, atol=1e-7)


def test_optimizer_map_matching():
    adam, sgd, rms = Adam(), SGD(), RMSprop()
    mapping = OptimizerMap(default_optimizer=rms)
    mapping["encoder/layer_0/dense"] = adam
    mapping["encoder/.*"] = sgd
    mapping["decoder"] = adam
    assert mapping["decoder"] is adam
    assert mapping["encoder/layer_0/dense"] is adam          # an exact key first
    assert mapping["encoder/layer_0/attention/query"] is sgd
    assert mapping["decoder/layer_0/dense"] is rms           # a key matches the whole path, not a prefix
    assert len(mapping) == 3 and list(mapping) == ["encoder/layer_0/dense", "encoder/.*", "decoder"]
    mapping["enc.*"] = rms
    with pytest.raises(ValueError, match="Multiple optimizers assigned to variable encoder/x"):
        mapping["encoder/x"]
    del mapping["enc.*"]
    assert mapping["encoder/x"] is sgd


def test_bad_maps_and_uses_are_refused(rng):
    with pytest.raises(TypeError, match="default_optimizer"):
        OptimizerMap("sgd")
    with pytest.raises(TypeError, match="optimizer_map"):
        OptimizerMap(SGD(), [("a", Adam())])
    mapping = OptimizerMap(SGD(), {"a": Adam()})
    with pytest.raises(ValueError, match="already exists"):
        mapping["a"] = Adam()
    with pytest.raises(ValueError, match="key must be a string"):
        mapping[3] = Adam()
    with pytest.raises(ValueError, match="must be an Optimizer instance"):
        mapping["b"] = "adam"
    with pytest.raises(ValueError, match="LossScaleOptimizer cannot be used inside"):
        mapping["b"] = LossScaleOptimizer(Adam())
    with pytest.raises(ValueError, match="MultiOptimizer cannot be used inside"):
        mapping["b"] = MultiOptimizer(OptimizerMap(SGD()))
    with pytest.raises(TypeError, match="`optimizer_map` must be an OptimizerMap or a callable"):
        MultiOptimizer("adam")
    multi = MultiOptimizer(mapping)
    with pytest.raises(AttributeError, match="cannot be accessed on a MultiOptimizer"):
        multi.learning_rate
    with pytest.raises(AttributeError, match="cannot be set on a MultiOptimizer"):
        multi.learning_rate = 0.1
    variables = make_variables(numpy, rng)
    before = [v.value.copy() for v in variables]
    bad = MultiOptimizer(lambda v: Adam() if v.path.startswith("enc") else "sgd")
    with pytest.raises(ValueError, match="the optimizer for variable 'dec/kernel' is 'sgd', not an Optimizer"):
        bad.apply([numpy.ones(v.shape, "float32") for v in variables], variables)
    with pytest.raises(ValueError, match="has shape"):
        multi.apply([numpy.ones((2, 2), "float32")] * 4, variables)
    for v, b in zip(variables, before):          # a refused step changes nothing
        numpy.testing.assert_array_equal(v.value, b)
    assert multi.iterations == 0 and bad.iterations == 0


def test_config_round_trip_and_catalogue():
    multi = MultiOptimizer(OptimizerMap(SGD(0.1, name="plain"), {"enc/.*": Adam(0.01, name="fast")}),
                           loss_scale_factor=2.0, name="both")
    config = multi.get_config()
    assert config["name"] == "both" and config["loss_scale_factor"] == 2.0
    assert config["optimizer_map"]["class_name"] == "OptimizerMap"
    assert config["optimizer_map"]["config"]["optimizer_map"]["enc/.*"]["class_name"] == "Adam"
    written = gpu_dl.optimizers.serialize(multi)
    assert written["module"] == "keras.optimizers" and written["class_name"] == "MultiOptimizer"
    back = gpu_dl.optimizers.deserialize(written)
    assert isinstance(back, MultiOptimizer) and back.name == "both" and back.loss_scale_factor == 2.0
    assert [(type(o).__name__, o.name, o.learning_rate) for o in back.optimizers] == \
        [("Adam", "fast", pytest.approx(0.01)), ("SGD", "plain", pytest.approx(0.1))]
    assert back.get_config() == config

    def unnamed_choice(variable):
        return SGD()
    with pytest.raises(ValueError, match="cannot be written"):
        MultiOptimizer(lambda v: SGD()).get_config()
    named = MultiOptimizer(unnamed_choice).get_config()
    assert named["optimizer_map"] == {"module": "builtins", "class_name": "function", "config": "unnamed_choice",
                                      "registered_name": "function"}
    with gpu_dl.saving.custom_object_scope({"unnamed_choice": unnamed_choice}):
        assert gpu_dl.optimizers.deserialize(gpu_dl.optimizers.serialize(
            MultiOptimizer(unnamed_choice)))._optimizer_map is unnamed_choice


def two_layer_model(lib, seed=3):
    inputs = lib.Input((4,))
    hidden = lib.layers.Dense(6, activation="tanh", name="enc")(inputs)
    model = lib.Model(inputs, lib.layers.Dense(2, name="dec")(hidden))
    rng = numpy.random.default_rng(seed)
    model.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in model.get_weights()])
    return model


def multi_for(lib):
    return lib.optimizers.MultiOptimizer(lib.optimizers.OptimizerMap(
        lib.optimizers.SGD(0.05, momentum=0.5), {"enc/.*": lib.optimizers.Adam(0.01)}))


@pytest.mark.parametrize("suffix", [".keras", ".weights.h5"])
def test_save_and_load_keep_the_optimizers_state(xp, tmp_path, suffix):
    rng = numpy.random.default_rng(0)
    x, y = rng.standard_normal((16, 4)).astype("float32"), rng.standard_normal((16, 2)).astype("float32")
    model = two_layer_model(gpu_dl)
    model.compile(optimizer=multi_for(gpu_dl), loss="mse")
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    path = tmp_path / f"m{suffix}"
    if suffix == ".keras":
        model.save(path)
        loaded = gpu_dl.models.load_model(path)
    else:
        model.save_weights(path)
        loaded = two_layer_model(gpu_dl, seed=9)
        loaded.compile(optimizer=multi_for(gpu_dl), loss="mse")
        loaded.load_weights(path)
    assert isinstance(loaded.optimizer, MultiOptimizer) and loaded.optimizer.iterations == 4
    assert [o.iterations for o in loaded.optimizer.optimizers] == [4, 4]
    for a, b in zip(loaded.optimizer._keras_arrays(), model.optimizer._keras_arrays()):
        numpy.testing.assert_array_equal(a, b)
    assert loaded.train_on_batch(x[:4], y[:4]) == pytest.approx(model.train_on_batch(x[:4], y[:4]), rel=1e-6)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- Keras 3 as the oracle

@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def test_same_fit_and_files_as_keras(keras, tmp_path, on_cpu):
    rng = numpy.random.default_rng(1)
    x, y = rng.standard_normal((24, 4)).astype("float32"), rng.standard_normal((24, 2)).astype("float32")
    ours, theirs = two_layer_model(gpu_dl), two_layer_model(keras)
    assert [w.path for w in ours.trainable_weights] == [w.path for w in theirs.trainable_weights]
    ours.compile(optimizer=multi_for(gpu_dl), loss="mse")
    theirs.compile(optimizer=multi_for(keras), loss="mse")
    mine = ours.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0).history["loss"]
    reference = theirs.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0).history["loss"]
    numpy.testing.assert_allclose(mine, reference, rtol=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    # The optimizer's variables in Keras's order: its own iteration and learning rate, then Adam's and SGD's.
    keras_values = [numpy.asarray(v.numpy()) for v in theirs.optimizer.variables]
    our_values = ours.optimizer._keras_arrays()
    assert [a.shape for a in our_values] == [a.shape for a in keras_values]
    for a, b in zip(our_values, keras_values):
        numpy.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6)
    # The configs agree, and each library reads the other's file into a MultiOptimizer of the same map.
    assert gpu_dl.optimizers.serialize(ours.optimizer)["config"]["optimizer_map"]["config"]["optimizer_map"].keys() \
        == keras.optimizers.serialize(theirs.optimizer)["config"]["optimizer_map"]["config"]["optimizer_map"].keys()
    ours.save(tmp_path / "g.keras")
    theirs.save(tmp_path / "k.keras")
    from_ours = keras.models.load_model(tmp_path / "g.keras")
    assert type(from_ours.optimizer).__name__ == "MultiOptimizer"
    assert [type(o).__name__ for o in from_ours.optimizer.optimizers] == ["Adam", "SGD"]
    from_theirs = gpu_dl.models.load_model(tmp_path / "k.keras")
    assert isinstance(from_theirs.optimizer, MultiOptimizer)
    assert [type(o).__name__ for o in from_theirs.optimizer.optimizers] == ["Adam", "SGD"]
    numpy.testing.assert_allclose(from_theirs.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5,
                                  atol=1e-6)
    # Unlike Keras (which skips a MultiOptimizer's saved variables when it loads them), gpu_dl restores them.
    assert from_theirs.optimizer.iterations == 8
    for a, b in zip(from_theirs.optimizer._keras_arrays(), keras_values):
        numpy.testing.assert_allclose(a, b, rtol=1e-6)
    lines = {"ours": [], "theirs": []}
    ours.summary(print_fn=lambda line, *a, **k: lines["ours"].append(line))
    theirs.summary(print_fn=lambda line, *a, **k: lines["theirs"].append(line))
    counts = [[line for line in "\n".join(lines[who]).splitlines() if "Optimizer params" in line]
              for who in ("ours", "theirs")]
    assert counts[0] == counts[1] and len(counts[0]) == 1
