"""Functional models and merge layers against Keras 3 itself (where Keras is installed).

The same graphs built with gpu_dl and with Keras: merge layers give the same
outputs and shapes (masks too), the same weights and batches give the same
training steps, files Keras writes load in gpu_dl and predict the same (with
the optimizer's state), and files gpu_dl writes load in Keras and predict the
same. Plots draw the same nodes and edges.
"""
import os
import re

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402
from gpu_dl.models import Functional, load_model  # noqa: E402


# ------------------------------------------------------------------ the same graphs in both libraries
def branch_cnn(lib):
    L = lib.layers
    inputs = lib.Input(shape=(8, 8, 1), name="image")
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    a = L.Flatten(name="flat")(x)
    b = L.Dense(8, activation="relu", name="left")(a)
    c = L.Dense(8, name="right")(a)
    x = L.Add(name="sum")([b, c])
    return lib.Model(inputs, L.Dense(5, activation="softmax", name="probs")(x), name="branch"), [(8, 8, 1)]


def siamese(lib):
    L = lib.layers
    first, second = lib.Input(shape=(6,), name="first"), lib.Input(shape=(6,), name="second")
    shared = L.Dense(4, activation="tanh", name="shared")
    u, v = shared(first), shared(second)
    joined = L.concatenate([u, v, L.Subtract(name="diff")([u, v]), L.Multiply(name="prod")([u, v])], name="joined")
    return lib.Model([first, second], L.Dense(3, activation="softmax", name="probs")(joined), name="pair"), \
        [(6,), (6,)]


def merges(lib):
    L = lib.layers
    a, b = lib.Input(shape=(4, 3), name="a"), lib.Input(shape=(3,), name="b")
    da = L.Dense(3, name="da")(a)
    db = L.Dense(3, name="db")(b)
    mixed = [L.Average(name="avg")([da, db]), L.Maximum(name="max")([da, a]), L.Minimum(name="min")([db, da]),
             L.Multiply(name="mul")([a, db, da])]
    x = L.Concatenate(axis=1, name="cat")(mixed)
    x = L.Flatten(name="flat")(L.Add(name="add")([x, L.Dense(3, name="dx")(x)]))
    return lib.Model({"a": a, "b": b}, L.Dense(2, name="out")(x), name="merges"), [(4, 3), (3,)]


def seq2seq(lib):
    L = lib.layers
    enc, dec = lib.Input(shape=(5, 3), name="enc"), lib.Input(shape=(4, 2), name="dec")
    _, h, c = L.LSTM(6, return_state=True, name="encoder")(enc)
    seq = L.LSTM(6, return_sequences=True, name="decoder")(dec, initial_state=[h, c])
    out = L.Dense(3, activation="softmax", name="probs")(L.GRU(4, return_sequences=True, name="gru")(seq))
    return lib.Model([enc, dec], out, name="seq2seq"), [(5, 3), (4, 2)]


def masked(lib):
    L = lib.layers
    ids = lib.Input(shape=(6,), name="ids")
    emb = L.Embedding(9, 4, mask_zero=True, name="emb")(ids)
    first = L.LSTM(3, return_sequences=True, name="lstm")(emb)
    second = L.GRU(3, return_sequences=True, name="gru")(emb)
    merged = L.Maximum(name="max")([first, L.Multiply(name="mul")([first, second])])
    merged = L.Concatenate(name="cat")([merged, L.Add(name="add")([first, second])])
    return lib.Model(ids, L.Dense(2, name="out")(L.SimpleRNN(3, name="rnn")(merged)), name="masked"), [(6,)]


def dots(lib):
    L = lib.layers
    a, b = lib.Input(shape=(5, 4), name="a"), lib.Input(shape=(4,), name="b")
    queries = L.Dense(3, activation="tanh", name="queries")(a)
    key = L.Dense(3, name="key")(b)
    scores = L.Dot(axes=(2, 1), name="scores")([queries, key])                       # (batch, 5)
    gram = L.Dot(axes=1, normalize=True, name="gram")([a, L.Dense(4, name="mixed")(a)])   # (batch, 4, 4) cosines
    cosine = L.dot([key, L.Dense(3, name="other")(b)], axes=-1, normalize=True, name="cosine")   # (batch, 1)
    x = L.Concatenate(name="cat")([scores, L.Flatten(name="flat")(gram), cosine])
    return lib.Model([a, b], L.Dense(3, activation="softmax", name="probs")(x), name="dots"), [(5, 4), (4,)]


