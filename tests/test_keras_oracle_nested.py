"""Models used as layers of other models against Keras 3 itself (where Keras is installed).

The same nested models built with gpu_dl and with Keras: the same layers, weights in the same order and the
same outputs; the same training steps (a frozen inner model with BatchNormalization included); files Keras
writes load in gpu_dl, predict the same and resume training with the optimizer's state; files gpu_dl writes
load in Keras, predict the same, resume training, and hold the entries and weight groups Keras itself writes
for them; summaries and plots show the same rows, nodes and edges.
"""
import io
import os
import re
import zipfile

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402


# ------------------------------------------------------------------ the same nested models in both libraries
def base(lib, name="base", input_name="base_in"):
    L = lib.layers
    return lib.Sequential([lib.Input((6,), name=input_name), L.Dense(5, activation="relu", name=f"{name}_d1"),
                           L.BatchNormalization(name=f"{name}_bn"), L.Dense(4, activation="tanh", name=f"{name}_d2")],
                          name=name)


def encoder(lib, name="encoder", features=4):
    L = lib.layers
    inp = lib.Input((features,), name=f"{name}_in")
    return lib.Model(inp, L.Dense(3, name=f"{name}_d2")(L.Dense(4, activation="tanh", name=f"{name}_d1")(inp)),
                     name=name)


def seq_in_seq(lib):
    return lib.Sequential([base(lib), lib.layers.Dense(3, activation="softmax", name="head")], name="outer"), [(6,)]


def graph(lib):
    L = lib.layers
    inp = lib.Input((7,), name="x")
    h = encoder(lib)(base(lib)(L.Dense(6, name="pre")(inp)))
    return lib.Model(inp, L.Dense(3, activation="softmax", name="probs")(h), name="graph"), [(7,)]


def siamese(lib):
    L = lib.layers
    inp = lib.Input((5,), name="enc_in")
    h = L.BatchNormalization(name="enc_bn")(L.Dense(4, activation="tanh", name="enc_d1")(inp))
    shared = lib.Model(inp, L.Dense(3, name="enc_d2")(h), name="encoder")
    a, b = lib.Input((5,), name="a"), lib.Input((5,), name="b")
    diff = L.Subtract(name="diff")([shared(a), shared(b)])
    return lib.Model([a, b], L.Dense(3, activation="softmax", name="probs")(diff), name="siamese"), [(5,), (5,)]


def triple(lib):
    L = lib.layers
    middle = lib.Sequential([encoder(lib, "innermost"), L.Dense(3, activation="relu", name="mid")], name="middle")
    inp = lib.Input((4,), name="x")
    return lib.Model(inp, L.Dense(3, activation="softmax", name="probs")(middle(inp)), name="top"), [(4,)]


def multi_io(lib):
    L = lib.layers
    i, j = lib.Input((3,), name="i"), lib.Input((2,), name="j")
    joined = L.Concatenate(name="joined")([i, j])
    inner = lib.Model([i, j], [L.Dense(2, activation="tanh", name="o1")(joined), L.Dense(1, name="o2")(joined)],
                      name="pair")
    p, q = lib.Input((3,), name="p"), lib.Input((2,), name="q")
    u, v = inner([p, q])
    out = L.Dense(3, activation="softmax", name="probs")(L.Concatenate(name="both")([u, v]))
    return lib.Model([p, q], out, name="multi"), [(3,), (2,)]


def with_ops(lib):
    L = lib.layers
    inp = lib.Input((4,), name="ops_in")
    h = L.Dense(3, activation="tanh", name="ops_d")(inp)
    inner = lib.Model(inp, 0.5 * (h * h) - h / 3.0, name="with_ops")
    a, b = lib.Input((4,), name="a"), lib.Input((4,), name="b")
    out = L.Dense(3, activation="softmax", name="probs")(inner(a) * inner(b) + 1.0)
    return lib.Model([a, b], out, name="outer_ops"), [(4,), (4,)]


def frozen(lib):
    frozen_base = base(lib)
    frozen_base.trainable = False
    return lib.Sequential([frozen_base, lib.layers.Dense(3, activation="softmax", name="head")], name="frozen"), [(6,)]


