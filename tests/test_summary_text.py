"""``model.summary()``'s text, character for character, for a few models: the text Keras 3.15 prints for the same
models (tests/test_keras_oracle_summary_text.py compares with Keras itself where it is installed), here as
literals so that the layout is checked without Keras: column widths from ``line_length`` and ``positions``,
a header cut short with "…", labels wrapped between words or cut short, the *Connected to* column, the byte
sizes, the "Optimizer params" line; and the errors of bad arguments."""
import numpy
import pytest

import gpu_dl
from gpu_dl import layers

SEQUENTIAL_TRAINABLE = """\
Model: "seq"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━┓
┃ Layer (type)                          ┃ Output Shape                  ┃        Param # ┃ Traina… ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━┩
│ dense (Dense)                         │ (None, 16)                    │            144 │    Y    │
├───────────────────────────────────────┼───────────────────────────────┼────────────────┼─────────┤
│ dropout (Dropout)                     │ (None, 16)                    │              0 │    -    │
├───────────────────────────────────────┼───────────────────────────────┼────────────────┼─────────┤
│ dense_1 (Dense)                       │ (None, 3)                     │             51 │    Y    │
└───────────────────────────────────────┴───────────────────────────────┴────────────────┴─────────┘
 Total params: 195 (780.00 B)
 Trainable params: 195 (780.00 B)
 Non-trainable params: 0 (0.00 B)
"""

TWO_INPUTS = """\
Model: "two_in"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                  ┃ Output Shape              ┃         Param # ┃ Connected to               ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━┩
│ input_a (InputLayer)          │ (None, 4)                 │               0 │ -                          │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ input_b (InputLayer)          │ (None, 6)                 │               0 │ -                          │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ dense (Dense)                 │ (None, 5)                 │              25 │ input_a[0][0]              │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ dense_1 (Dense)               │ (None, 5)                 │              35 │ input_b[0][0]              │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ concatenate (Concatenate)     │ (None, 10)                │               0 │ dense[0][0], dense_1[0][0] │
├───────────────────────────────┼───────────────────────────┼─────────────────┼────────────────────────────┤
│ dense_2 (Dense)               │ (None, 2)                 │              22 │ concatenate[0][0]          │
└───────────────────────────────┴───────────────────────────┴─────────────────┴────────────────────────────┘
 Total params: 82 (328.00 B)
 Trainable params: 82 (328.00 B)
 Non-trainable params: 0 (0.00 B)
"""

LONG_NAMES_50 = """\
Model: "a_model_with_a_name_long_enough"
┏━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━┳━━━━━━━━━┓
┃ Layer (type)        ┃ Output Shape   ┃ Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━╇━━━━━━━━━┩
│ a_really_long_laye… │ (None, 2)      │       8 │
│ (Dense)             │                │         │
├─────────────────────┼────────────────┼─────────┤
│ words in a name     │ (None, 2)      │       6 │
│ that wrap across    │                │         │
│ lines of the cell   │                │         │
│ ok (Dense)          │                │         │
└─────────────────────┴────────────────┴─────────┘
 Total params: 14 (56.00 B)
 Trainable params: 14 (56.00 B)
 Non-trainable params: 0 (0.00 B)
"""

TRAINED = """\
Model: "sequential"
┏━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━━━━━━━━━━━━━┳━━━━━━━━━━━━━━━━━┓
┃ Layer (type)                         ┃ Output Shape                ┃         Param # ┃
┡━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━━━━━━━━━━━━━╇━━━━━━━━━━━━━━━━━┩
│ dense (Dense)                        │ (None, 6)                   │              36 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ batch_normalization                  │ (None, 6)                   │              24 │
│ (BatchNormalization)                 │                             │                 │
├──────────────────────────────────────┼─────────────────────────────┼─────────────────┤
│ dense_1 (Dense)                      │ (None, 1)                   │               7 │
└──────────────────────────────────────┴─────────────────────────────┴─────────────────┘
 Total params: 107 (428.00 B)
 Trainable params: 19 (76.00 B)
 Non-trainable params: 48 (192.00 B)
 Optimizer params: 40 (160.00 B)
"""



