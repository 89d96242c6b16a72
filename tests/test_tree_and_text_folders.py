"""``gpu_dl.tree`` (``keras.tree``), the ``gpu_dl.preprocessing`` namespace and ``text_dataset_from_directory``:
plain-Python expectations, Keras's documented examples, training a text model on a folder, bad input, and Keras
3.15 as the oracle where it runs (``keras.tree`` and ``smart_resize`` without TensorFlow; Keras's
``text_dataset_from_directory`` needs it)."""
import collections
import os

import numpy
import pytest

import gpu_dl
from gpu_dl import layers, tree
from gpu_dl.utils import text_dataset_from_directory

Point = collections.namedtuple("Point", ["a", "b"])


def structures():
    return [
        [[1, 2, 3], [4, [5], [[6]]]],
        {100: "world!", 6: "Hello"},
        # (a dict inside a dict has its keys in order here: Keras's torch-backend tree sorts the outer dict's keys
        # only, where its documentation and its optree backend sort every dict's, as gpu_dl does)
        {"b": [1, (2, None)], "a": collections.deque([4, 5]), "c": Point(6, {"y": 7, "z": 8})},
        collections.OrderedDict([("b", 1), ("a", [2, 3])]),
        collections.defaultdict(list, {"y": 1, "x": (2,)}),
        None, 3, "text", (), [], {}, numpy.arange(3),
    ]


# ------------------------------------------------------------------ tree: plain expectations
def test_flatten_and_paths_follow_sorted_keys():
    assert tree.flatten([[1, 2, 3], [4, [5], [[6]]]]) == [1, 2, 3, 4, 5, 6]
    assert tree.flatten(None) == [None] and tree.flatten(1) == [1]
    assert tree.flatten({100: "world!", 6: "Hello"}) == ["Hello", "world!"]
    assert tree.flatten({"c": Point(6, {"z": 7, "y": 8}), "a": {"q": 1, "p": 2}}) == [2, 1, 6, 8, 7]
    od = collections.OrderedDict([("b", 1), ("a", 2)])
    assert tree.flatten(od) == [1, 2]                     # an OrderedDict keeps its order
    assert tree.flatten_with_path([{"foo": 42}]) == [((0, "foo"), 42)]
    nested = {"b": [1, (2, None)], "a": collections.deque([4])}
    assert tree.flatten_with_path(nested) == [(("a", 0), 4), (("b", 0), 1), (("b", 1, 0), 2), (("b", 1, 1), None)]
    assert tree.is_nested([]) and tree.is_nested(Point(1, 2)) and not tree.is_nested(None)
    assert not tree.is_nested("ab") and not tree.is_nested(numpy.zeros(2))


def test_pack_sequence_as_round_trips_every_structure():
    for structure in structures():
        flat = tree.flatten(structure)
        packed = tree.pack_sequence_as(structure, flat)
        assert type(packed) is type(structure)
        assert tree.flatten(packed) == flat if not isinstance(structure, numpy.ndarray) else packed is flat[0]
    packed = tree.pack_sequence_as({"key3": {"c": ("alpha", "beta"), "a": "gamma"}, "key1": {"e": 1, "d": 2}},
                                   ["val2", "val1", 3.0, 1.0, 2.0])
    assert packed == {"key3": {"c": (1.0, 2.0), "a": 3.0}, "key1": {"e": "val1", "d": "val2"}}   # Keras's example
    assert tree.pack_sequence_as(Point(0, [0, 0]), [1, 2, 3]) == Point(1, [2, 3])
    with pytest.raises(ValueError, match="holds 2 leaves"):
        tree.pack_sequence_as([1, 2], [1])
    with pytest.raises(TypeError, match="flat_sequence"):
        tree.pack_sequence_as([1], 5)


