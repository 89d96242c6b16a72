"""clone_model, to_json / model_from_json and models.save_model: same architecture and configs, new weights (which
give the same outputs once copied), clone_function / call_function / input_tensors / recursive, compile settings,
and the refused arguments."""
import json

import numpy
import pytest

import gpu_dl
from gpu_dl import layers
from gpu_dl.models import Functional, Sequential, clone_model, load_model, model_from_json, save_model
from gpu_dl.saving import register_keras_serializable


def sequential(name="seq"):
    return Sequential([gpu_dl.Input((4,), name="x_in"), layers.Dense(3, activation="relu", name="d1"),
                       layers.Dropout(0.2, name="drop"), layers.Dense(2, name="d2")], name=name)


def siamese():
    a, b = gpu_dl.Input((4,), name="a"), gpu_dl.Input((4,), name="b")
    shared = layers.Dense(3, name="shared")
    out = layers.Add(name="merge")([shared(a), shared(b)]) * 2.0 + 1.0
    return gpu_dl.Model([a, b], layers.Dense(1, name="head")(out), name="siamese")


def nested():
    inner = Sequential([gpu_dl.Input((4,)), layers.Dense(5, name="inner_dense")], name="inner")
    x = gpu_dl.Input((4,), name="outer_in")
    return gpu_dl.Model(x, layers.Dense(1, name="out")(inner(x)), name="outer"), inner


def layer_configs(model):
    return [(type(layer).__name__, layer.get_config()) for layer in model.layers]


@pytest.mark.parametrize("make", [sequential, siamese])
def test_clone_has_same_architecture_and_new_weights(make):
    model = make()
    clone = clone_model(model)
    assert type(clone) is type(model) and clone.name == model.name
    assert layer_configs(clone) == layer_configs(model)
    assert json.loads(clone.to_json()) == json.loads(model.to_json())
    assert not any(a is b for a in clone.layers for b in model.layers)
    ours, theirs = clone.get_weights(), model.get_weights()
    assert [w.shape for w in ours] == [w.shape for w in theirs]
    assert not numpy.allclose(ours[0], theirs[0])      # freshly initialised, as Keras: not copied
    clone.set_weights(theirs)
    x = numpy.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    x = [x, x[::-1].copy()] if isinstance(model, Functional) else x
    numpy.testing.assert_allclose(clone.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6)


def test_shared_layer_is_cloned_once_and_called_twice():
    clone = clone_model(siamese())
    shared = clone.get_layer("shared")
    assert len([layer for layer in clone.layers if layer.name == "shared"]) == 1
    assert len([n for n in shared._inbound_nodes if n in clone._node_set]) == 2


def test_operations_with_settings_are_made_again_from_their_configs():
    """ops with required settings (reshape's shape, max_pool's window, pad's constant_values keyword, rearrange's
    pattern) are made again from their configs: new objects, the same configs, the same outputs."""
    from gpu_dl import ops
    from gpu_dl.layers.operations import Operation
    x = gpu_dl.Input((4, 6), name="x")
    y = ops.reshape(layers.Dense(6, name="d")(ops.reshape(x, (-1, 24))), (-1, 2, 3, 1))
    y = ops.max_pool(y, 2, padding="same")
    z = ops.sum(ops.sort(ops.pad(x, [[0, 0], [1, 1], [0, 0]], constant_values=2.0), axis=1), axis=(1, 2))
    w = ops.cumprod(ops.tanh(ops.rearrange(x, "b h w -> b w h")), axis=-1)
    model = gpu_dl.Model(x, [y, z, w])
    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    pairs = [(a, b) for a, b in zip(model._operations, clone._operations) if isinstance(a, Operation)]
    assert len(pairs) == 9 and all(a is not b and a.get_config() == b.get_config() for a, b in pairs)
    data = numpy.random.default_rng(0).normal(size=(3, 4, 6)).astype("float32")
    for ours, theirs in zip(model.predict(data, verbose=0), clone.predict(data, verbose=0)):
        numpy.testing.assert_array_equal(ours, theirs)


def test_compiled_model_clone_is_compiled_alike():
    model = sequential()
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    clone = clone_model(model)
    assert clone.compiled and clone.optimizer is not model.optimizer
    assert type(clone.optimizer).__name__ == "Adam" and clone.optimizer.get_config() == model.optimizer.get_config()
    clone.fit(numpy.ones((4, 4), "float32"), numpy.ones((4, 2), "float32"), verbose=0)
    assert not clone_model(sequential()).compiled


def test_clone_function_is_applied_per_layer():
    seen = []

    def fn(layer):
        seen.append(layer.name)
        config = layer.get_config()
        if isinstance(layer, layers.Dropout):
            config["rate"] = 0.5
        return type(layer).from_config(config)

    clone = clone_model(sequential(), clone_function=fn)
    assert seen == ["d1", "drop", "d2"]
    assert clone.get_layer("drop").rate == 0.5
    # an identity clone_function shares the layers (and weights), as in Keras
    model = siamese()
    same = clone_model(model, clone_function=lambda layer: layer)
    assert same.get_layer("shared") is model.get_layer("shared")


