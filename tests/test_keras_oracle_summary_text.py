"""``model.summary()`` against Keras 3 itself (where Keras is installed): the same models in both libraries print
the same text, character for character, whether it goes to ``print_fn`` (one call with the whole text, as Keras
makes it) or to stdout, for a wide terminal, a narrow one and none (80 columns), and with a stdout that cannot
encode the box-drawing characters (ASCII borders).

The operations that make a mask a layer's call reads (an LSTM after an ``Embedding(mask_zero=True)`` reads a
``not_equal (NotEqual)``, after a ``Masking`` a ``not_equal`` and an ``any (Any)``) are rows of Keras's functional
summaries, with their edges in the *Connected to* column: gpu_dl carries masks beside its graph, and lists the same
rows, those a merge of masked tensors read by a recurrent layer makes (``logical_or``; Concatenate's
``expand_dims``, ``zeros_like``, ``logical_or``, ``ones_like``, ``concatenate`` and ``any``) included."""
import contextlib
import io
import os
import sys

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402


def sequential(lib):
    return lib.Sequential([lib.Input((8,)), lib.layers.Dense(16, activation="relu"), lib.layers.Dropout(0.1),
                           lib.layers.Dense(3)], name="seq")


def empty(lib):
    return lib.Sequential(name="empty")


def unbuilt(lib):
    return lib.Sequential([lib.layers.Dense(4), lib.layers.Dense(2)])


def with_batch_norm(lib):
    model = lib.Sequential([lib.Input((5,)), lib.layers.Dense(6), lib.layers.BatchNormalization(),
                            lib.layers.Dense(1)])
    model.layers[0].trainable = False
    return model


def trained(lib):
    """Non-trainable weights, and an optimizer built by fit: Keras's "Optimizer params" line."""
    model = with_batch_norm(lib)
    model.compile(optimizer=lib.optimizers.Adam(), loss="mse")
    model.fit(numpy.ones((4, 5), "float32"), numpy.zeros((4, 1), "float32"), epochs=1, verbose=0)
    return model


def two_inputs(lib):
    a, b = lib.Input((4,), name="input_a"), lib.Input((6,), name="input_b")
    h = lib.layers.Concatenate()([lib.layers.Dense(5)(a), lib.layers.Dense(5)(b)])
    return lib.Model([a, b], lib.layers.Dense(2)(h), name="two_in")


def shared_layer(lib):
    a, b = lib.Input((4,)), lib.Input((4,))
    dense = lib.layers.Dense(3, name="shared_dense")
    return lib.Model([a, b], lib.layers.Add()([dense(a), dense(b)]))


def chain(lib):
    x = lib.Input((3,))
    return lib.Model(x, lib.layers.Dense(2)(lib.layers.Dense(4)(x)))


def nested(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3), lib.layers.Dense(2)], name="inner")
    x, y = lib.Input((4,)), lib.Input((4,))
    return lib.Model([x, y], lib.layers.Add()([inner(x), lib.layers.Dense(2)(y)]), name="outer")


def nested_sequential(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3), lib.layers.Dense(2)], name="inner")
    return lib.Sequential([lib.Input((4,)), inner, lib.layers.Dense(1)], name="outer_seq")


def nested_functional(lib):
    a = lib.Input((4,))
    inner = lib.Model(a, lib.layers.Dense(2)(lib.layers.Dense(3)(a)), name="inner_fn")
    x = lib.Input((4,))
    return lib.Model(x, lib.layers.Dense(1)(inner(x)))


def frozen_inner(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3), lib.layers.Dropout(0.2)], name="inner")
    inner.trainable = False
    x = lib.Input((4,))
    return lib.Model(x, lib.layers.Concatenate()([inner(x), lib.layers.Dense(3)(x)]))


def with_ops(lib):
    """keras.ops calls in the graph: each is a row of its own (relu (Relu), multiply (Multiply), ...)."""
    x = lib.Input((4,))
    return lib.Model(x, lib.ops.relu(lib.layers.Dense(4)(x)) * 2.0 + x)


def embedding_lstm(lib):
    """An Embedding's mask read by an LSTM: a not_equal (NotEqual) row, and the Connected to column."""
    ids = lib.Input((7,), dtype="int32")
    return lib.Model(ids, lib.layers.LSTM(4)(lib.layers.Embedding(20, 3, mask_zero=True)(ids)))