def test_map_structure_and_up_to():
    assert tree.map_structure(lambda v: v ** 2, [[1], [2], [3]]) == [[1], [4], [9]]
    assert tree.map_structure(lambda x, y: x * y, [[1], [2]], [[3], [4]]) == [[3], [8]]
    assert tree.map_structure(lambda v: v * 2, Point(a=1, b=2)) == Point(a=2, b=4)
    assert tree.map_structure(lambda v: v, {"a": None}, none_is_leaf=False) == {"a": None}
    assert tree.map_structure(lambda v: -1 if v is None else v, [None, 1]) == [-1, 1]
    with pytest.raises(ValueError, match="same nested structure"):
        tree.map_structure(lambda a, b: a, [1, 2], [1, [2]])
    with pytest.raises(ValueError, match="Must provide at least one structure"):
        tree.map_structure(len)
    assert tree.map_structure_up_to([None, None], len, [[1, 1], [2, 2]]) == [2, 2]
    assert tree.map_structure_up_to([None, [None, None]], str, [[1, 1], [2, 2]]) == ["[1, 1]", ["2", "2"]]
    with pytest.raises(ValueError, match="leaf where the shallow structure"):
        tree.map_structure_up_to([[None]], len, [1])


def test_assert_same_structure_and_paths():
    tree.assert_same_structure({"a": 1}, collections.OrderedDict(a=2))      # dict kinds match by their keys
    tree.assert_same_structure([1, (2, 3)], ["x", ("y", "z")])
    for a, b in [([1], (1,)), ([1, 2], [1]), ({"a": 1}, {"b": 1}), (Point(1, 2), (1, 2)), ([1], [[1]])]:
        with pytest.raises(ValueError, match="same nested structure"):
            tree.assert_same_structure(a, b)
    tree.assert_same_paths([1, 2], (3, 4))
    with pytest.raises(ValueError, match="Paths in `a` missing in `b`"):
        tree.assert_same_paths([1, 2], [3])


def test_traverse_lists_to_tuples_and_shapes():
    seen = []
    assert tree.traverse(seen.append, [(1, 2), [3], {"a": 4}], top_down=True) == [(1, 2), [3], {"a": 4}]
    assert seen == [[(1, 2), [3], {"a": 4}], (1, 2), 1, 2, [3], 3, {"a": 4}, 4]      # Keras's example
    seen = []
    tree.traverse(seen.append, [(1, 2), [3], {"a": 4}], top_down=False)
    assert seen == [1, 2, (1, 2), 3, [3], 4, {"a": 4}, [(1, 2), [3], {"a": 4}]]
    assert tree.traverse(lambda x: tree.MAP_TO_NONE if x == 2 else None, [1, (2, 3)]) == [1, (None, 3)]
    assert tree.lists_to_tuples([1, [2, {"a": [3]}]]) == (1, (2, {"a": (3,)}))
    assert tree.map_shape_structure(len, {"x": (None, 3), "y": [(), [1, 2]]}) == {"x": 2, "y": [0, 2]}


# ------------------------------------------------------------------ tree: Keras as the oracle
def test_tree_matches_keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    for structure in structures():
        if isinstance(structure, numpy.ndarray):
            continue
        assert tree.flatten(structure) == keras.tree.flatten(structure)
        assert tree.flatten_with_path(structure) == keras.tree.flatten_with_path(structure)
        assert tree.is_nested(structure) == keras.tree.is_nested(structure)
        flat = list(range(len(tree.flatten(structure))))
        assert tree.pack_sequence_as(structure, flat) == keras.tree.pack_sequence_as(structure, flat)
        assert tree.lists_to_tuples(structure) == keras.tree.lists_to_tuples(structure)
        assert tree.map_structure(str, structure) == keras.tree.map_structure(str, structure)
        ours, theirs = [], []
        tree.traverse(ours.append, structure)
        keras.tree.traverse(theirs.append, structure)
        assert ours == theirs           # the same sub-structures in the same order (dicts equal as dicts)
    shapes = {"x": (None, 3), "y": [(), [1, 2]], "z": Point((4,), None)}
    assert tree.map_shape_structure(repr, shapes) == keras.tree.map_shape_structure(repr, shapes)