BUILDERS = {"branch_cnn": branch_cnn, "siamese": siamese, "merges": merges, "seq2seq": seq2seq, "masked": masked,
            "dots": dots}


def _inputs(name, shapes, rng, n):
    if name == "masked":
        ids = rng.integers(1, 9, (n, 6))
        ids[:, 4:] = 0                       # padded ends
        ids[1, 2:] = 0
        return [ids.astype("float32")]
    return [rng.standard_normal((n,) + s).astype("float32") for s in shapes]


def _classes(model):
    return model.output_shape[-1]


def _targets(name, model, rng, n):
    shape = (n,) + tuple(model.output_shape[1:-1])
    return rng.integers(0, _classes(model), shape)


def _as_given(model, xs):
    """The inputs as each model takes them: a dict for the one built from a dict, else a list (one array alone)."""
    if isinstance(model.input, dict):
        return dict(zip(sorted(model.input), xs))
    return xs[0] if len(xs) == 1 else xs


# ------------------------------------------------------------------ merge layers
@pytest.mark.parametrize("name,kwargs,shapes", [
    ("Add", {}, [(3, 4), (3, 4), (3, 1)]),
    ("Subtract", {}, [(2, 5, 3), (2, 3)]),
    ("Multiply", {}, [(2, 1, 3), (2, 4, 1)]),
    ("Average", {}, [(4, 2), (4, 2)]),
    ("Maximum", {}, [(3, 6), (3, 6), (3, 6)]),
    ("Minimum", {}, [(2, 3, 4), (2, 4)]),
    ("Concatenate", {}, [(3, 2), (3, 5)]),
    ("Concatenate", {"axis": 1}, [(2, 1, 3), (2, 4, 3)]),
    ("Dot", {"axes": 1}, [(3, 4), (3, 4)]),
    ("Dot", {"axes": (2, 1)}, [(2, 3, 4), (2, 4)]),
    ("Dot", {"axes": (1, 1)}, [(2, 4), (2, 4, 5)]),
    ("Dot", {"axes": (1, 2)}, [(2, 3, 4), (2, 5, 3)]),
    ("Dot", {"axes": -1, "normalize": True}, [(2, 3, 4), (2, 5, 4)]),
    ("Dot", {"axes": (-1, 1), "normalize": True}, [(2, 3, 1, 4), (2, 4, 3)]),
])
def test_merge_layers_match_keras(rng, name, kwargs, shapes):
    xs = [rng.standard_normal(s).astype("float32") for s in shapes]
    ours = getattr(gpu_dl.layers, name)(**kwargs)(xs)
    theirs = keras.ops.convert_to_numpy(getattr(keras.layers, name)(**kwargs)(xs))
    assert ours.shape == theirs.shape
    numpy.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    symbolic = [(None,) + s[1:] for s in shapes]
    ours_shape = getattr(gpu_dl.layers, name)(**kwargs).compute_output_shape(symbolic)
    assert tuple(ours_shape) == tuple(getattr(keras.layers, name)(**kwargs).compute_output_shape(symbolic))


