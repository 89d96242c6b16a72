"""The order of a functional model's layers against Keras 3 itself (where Keras is installed).

Keras orders ``model.layers`` by each layer's depth from the outputs (deepest first), and within a depth by the
order a depth-first walk from the outputs (in the order they are listed, each call's tensors in argument order)
first reaches the layer. That order is the order of ``weights``, ``get_weights()``/``set_weights``, the summary's
rows and a saved file's layers, so it must be the same in gpu_dl for weights to move between the two. The same
graphs are built in both libraries: hand-built branching cases, and graphs drawn by a seeded generator.
"""
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402
from gpu_dl import backend  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_sessions():
    backend.clear_session()
    keras.backend.clear_session()
    yield
    backend.clear_session()
    keras.backend.clear_session()


def order_of(model):
    return ([layer.name for layer in model.layers], [w.path for w in model.weights],
            [tuple(w.shape) for w in model.get_weights()])


def assert_same_order(build):
    ours, theirs = build(gpu_dl), build(keras)
    names, paths, shapes = order_of(ours)
    k_names, k_paths, k_shapes = order_of(theirs)
    assert names == k_names
    assert paths == k_paths
    assert shapes == k_shapes
    # the weights move between the two in that order
    weights = [numpy.random.default_rng(0).standard_normal(s).astype("float32") for s in shapes]
    ours.set_weights(weights)
    theirs.set_weights(ours.get_weights())
    for a, b in zip(theirs.get_weights(), weights):
        numpy.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ hand-built cases
def masked_branches(concat_order, outputs_order):
    def build(lib):
        L = lib.layers
        ids = lib.Input((5,), dtype="int32", name="ids")
        e = L.Embedding(20, 4, mask_zero=True, name="emb")(ids)
        a = L.EinsumDense("abc,cd->abd", output_shape=(None, 3), name="ein")(e)
        b = L.Dense(3, name="den")(e)
        m = L.Concatenate(name="cat")([b, a] if concat_order else [a, b])
        outs = {"ma": [m, a], "am": [a, m], "mb": [m, b], "bm": [b, m], "m": [m]}[outputs_order]
        return lib.Model(ids, outs)
    return build


def shared_layer_two_depths(lib):
    L = lib.layers
    x = lib.Input((4,), name="x")
    shared = L.Dense(4, name="shared")
    h = L.Dense(4, name="h")(x)
    deep = shared(L.Dense(4, name="g")(h))
    shallow = shared(x)
    return lib.Model(x, L.Add(name="add")([shallow, deep]))


def two_inputs(swapped):
    def build(lib):
        L = lib.layers
        p, q = lib.Input((3,), name="p"), lib.Input((5,), name="q")
        a = L.Dense(4, name="pa")(p)
        b = L.Dense(4, name="qb")(L.Dense(2, name="qq")(q))
        out = L.Concatenate(name="cat")([a, b])
        return lib.Model([q, p] if swapped else [p, q], out)
    return build


def nested_model(lib):
    L = lib.layers
    i = lib.Input((4,), name="inner_in")
    inner = lib.Model(i, L.Dense(3, name="inner_dense")(i), name="inner")
    x = lib.Input((4,), name="x")
    a = inner(x)
    b = L.Dense(3, name="side")(L.Dense(4, name="pre")(x))
    return lib.Model(x, [L.Add(name="add")([b, a]), a])


def output_is_intermediate(lib):
    L = lib.layers
    x = lib.Input((4,), name="x")
    h = L.Dense(4, name="h")(x)
    k = L.Dense(4, name="k")(h)
    z = L.Dense(2, name="z")(L.Concatenate(name="cat")([k, h]))
    return lib.Model(x, [h, z, k])


def masking_read_by_pooling(lib):
    # Keras's graph has the NotEqual and Any making the mask the pooling reads: they put "p" a step deeper
    L = lib.layers
    x = lib.Input((5, 4), name="x")
    q = L.Dense(4, name="q")(L.Dense(4, name="r")(L.Dense(4, name="s")(x)))
    p = L.Dense(4, name="p")(x)
    g = L.GlobalAveragePooling1D(name="gap")(L.Masking(name="masking")(p))
    return lib.Model(x, [q, g])