# ------------------------------------------------------------------ the preprocessing namespace
def test_preprocessing_namespace_aliases():
    from gpu_dl import preprocessing, utils
    assert preprocessing.image_dataset_from_directory is utils.image_dataset_from_directory
    assert preprocessing.text_dataset_from_directory is utils.text_dataset_from_directory
    assert preprocessing.timeseries_dataset_from_array is utils.timeseries_dataset_from_array
    assert preprocessing.sequence.pad_sequences is utils.pad_sequences
    assert preprocessing.image.load_img is utils.load_img and preprocessing.image.img_to_array is utils.img_to_array
    assert preprocessing.image.array_to_img is utils.array_to_img and preprocessing.image.save_img is utils.save_img
    assert gpu_dl.preprocessing is preprocessing and gpu_dl.tree is tree


def test_smart_resize_crops_the_centred_window_then_resizes():
    from gpu_dl.preprocessing.image import smart_resize
    image = numpy.arange(6 * 12 * 2, dtype=numpy.float32).reshape(6, 12, 2)
    # target 3 x 3: the centred 6 x 6 window (columns 3..8), halved by bilinear resizing of exact 2x2 blocks
    out = smart_resize(image, (3, 3))
    assert isinstance(out, numpy.ndarray) and out.shape == (3, 3, 2)
    window = image[:, 3:9]
    numpy.testing.assert_allclose(out, window.reshape(3, 2, 3, 2, 2).mean(axis=(1, 3)), rtol=1e-6)
    assert smart_resize(numpy.stack([image, image]), (3, 3)).shape == (2, 3, 3, 2)
    with pytest.raises(ValueError, match="incorrect rank"):
        smart_resize(numpy.zeros((4, 4)), (2, 2))
    with pytest.raises(ValueError, match="tuple of 2 integers"):
        smart_resize(image, (2,))
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    rng = numpy.random.default_rng(0)
    picture = rng.random((7, 10, 3)).astype(numpy.float32)
    for size in [(4, 4), (5, 3), (9, 14)]:
        expected = keras.ops.convert_to_numpy(keras.preprocessing.image.smart_resize(picture, size))
        numpy.testing.assert_allclose(smart_resize(picture, size), expected, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ text_dataset_from_directory
TEXTS = {"neg": {"a.txt": "bad awful film", "b.txt": "so boring", "deep/c.txt": "awful acting"},
         "pos": {"d.txt": "great film", "e.txt": "loved it, great fun", "f.TXT": "fine FILM",
                 "g.txt": "wonderful ✓ film"}}
# Keras's order: class folders sorted, each walked in sorted order; the extension matched in any case
ORDER = ["neg/a.txt", "neg/b.txt", "neg/deep/c.txt", "pos/d.txt", "pos/e.txt", "pos/f.TXT", "pos/g.txt"]


@pytest.fixture
def text_folder(tmp_path):
    root = tmp_path / "texts"
    for label, files in TEXTS.items():
        for name, text in files.items():
            path = root / label / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
    (root / ".hidden").mkdir()
    return root


def test_text_folder_files_labels_and_batches(text_folder):
    ds = text_dataset_from_directory(text_folder, shuffle=False, batch_size=4, verbose=False)
    assert ds.class_names == ["neg", "pos"]
    assert [os.path.relpath(p, text_folder) for p in ds.file_paths] == ORDER
    assert len(ds) == 2
    texts, labels = ds[0]
    assert texts.dtype == object and texts.tolist() == ["bad awful film", "so boring", "awful acting", "great film"]
    assert labels.dtype == numpy.int32 and labels.tolist() == [0, 0, 0, 1]
    texts, labels = ds[1]
    assert texts.tolist() == ["loved it, great fun", "fine FILM", "wonderful ✓ film"] and labels.tolist() == [1] * 3
    cut = text_dataset_from_directory(text_folder, shuffle=False, batch_size=None, max_length=11, verbose=False,
                                      label_mode="categorical")
    assert cut[6][0] == "wonderful " and cut[6][1].tolist() == [0.0, 1.0]     # 11 bytes cut "✓" (3 bytes)
    binary = text_dataset_from_directory(text_folder, shuffle=False, label_mode="binary", verbose=False)
    assert binary[0][1].shape == (7, 1) and binary[0][1].dtype == numpy.float32
    bare = text_dataset_from_directory(text_folder, labels=None, shuffle=False, verbose=False)
    assert bare[0].tolist()[0] == "bad awful film"


def test_text_folder_split_and_shuffle(text_folder):
    train, val = text_dataset_from_directory(text_folder, validation_split=0.34, subset="both", seed=7,
                                             verbose=False)
    paths = list(train.file_paths) + list(val.file_paths)
    assert sorted(os.path.relpath(p, text_folder) for p in paths) == sorted(ORDER) and len(val.file_paths) == 2
    shuffled = list(ORDER)
    numpy.random.RandomState(7).shuffle(shuffled)            # Keras's shuffle of the file list
    assert [os.path.relpath(p, text_folder) for p in paths] == shuffled


def test_a_text_model_trains_on_a_folder(xp, text_folder):
    gpu_dl.utils.set_random_seed(1)
    ds = text_dataset_from_directory(text_folder, batch_size=3, seed=1, verbose=False)
    vectorizer = layers.TextVectorization(output_mode="multi_hot")
    vectorizer.adapt(ds)            # its (texts, labels) batches: the texts are adapted to
    every_text = numpy.concatenate([ds[i][0] for i in range(len(ds))])
    direct = layers.TextVectorization(output_mode="multi_hot")
    direct.adapt(every_text)
    assert vectorizer.get_vocabulary() == direct.get_vocabulary() and len(vectorizer.get_vocabulary()) > 10
    model = gpu_dl.Sequential([layers.Input(shape=(), dtype="string"), vectorizer, layers.Dense(1, "sigmoid")])
    model.compile(gpu_dl.optimizers.Adam(0.1), "binary_crossentropy", metrics=["accuracy"])
    history = model.fit(ds, epochs=30, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] == 1.0


def test_text_folder_bad_arguments(text_folder, tmp_path):
    with pytest.raises(ValueError, match="label_mode"):
        text_dataset_from_directory(text_folder, label_mode="sparse")
    with pytest.raises(ValueError, match="`labels` argument should be a list/tuple"):
        text_dataset_from_directory(text_folder, labels="auto")
    with pytest.raises(ValueError, match="provide a `seed`"):
        text_dataset_from_directory(text_folder, validation_split=0.5, subset="training")
    with pytest.raises(ValueError, match="format"):
        text_dataset_from_directory(text_folder, format="torch")
    with pytest.raises(ValueError, match="max_length"):
        text_dataset_from_directory(text_folder, max_length=-1)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        text_dataset_from_directory(tmp_path / "missing")
    (tmp_path / "empty" / "x").mkdir(parents=True)
    with pytest.raises(ValueError, match="No text files found"):
        text_dataset_from_directory(tmp_path / "empty", verbose=False)
    with pytest.raises(ValueError, match="exactly 2 class_names"):
        text_dataset_from_directory(text_folder, labels=[0, 1, 2, 0, 1, 2, 0], label_mode="binary", verbose=False)


def test_text_folder_matches_keras(text_folder):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    pytest.importorskip("tensorflow")
    for kwargs in [dict(shuffle=False), dict(validation_split=0.34, subset="validation", seed=5),
                   dict(shuffle=False, max_length=11, label_mode="categorical")]:
        ours = text_dataset_from_directory(text_folder, batch_size=None, verbose=False, **kwargs)
        theirs = keras.utils.text_dataset_from_directory(text_folder, batch_size=None, verbose=False, **kwargs)
        assert ours.class_names == theirs.class_names
        expected = [(t.numpy().decode("utf-8", errors="ignore"), numpy.asarray(y)) for t, y in theirs]
        got = [ours[i] for i in range(len(ours))]
        assert [t for t, _ in got] == [t for t, _ in expected]
        for (_, a), (_, b) in zip(got, expected):
            numpy.testing.assert_array_equal(a, b)