@pytest.mark.parametrize("normalize", [False, True])
def test_dot_gradients_match_keras(rng, normalize):
    """Both inputs' gradients of sum(Dot(x, y) * w), against PyTorch's autograd through Keras's Dot; the first
    input has a zero vector and one below the norm's floor, where Keras's normalisation scales by 1e7."""
    if keras.backend.backend() != "torch":
        pytest.skip("the gradient is read through the torch backend's autograd")
    import torch
    x, y = rng.standard_normal((3, 4, 5)).astype("float32"), rng.standard_normal((3, 6, 4)).astype("float32")
    x[1, :, 2] = 0.0
    x[2, :, 0] *= 1e-9
    ours = gpu_dl.layers.Dot(axes=(1, 2), normalize=normalize)
    out = ours([x, y], training=True)
    w = rng.standard_normal(out.shape).astype("float32")
    gx, gy = ours.backward(w)
    tx, ty = torch.tensor(x, requires_grad=True), torch.tensor(y, requires_grad=True)
    theirs = keras.layers.Dot(axes=(1, 2), normalize=normalize)([tx, ty])
    (theirs * torch.tensor(w)).sum().backward()
    numpy.testing.assert_allclose(out, theirs.detach().numpy(), rtol=1e-5, atol=1e-5)
    their_gx = tx.grad.numpy()
    if normalize:
        # At an exact zero vector Keras's gradient is NaN (its rsqrt(0) = inf times 0); gpu_dl's is that of
        # the floored scale, 1e7 times the other input's part, as just above the zero vector.
        zero = numpy.zeros(x.shape, bool)
        zero[1, :, 2] = True
        assert numpy.isnan(their_gx[zero]).all() and numpy.isfinite(their_gx[~zero]).all()
        assert numpy.isfinite(gx).all()
        their_gx = numpy.where(zero, gx, their_gx)
    numpy.testing.assert_allclose(gx, their_gx, rtol=1e-4, atol=1e-5)
    numpy.testing.assert_allclose(gy, ty.grad.numpy(), rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------------ graphs, weights, steps
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_same_graph_same_layers_same_outputs(name, rng):
    backend.set_random_seed(0)
    ours, shapes = BUILDERS[name](gpu_dl)
    theirs, _ = BUILDERS[name](keras)
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]       # Keras's order of layers
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    xs = _inputs(name, shapes, rng, 5)
    expected = keras.ops.convert_to_numpy(theirs(_as_given(theirs, xs)))
    numpy.testing.assert_allclose(ours.predict(_as_given(ours, xs), verbose=0), expected, rtol=2e-5, atol=2e-6)
    assert tuple(ours.output_shape) == tuple(theirs.output_shape)


@pytest.mark.parametrize("name", ["branch_cnn", "siamese", "seq2seq", "masked", "dots"])
def test_training_steps_match_keras(name, rng):
    backend.set_random_seed(1)
    ours, shapes = BUILDERS[name](gpu_dl)
    theirs, _ = BUILDERS[name](keras)
    theirs.set_weights(ours.get_weights())
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    theirs.compile(optimizer=keras.optimizers.Adam(), loss="sparse_categorical_crossentropy")
    for step in range(4):
        xs = _inputs(name, shapes, rng, 6)
        y = _targets(name, ours, rng, 6)
        ours_loss = ours.train_on_batch(_as_given(ours, xs), y)
        theirs_loss = float(theirs.train_on_batch(_as_given(theirs, xs), y))
        ours.reset_metrics()
        theirs.reset_metrics()
        assert ours_loss == pytest.approx(theirs_loss, rel=2e-5, abs=1e-6), f"step {step}"
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