def masking_gru(lib):
    """Masking's mask read by a GRU: not_equal (NotEqual) and any (Any) rows, in Keras's order by depth."""
    x = lib.Input((5, 4))
    return lib.Model(x, lib.layers.GRU(3, return_sequences=True)(lib.layers.Masking()(x)))


def masks_numbered(lib):
    """Masks nothing reads (after the Dense layer) still count in the names of the operations that follow; the mask
    passes through Dropout to two recurrent layers and a Bidirectional one; a second input's Masking feeds a
    SimpleRNN."""
    ids, x = lib.Input((6,), dtype="int32", name="ids"), lib.Input((6, 2), name="features")
    embedded = lib.layers.Embedding(30, 4, mask_zero=True)(ids)
    unread = lib.layers.Dense(2)(lib.layers.Embedding(30, 4, mask_zero=True)(ids))
    h = lib.layers.LSTM(3, return_sequences=True)(lib.layers.Dropout(0.1)(embedded))
    h = lib.layers.Bidirectional(lib.layers.GRU(2))(h)
    g = lib.layers.SimpleRNN(2)(lib.layers.Masking(mask_value=-1.0)(x))
    return lib.Model([ids, x], [lib.layers.Concatenate()([h, g]), unread])


def concatenated_masks(lib):
    """Concatenate of two masked inputs and of a masked and an unmasked one, each read by an LSTM: the operations
    that spread, join and reduce the masks are rows, numbered on from the first concatenation's."""
    a, b, c = lib.Input((5, 3)), lib.Input((5, 2)), lib.Input((5, 4))
    both = lib.layers.Concatenate()([lib.layers.Masking()(a), lib.layers.Masking()(b)])
    one = lib.layers.Concatenate()([c, lib.layers.Masking()(b)])
    return lib.Model([a, b, c], [lib.layers.LSTM(2)(both), lib.layers.GRU(2)(one)])


def reversible_embedding_lstm(lib):
    """ReversibleEmbedding attaches its mask in its call, as Keras's does: no operation, no row."""
    ids = lib.Input((6,), dtype="int32")
    emb = lib.layers.ReversibleEmbedding(10, 4, mask_zero=True)
    return lib.Model(ids, emb(lib.layers.LSTM(4, return_sequences=True)(emb(ids)), reverse=True))


def embedding_sequential(lib):
    """A Sequential's summary has no graph: no mask rows."""
    return lib.Sequential([lib.Input((5,), dtype="int32"), lib.layers.Embedding(10, 4, mask_zero=True),
                           lib.layers.LSTM(3)])


def mixed_dtypes(lib):
    x = lib.Input((4,))
    h = lib.layers.Dense(8, dtype="mixed_float16")(x)
    return lib.Model(x, lib.layers.Dense(2, dtype="float64")(h))


def long_names(lib):
    return lib.Sequential([lib.Input((3,)),
                           lib.layers.Dense(2, name="a_really_long_layer_name_that_does_not_fit_in_the_column"),
                           lib.layers.Dense(2, name="words in a name that wrap across lines of the cell ok")],
                          name="a_model_with_a_name_long_enough")


def vector_output(lib):
    """An output of one axis: "(None)", as Keras writes it."""
    x = lib.Input((4,))
    return lib.Model(x, lib.ops.sum(lib.layers.Dense(3)(x), axis=-1))


def dict_outputs(lib):
    x = lib.Input((4,))
    return lib.Model(x, {"a": lib.layers.Dense(2, name="da")(x), "b": lib.layers.Dense(3, name="db")(x)})


def lstm_states(lib):
    x = lib.Input((5, 3))
    out, h, c = lib.layers.LSTM(4, return_state=True)(x)
    return lib.Model(x, lib.layers.Dense(1)(lib.layers.Concatenate()([out, h, c])))


def recurrent(lib):
    return lib.Sequential([lib.Input((None, 3)), lib.layers.GRU(4, return_sequences=True),
                           lib.layers.Bidirectional(lib.layers.LSTM(2))])


def two_outputs(lib):
    x = lib.Input((4,))
    return lib.Model(x, [lib.layers.Dense(2)(x), lib.layers.Dense(3)(x)])


