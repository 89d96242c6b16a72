"""RNN over a cell class of the user's own (Keras's "Working with RNNs" MinimalRNNCell and a two-state cell):
forward against a NumPy loop (masks, go_backwards, initial and stateful states, the cell's get_initial_state),
gradients against float64 finite differences, a model holding one saved and loaded, and bad cells refused."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers, ops
from gpu_dl.backend import to_numpy
from gpu_dl.layers.symbolic import flatten_structure
from gradcheck import assert_gradient
from test_rnn_cells import run_rnn_gradients


class MinimalRNNCell(layers.Layer):
    """The guide's cell with a tanh: one state, the output is the new state."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.state_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), initializer="uniform", name="kernel")
        self.recurrent_kernel = self.add_weight(shape=(self.units, self.units), initializer="uniform",
                                                name="recurrent_kernel")

    def call(self, inputs, states):
        output = ops.tanh(ops.matmul(inputs, self.kernel) + ops.matmul(states[0], self.recurrent_kernel))
        return output, [output]


class TwoStateCell(layers.Layer):
    """Two states of different sizes, an output of a third size, and an initial state of its own."""

    state_size = [3, 2]
    output_size = 4

    def build(self, input_shape):
        d = input_shape[-1]
        self.a = self.add_weight(shape=(d + 3, 3), initializer="glorot_uniform", name="a")
        self.b = self.add_weight(shape=(3, 2), initializer="glorot_uniform", name="b")
        self.c = self.add_weight(shape=(5, 4), initializer="glorot_uniform", name="c")

    def call(self, inputs, states, training=None):
        h, s = states
        h_new = ops.tanh(ops.matmul(ops.concatenate([inputs, h], axis=-1), self.a))
        s_new = s * 0.5 + ops.sigmoid(ops.matmul(h_new, self.b))
        out = ops.matmul(ops.concatenate([h_new, s_new], axis=-1), self.c)
        return out, [h_new, s_new]

    def get_initial_state(self, batch_size=None):
        return [ops.ones((batch_size, 3), dtype=self.compute_dtype) * 0.25,
                ops.zeros((batch_size, 2), dtype=self.compute_dtype)]