# ------------------------------------------------------------------ files both ways
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_files_written_by_keras_load_and_predict_the_same(name, tmp_path, rng):
    keras.utils.set_random_seed(0)
    theirs, shapes = BUILDERS[name](keras)
    theirs.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    xs = _inputs(name, shapes, rng, 9)
    theirs.fit(_as_given(theirs, xs), _targets(name, theirs, rng, 9), epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")

    ours = load_model(tmp_path / "k.keras")
    assert isinstance(ours, Functional) and ours.name == theirs.name
    assert [l.name for l in ours.layers] == [l.name for l in theirs.layers]
    expected = theirs.predict(_as_given(theirs, xs), verbose=0)
    numpy.testing.assert_allclose(ours.predict(_as_given(ours, xs), verbose=0), expected, rtol=1e-5, atol=1e-6)
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 3
    # Keras's variables in its order: the step count, the learning rate, then the slots
    keras_values = [keras.ops.convert_to_numpy(v) for v in theirs.optimizer.variables]
    assert len(keras_values) == len(ours.optimizer.variables)
    for a, b in zip(ours.optimizer.variables, keras_values):
        numpy.testing.assert_array_equal(a.numpy(), b)

    again = load_model(tmp_path / "k.keras", compile=False)
    again.set_weights([numpy.zeros_like(w) for w in again.get_weights()])
    again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(again.predict(_as_given(again, xs), verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_keras_loads_files_written_by_gpu_dl(name, tmp_path, rng):
    backend.set_random_seed(2)
    ours, shapes = BUILDERS[name](gpu_dl)
    ours.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    xs = _inputs(name, shapes, rng, 8)
    ours.fit(_as_given(ours, xs), _targets(name, ours, rng, 8), epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert [l.name for l in theirs.layers] == [l.name for l in ours.layers]
    numpy.testing.assert_allclose(theirs.predict(_as_given(theirs, xs), verbose=0),
                                  ours.predict(_as_given(ours, xs), verbose=0), rtol=1e-5, atol=1e-6)
    assert int(theirs.optimizer.iterations) == ours.optimizer.iterations == 2


def test_keras_2_style_node_lists_load(tmp_path, rng):
    """Keras 3 still reads nodes written as [[layer, node, tensor, kwargs], ...]; so does gpu_dl."""
    model, shapes = siamese(gpu_dl)
    config = gpu_dl.models.saving.model_config(model)
    for entry in config["config"]["layers"]:
        legacy = []
        for node in entry["inbound_nodes"]:
            arg = node["args"][0]
            tensors = arg if isinstance(arg, list) else [arg]
            legacy.append([t["config"]["keras_history"] + [{}] for t in tensors])
        entry["inbound_nodes"] = legacy
    rebuilt = gpu_dl.models.saving.model_from_config(config)
    rebuilt.set_weights(model.get_weights())
    xs = _inputs("siamese", shapes, rng, 3)
    numpy.testing.assert_array_equal(rebuilt.predict(xs, verbose=0), model.predict(xs, verbose=0))
    theirs = keras.Model.from_config(config["config"])
    theirs.set_weights(model.get_weights())
    numpy.testing.assert_allclose(theirs.predict(xs, verbose=0), model.predict(xs, verbose=0), rtol=1e-6)


def test_model_from_config_as_keras_reads_it(rng):
    """keras.Model.from_config of a functional config makes a functional model, and refuses a Sequential's config;
    gpu_dl.Model.from_config does the same with the same configs."""
    model, shapes = siamese(gpu_dl)
    config = model.get_config()
    ours, theirs = gpu_dl.Model.from_config(config), keras.Model.from_config(config)
    assert type(ours).__name__ == type(theirs).__name__ == "Functional" and ours.name == theirs.name
    ours.set_weights(model.get_weights())
    theirs.set_weights(model.get_weights())
    xs = _inputs("siamese", shapes, rng, 3)
    numpy.testing.assert_allclose(ours.predict(xs, verbose=0), theirs.predict(xs, verbose=0), rtol=1e-5, atol=1e-6)
    stack = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).get_config()
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Model"):
        keras.Model.from_config(stack)
    with pytest.raises(ValueError, match=r"Model.from_config: unrecognized keys .*'layers'.*Sequential.from_config"):
        gpu_dl.Model.from_config(stack)


def test_a_duplicate_name_is_reported_before_an_unused_input_as_keras_reports_it():
    for lib in (keras, gpu_dl):
        a, b = lib.Input((3,), name="a"), lib.Input((3,), name="b")
        out = lib.layers.Dense(2, name="twin")(lib.layers.Dense(4, name="twin")(a))
        with pytest.raises(ValueError, match='The name "twin" is used 2 times in the model'):
            lib.Model([a, b], out)


# ------------------------------------------------------------------ summary and plot
def _summary_table(text):
    """{layer label: (output shape, params, connections)} from a summary's table, rows split at the rules
    between them (a row may wrap over several lines)."""
    table = {}
    for block in re.split(r"^[├└┡].*$", text, flags=re.M)[1:]:
        cells = [line.split("│")[1:-1] for line in block.strip("\n").splitlines() if line.startswith("│")]
        if not cells:
            continue
        columns = [" ".join(cell[i].strip() for cell in cells).strip() for i in range(len(cells[0]))]
        table[columns[0]] = (columns[1], columns[2], re.findall(r"\w+\[\d+\]\[\d+\]", columns[3]) or columns[3])
    return table


def test_summary_matches_keras(monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")        # Keras's table is as wide as the terminal: wide enough for all
    for build in (siamese, seq2seq):
        ours, _ = build(gpu_dl)
        theirs, _ = build(keras)
        lines, captured = [], []
        ours.summary(print_fn=lines.append)
        theirs.summary(print_fn=lambda line, **kwargs: captured.append(line))
        ours_table, theirs_table = _summary_table("\n".join(lines)), _summary_table("\n".join(captured))
        assert ours_table == theirs_table and len(ours_table) == len(ours.layers)
        total = re.search(r"Total params: [\d,]+ \([^)]*\)", "\n".join(captured)).group(0)
        assert total in "\n".join(lines)


def test_plot_model_matches_keras():
    pytest.importorskip("pydot")
    from keras.src.utils import model_visualization
    ours, _ = merges(gpu_dl)
    theirs, _ = merges(keras)
    options = dict(show_shapes=True, show_dtype=True, show_layer_names=True, show_layer_activations=True,
                   show_trainable=True)
    ours_text = gpu_dl.utils.model_to_dot(ours, **options).to_string()
    theirs_text = model_visualization.model_to_dot(theirs, **options).to_string()

    def graph(text):
        labels = dict(re.findall(r"^(\d+) \[label=<(.*?)>, ", text, flags=re.M))
        edges = {(labels[a], labels[b]) for a, b in re.findall(r"^(\d+) -> (\d+) ", text, flags=re.M)}
        return sorted(labels.values()), edges

    assert graph(ours_text) == graph(theirs_text)


def test_a_loss_and_metrics_given_per_output_load(tmp_path, rng):
    inp = keras.Input((3,))
    theirs = keras.Model(inp, keras.layers.Dense(2, activation="softmax", name="probs")(inp))
    theirs.compile(optimizer="adam", loss={"probs": "sparse_categorical_crossentropy"},
                   metrics={"probs": ["accuracy"]})
    x, y = rng.standard_normal((6, 3)).astype("float32"), rng.integers(0, 2, 6)
    theirs.fit(x, y, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert ours.loss.name == "sparse_categorical_crossentropy" and ours._metric_identifiers == ["accuracy"]
    numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                                  [float(v) for v in theirs.evaluate(x, y, verbose=0)], rtol=1e-5)


# ------------------------------------------------------------------ several outputs
def two_heads(lib, as_dict=False):
    L = lib.layers
    inputs = lib.Input(shape=(4,), name="x")
    h = L.Dense(5, activation="tanh", name="h")(inputs)
    cls = L.Dense(3, activation="softmax", name="cls")(h)
    reg = L.Dense(2, name="reg")(h)
    return lib.Model(inputs, {"cls": cls, "reg": reg} if as_dict else [cls, reg], name="heads")


def _two_head_data(rng, n):
    return rng.standard_normal((n, 4)).astype("float32"), rng.integers(0, 3, n), \
        rng.standard_normal((n, 2)).astype("float32")


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_output_training_steps_and_logs_match_keras(optimizer, rng):
    backend.set_random_seed(3)
    ours, theirs = two_heads(gpu_dl), two_heads(keras)
    theirs.set_weights(ours.get_weights())
    settings = dict(loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[0.4, 1.5],
                    metrics=[["accuracy"], ["mae", "mse"]])
    ours.compile(optimizer=optimizer, **settings)
    theirs.compile(optimizer=keras.optimizers.get(optimizer), **settings)
    for step in range(3):
        x, ya, yb = _two_head_data(rng, 6)
        sw = rng.uniform(0.5, 2, 6).astype("float32")
        ours_logs = ours.train_on_batch(x, [ya, yb], sample_weight=sw, return_dict=True)
        theirs_logs = theirs.train_on_batch(x, [ya, yb], sample_weight=sw, return_dict=True)
        assert sorted(ours_logs) == sorted(theirs_logs)
        for key, value in theirs_logs.items():
            assert ours_logs[key] == pytest.approx(float(value), rel=2e-5, abs=1e-6), f"step {step}: {key}"
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    x, ya, yb = _two_head_data(rng, 10)
    # evaluate lists the total loss, each output's loss, then the metrics, in Keras's order.
    numpy.testing.assert_allclose(ours.evaluate(x, [ya, yb], verbose=0, batch_size=4),
                                  [float(v) for v in theirs.evaluate(x, [ya, yb], verbose=0, batch_size=4)],
                                  rtol=2e-5, atol=1e-6)
    ours_history = ours.fit(x, [ya, yb], epochs=1, verbose=0, validation_data=(x, [ya, yb]), shuffle=False)
    theirs_history = theirs.fit(x, [ya, yb], epochs=1, verbose=0, validation_data=(x, [ya, yb]), shuffle=False)
    assert sorted(ours_history.history) == sorted(theirs_history.history)


@pytest.mark.parametrize("as_dict", [False, True])
def test_one_loss_for_several_outputs_takes_loss_weights_as_keras_does(rng, as_dict):
    """One loss for every output takes one weight (a number, or a list or dict of one), which weighs every output's
    loss; more weights than losses are refused with Keras's words."""
    backend.set_random_seed(4)
    ours, theirs = two_heads(gpu_dl, as_dict), two_heads(keras, as_dict)
    theirs.set_weights(ours.get_weights())
    x, _, yb = _two_head_data(rng, 6)
    y = [yb[:, :1] @ numpy.ones((1, 3), "float32"), yb]
    y = {"cls": y[0], "reg": y[1]} if as_dict else y
    for loss_weights in (None, 2.5, [2.5], {"reg": 2.5}):
        ours.compile(optimizer="sgd", loss="mse", loss_weights=loss_weights)
        theirs.compile(optimizer="sgd", loss="mse", loss_weights=loss_weights)
        numpy.testing.assert_allclose(ours.evaluate(x, y, verbose=0),
                                      [float(v) for v in theirs.evaluate(x, y, verbose=0)], rtol=1e-5)
    for loss_weights in ([1.0, 2.0], (1.0, 2.0), {"cls": 1.0, "reg": 2.0}, [1.0, 2.0, 3.0]):
        message = f"`loss_weights` must match the number of losses, got 1 losses and {len(loss_weights)} weights"
        with pytest.raises(ValueError, match=re.escape(message)):      # Keras: at the first step
            theirs.compile(optimizer="sgd", loss="mse", loss_weights=loss_weights)
            theirs.evaluate(x, y, verbose=0)
        with pytest.raises(ValueError, match=re.escape(message)):      # gpu_dl: at compile
            ours.compile(optimizer="sgd", loss="mse", loss_weights=loss_weights)
    assert ours._loss_weights == [2.5, 2.5]       # as the last accepted compile left them


def test_two_output_files_written_by_keras_load_evaluate_and_train_the_same(tmp_path, rng):
    keras.utils.set_random_seed(0)
    theirs = two_heads(keras, as_dict=True)
    theirs.compile(optimizer="adam", loss={"cls": "sparse_categorical_crossentropy", "reg": "huber"},
                   loss_weights={"cls": 0.5, "reg": 2.0}, metrics={"cls": ["accuracy"], "reg": ["mae"]})
    x, ya, yb = _two_head_data(rng, 9)
    y = {"cls": ya, "reg": yb}
    theirs.fit(x, y, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert ours.output_names == ["cls", "reg"] and ours._loss_weights == [0.5, 2.0]
    expected = theirs.predict(x, verbose=0)
    got = ours.predict(x, verbose=0)
    assert isinstance(got, dict) and list(got) == ["cls", "reg"]
    for key in got:
        numpy.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6)
    ours_logs = ours.evaluate(x, y, verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(ours_logs) == sorted(theirs_logs)
    assert ours_logs == pytest.approx({k: float(v) for k, v in theirs_logs.items()}, rel=1e-5, abs=1e-6)
    # The optimizer state came along: the next step is Keras's next step.
    ours_step = ours.train_on_batch(x, y, return_dict=True)
    theirs_step = theirs.train_on_batch(x, y, return_dict=True)
    assert ours_step["loss"] == pytest.approx(float(theirs_step["loss"]), rel=2e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


def test_keras_loads_two_output_files_written_by_gpu_dl(tmp_path, rng):
    backend.set_random_seed(4)
    ours = two_heads(gpu_dl)
    ours.compile(optimizer="adam", loss=["sparse_categorical_crossentropy", "mse"], loss_weights=[1.0, 0.25],
                 metrics=[["accuracy"], None])
    x, ya, yb = _two_head_data(rng, 8)
    ours.fit(x, [ya, yb], epochs=1, batch_size=4, verbose=0)
    ours.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    assert theirs.output_names == ["cls", "reg"]
    config = theirs.get_compile_config()
    assert config["loss"] == ["sparse_categorical_crossentropy", "mse"]      # as compile was given them, as Keras's
    assert config["loss_weights"] == [1.0, 0.25]
    for a, b in zip(ours.predict(x, verbose=0), theirs.predict(x, verbose=0)):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    ours_logs = ours.evaluate(x, [ya, yb], verbose=0, return_dict=True)
    theirs_logs = theirs.evaluate(x, [ya, yb], verbose=0, return_dict=True)
    assert sorted(ours_logs) == sorted(theirs_logs) == ["cls_accuracy", "cls_loss", "loss", "reg_loss"]
    assert ours_logs == pytest.approx({k: float(v) for k, v in theirs_logs.items()}, rel=1e-5, abs=1e-6)
    assert int(theirs.optimizer.iterations) == ours.optimizer.iterations == 2


# ------------------------------------------------------------------ the call arguments Keras records
def test_the_training_defaults_gpu_dl_records_are_those_of_keras_s_calls():
    import inspect
    from gpu_dl.models.functional_config import keras_training_default
    for name in sorted(set(dir(gpu_dl.layers)) & set(dir(keras.layers))):
        theirs, ours = getattr(keras.layers, name), getattr(gpu_dl.layers, name)
        if not (inspect.isclass(theirs) and issubclass(theirs, keras.layers.Layer) and inspect.isclass(ours)):
            continue
        parameter = inspect.signature(theirs.call).parameters.get("training")
        default = None if parameter is None or not isinstance(parameter.default, bool) else parameter.default
        assert keras_training_default(ours.__new__(ours)) is default, name


def test_the_calls_gpu_dl_records_a_mask_of_are_those_taking_one_in_keras():
    import inspect
    from gpu_dl.models.functional_config import keras_call_takes_mask
    checked = 0
    for name in sorted(set(dir(gpu_dl.layers)) & set(dir(keras.layers))):
        theirs, ours = getattr(keras.layers, name), getattr(gpu_dl.layers, name)
        if not (inspect.isclass(theirs) and issubclass(theirs, keras.layers.Layer) and inspect.isclass(ours)):
            continue
        assert keras_call_takes_mask(ours.__new__(ours)) is ("mask" in inspect.signature(theirs.call).parameters), name
        checked += 1
    assert checked > 100


def _doubled(t):
    return t * 2


def _masked_calls_graph(lib):
    L = lib.layers

    class Masked(L.Layer):      # a call of the caller's own, taking a mask
        def call(self, x, mask=None):
            return x

    inputs = lib.Input((4, 3), name="seq")
    counts = lib.Input((2,), dtype="int32", name="counts")
    x = L.LSTM(4, return_sequences=True, name="lstm")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.Bidirectional(L.GRU(3, return_sequences=True), name="bi")(x)
    x = L.TimeDistributed(L.Dense(3), name="td")(x)
    x = L.Softmax(name="sm")(x)
    x = Masked(name="masked")(x)
    x = L.Attention(name="att")([x, x])                 # a list of inputs: Keras records nothing it fills in
    x = L.MultiHeadAttention(2, 2, name="mha")(x, x)
    h = L.Dense(3, name="h")(L.Flatten(name="flat")(x))
    s = L.LSTM(3, name="l2")(x, initial_state=[h, h])   # keyword arguments given: neither
    g = L.GlobalAveragePooling1D(name="gap")(x)
    d = L.Lambda(_doubled, name="double")(g)
    c = L.Lambda(_doubled, name="ints")(counts)         # an input of another dtype, which Keras converts: neither
    x = L.Concatenate(name="cat")([d, s, L.Dense(2, name="from_ints")(c)])
    return lib.Model([inputs, counts], L.Dense(2, name="out")(x)), Masked


def test_functional_configs_record_the_mask_where_keras_does(tmp_path, rng):
    import json
    import zipfile
    (ours, ours_class), (theirs, theirs_class) = _masked_calls_graph(gpu_dl), _masked_calls_graph(keras)

    def recorded(model, path):
        model.save(path)
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
        return {layer["config"]["name"]: [node["kwargs"] for node in layer["inbound_nodes"]]
                for layer in config["config"]["layers"]}
    got, want = recorded(ours, tmp_path / "g.keras"), recorded(theirs, tmp_path / "k.keras")
    assert got == want
    assert got["lstm"] == [{"training": False, "mask": None}]
    assert got["bn"] == got["bi"] == got["sm"] == got["masked"] == got["gap"] == got["double"] == [{"mask": None}]
    assert got["att"] == got["ints"] == [{}] and list(got["l2"][0]) == ["initial_state"]
    theirs.set_weights(ours.get_weights())
    x = [rng.standard_normal((3, 4, 3)).astype("float32"), rng.integers(0, 5, (3, 2)).astype("int32")]
    want_y = numpy.asarray(ours.predict(x, verbose=0))
    custom = {"_doubled": _doubled}
    for path, lib, masked in ((tmp_path / "g.keras", keras, theirs_class), (tmp_path / "k.keras", gpu_dl, ours_class)):
        loaded = lib.models.load_model(path, custom_objects={"Masked": masked, **custom}, safe_mode=False)
        loaded.set_weights(ours.get_weights())
        numpy.testing.assert_allclose(numpy.asarray(loaded.predict(x, verbose=0)), want_y, rtol=1e-4, atol=1e-5)


def _dropout_graph(lib):
    L = lib.layers

    class Noisy(L.Layer):       # a call of the caller's own, defaulting training to False
        def call(self, x, training=False):
            return x

    inputs = lib.Input((4, 3), name="seq")
    x = L.Dropout(0.2, name="drop")(inputs)
    x = L.LSTM(4, return_sequences=True, name="lstm")(x)
    x = L.GRU(4, name="gru")(x, training=True)
    x = L.BatchNormalization(name="norm")(x)
    x = L.GaussianNoise(0.1, name="noise")(x)
    x = Noisy(name="noisy")(x)
    return lib.Model(inputs, L.Dense(2, name="out")(x)), Noisy


def test_functional_configs_record_training_where_keras_does(tmp_path, rng):
    import json
    import zipfile
    (ours, ours_class), (theirs, theirs_class) = _dropout_graph(gpu_dl), _dropout_graph(keras)

    def recorded(model, path):
        model.save(path)
        config = json.loads(zipfile.ZipFile(path).read("config.json"))
        # The training flag here; the mask Keras records is compared below.
        return {layer["config"]["name"]: [node["kwargs"].get("training") for node in layer["inbound_nodes"]]
                for layer in config["config"]["layers"]}
    got, want = recorded(ours, tmp_path / "g.keras"), recorded(theirs, tmp_path / "k.keras")
    assert got == want
    assert got["drop"] == got["lstm"] == got["noise"] == got["noisy"] == [False] and got["gru"] == [True]
    assert got["norm"] == got["out"] == [None]
    theirs.set_weights(ours.get_weights())
    x = rng.standard_normal((3, 4, 3)).astype("float32")
    for path, lib, custom in ((tmp_path / "g.keras", keras, theirs_class), (tmp_path / "k.keras", gpu_dl, ours_class)):
        loaded = lib.models.load_model(path, custom_objects={"Noisy": custom})
        assert numpy.asarray(loaded.predict(x, verbose=0)).shape == (3, 2)


def test_model_from_an_intermediate_tensor_matches_keras(tmp_path):
    def build(lib):
        L = lib.layers
        inputs = lib.Input(shape=(5,), name="raw")
        encoded = L.Dense(6, name="encoder")(inputs)
        hidden = L.Dense(4, activation="relu", name="hidden")(encoded)
        outputs = L.Dense(1, name="out")(L.Add(name="skip")([hidden, L.Dense(4, name="side")(encoded)]))
        return lib.Model(inputs, outputs), lib.Model(encoded, outputs)

    (full, part), (k_full, k_part) = build(gpu_dl), build(keras)
    k_full.set_weights(full.get_weights())
    assert [type(layer).__name__ for layer in part.layers] == [type(layer).__name__ for layer in k_part.layers]
    assert [layer.name for layer in part.layers][1:] == [layer.name for layer in k_part.layers][1:]
    assert part.inputs[0].name.endswith("CLONE") and k_part.inputs[0].name.endswith("CLONE")
    assert [w.shape for w in part.get_weights()] == [tuple(w.shape) for w in k_part.get_weights()]
    encoded = numpy.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    expected = keras.ops.convert_to_numpy(k_part(encoded))
    numpy.testing.assert_allclose(backend.to_numpy(part.predict(encoded, verbose=0)), expected, rtol=1e-5,
                                  atol=1e-6)
    part.save(tmp_path / "part.keras")
    numpy.testing.assert_allclose(keras.ops.convert_to_numpy(keras.saving.load_model(tmp_path / "part.keras")(
        encoded)), expected, rtol=1e-5, atol=1e-6)