def subclassed(lib, build=True):
    class Net(lib.Model):
        def __init__(self):
            super().__init__(name="net")
            self.d1 = lib.layers.Dense(5)
            self.d2 = lib.layers.Dense(2)

        def call(self, x):
            return self.d2(self.d1(x))
    model = Net()
    if build:
        model(numpy.zeros((2, 3), "float32"))
    return model


def subclassed_unbuilt(lib):
    return subclassed(lib, build=False)


def subclassed_holding_a_model(lib):
    class Net(lib.Model):
        def __init__(self):
            super().__init__(name="net")
            self.block = lib.Sequential([lib.layers.Dense(4), lib.layers.Dense(3)], name="block")
            self.out = lib.layers.Dense(2)

        def call(self, x):
            return self.out(self.block(x))
    model = Net()
    model(numpy.zeros((2, 3), "float32"))
    return model


def composite_layer(lib):
    """A layer whose call composes other layers: one row, its sublayers' parameters counted in it."""
    class Block(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.a = lib.layers.Dense(4)
            self.b = lib.layers.Dense(4)

        def call(self, x):
            return self.b(self.a(x)) + x
    return lib.Sequential([lib.Input((4,)), Block(name="block"), lib.layers.Dense(1)])


def frozen_in_inner_sequential(lib):
    inner = lib.Sequential([lib.Input((4,)), lib.layers.Dense(3), lib.layers.BatchNormalization()], name="inner")
    inner.layers[0].trainable = False
    return lib.Sequential([lib.Input((4,)), inner, lib.layers.Dense(1)])


def fitted_with(optimizer):
    """A model fit once with ``optimizer(lib)``: the optimizer's variables in "Optimizer params"."""
    def make(lib):
        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
        model.compile(optimizer=optimizer(lib), loss="mse")
        model.fit(numpy.ones((4, 3), "float32"), numpy.zeros((4, 2), "float32"), epochs=1, verbose=0)
        return model
    make.__name__ = f"fitted_with_{optimizer.__name__}"
    return make


def sgd(lib):
    return lib.optimizers.SGD()


def sgd_momentum(lib):
    return lib.optimizers.SGD(momentum=0.9)


def adam_schedule(lib):
    return lib.optimizers.Adam(lib.optimizers.schedules.ExponentialDecay(0.1, 10, 0.9))


def compiled_not_fit(lib):
    model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    return model


def time_distributed(lib):
    return lib.Sequential([lib.Input((5, 3)), lib.layers.TimeDistributed(lib.layers.Dense(2)),
                           lib.layers.GlobalAveragePooling1D()])


def convolutional(lib):
    return lib.Sequential([lib.Input((28, 28, 1)), lib.layers.Conv2D(32, 3, activation="relu"),
                           lib.layers.MaxPooling2D(), lib.layers.Flatten(),
                           lib.layers.Dense(10, activation="softmax")])


def large(lib):
    """Millions of parameters: the thousands separators and MB sizes."""
    return lib.Sequential([lib.Input((1000,)), lib.layers.Dense(2000), lib.layers.Dense(1000)])


CASES = [
    (sequential, {}), (sequential, {"show_trainable": True}), (sequential, {"line_length": 60}),
    (sequential, {"line_length": 120}), (sequential, {"positions": [0.3, 0.7, 1.0]}),
    (sequential, {"positions": [0.2, 0.5, 0.8]}), (sequential, {"layer_range": ["dense", "dropout"]}),
    (sequential, {"line_length": 20}), (empty, {}), (unbuilt, {}), (with_batch_norm, {"show_trainable": True}),
    (trained, {}), (trained, {"show_trainable": True}),
    (two_inputs, {}), (two_inputs, {"show_trainable": True}), (two_inputs, {"line_length": 70}),
    (two_inputs, {"positions": [0.25, 0.5, 0.6, 0.9]}), (two_inputs, {"layer_range": ["dense", "concat"]}),
    (shared_layer, {}), (chain, {}),
    (nested, {}), (nested, {"expand_nested": True}), (nested, {"expand_nested": True, "show_trainable": True}),
    (nested, {"layer_range": ["inner", "inner"], "expand_nested": True}),
    (nested_sequential, {}), (nested_sequential, {"expand_nested": True}),
    (nested_functional, {}), (nested_functional, {"expand_nested": True}),
    (frozen_inner, {"show_trainable": True}), (frozen_inner, {"expand_nested": True}),
    (with_ops, {}), (vector_output, {}), (dict_outputs, {}), (lstm_states, {}), (recurrent, {}),
    (mixed_dtypes, {}), (long_names, {}), (long_names, {"line_length": 50}), (two_outputs, {}),
    (subclassed, {}), (subclassed, {"show_trainable": True}), (subclassed_unbuilt, {}),
    (subclassed_unbuilt, {"show_trainable": True}), (time_distributed, {}), (convolutional, {}), (large, {}),
    (subclassed_holding_a_model, {}), (subclassed_holding_a_model, {"expand_nested": True}),
    (composite_layer, {}), (composite_layer, {"expand_nested": True}),
    (frozen_in_inner_sequential, {"expand_nested": True, "show_trainable": True}),
    (fitted_with(sgd), {}), (fitted_with(sgd_momentum), {}), (fitted_with(adam_schedule), {}),
    (compiled_not_fit, {}),
    (embedding_lstm, {}), (embedding_lstm, {"show_trainable": True}),
    (embedding_lstm, {"layer_range": ["not_equal", "lstm"]}), (masking_gru, {}), (masks_numbered, {}),
    (concatenated_masks, {}),
    (reversible_embedding_lstm, {}), (embedding_sequential, {}),
]
IDS = [make.__name__ + "".join(f"-{k}={v}" for k, v in options.items()) for make, options in CASES]


def printed(lib, make, options, to_stdout=False):
    (keras.utils.clear_session if lib is keras else gpu_dl.utils.clear_session)()    # the same layer names
    model = make(lib)
    if to_stdout:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            model.summary(**options)
        return out.getvalue()
    calls = []
    model.summary(print_fn=calls.append, **options)
    assert len(calls) == 1          # the whole text in one call, as Keras gives it
    return calls[0]


@pytest.mark.parametrize("make, options", CASES, ids=IDS)
def test_the_same_text_as_keras(make, options, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # a wide terminal: Keras's default widths, 88 or 108 columns
    theirs = printed(keras, make, options)
    assert printed(gpu_dl, make, options) == theirs
    assert theirs.startswith("Model: ") and theirs.endswith("\n")


NARROW = [(sequential, {}), (two_inputs, {}), (nested, {"expand_nested": True, "show_trainable": True}),
          (long_names, {}), (sequential, {"line_length": 120})]


@pytest.mark.parametrize("columns", ["70", "100", None])
@pytest.mark.parametrize("to_stdout", [False, True])
@pytest.mark.parametrize("make, options", NARROW, ids=[IDS[CASES.index(case)] for case in NARROW])
def test_the_terminal_width_sizes_and_cuts_the_table_as_keras_does(make, options, columns, to_stdout, monkeypatch):
    # None: no COLUMNS, and (under pytest) no terminal: 80 columns, the table 4 narrower
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
        if any(os.isatty(fd) for fd in (0, 1, 2)):
            pytest.skip("a terminal of its own width")
    else:
        monkeypatch.setenv("COLUMNS", columns)
    theirs = printed(keras, make, options, to_stdout)
    assert printed(gpu_dl, make, options, to_stdout) == theirs


@pytest.mark.parametrize("make, options", [(two_inputs, {}), (sequential, {"show_trainable": True})],
                         ids=["two_inputs", "sequential-show_trainable"])
def test_a_stdout_that_is_not_utf_gets_ascii_borders_as_from_keras(make, options, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    theirs = printed(keras, make, options)
    assert printed(gpu_dl, make, options) == theirs
    assert "+---" in theirs and "━" not in theirs


def test_bad_arguments_are_refused_where_keras_refuses_them(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")
    for options in ({"layer_range": ["nothing", "dense"]}, {"layer_range": ["dense"]},
                    {"layer_range": ["dense", 3]}, {"line_length": 8}):
        with pytest.raises(ValueError):
            printed(keras, sequential, options)
        with pytest.raises(ValueError):
            printed(gpu_dl, sequential, options)