class SublayerCell(layers.Layer):
    """A cell whose call is a Dense sublayer on [inputs, h]: its weights are the sublayer's."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.state_size = units
        self.inner = layers.Dense(units, activation="tanh", bias_initializer="glorot_uniform", dtype=self.dtype_policy)

    def call(self, inputs, states):
        out = self.inner(ops.concatenate([inputs, states[0]], axis=-1))
        return out, [out]


def sublayer_step(x, states, w):
    h = numpy.tanh(numpy.concatenate([x, states[0]], axis=-1) @ w[0] + w[1])
    return h, [h]


def minimal_step(x, states, w):
    h = numpy.tanh(x @ w[0] + states[0] @ w[1])
    return h, [h]


def two_state_step(x, states, w):
    h = numpy.tanh(numpy.concatenate([x, states[0]], axis=-1) @ w[0])
    s = states[1] * 0.5 + 1 / (1 + numpy.exp(-(h @ w[1])))
    return numpy.concatenate([h, s], axis=-1) @ w[2], [h, s]


def stacked_step(x, states, w):
    h, first = minimal_step(x, states[:1], w[:2])
    out, second = two_state_step(h, states[1:], w[2:])
    return out, first + second


CELLS = {"minimal": (lambda: MinimalRNNCell(4, dtype="float64"), minimal_step, [4]),
         "two_state": (lambda: TwoStateCell(dtype="float64"), two_state_step, [3, 2]),
         "sublayer": (lambda: SublayerCell(3, dtype="float64"), sublayer_step, [3]),
         "stacked": (lambda: [MinimalRNNCell(4, dtype="float64"), TwoStateCell(dtype="float64")], stacked_step,
                     [4, 3, 2])}


def expected(step, x, weights, initial, mask=None, go_backwards=False, zero_output_for_mask=False):
    """Keras's loop in NumPy: (every step's output in the order read, last states)."""
    states, outputs, previous = list(initial), [], None
    order = range(x.shape[1] - 1, -1, -1) if go_backwards else range(x.shape[1])
    for t in order:
        out, new = step(x[:, t], states, weights)
        previous = numpy.zeros_like(out) if previous is None else previous
        if mask is not None:
            m = mask[:, t][:, None]
            out = numpy.where(m, out, 0 if zero_output_for_mask else previous)
            new = [numpy.where(m, a, b) for a, b in zip(new, states)]
        outputs.append(out)
        previous, states = out, new
    return numpy.stack(outputs, axis=1), states


FLAGS = [{}, {"return_sequences": True}, {"go_backwards": True, "return_sequences": True},
         {"return_sequences": True, "zero_output_for_mask": True}, {"go_backwards": True}]


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("flags", FLAGS)
@pytest.mark.parametrize("masked,given", [(False, False), (True, True), (True, False)])
def test_forward_is_keras_s_loop(xp, rng, kind, flags, masked, given):
    make, step, sizes = CELLS[kind]
    rnn = layers.RNN(make(), return_state=True, **flags)
    x = rng.standard_normal((3, 5, 2))
    mask = numpy.ones((3, 5), bool)
    mask[0, 3:] = mask[2, :2] = False
    initial = [rng.standard_normal((3, u)) for u in sizes] if given else None
    got = rnn(xp.asarray(x), mask=xp.asarray(mask) if masked else None,
              initial_state=None if initial is None else [xp.asarray(s) for s in initial])
    weights = [to_numpy(w) for w in rnn.get_weights()]
    if initial is None:
        initial = {"two_state": [numpy.full((3, 3), 0.25), numpy.zeros((3, 2))],
                   "stacked": [numpy.zeros((3, 4)), numpy.full((3, 3), 0.25), numpy.zeros((3, 2))]}.get(
            kind, [numpy.zeros((3, u)) for u in sizes])
    outputs, states = expected(step, x, weights, initial, mask if masked else None,
                               flags.get("go_backwards", False), flags.get("zero_output_for_mask", False))
    want = outputs if flags.get("return_sequences") else outputs[:, -1]
    out_shape = rnn.compute_output_shape((3, 5, 2))
    if kind == "stacked":
        # Keras's form: per cell, the state itself for a cell with an integer state_size and no get_initial_state,
        # else a list; the shapes alike
        assert len(got) == 3 and not isinstance(got[1], list) and len(got[2]) == 2
        assert len(out_shape) == 3 and isinstance(out_shape[1], tuple) and len(out_shape[2]) == 2
        got, out_shape = flatten_structure(got), out_shape[:2] + out_shape[2]
    assert len(got) == 1 + len(sizes)
    numpy.testing.assert_allclose(to_numpy(got[0]), want, rtol=1e-12, atol=1e-12)
    for a, b in zip(got[1:], states):
        numpy.testing.assert_allclose(to_numpy(a), b, rtol=1e-12, atol=1e-12)
    assert [tuple(s) for s in out_shape] == [tuple(a.shape) for a in got]


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("t", [1, 5])
@pytest.mark.parametrize("return_sequences,masked", [(False, False), (True, False), (True, True)])
def test_gradients_through_time(xp, rng, kind, t, return_sequences, masked):
    """Finite differences of the outputs and last states against random weights, for the input, the initial
    states and each weight of the cell."""
    make, _, sizes = CELLS[kind]
    rnn = layers.RNN(make(), return_sequences=return_sequences, return_state=True, go_backwards=masked)
    rnn.input_gradient_wanted = True
    x = xp.asarray(rng.standard_normal((3, t, 2)))
    mask = None
    if masked:
        mask = numpy.ones((3, t), bool)
        mask[1, 0] = mask[2, t - 1] = False
        mask = xp.asarray(mask)
    initial = [xp.asarray(rng.standard_normal((3, u))) for u in sizes]
    run_rnn_gradients(rnn, x, rng, initial, xp, mask=mask)
    assert len(rnn.weights) == len(rnn.cell.weights) > 0      # the cell's weights were all checked


def test_gradient_of_the_output_alone(rng):
    """backward given the output's gradient only (no states returned), as a model's backward gives it."""
    rnn = layers.RNN(MinimalRNNCell(3, dtype="float64"))
    x = rng.standard_normal((5, 4, 2))
    w = rng.standard_normal((5, 3))
    rnn(x, training=True)
    dx = rnn.backward(w)
    grads = [v.grad.copy() for v in rnn.weights]
    assert_gradient(lambda v: (rnn(v) * w).sum(), x, dx, rng, what="x")
    kernel = rnn.cell.kernel
    original = kernel.value.copy()

    def of_kernel(v):
        kernel.value[...] = v
        return (rnn(x) * w).sum()
    assert_gradient(of_kernel, original, grads[0], rng, what="kernel")


def test_stateful_continues_the_sequence_and_resets(rng):
    rnn = layers.RNN(TwoStateCell(dtype="float64"), stateful=True)
    x = rng.standard_normal((2, 7, 3))
    rnn(x[:, :4])
    whole = layers.RNN(TwoStateCell(dtype="float64"))
    whole(x)
    whole.set_weights(rnn.get_weights())
    numpy.testing.assert_allclose(rnn(x[:, 4:]), whole(x), rtol=1e-12)
    assert [s.shape for s in rnn.states] == [(2, 3), (2, 2)]
    with pytest.raises(ValueError, match=r"RNN layer 'rnn.*' is stateful and carries states for batches of 2"):
        rnn(x[:1])
    rnn.reset_state()
    assert rnn.states is None
    numpy.testing.assert_allclose(rnn(x), whole(x), rtol=1e-12)


def test_a_model_trains_it(rng):
    """fit reaches the cell's weights: the loss falls, and the weights the optimizer moved are the cell's."""
    model = gpu_dl.Sequential([layers.Input((6, 3)), layers.RNN(MinimalRNNCell(8)), layers.Dense(1)])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.01), loss="mse")
    x = rng.standard_normal((32, 6, 3)).astype("float32")
    y = x[:, -1, :1] + 0.5 * x[:, -2, 1:2]
    before = [w.copy() for w in model.get_weights()]
    losses = model.fit(x, y, epochs=20, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0] * 0.5
    assert all(not numpy.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@gpu_dl.saving.register_keras_serializable(package="user_cell_test")
class SavedCell(MinimalRNNCell):
    def get_config(self):
        return {**super().get_config(), "units": self.units}


class PlainCell(MinimalRNNCell):
    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_saved_and_loaded(rng, tmp_path):
    model = gpu_dl.Sequential([layers.Input((5, 2)), layers.RNN(SavedCell(3), return_sequences=True),
                               layers.Dense(2)])
    x = rng.standard_normal((4, 5, 2)).astype("float32")
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, rng.standard_normal((4, 5, 2)).astype("float32"), verbose=0)
    want = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = gpu_dl.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.layers[0].cell) is SavedCell and loaded.layers[0].cell.units == 3
    numpy.testing.assert_allclose(loaded.predict(x, verbose=0), want, rtol=1e-6, atol=1e-7)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    entry = layers.serialize(model.layers[0])
    assert entry["config"]["cell"]["registered_name"] == "user_cell_test>SavedCell"
    # An unregistered class comes back through custom_objects
    rnn = layers.RNN(PlainCell(3))
    rnn(x)
    config = layers.serialize(rnn)
    again = layers.deserialize(config, custom_objects={"PlainCell": PlainCell})
    assert type(again.cell) is PlainCell and again.cell is not rnn.cell and again.cell.units == 3
    again.set_weights(rnn.get_weights())
    numpy.testing.assert_array_equal(again(x), rnn(x))
    with pytest.raises(ValueError, match=r"'PlainCell' names the module .* neither custom_objects nor the registered "
                                         r"objects have 'PlainCell'"):
        layers.deserialize(config)


class BadReturnCell(MinimalRNNCell):
    def call(self, inputs, states):
        output = ops.matmul(inputs, self.kernel)
        return output, [output, output]


class DropoutCell(MinimalRNNCell):
    def __init__(self, units, **kwargs):
        super().__init__(units, **kwargs)
        self.drop = layers.Dropout(0.5)

    def call(self, inputs, states, training=None):
        output, new = super().call(self.drop(inputs, training=training), states)
        return output, new


def test_bad_cells_and_states_are_refused(rng):
    x = rng.standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match=r"RNN layer 'r1': the cell returned 2 state\(s\) for the 1 it was given"):
        layers.RNN(BadReturnCell(3), name="r1")(x)
    rnn = layers.RNN(TwoStateCell(), name="r2")
    with pytest.raises(ValueError, match=r"RNN layer 'r2': initial_state needs 2 array\(s\)"):
        rnn(x, initial_state=[numpy.zeros((2, 3))])
    with pytest.raises(ValueError, match=r"RNN layer 'r2': initial_state\[1\] must have shape \(2, 2\), got \(2, 3\)"):
        rnn(x, initial_state=[numpy.zeros((2, 3)), numpy.zeros((2, 3))])
    with pytest.raises(TypeError, match=r"RNN layer 'r3': the cell MinimalRNNCell is not one of gpu_dl's built-in "
                                        r"cells; RNN takes a list or StackedRNNCells of"):
        layers.RNN([layers.GRUCell(2), MinimalRNNCell(2)], name="r3")
    dropping = layers.RNN(DropoutCell(3), name="r4")
    dropping(x, training=True)
    with pytest.raises(NotImplementedError, match=r"RNN layer 'r4': its cell DropoutCell holds a SeedGenerator"):
        dropping.backward(numpy.ones((2, 3), "float32"))


def test_stacked_cells_of_your_own(rng):
    """StackedRNNCells of the user's cells: Keras's nested initial_state equals the flat one, the weights are the
    cells' in order, and the layer comes back from its config with custom_objects."""
    rnn = layers.RNN(layers.StackedRNNCells([PlainCell(3), TwoStateCell()]), return_state=True)
    x = rng.standard_normal((2, 4, 5)).astype("float32")
    initial = [rng.standard_normal((2, u)).astype("float32") for u in (3, 3, 2)]
    flat = rnn(x, initial_state=initial)
    nested = rnn(x, initial_state=[[initial[0]], initial[1:]])
    # as Keras's: each cell's states in the form they started from (PlainCell's alone, without get_initial_state,
    # unless given in a list)
    assert [type(s) for s in flat[1:]] == [numpy.ndarray, list] and [len(s) for s in nested[1:]] == [1, 2]
    flat, nested = flatten_structure(flat), flatten_structure(nested)
    assert len(flat) == len(nested) == 4
    for a, b in zip(flat, nested):
        numpy.testing.assert_array_equal(a, b)
    # Keras's paths: the layer, the stack, the cell ("rnn/stacked_rnn_cells/plain_cell/kernel")
    scope = f"{rnn.name}/{rnn.cell.name}"
    assert [w.path for w in rnn.weights] == [f"{scope}/{rnn.cell.cells[0].name}/kernel",
                                             f"{scope}/{rnn.cell.cells[0].name}/recurrent_kernel"] + \
        [f"{scope}/{rnn.cell.cells[1].name}/{n}" for n in "abc"]
    assert rnn.compute_output_shape((2, 4, 5)) == [(2, 4), (2, 3), [(2, 3), (2, 2)]]
    again = layers.deserialize(layers.serialize(rnn), custom_objects={"PlainCell": PlainCell,
                                                                      "TwoStateCell": TwoStateCell})
    assert [type(c) for c in again.cell.cells] == [PlainCell, TwoStateCell]
    again.set_weights(rnn.get_weights())
    for a, b in zip(flatten_structure(again(x, initial_state=initial)), flat):
        numpy.testing.assert_array_equal(a, b)
    with pytest.raises(TypeError, match=r"StackedRNNCells '.*' takes a non-empty list of built-in cells .* not both"):
        layers.StackedRNNCells([layers.GRUCell(2), PlainCell(2)])
