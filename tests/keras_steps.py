"""Checks the Keras-oracle tests share: the same model trained for a few steps by gpu_dl and by Keras 3, and .keras
files written by one library read by the other."""
import json
import re
import zipfile

import numpy
import pytest


def assert_training_steps_match(keras, ours, theirs, rng, sample_shape, classes, batch, steps=4, optimizer="Adam",
                                loss="sparse_categorical_crossentropy", keras_loss=None, targets=None,
                                inputs=None):
    """Copy ``ours``'s weights into ``theirs``, train both with a new ``optimizer`` (a class name of both
    ``keras.optimizers`` and ``gpu_dl.optimizers``, with its defaults; Adam unless told) on the same random
    batches, and require the same losses and final weights (float32 rounding apart).

    ``loss`` is what ``ours`` compiles with and ``keras_loss`` what ``theirs`` does (``loss`` where not given);
    ``targets(rng, batch)`` makes each batch's targets (integer class ids below ``classes`` where not given), and
    ``inputs(rng, batch)`` its inputs (standard normal samples of ``sample_shape`` where not given: ids, or a
    model's several inputs)."""
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer=optimizer.lower(), loss=loss)
    # By class, not by keras.optimizers.get: Keras 3.15's registry has no "lamb".
    theirs.compile(optimizer=getattr(keras.optimizers, optimizer)(), loss=loss if keras_loss is None else keras_loss)
    for step in range(steps):
        x = rng.standard_normal((batch,) + tuple(sample_shape)).astype("float32") if inputs is None \
            else inputs(rng, batch)
        y = rng.integers(0, classes, batch) if targets is None else targets(rng, batch)
        ours_loss, theirs_loss = ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y))
        ours.reset_metrics()
        theirs.reset_metrics()
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def keras_loads_our_file(keras, ours, x, y, tmp_path):
    """Train ``ours`` for an epoch on (x, y) (Adam, sparse categorical cross-entropy), save it, and load the file in
    Keras, which must predict the same; returns (Keras's model, the config the file holds) for checks of its
    entries."""
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    with zipfile.ZipFile(tmp_path / "g.keras") as archive:
        written = json.loads(archive.read("config.json"))
    return theirs, written["config"]


