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


# One policy of each kind and argument gpu_dl has, built by name of class and arguments in gpu_dl and in Keras.
POLICY_CASES = {
    "float32": ("DTypePolicy", ("float32",)),
    "float_alias_float32": ("FloatDTypePolicy", ("float32",)),
    "float64": ("DTypePolicy", ("float64",)),
    "mixed_float16": ("FloatDTypePolicy", ("mixed_float16",)),
    "int8": ("QuantizedDTypePolicy", ("int8", "float32")),
    "int8_float64": ("QuantizedDTypePolicy", ("int8", "float64")),
    "quantized_float8": ("QuantizedDTypePolicy", ("float8", "float32")),
    "quantized_int4": ("QuantizedDTypePolicy", ("int4", "float32")),
    "float8": ("QuantizedFloat8DTypePolicy", ("float8", "float32")),
    "float8_history_16": ("QuantizedFloat8DTypePolicy", ("float8", "float32", 16)),
    "int4_per_channel": ("Int4DTypePolicy", ("int4/-1", "float32")),
    "int4_block_128": ("Int4DTypePolicy", ("int4/128", "float32")),
    "gptq_4_128": ("GPTQDTypePolicy", ("gptq/4/128", "float32")),
    "gptq_8_per_channel": ("GPTQDTypePolicy", ("gptq/8/-1", "float32")),
}
PAIRS = [(a, b) for a in POLICY_CASES for b in POLICY_CASES]


def make_policy(module, case):
    class_name, args = POLICY_CASES[case]
    return getattr(module, class_name)(*args)


def expected_equal(a, b):
    """Keras 3.15's rule: DTypePolicy and FloatDTypePolicy are one kind, every other class its own; policies of
    one kind are equal when their arguments are."""
    def kind(case):
        class_name, args = POLICY_CASES[case]
        return ("DTypePolicy" if class_name == "FloatDTypePolicy" else class_name), args
    return kind(a) == kind(b)


@pytest.mark.parametrize("a, b", PAIRS)
def test_policy_equality_is_keras_rule_both_ways(a, b):
    left, right = make_policy(gpu_dl.dtype_policies, a), make_policy(gpu_dl.dtype_policies, b)
    expected = expected_equal(a, b)
    # both operators, and each class's own __eq__ called directly (which Python's reflected call would hide)
    assert (left == right, right == left, type(left).__eq__(left, right), type(right).__eq__(right, left)) == \
        (expected,) * 4
    assert (left != right) is not expected
    if expected:
        assert hash(left) == hash(right)
    assert make_policy(gpu_dl.dtype_policies, a) == left     # a new policy of the same arguments


@pytest.mark.parametrize("a, b", PAIRS)
def test_policy_equality_matches_keras(a, b):
    keras = pytest.importorskip("keras")
    ours = (make_policy(gpu_dl.dtype_policies, a), make_policy(gpu_dl.dtype_policies, b))
    theirs = (make_policy(keras.dtype_policies, a), make_policy(keras.dtype_policies, b))
    for (left, right), (k_left, k_right) in (((ours[0], ours[1]), theirs), ((ours[1], ours[0]), theirs[::-1])):
        assert (left == right) == (k_left == k_right)
        assert type(left).__eq__(left, right) == type(k_left).__eq__(k_left, k_right)


def test_policy_maps_equal_only_themselves_and_no_plain_policy():
    from gpu_dl.dtype_policies import DTypePolicyMap, FloatDTypePolicy
    first, second = DTypePolicyMap("float32"), DTypePolicyMap("float32")
    assert first == first and first != second and hash(first) == hash(first)
    for policy in (DTypePolicy("float32"), FloatDTypePolicy("float32")):
        # Keras 3.15 answers False both ways here too
        assert (policy == first, first == policy, type(policy).__eq__(policy, first)) == (False, False, False)
    assert DTypePolicy("float32") != "float32"