def embedding_mask_read_by_recurrent(order):
    def build(lib):
        L = lib.layers
        ids, x = lib.Input((5,), dtype="int32", name="ids"), lib.Input((5, 4), name="x")
        h = L.Dense(4, name="h")(L.Identity(name="ident")(ids))
        e = L.Embedding(20, 4, mask_zero=True, name="emb")(L.Identity(name="pre")(ids))
        s = L.LSTM(3, return_sequences=True, name="lstm")(e)
        q = L.Dense(3, name="q")(L.Dense(4, name="r")(L.Dense(4, name="u")(x)))
        outs = [q, s, h] if order else [s, h, q]
        return lib.Model([x, ids] if order else [ids, x], outs)
    return build


HAND_BUILT = {f"masked_branches_{c}_{o}": masked_branches(c, o) for c in (0, 1) for o in ("ma", "am", "mb", "bm", "m")}
HAND_BUILT.update(shared_layer_two_depths=shared_layer_two_depths, two_inputs=two_inputs(False),
                  two_inputs_swapped=two_inputs(True), nested_model=nested_model,
                  output_is_intermediate=output_is_intermediate, masking_read_by_pooling=masking_read_by_pooling,
                  embedding_mask_read_by_recurrent=embedding_mask_read_by_recurrent(0),
                  embedding_mask_read_by_recurrent_swapped=embedding_mask_read_by_recurrent(1))


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_graph_orders_layers_as_keras(name):
    assert_same_order(HAND_BUILT[name])


# ------------------------------------------------------------------ generated graphs
def draw_recipe(seed):
    """A random graph as steps both libraries can build: tensors of shape (5, width), integer id inputs going
    through masking embeddings, dense and einsum layers, merges (both argument orders), shared layers reused at
    other depths, and a nested model; outputs a random set of tensors (intermediate ones too) in random order."""
    rng = numpy.random.default_rng(seed)
    steps, widths = [], []
    for k in range(int(rng.integers(1, 4))):
        if rng.random() < 0.5:
            steps.append(("ids", k))
            widths.append(-1)  # no layer but an embedding reads ids
        else:
            steps.append(("floats", k))
            widths.append(4)
    n_inputs = len(steps)
    dense_widths = {}   # layer step index -> input width, for reuse
    for _ in range(int(rng.integers(3, 10))):
        kind = rng.choice(["dense", "einsum", "concat", "add", "shared", "nested", "norm", "masking", "lstm",
                           "masked_lstm"])
        pick = int(rng.integers(len(steps)))
        if kind == "add":
            same = [i for i, w in enumerate(widths) if w == widths[pick]]
            other = int(rng.choice(same))
            steps.append(("add", pick, other))
            widths.append(widths[pick])
        elif kind == "concat":
            other = int(rng.integers(len(steps)))
            steps.append(("concat", pick, other))
            widths.append(widths[pick] + widths[other])
        elif kind == "shared" and dense_widths:
            layer = int(rng.choice(sorted(dense_widths)))
            fits = [i for i, w in enumerate(widths) if w == dense_widths[layer]]
            steps.append(("shared", layer, int(rng.choice(fits))))
            widths.append(4)
        elif kind == "nested" and 4 in widths:
            fits = [i for i, w in enumerate(widths) if w == 4]
            steps.append(("nested", int(rng.choice(fits))))
            widths.append(4)
        elif kind in ("norm", "masking"):
            steps.append((str(kind), pick))
            widths.append(widths[pick])
        elif kind == "masked_lstm":
            # a Masking read straight by a recurrent layer: Keras's NotEqual and Any make the Masking's input deeper
            steps.append(("masked_lstm", pick))
            widths.append(3)
        elif kind == "lstm":
            # a recurrent layer reads the mask reaching it: Keras's graph has the operations making it
            steps.append(("lstm", pick))
            widths.append(3)
        else:
            steps.append((str(kind) if kind == "einsum" else "dense", pick))
            dense_widths[len(steps) - 1] = widths[pick] if widths[pick] > 0 else 4  # ids come embedded, 4 wide
            widths.append(4)
    made = list(range(n_inputs, len(steps)))
    outputs = [int(i) for i in rng.permutation(made)[:int(rng.integers(1, min(4, len(made)) + 1))]]
    return steps, n_inputs, outputs, [int(i) for i in rng.permutation(n_inputs)]