def _frame_encoder(lib, functional):
    """A per-frame CNN encoder (Conv2D, BatchNormalization, Flatten, Dense), Sequential or functional."""
    L = lib.layers
    parts = [L.Conv2D(3, 3, activation="relu", name="frame_conv"), L.BatchNormalization(name="frame_bn"),
             L.Flatten(name="frame_flat"), L.Dense(5, name="frame_dense")]
    if not functional:
        return lib.Sequential([lib.Input((4, 4, 2), name="frame_in")] + parts, name="frame")
    inp = x = lib.Input((4, 4, 2), name="frame_in")
    for layer in parts:
        x = layer(x)
    return lib.Model(inp, x, name="frame")


def frames_sequential(lib):
    """TimeDistributed(Sequential) in a functional model: the encoder applied to each of 3 frames."""
    L = lib.layers
    inp = lib.Input((3, 4, 4, 2), name="x")
    h = L.TimeDistributed(_frame_encoder(lib, functional=False), name="per_frame")(inp)
    return lib.Model(inp, L.Dense(3, activation="softmax", name="probs")(L.Flatten(name="flat")(h)),
                     name="video"), [(3, 4, 4, 2)]


def frames_functional(lib):
    """TimeDistributed(functional model) as a layer of a Sequential, an LSTM over the frames' codes."""
    L = lib.layers
    return lib.Sequential([lib.Input((3, 4, 4, 2), name="x"),
                           L.TimeDistributed(_frame_encoder(lib, functional=True), name="per_frame"),
                           L.LSTM(4, name="lstm"), L.Dense(3, activation="softmax", name="probs")],
                          name="video_seq"), [(3, 4, 4, 2)]


def dict_io(lib):
    """An inner model made with dicts of inputs and outputs (given out of key order), called on a dict."""
    L = lib.layers
    b, a = lib.Input((2,), name="b"), lib.Input((3,), name="a")
    joined = L.Concatenate(name="joined")([a, b])
    inner = lib.Model({"b": b, "a": a}, {"z": L.Dense(1, name="z")(joined), "y": L.Dense(2, activation="tanh",
                                                                                       name="y")(joined)},
                      name="keyed")
    p, q = lib.Input((3,), name="p"), lib.Input((2,), name="q")
    out = inner({"a": p, "b": q})
    x = lib.Input((3,), name="x")
    single = lib.Model({"x": x}, {"w": L.Dense(2, name="w")(x)}, name="single")
    both = L.Concatenate(name="both")([out["y"], out["z"], single({"x": p})["w"]])
    return lib.Model([p, q], L.Dense(3, activation="softmax", name="probs")(both), name="dicts"), [(3,), (2,)]


BUILDERS = {"seq_in_seq": seq_in_seq, "graph": graph, "siamese": siamese, "triple": triple, "multi_io": multi_io,
            "with_ops": with_ops, "frozen": frozen, "dict_io": dict_io, "frames_sequential": frames_sequential,
            "frames_functional": frames_functional}


def _inputs(shapes, rng, n):
    xs = [rng.standard_normal((n,) + s).astype("float32") for s in shapes]
    return xs[0] if len(xs) == 1 else xs


def _targets(rng, n):
    return rng.integers(0, 3, n)


def _layer_tree(model):
    """(name, class) of each layer, with the tree of each inner model's layers."""
    return [(l.name, type(l).__name__, _layer_tree(l) if hasattr(l, "layers") else None) for l in model.layers]


def _assert_same_weights(ours, theirs, rtol=2e-4, atol=2e-5):
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=rtol, atol=atol)


# ------------------------------------------------------------------ structure, outputs, training
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_nested_models_same_layers_weights_and_outputs(name, rng):
    backend.set_random_seed(0)
    ours, shapes = BUILDERS[name](gpu_dl)
    theirs, _ = BUILDERS[name](keras)
    assert _layer_tree(ours) == _layer_tree(theirs)
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert [tuple(v.shape) for v in ours.trainable_weights] == [tuple(v.shape) for v in theirs.trainable_weights]
    assert ours.count_params() == theirs.count_params()
    theirs.set_weights(ours.get_weights())
    x = _inputs(shapes, rng, 5)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=2e-5, atol=2e-6)
    assert tuple(ours.output_shape) == tuple(theirs.output_shape)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_training_steps_match_keras(name, rng):
    backend.set_random_seed(1)
    ours, shapes = BUILDERS[name](gpu_dl)
    theirs, _ = BUILDERS[name](keras)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    for step in range(4):
        x, y = _inputs(shapes, rng, 6), _targets(rng, 6)
        ours_loss, theirs_loss = ours.train_on_batch(x, y), float(theirs.train_on_batch(x, y))
        ours.reset_metrics()
        theirs.reset_metrics()
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
    _assert_same_weights(ours, theirs)
    assert [v.name for v in ours.optimizer.variables] == [v.name for v in theirs.optimizer.variables]


