"""Dtype policies: the policy objects, the global policy and its aliases, and the dtypes layers take from them."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, mixed_precision
from gpu_dl.dtype_policies import DTypePolicy


@pytest.fixture(autouse=True)
def global_policy_restored():
    yield
    gpu_dl.utils.clear_session(free_memory=False)      # the global policy follows floatx again


@pytest.mark.parametrize("name, compute, variable", [("float32", "float32", "float32"),
                                                     ("float64", "float64", "float64"),
                                                     ("mixed_float16", "float16", "float32")])
def test_policy_dtypes_config_and_equality(name, compute, variable):
    policy = DTypePolicy(name)
    assert (policy.name, policy.compute_dtype, policy.variable_dtype) == (name, compute, variable)
    assert policy.get_config() == {"name": name}
    assert DTypePolicy.from_config(policy.get_config()) == policy
    assert repr(policy) == f'<DTypePolicy "{name}">'
    assert policy.quantization_mode is None
    assert policy != DTypePolicy("float32" if name != "float32" else "float64")


@pytest.mark.parametrize("name", ["mixed_bfloat16", "bfloat16", "float16"])
def test_unsupported_policies_name_the_supported_one(name):
    with pytest.raises(ValueError, match=f"'{name}'.*'mixed_float16'"):
        DTypePolicy(name)
    with pytest.raises(ValueError, match=f"layer 'd': dtype.*'{name}'.*'mixed_float16'"):
        layers.Dense(2, dtype=name, name="d")


def test_bad_policy_names_and_types():
    with pytest.raises(ValueError, match="cannot convert 'int8x'"):
        DTypePolicy("int8x")
    with pytest.raises(TypeError, match="must be a string"):
        DTypePolicy(3)
    with pytest.raises(ValueError, match="Expected the string name of a policy"):
        mixed_precision.set_global_policy(3)


def test_global_policy_and_its_aliases():
    assert mixed_precision.global_policy() == DTypePolicy("float32")
    mixed_precision.set_global_policy("mixed_float16")
    assert gpu_dl.config.dtype_policy() is mixed_precision.global_policy()
    assert mixed_precision.dtype_policy().name == "mixed_float16"
    assert DTypePolicy().name == "mixed_float16"        # no name: the global policy's
    dense = layers.Dense(3)
    assert (dense.dtype_policy.name, dense.compute_dtype, dense.variable_dtype, dense.dtype) == \
        ("mixed_float16", "float16", "float32", "float32")
    assert layers.Dense(3, dtype="float32").compute_dtype == "float32"
    gpu_dl.config.set_dtype_policy(mixed_precision.Policy("float32"))
    assert layers.Dense(3).dtype_policy.name == "float32"
    assert mixed_precision.Policy is DTypePolicy and gpu_dl.DTypePolicy is DTypePolicy
    assert mixed_precision.set_dtype_policy is gpu_dl.config.set_dtype_policy
    assert gpu_dl.FloatDTypePolicy("mixed_float16") == DTypePolicy("mixed_float16")


@pytest.mark.parametrize("given", ["mixed_float16", DTypePolicy("mixed_float16"),
                                   {"module": "keras", "class_name": "DTypePolicy",
                                    "config": {"name": "mixed_float16"}, "registered_name": None}])
def test_layer_takes_a_name_a_policy_or_a_serialized_policy(given):
    dense = layers.Dense(4, dtype=given)
    dense.build((None, 3))
    assert dense.dtype_policy == DTypePolicy("mixed_float16")
    assert dense.kernel.dtype == numpy.float32 and dense.bias.dtype == numpy.float32
    assert dense.get_config()["dtype"] == "mixed_float16"
    again = layers.Dense.from_config(dense.get_config())
    assert again.compute_dtype == "float16" and again.variable_dtype == "float32"


def test_dtype_policy_is_settable_and_models_take_the_global_policy():
    dense = layers.Dense(2)
    dense.dtype_policy = "mixed_float16"
    assert dense.compute_dtype == "float16"
    mixed_precision.set_global_policy("mixed_float16")
    model = gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2)])
    assert model.dtype_policy.name == "mixed_float16" and model.dtype == "float32"
    mixed_precision.set_global_policy("float32")
    # The model keeps the policy it was made under, as a Keras model does.
    assert model.dtype_policy.name == "mixed_float16"
    assert gpu_dl.Sequential([layers.Input((3,)), layers.Dense(2)]).dtype_policy.name == "float32"


def test_symbolic_outputs_take_the_compute_dtype_inputs_stay_float32():
    mixed_precision.set_global_policy("mixed_float16")
    inputs = layers.Input((3,))
    hidden = layers.Dense(4)(inputs)
    out = layers.Activation("softmax", dtype="float32")(hidden)
    assert inputs.dtype == "float32" and hidden.dtype == "float16" and out.dtype == "float32"
    model = gpu_dl.Model(inputs, out)
    assert model.dtype == "float32"
    assert gpu_dl.Model(inputs, hidden).dtype == "float32"     # the model's data stays float32


def test_input_of_float16_and_a_composite_layer_under_the_mixed_policy():
    assert layers.Input((3,), dtype="float16").dtype == "float16"

    class Residual(layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.inner = layers.Dense(units, activation="relu")

        def call(self, x):
            return x + self.inner(x)

    mixed_precision.set_global_policy("mixed_float16")
    model = gpu_dl.Sequential([layers.Input((4,)), layers.Dense(4), Residual(4), layers.Dense(2)])
    x = numpy.random.default_rng(0).standard_normal((6, 4)).astype("float32")
    assert model.predict(x, verbose=0).dtype == numpy.float16
    model.compile("sgd", "mse")
    before = model.get_weights()
    # Some steps may overflow float16 at the first loss scales (2**15, ...): the optimizer skips those.
    model.fit(x, numpy.zeros((6, 2), "float32"), epochs=8, verbose=0)
    assert model.optimizer.iterations >= 1
    after = model.get_weights()
    assert all(a.dtype == numpy.float32 for a in after)
    assert all(not numpy.array_equal(a, b) for a, b in zip(after, before))


def test_global_policy_follows_floatx_until_set_and_clear_session_forgets_it():
    gpu_dl.config.set_floatx("float64")
    try:
        assert mixed_precision.global_policy().name == "float64" and layers.Dense(2).dtype == "float64"
        mixed_precision.set_global_policy("mixed_float16")
        assert layers.Dense(2).compute_dtype == "float16"
        gpu_dl.utils.clear_session(free_memory=False)
        assert mixed_precision.global_policy().name == "float64"
    finally:
        gpu_dl.config.set_floatx("float32")
    assert mixed_precision.global_policy().name == "float32"