def build_recipe(recipe):
    steps, n_inputs, outputs, input_order = recipe

    def build(lib):
        L = lib.layers
        tensors, layers, ancestors = [], {}, []
        bad = unbuildable(steps, n_inputs)
        for index, step in enumerate(steps):
            kind, name = step[0], f"s{index}"
            if index in bad:
                tensors.append(None)
                ancestors.append(set())
                continue
            if kind == "ids":
                t = lib.Input((5,), dtype="int32", name=f"in{step[1]}")
                tensors.append(t)
                ancestors.append({index})
                continue
            if kind == "floats":
                tensors.append(lib.Input((5, 4), name=f"in{step[1]}"))
                ancestors.append({index})
                continue
            if kind == "add":
                t = L.Add(name=name)([tensors[step[1]], tensors[step[2]]])
                parents = step[1:]
            elif kind == "concat":
                t = L.Concatenate(name=name)([tensors[step[1]], tensors[step[2]]])
                parents = step[1:]
            elif kind == "shared":
                t = layers[step[1]](tensors[step[2]])
                parents = step[2:]
            elif kind == "nested":
                i = lib.Input((5, 4), name=f"{name}_in")
                inner = lib.Model(i, L.Dense(4, name=f"{name}_dense")(i), name=name)
                t = inner(tensors[step[1]])
                parents = step[1:]
            elif kind == "norm":
                t = L.LayerNormalization(name=name)(tensors[step[1]])
                parents = step[1:]
            elif kind == "masking":
                t = L.Masking(name=name)(tensors[step[1]])
                parents = step[1:]
            elif kind == "masked_lstm":
                masked = L.Masking(name=f"{name}_masking")(tensors[step[1]])
                t = L.LSTM(3, return_sequences=True, name=name)(masked)
                parents = step[1:]
            elif kind == "lstm":
                t = L.LSTM(3, return_sequences=True, name=name)(tensors[step[1]])
                parents = step[1:]
            else:
                source = tensors[step[1]]
                if steps[step[1]][0] == "ids":
                    source = L.Embedding(10, 4, mask_zero=True, name=f"{name}_emb")(source)
                layer = L.Dense(4, name=name) if kind == "dense" else \
                    L.EinsumDense("abc,cd->abd", output_shape=(5, 4), name=name)
                layers[index] = layer
                t = layer(source)
                parents = step[1:]
            tensors.append(t)
            ancestors.append(set().union(*(ancestors[p] for p in parents)) | {index})
        outs = [tensors[i] for i in outputs if tensors[i] is not None]
        used = set().union(*(ancestors[i] for i in outputs if tensors[i] is not None))
        inputs = [tensors[i] for i in input_order if i in used]
        return lib.Model(inputs, outs if len(outs) > 1 else outs[0])
    return build


def unbuildable(steps, n_inputs):
    """Steps that would read integer ids other than through an embedding, and the steps after them."""
    ids = {i for i in range(n_inputs) if steps[i][0] == "ids"}
    bad = set()
    for index, step in enumerate(steps[n_inputs:], n_inputs):
        parents = step[2:] if step[0] == "shared" else step[1:]
        reads_ids = step[0] not in ("dense", "einsum") and any(p in ids for p in parents)
        if reads_ids or any(p in bad for p in parents):
            bad.add(index)
    return bad


def usable(recipe):
    steps, n_inputs, outputs, _ = recipe
    return bool(set(outputs) - unbuildable(steps, n_inputs))


SEEDS = [seed for seed in range(200) if usable(draw_recipe(seed))][:40]


@pytest.mark.parametrize("seed", SEEDS)
def test_generated_graph_orders_layers_as_keras(seed):
    assert_same_order(build_recipe(draw_recipe(seed)))


def test_generator_draws_branching_graphs():
    # the generated family is not all chains: merges, shared layers and several outputs occur
    recipes = [draw_recipe(seed) for seed in SEEDS]
    assert len(SEEDS) >= 30
    assert sum(any(s[0] in ("add", "concat") for s in r[0]) for r in recipes) >= 10
    assert sum(any(s[0] == "shared" for s in r[0]) for r in recipes) >= 5
    assert sum(len(r[2]) > 1 for r in recipes) >= 10
    assert sum(any(s[0] == "masked_lstm" for s in r[0]) for r in recipes) >= 10


@pytest.mark.parametrize("name", ["masking_read_by_pooling", "masked_branches_1_ma", "nested_model",
                                  "shared_layer_two_depths"])
def test_saved_files_move_between_the_libraries_in_that_order(name, tmp_path):
    from gpu_dl.models import load_model
    theirs = HAND_BUILT[name](keras)
    theirs.save(tmp_path / "k.keras")
    ours = load_model(tmp_path / "k.keras")
    assert order_of(ours) == order_of(theirs)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    ours.save(tmp_path / "g.keras")
    again = keras.models.load_model(tmp_path / "g.keras")
    assert order_of(again) == order_of(theirs)
    for a, b in zip(again.get_weights(), ours.get_weights()):
        numpy.testing.assert_array_equal(a, b)