# ------------------------------------------------------------------ files both ways
def _h5_entries(path):
    import h5py
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as h5:
        found = {}

        def note(entry, obj):          # returns None: visititems stops at the first other value
            found[entry] = getattr(obj, "shape", None)
        h5.visititems(note)
    return found


def _entries(layers):
    """What Keras writes for each layer entry besides the layer's own arguments, inner models' entries within."""
    out = []
    for entry in layers:
        kept = {k: entry.get(k) for k in ("name", "module", "class_name", "registered_name", "build_config",
                                          "inbound_nodes")}
        if entry["class_name"] in ("Sequential", "Functional"):
            kept["compile_config"] = entry.get("compile_config")
            kept["inner"] = _skeleton(entry)
        elif kept["inbound_nodes"]:
            # Keras also records mask=None in the calls of plain layers whose call takes a mask
            # (BatchNormalization); gpu_dl records it for models only. Both read either.
            kept["inbound_nodes"] = [dict(node, kwargs={k: v for k, v in node["kwargs"].items()
                                                        if not (k == "mask" and v is None)})
                                     for node in kept["inbound_nodes"]]
        out.append(kept)
    return out


def _skeleton(config):
    inner = config["config"]
    return {"layers": _entries(inner["layers"]), "input_layers": inner.get("input_layers"),
            "output_layers": inner.get("output_layers"), "build_config": config.get("build_config")}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_files_written_by_keras_load_predict_and_resume_the_same(name, tmp_path, rng):
    keras.utils.set_random_seed(0)
    theirs, shapes = BUILDERS[name](keras)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _inputs(shapes, rng, 9), _targets(rng, 9)
    theirs.fit(x, y, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")

    ours = load_model(tmp_path / "k.keras")
    assert _layer_tree(ours) == _layer_tree(theirs)
    assert [l.trainable for l in ours.layers] == [l.trainable for l in theirs.layers]
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), theirs.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 3
    # Keras's variables in its order: the step count, the learning rate, then the slots
    keras_values = [keras.ops.convert_to_numpy(v) for v in theirs.optimizer.variables]
    assert len(keras_values) == len(ours.optimizer.variables)
    for a, b in zip(ours.optimizer.variables, keras_values):
        numpy.testing.assert_array_equal(a.numpy(), b)
    # The optimizer state came along: the next step is Keras's next step.
    x2, y2 = _inputs(shapes, rng, 6), _targets(rng, 6)
    assert ours.train_on_batch(x2, y2) == pytest.approx(float(theirs.train_on_batch(x2, y2)), rel=2e-5, abs=1e-6)
    _assert_same_weights(ours, theirs)

    again = load_model(tmp_path / "k.keras", compile=False)
    again.set_weights([numpy.zeros_like(w) for w in again.get_weights()])
    again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(again.predict(x, verbose=0), load_model(tmp_path / "k.keras").predict(x, verbose=0),
                                  rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_keras_loads_files_written_by_gpu_dl_and_resumes_the_same(name, tmp_path, rng):
    backend.set_random_seed(2)
    ours, shapes = BUILDERS[name](gpu_dl)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, y = _inputs(shapes, rng, 8), _targets(rng, 8)
    ours.fit(x, y, epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert _layer_tree(theirs) == _layer_tree(ours)
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), ours.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert int(theirs.optimizer.iterations) == ours.optimizer.iterations == 2
    x2, y2 = _inputs(shapes, rng, 6), _targets(rng, 6)
    assert ours.train_on_batch(x2, y2) == pytest.approx(float(theirs.train_on_batch(x2, y2)), rel=2e-5, abs=1e-6)
    _assert_same_weights(ours, theirs)

    # Keras writes the same model back with the same entries and weight groups gpu_dl wrote.
    theirs.save(tmp_path / "k.keras")
    assert _h5_entries(tmp_path / "g.keras") == _h5_entries(tmp_path / "k.keras")
    import json
    with zipfile.ZipFile(tmp_path / "g.keras") as a, zipfile.ZipFile(tmp_path / "k.keras") as b:
        ours_config, theirs_config = json.loads(a.read("config.json")), json.loads(b.read("config.json"))
    assert _skeleton(ours_config) == _skeleton(theirs_config)


def test_a_compiled_inner_model_and_its_optimizer_load_both_ways(tmp_path, rng):
    for writer, reader in ((keras, gpu_dl), (gpu_dl, keras)):
        backend.set_random_seed(3)
        keras.utils.set_random_seed(3)
        inner = encoder(writer)
        inner.compile(optimizer="sgd", loss="mse")
        inner.fit(rng.standard_normal((4, 4)).astype("float32"), rng.standard_normal((4, 3)).astype("float32"),
                  verbose=0, batch_size=2)
        outer = writer.Sequential([inner, writer.layers.Dense(2, name="head")], name="outer")
        outer.compile(optimizer="adam", loss="mse")
        x = rng.standard_normal((6, 4)).astype("float32")
        outer.fit(x, rng.standard_normal((6, 2)).astype("float32"), verbose=0)
        outer.save(tmp_path / "m.keras")
        entries = _h5_entries(tmp_path / "m.keras")
        assert entries["layers/functional/optimizer/vars/0"] == ()
        loaded = (load_model if reader is gpu_dl else keras.models.load_model)(tmp_path / "m.keras")
        numpy.testing.assert_allclose(loaded.predict(x, verbose=0), outer.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
        loaded_inner = loaded.get_layer("encoder")
        assert loaded_inner.compiled and int(loaded_inner.optimizer.iterations) == 2
        assert int(loaded.optimizer.iterations) == 1


# ------------------------------------------------------------------ summary and plot
def _plain_names(text):
    """The text with the operations' names without their numbers: each library numbers them on its own."""
    return re.sub(r"\b(add|subtract|multiply|true_divide|power|negative|absolute)_\d+\b", r"\1", text)


def _summary_table(text):
    """[(label, output shape, params, connections)] of a summary's rows, rows split at the rules between them
    (a row may wrap over several lines)."""
    table = []
    for block in re.split(r"^[├└┡].*$", text, flags=re.M)[1:]:
        cells = [line.split("│")[1:-1] for line in block.strip("\n").splitlines() if line.startswith("│")]
        if not cells:
            continue
        columns = [" ".join(cell[i].strip() for cell in cells).strip() for i in range(len(cells[0]))]
        links = re.findall(r"\w+\[\d+\]\[\d+\]", columns[3]) or columns[3] if len(columns) > 3 else None
        table.append((columns[0], columns[1], columns[2], links))
    return table


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("expand_nested", [False, True])
def test_summary_matches_keras(name, expand_nested, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # Keras's table is as wide as the terminal: wide enough for all
    ours, _ = BUILDERS[name](gpu_dl)
    theirs, _ = BUILDERS[name](keras)
    lines, captured = [], []
    ours.summary(print_fn=lines.append, expand_nested=expand_nested)
    theirs.summary(print_fn=lambda line, **kwargs: captured.append(line), expand_nested=expand_nested)
    assert _summary_table(_plain_names("\n".join(lines))) == _summary_table(_plain_names("\n".join(captured)))
    for total in re.findall(r"(?:Total|Trainable|Non-trainable) params: [\d,]+ \([^)]*\)", "\n".join(captured)):
        assert total in "\n".join(lines)


@pytest.mark.parametrize("name", sorted(BUILDERS))
@pytest.mark.parametrize("expand_nested", [False, True])
def test_plot_model_matches_keras(name, expand_nested):
    pytest.importorskip("pydot")
    from keras.src.utils import model_visualization
    ours, _ = BUILDERS[name](gpu_dl)
    theirs, _ = BUILDERS[name](keras)
    options = dict(show_shapes=True, show_dtype=True, show_layer_names=True, show_layer_activations=True,
                   show_trainable=True, expand_nested=expand_nested)
    ours_text = _plain_names(gpu_dl.utils.model_to_dot(ours, **options).to_string())
    theirs_text = _plain_names(model_visualization.model_to_dot(theirs, **options).to_string())

    def drawn(text):
        labels = dict(re.findall(r"^\s*(\d+) \[label=<(.*?)>, ", text, flags=re.M))
        edges = {(labels[a], labels[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+) ", text, flags=re.M)}
        return sorted(labels.values()), edges, sorted(re.findall(r"subgraph (\w+)", text))

    assert drawn(ours_text) == drawn(theirs_text)