def _printed(model, **options):
    calls = []
    model.summary(print_fn=calls.append, **options)
    assert len(calls) == 1          # the whole text in one call, as Keras gives it
    return calls[0]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    # Keras sizes the table to the terminal: a wide one gives its default widths, 88 or 108 columns
    monkeypatch.setenv("COLUMNS", "250")
    gpu_dl.utils.clear_session()


def test_a_sequential_with_the_trainable_column():
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                               layers.Dense(3)], name="seq")
    assert _printed(model, show_trainable=True) == SEQUENTIAL_TRAINABLE


def test_a_functional_model_of_two_inputs_lists_the_connections():
    a, b = gpu_dl.Input((4,), name="input_a"), gpu_dl.Input((6,), name="input_b")
    h = layers.Concatenate()([layers.Dense(5)(a), layers.Dense(5)(b)])
    assert _printed(gpu_dl.Model([a, b], layers.Dense(2)(h), name="two_in")) == TWO_INPUTS


def test_long_labels_wrap_between_words_or_are_cut_short():
    model = gpu_dl.Sequential([gpu_dl.Input((3,)),
                               layers.Dense(2, name="a_really_long_layer_name_that_does_not_fit_in_the_column"),
                               layers.Dense(2, name="words in a name that wrap across lines of the cell ok")],
                              name="a_model_with_a_name_long_enough")
    assert _printed(model, line_length=50) == LONG_NAMES_50


def test_frozen_weights_and_a_built_optimizer_are_counted():
    model = gpu_dl.Sequential([gpu_dl.Input((5,)), layers.Dense(6), layers.BatchNormalization(), layers.Dense(1)])
    model.layers[0].trainable = False
    model.compile(optimizer=gpu_dl.optimizers.Adam(), loss="mse")
    model.fit(numpy.ones((4, 5), "float32"), numpy.zeros((4, 1), "float32"), epochs=1, verbose=0)
    assert _printed(model) == TRAINED


def test_stdout_gets_the_same_text(capsys):
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                               layers.Dense(3)], name="seq")
    model.summary(show_trainable=True)
    assert capsys.readouterr().out == SEQUENTIAL_TRAINABLE


def test_lines_are_cut_at_the_terminal_width(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                               layers.Dense(3)], name="seq")
    text = _printed(model, show_trainable=True, line_length=100)
    lines = text.splitlines()
    # the table keeps the widths asked for, each line cut at the console's 40 columns
    assert all(len(line) <= 40 for line in lines) and lines[1] == SEQUENTIAL_TRAINABLE.splitlines()[1][:40]


def test_with_interactive_logging_off_the_text_is_logged(caplog, capsys):
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), layers.Dense(16, activation="relu"), layers.Dropout(0.1),
                               layers.Dense(3)], name="seq")
    gpu_dl.config.disable_interactive_logging()
    try:
        with caplog.at_level("INFO", logger="gpu_dl"):
            model.summary(show_trainable=True)
    finally:
        gpu_dl.config.enable_interactive_logging()
    assert [r.getMessage() for r in caplog.records] == [SEQUENTIAL_TRAINABLE] and capsys.readouterr().out == ""


@pytest.mark.parametrize("options, match", [
    ({"layer_range": ["nothing", "dense"]}, "layer_range|layer_names"),
    ({"layer_range": ["dense"]}, "layer_range must be a list or tuple of length 2"),
    ({"layer_range": ["dense", 3]}, "string type only"),
    ({"line_length": 8}, "line_length=8"),
])
def test_bad_arguments_name_what_was_expected(options, match):
    model = gpu_dl.Sequential([gpu_dl.Input((8,)), layers.Dense(16), layers.Dense(3)])
    with pytest.raises(ValueError, match=match):
        model.summary(print_fn=lambda text: None, **options)
