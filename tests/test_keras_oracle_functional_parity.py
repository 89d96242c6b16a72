"""Functional models against Keras 3 itself (where Keras is installed), where gpu_dl once differed: an input the
outputs do not use, a nested model called on a less specific shape, and the summary's rows for the masks a merge
hands a recurrent layer."""
import os
import warnings

import numpy
import pytest

import gpu_dl
import keras_steps
from gpu_dl.models import load_model

fresh_sessions = keras_steps.fresh_sessions     # autouse: both sessions cleared around each test


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _np(keras, x):
    return keras.ops.convert_to_numpy(x)


# ------------------------------------------------------------------ an input the outputs do not use
def _unused_input_model(lib):
    a, b = lib.Input((3,), name="a"), lib.Input((2,), name="b")
    hidden = lib.layers.Dense(4, activation="tanh", name="hidden")(a)
    return lib.Model([a, b], lib.layers.Dense(2, name="head")(hidden))


def test_a_model_keeps_an_input_its_outputs_do_not_use(keras, rng, tmp_path, monkeypatch):
    """Keras takes such an input without a warning: its InputLayer is a layer of the model (at depth 0, ahead of
    the layers there), the model takes and checks its data in fit, evaluate and predict, and the config and saved
    file keep it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours = _unused_input_model(gpu_dl)
    theirs = _unused_input_model(keras)
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers] == \
        ["a", "hidden", "b", "head"]
    assert [t.name for t in ours.inputs] == [t.name for t in theirs.inputs] == ["a", "b"]
    keras_steps.assert_same_summary(ours, theirs, monkeypatch)
    config, keras_config = ours.get_config(), theirs.get_config()
    assert config["input_layers"] == keras_config["input_layers"] == [["a", 0, 0], ["b", 0, 0]]
    assert [entry["name"] for entry in config["layers"]] == [entry["name"] for entry in keras_config["layers"]]
    for rebuilt in (gpu_dl.Model.from_config(config), keras.Model.from_config(config)):
        assert [layer.name for layer in rebuilt.layers] == ["a", "hidden", "b", "head"]

    theirs.set_weights(ours.get_weights())
    x = [rng.standard_normal((6, 3)).astype("float32"), rng.standard_normal((6, 2)).astype("float32")]
    y = rng.standard_normal((6, 2)).astype("float32")
    kernel, bias, head_kernel, head_bias = ours.get_weights()
    expected = numpy.tanh(x[0] @ kernel + bias) @ head_kernel + head_bias
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(_np(keras, theirs.predict(x, verbose=0)), expected, rtol=1e-5, atol=1e-6)
    ours.compile(optimizer="sgd", loss="mse")
    theirs.compile(optimizer="sgd", loss="mse")
    assert ours.evaluate(x, y, verbose=0) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)
    ours_history = ours.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history["loss"]
    theirs_history = theirs.fit(x, y, batch_size=3, epochs=2, shuffle=False, verbose=0).history["loss"]
    numpy.testing.assert_allclose(ours_history, theirs_history, rtol=1e-5)
    with pytest.raises(ValueError, match=r"x\[1\] \(input 'b'\) of shape \(None, 2\)"):
        ours.predict([x[0], numpy.ones((6, 7), "float32")], verbose=0)
    with pytest.raises(ValueError, match="must hold 2 arrays"):
        ours.predict([x[0]], verbose=0)

    ours.save(tmp_path / "ours.keras")
    theirs.save(tmp_path / "theirs.keras")
    for back in (load_model(tmp_path / "theirs.keras"), keras.models.load_model(tmp_path / "ours.keras")):
        assert [layer.name for layer in back.layers] == ["a", "hidden", "b", "head"]
        numpy.testing.assert_allclose(_np(keras, back.predict(x, verbose=0)), ours.predict(x, verbose=0),
                                      rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ a nested model on a less specific shape
def _inner(lib):
    steps = lib.Input((5, 4), name="steps")
    return lib.Model(steps, lib.layers.Dense(3, name="dense")(steps), name="inner")


@pytest.mark.parametrize("shape,taken", [((None, 4), True), ((5, None), True), ((None, None), True),
                                         ((5, 4), True), ((6, 4), False), ((5, 7), False), ((None, 7), False)])
def test_a_nested_model_takes_a_less_specific_shape_and_refuses_a_conflicting_one(keras, rng, shape, taken,
                                                                                   monkeypatch):
    """As Keras's input spec checks a call of a functional model: each size where both the model's input and the
    tensor know it; the model's layers then see the sizes given."""
    ours, theirs = _inner(gpu_dl), _inner(keras)
    ours_in, theirs_in = gpu_dl.Input(shape, name="outer_in"), keras.Input(shape, name="outer_in")
    if not taken:
        with pytest.raises(ValueError, match=r"incompatible with the layer: expected shape=\(None, 5, 4\)"):
            theirs(theirs_in)
        with pytest.raises(ValueError, match=rf"Model 'inner' expects input of shape \(None, 5, 4\).*"
                                             rf"got \(None, {shape[0]}, {shape[1]}\)"):
            ours(ours_in)
        return
    ours_out, theirs_out = ours(ours_in), theirs(theirs_in)
    assert tuple(ours_out.shape) == tuple(theirs_out.shape) == (None, shape[0], 3)
    ours_model, theirs_model = gpu_dl.Model(ours_in, ours_out), keras.Model(theirs_in, theirs_out)
    keras_steps.assert_same_summary(ours_model, theirs_model, monkeypatch)
    theirs_model.set_weights(ours_model.get_weights())
    x = rng.standard_normal((2, 5, 4)).astype("float32")
    kernel, bias = ours_model.get_weights()
    numpy.testing.assert_allclose(ours_model.predict(x, verbose=0), x @ kernel + bias, rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(_np(keras, theirs_model.predict(x, verbose=0)), x @ kernel + bias,
                                  rtol=1e-5, atol=1e-6)
    if shape[0] is None:        # data of another length: the outer model takes it, the nested one refuses it
        longer = numpy.ones((2, 6, 4), "float32")
        with pytest.raises(ValueError, match=r"expected shape=\(None, 5, 4\), found shape=\(2, 6, 4\)"):
            theirs_model.predict(longer, verbose=0)
        with pytest.raises(ValueError, match=r"Model 'inner' expects input of shape \(None, 5, 4\).*\(None, 6, 4\)"):
            ours_model.predict(longer, verbose=0)


# ------------------------------------------------------------------ the masks a merge hands a recurrent layer
def _merged_masks(lib, merge):
    a, b = lib.Input((5, 3), name="a"), lib.Input((5, 3), name="b")
    merged = getattr(lib.layers, merge)(name="merge")([lib.layers.Masking(name="ma")(a),
                                                        lib.layers.Masking(name="mb")(b)])
    return lib.Model([a, b], lib.layers.LSTM(2, name="lstm")(merged))


@pytest.mark.parametrize("merge", ["Add", "Maximum", "Multiply"])
def test_the_summary_lists_the_logical_or_a_merge_of_masks_makes_as_keras_does(keras, rng, merge, monkeypatch):
    """Keras's merge ORs its inputs' masks with ops.logical_or, an operation of the graph the recurrent layer
    reads: a ``logical_or (LogicalOr)`` row after the merge's, fed by the Maskings' ``any`` rows."""
    ours, theirs = _merged_masks(gpu_dl, merge), _merged_masks(keras, merge)
    keras_steps.assert_same_summary(ours, theirs, monkeypatch)
    rows = keras_steps.summary_rows(ours, monkeypatch)[0]
    labels = [row[0] for row in rows]
    assert labels.index("merge (%s)" % merge) < labels.index("logical_or (LogicalOr)") < labels.index("lstm (LSTM)")
    assert rows[labels.index("logical_or (LogicalOr)")][1:] == ("(None, 5)", "0", "any[0][0], any_1[0][0]")
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    # the mask the recurrent layer reads on arrays is that OR: a step padded in both inputs is skipped
    theirs.set_weights(ours.get_weights())
    x = [rng.standard_normal((4, 5, 3)).astype("float32") for _ in range(2)]
    x[0][:, 3:] = 0.0
    x[1][:2, 3:] = 0.0
    got = ours.predict(x, verbose=0)
    numpy.testing.assert_allclose(got, _np(keras, theirs.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    if merge != "Add":      # Maximum and Multiply leave the masked values out of their result, as Keras's do
        return
    merged, lstm = x[0] + x[1], ours.get_layer("lstm")
    numpy.testing.assert_allclose(got[:2], gpu_dl.backend.to_numpy(lstm(merged[:2, :3])), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(got[2:], gpu_dl.backend.to_numpy(lstm(merged[2:])), rtol=1e-5, atol=1e-6)


def _concatenated_masks(lib, masked):
    """Two inputs (3 and 2 features), those named in ``masked`` through a Masking, concatenated, read by an LSTM."""
    a, b = lib.Input((5, 3), name="a"), lib.Input((5, 2), name="b")
    ins = [lib.layers.Masking(name=f"m{t.name}")(t) if t.name in masked else t for t in (a, b)]
    return lib.Model([a, b], lib.layers.LSTM(2, name="lstm")(lib.layers.Concatenate(name="merge")(ins)))


@pytest.mark.parametrize("masked", ["ab", "a", "b"])
def test_the_summary_lists_the_operations_a_concatenation_of_masks_makes_as_keras_does(keras, rng, masked,
                                                                                       monkeypatch):
    """Keras's Concatenate spreads each input's mask over the input (expand_dims, zeros_like, logical_or; ones_like
    for an unmasked input), concatenates them and takes any() over the last axis: rows of the summary, whose
    last, the ``any`` the LSTM reads, is fed by the ``concatenate`` operation."""
    ours, theirs = _concatenated_masks(gpu_dl, masked), _concatenated_masks(keras, masked)
    keras_steps.assert_same_summary(ours, theirs, monkeypatch)
    rows = keras_steps.summary_rows(ours, monkeypatch)[0]
    labels = [row[0] for row in rows]
    spread = {"ab": ["logical_or (LogicalOr)", "logical_or_1 (LogicalOr)"],
              "a": ["logical_or (LogicalOr)", "ones_like (OnesLike)"],
              "b": ["ones_like (OnesLike)", "logical_or (LogicalOr)"]}[masked]
    joined, last = labels.index("concatenate (Concatenate)"), labels.index("any_%d (Any)" % len(masked))
    assert rows[joined][1:] == ("(None, 5, 5)", "0", ", ".join(s.split()[0] + "[0][0]" for s in spread))
    assert rows[last][1:] == ("(None, 5)", "0", "concatenate[0][0]")
    assert max(labels.index(s) for s in spread) < joined < last < labels.index("lstm (LSTM)")
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    # the mask the LSTM reads on arrays: a step is skipped where every input is masked there (an unmasked input
    # counts as unmasked everywhere)
    theirs.set_weights(ours.get_weights())
    x = [rng.standard_normal((4, 5, 3)).astype("float32"), rng.standard_normal((4, 5, 2)).astype("float32")]
    x[0][:, 3:] = 0.0
    x[1][:2, 3:] = 0.0
    got = ours.predict(x, verbose=0)
    numpy.testing.assert_allclose(got, _np(keras, theirs.predict(x, verbose=0)), rtol=1e-5, atol=1e-6)
    merged, lstm = numpy.concatenate(x, axis=-1), ours.get_layer("lstm")
    read = slice(None, 3) if masked == "ab" else slice(None)
    numpy.testing.assert_allclose(got[:2], gpu_dl.backend.to_numpy(lstm(merged[:2, read])), rtol=1e-5, atol=1e-6)
    numpy.testing.assert_allclose(got[2:], gpu_dl.backend.to_numpy(lstm(merged[2:])), rtol=1e-5, atol=1e-6)