def ours_loads_keras_file(keras, theirs, x, y, tmp_path, load_model):
    """Train Keras's ``theirs`` for an epoch on (x, y) (Adam, sparse categorical cross-entropy), save it, and load
    the file with gpu_dl's ``load_model``: the same predictions, and the same next training step (the optimizer's
    state came along). Returns gpu_dl's model."""
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.fit(x, y, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    layer_names = [e["name"] for e in theirs.get_config()["layers"]]
    assert ours.train_on_batch(x, y) == pytest.approx(float(theirs.train_on_batch(x, y)), rel=2e-5)
    return ours, layer_names


def assert_keras_file_loads_both_ways(keras, theirs, make_x, tmp_path, load_model):
    """Give Keras's ``theirs`` random weights (scale 0.5), train it an epoch (Adam, mean squared error towards its
    own predictions + 0.1) on ``make_x(rng)`` and save it: gpu_dl's ``load_model`` reads the file into the same
    layer classes, the same weights to the bit and the same predictions, and Keras reads back the file gpu_dl
    writes of it. Returns (gpu_dl's model, x)."""
    rng = numpy.random.default_rng(0)
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.compile(optimizer="adam", loss="mse")
    x = make_x(rng)
    theirs.fit(x, theirs.predict(x, verbose=0) + 0.1, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    expected = theirs.predict(x, verbose=0)
    ours = load_model(tmp_path / "k.keras")
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    ours.save(tmp_path / "again.keras")
    numpy.testing.assert_allclose(keras.models.load_model(tmp_path / "again.keras").predict(x, verbose=0), expected,
                                  rtol=1e-5, atol=1e-5)
    return ours, x


def keras_numpy(keras, x):
    """Keras's tensors as NumPy arrays, dicts of them as dicts of arrays."""
    if isinstance(x, dict):
        return {k: keras_numpy(keras, v) for k, v in x.items()}
    return keras.ops.convert_to_numpy(x)


def seed_states(lib, layer):
    """Each variable of ``layer`` (of ``lib``: gpu_dl or keras) as (name, shape, trainable, value), the value of
    a seed generator's state only (None for the others)."""
    def value(v):
        if "seed" not in v.name:
            return None
        return (lib.ops.convert_to_numpy(v.value) if lib.__name__ == "keras" else v.numpy()).tolist()
    return [(v.name, tuple(v.shape), v.trainable, value(v)) for v in layer.variables]


def seed_generator_attributes(lib, layer):
    """The names of the attributes of ``layer`` holding a SeedGenerator of ``lib``."""
    return [name for name, value in vars(layer).items() if isinstance(value, lib.random.SeedGenerator)]


def weight_datasets(path):
    """(name, shape) of each dataset of the HDF5 file ``path``, sorted."""
    import h5py
    found = []
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: found.append((name, obj.shape)) if isinstance(obj, h5py.Dataset) else None)
    return sorted(found)


def assert_seed_states_stay_out_of_weight_files(ours, theirs, states, rng, make_x, tmp_path, load_model, scale=1.0,
                                                rtol=1e-5):
    """``ours`` (gpu_dl's) and ``theirs`` (Keras's), the same model holding ``states`` seed generator states: the
    same variables, the states among them and not among the weights. Given random weights (``scale`` times
    standard normal ones of ``rng``), both write weights files of the same datasets, none of them a seed state,
    one per weight; Keras reads gpu_dl's to the same weights, and both predict the same on ``make_x(rng)``;
    ``load_model`` (gpu_dl's) reads Keras's ``.keras`` file to the same variables, weights and predictions.
    Returns (gpu_dl's model loaded from Keras's file, x)."""
    listed = [(v.name, tuple(v.shape)) for v in theirs.variables]
    assert [(v.name, tuple(v.shape)) for v in ours.variables] == listed
    assert len(ours.variables) == len(ours.weights) + states
    ours.set_weights([scale * rng.standard_normal(w.shape).astype("float32") for w in ours.get_weights()])
    ours.save_weights(tmp_path / "ours.weights.h5")
    theirs.save_weights(tmp_path / "theirs.weights.h5")
    written = weight_datasets(tmp_path / "ours.weights.h5")
    assert written == weight_datasets(tmp_path / "theirs.weights.h5")
    assert len(written) == len(ours.weights) and all("seed" not in name for name, _ in written)
    theirs.load_weights(tmp_path / "ours.weights.h5")
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    x = make_x(rng)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=rtol, atol=1e-5)
    theirs.save(tmp_path / "theirs.keras")
    back = load_model(tmp_path / "theirs.keras")
    assert [(v.name, tuple(v.shape)) for v in back.variables] == listed
    for a, b in zip(back.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    numpy.testing.assert_allclose(back.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=rtol, atol=1e-5)
    return back, x


def summary_rows(model, monkeypatch):
    """([(label, output shape, params[, connected to])], the "Total params" line, the "Optimizer params" line or
    None) of a model's summary, a row's wrapped lines joined (tests/test_keras_oracle_summary_text.py compares
    the whole text)."""
    monkeypatch.setenv("COLUMNS", "250")        # Keras's table is as wide as the terminal: wide enough for all
    lines = []
    model.summary(print_fn=lambda line, **kwargs: lines.append(line))
    text = "\n".join(lines)
    rows = []
    for block in re.split(r"^[├└┡].*$", text, flags=re.M)[1:]:
        cells = [line.split("│")[1:-1] for line in block.strip("\n").splitlines() if line.startswith("│")]
        if cells:
            rows.append(tuple(" ".join(cell[i].strip() for cell in cells).strip() for i in range(len(cells[0]))))
    optimizer = re.search(r"Optimizer params: [\d,]+ \([^)]*\)", text)
    return rows, re.search(r"Total params: [\d,]+ \([^)]*\)", text).group(0), optimizer and optimizer.group(0)


def assert_same_summary(ours, theirs, monkeypatch):
    """``summary_rows`` of gpu_dl's model ``ours`` equal Keras's ``theirs``'s, a cell Keras cut short with "…"
    matching the start of ours."""
    (ours_rows, *ours_totals), (theirs_rows, *theirs_totals) = \
        summary_rows(ours, monkeypatch), summary_rows(theirs, monkeypatch)
    assert ours_totals == theirs_totals and len(ours_rows) == len(theirs_rows)
    for mine, keras_row in zip(ours_rows, theirs_rows):
        assert len(mine) == len(keras_row)
        for a, b in zip(mine, keras_row):
            assert a.startswith(b[:-1]) if b.endswith("…") else a == b, (mine, keras_row)


@pytest.fixture(autouse=True)
def fresh_sessions(request):
    """Both libraries' sessions cleared around each test (a module imports it to have it): names and paths
    compared carry numbers both libraries count process-wide. Keras's only where the test asks for its ``keras``
    fixture."""
    import gpu_dl
    keras = request.getfixturevalue("keras") if "keras" in request.fixturenames else None

    def clear():
        gpu_dl.backend.clear_session()
        if keras is not None:
            keras.backend.clear_session()

    clear()
    yield
    clear()