def test_call_function_adds_layers_after_calls():
    model, _ = nested()

    def call_function(layer, *args, **kwargs):
        out = layer(*args, **kwargs)
        return layers.Dropout(0.5)(out) if isinstance(layer, layers.Dense) else out

    clone = clone_model(model, call_function=call_function)
    assert [type(layer).__name__ for layer in clone.layers] == ["InputLayer", "Sequential", "Dense", "Dropout"]


def test_input_tensors():
    new_in = gpu_dl.Input((4,), name="fresh")
    clone = clone_model(sequential(), input_tensors=new_in)
    assert clone._input_layer is new_in._keras_history.operation
    a, b = gpu_dl.Input((4,), name="p"), gpu_dl.Input((4,), name="q")
    clone = clone_model(siamese(), input_tensors=[a, b])
    assert clone.inputs == [a, b]
    with pytest.raises(ValueError, match="same structure as model.input"):
        clone_model(siamese(), input_tensors=[a])
    with pytest.raises(ValueError, match="must be KerasTensors"):
        clone_model(siamese(), input_tensors=[a, numpy.ones((1, 4))])
    with pytest.raises(ValueError, match="single tensor"):
        clone_model(sequential(), input_tensors=[a, b])
    with pytest.raises(ValueError, match="must be a KerasTensor"):
        clone_model(sequential(), input_tensors=numpy.ones((1, 4)))


def test_recursive_clones_inner_models():
    model, inner = nested()
    flat = clone_model(model)
    assert isinstance(flat.layers[1], Sequential) and flat.layers[1] is not inner
    seen = []
    deep = clone_model(model, recursive=True, clone_function=lambda l: seen.append(l.name) or type(l).from_config(
        l.get_config()))
    assert "inner_dense" in seen and "inner" not in seen
    assert deep.layers[1] is not inner and deep.layers[1].layers[0] is not inner.layers[0]
    assert [l.name for l in deep.layers[1].layers] == ["inner_dense"]


def test_unbuilt_sequential_and_custom_layer():
    @register_keras_serializable(package="CloneTest")
    class Scale(layers.Layer):
        def __init__(self, factor=2.0, **kwargs):
            super().__init__(**kwargs)
            self.factor = factor

        def call(self, x, training=None):
            return x * self.factor

        def get_config(self):
            return {**super().get_config(), "factor": self.factor}

    model = Sequential([layers.Dense(3), Scale(3.0)])
    clone = clone_model(model)
    assert not clone.built and isinstance(clone.layers[1], Scale) and clone.layers[1].factor == 3.0


def test_refusals_name_the_argument():
    with pytest.raises(TypeError, match="`model`"):
        clone_model(layers.Dense(2))
    with pytest.raises(ValueError, match="clone_function"):
        clone_model(sequential(), clone_function=3)
    with pytest.raises(ValueError, match="call_function"):
        clone_model(sequential(), call_function=lambda layer, *a, **k: layer(*a, **k))
    with pytest.raises(ValueError, match="unexpected keyword"):
        clone_model(sequential(), copy_weights=True)
    with pytest.raises(TypeError, match="clone_function"):
        clone_model(sequential(), clone_function=lambda layer: None)

    class Custom(gpu_dl.Model):
        @property
        def layers(self):
            return []

    with pytest.raises(ValueError, match="subclassed model"):
        clone_model(Custom())
    with pytest.raises(ValueError, match="clone_function"):
        clone_model(Custom(), clone_function=lambda layer: layer)


def test_to_json_and_model_from_json():
    model = siamese()
    model.compile("sgd", "mse")
    text = model.to_json(indent=2)
    assert "\n" in text and json.loads(text)["class_name"] == "Functional"
    again = model_from_json(text)
    assert again.compiled and type(again.optimizer).__name__ == "SGD"
    assert layer_configs(again) == layer_configs(model)
    again = model_from_json(sequential().to_json().encode())
    assert [l.name for l in again.layers] == ["d1", "drop", "d2"]
    with pytest.raises(TypeError, match="json_string"):
        model_from_json({"class_name": "Sequential"})
    with pytest.raises(ValueError, match="not valid JSON"):
        model_from_json("{not json")
    with pytest.raises(ValueError, match="unknown model class"):
        model_from_json('{"class_name": "Nope", "config": {}}')
    with pytest.raises(TypeError, match="custom_objects"):
        model_from_json(sequential().to_json(), custom_objects=[1])


def test_save_model_functions(tmp_path):
    model = sequential()
    path = tmp_path / "m.keras"
    save_model(model, path)
    gpu_dl.saving.save_model(model, str(path), overwrite=True)
    assert [w.tolist() for w in load_model(path).get_weights()] == [w.tolist() for w in model.get_weights()]
    with pytest.raises(FileExistsError):
        save_model(model, path, overwrite=False)
    with pytest.raises(ValueError, match=r"\.keras"):
        save_model(model, tmp_path / "m.txt")
