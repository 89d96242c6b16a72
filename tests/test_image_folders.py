"""image_dataset_from_directory and the image file helpers, on small PNG/JPEG/BMP/GIF folders built here:
the files Keras finds in Keras's order, labels in each mode, the validation split, resizing, colour modes,
shuffling, training on the data set, the errors, and Keras 3.15 itself as the oracle where it runs
without TensorFlow."""
import io
import os

import numpy
import pytest

PIL = pytest.importorskip("PIL")
from PIL import Image  # noqa: E402

import gpu_dl  # noqa: E402
from gpu_dl import backend, layers  # noqa: E402
from gpu_dl.data.image_folders import ImageFolderDataset  # noqa: E402
from gpu_dl.ops.resize import resize  # noqa: E402
from gpu_dl.utils import (array_to_img, image_dataset_from_directory, img_to_array, load_img,  # noqa: E402
                          save_img)

HEIGHT, WIDTH = 5, 7
CLASS_COLOURS = {"Birds": (20, 40, 230), "cats": (230, 30, 20), "dogs": (30, 220, 40)}
# The class folders' files, with names that test Keras's order: an upper-case extension, a nested folder.
FILES = {"Birds": ["b0.png", "b1.JPG"], "cats": ["c0.png", "c1.jpg", "c2.bmp", "nested/c3.png"],
         "dogs": ["d0.png", "d1.gif"]}
# Unshuffled order with inferred labels: class folders sorted (upper case first), each walked in sorted order.
ORDER = ["Birds/b0.png", "Birds/b1.JPG", "cats/c0.png", "cats/c1.jpg", "cats/c2.bmp", "cats/nested/c3.png",
         "dogs/d0.png", "dogs/d1.gif"]
LABELS = [0, 0, 1, 1, 1, 1, 2, 2]


def pixels(colour, shade):
    """A (5, 7, 3) uint8 image of ``colour`` with a ramp across it, so resizing has something to interpolate."""
    ramp = numpy.arange(HEIGHT)[:, None] * 5 + numpy.arange(WIDTH)[None, :] * 3 + shade * 7
    return numpy.clip(numpy.asarray(colour)[None, None, :] + ramp[..., None] - 20, 0, 255).astype(numpy.uint8)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "images"
    for name, files in FILES.items():
        for shade, file in enumerate(files):
            path = root / name / file
            path.parent.mkdir(parents=True, exist_ok=True)
            fmt = {"jpg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF"}[file.rsplit(".", 1)[1].lower()]
            Image.fromarray(pixels(CLASS_COLOURS[name], shade)).save(path, format=fmt)
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / ".thumbnails").mkdir()                                   # hidden: no class
    Image.fromarray(pixels((9, 9, 9), 0)).save(root / ".thumbnails" / "t.png")
    Image.fromarray(pixels((99, 99, 99), 0)).save(root / "top.png")  # found only without inferred labels
    return str(root)


@pytest.fixture
def two_classes(tmp_path):
    root = tmp_path / "pairs"
    for name in ("no", "yes"):
        for shade in range(3):
            (root / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels(CLASS_COLOURS["cats" if name == "yes" else "Birds"], shade)).save(
                root / name / f"{shade}.png")
    return str(root)


def decoded(path, mode="RGB"):
    """The file's pixels as float32 (H, W, C), decoded here by Pillow directly."""
    with Image.open(path) as img:
        x = numpy.asarray(img.convert(mode), dtype=numpy.float32)
    return x[..., None] if x.ndim == 2 else x


def relative(paths, root):
    return [os.path.relpath(p, root).replace(os.sep, "/") for p in paths]


def everything(ds):
    """All batches of one pass joined: images (N, ...) and labels (N, ...) (labels None without them)."""
    batches = list(ds)
    if ds.label_mode is None:
        return numpy.concatenate(batches), None
    return numpy.concatenate([b[0] for b in batches]), numpy.concatenate([b[1] for b in batches])


# ------------------------------------------------------------------ finding and ordering the files
def test_files_are_found_and_ordered_as_keras_orders_them(folder, capsys):
    ds = image_dataset_from_directory(folder, shuffle=False, image_size=(HEIGHT, WIDTH), batch_size=3)
    assert isinstance(ds, gpu_dl.utils.PyDataset) and isinstance(ds, ImageFolderDataset)
    assert capsys.readouterr().out == "Found 8 files belonging to 3 classes.\n"
    assert ds.class_names == ["Birds", "cats", "dogs"]
    assert relative(ds.file_paths, folder) == ORDER
    assert all(p.startswith(folder) for p in ds.file_paths)
    assert len(ds) == 3
    images, labels = everything(ds)
    assert images.shape == (8, HEIGHT, WIDTH, 3) and images.dtype == numpy.float32
    assert labels.dtype == numpy.int32 and labels.tolist() == LABELS
    # Same size: the pixels are the files' own, as float32 in [0, 255].
    for image, path in zip(images, ds.file_paths):
        numpy.testing.assert_array_equal(image, decoded(path))


def test_without_inferred_labels_every_file_under_the_folder_is_found(folder, capsys):
    ds = image_dataset_from_directory(folder, labels=None, shuffle=False, image_size=(2, 2))
    assert capsys.readouterr().out == "Found 10 files.\n"
    assert ds.class_names is None
    assert relative(ds.file_paths, folder) == ["top.png", ".thumbnails/t.png"] + ORDER
    assert ds[0].shape == (10, 2, 2, 3)      # images only


def test_class_names_pick_and_order_the_classes(folder):
    ds = image_dataset_from_directory(folder, class_names=["dogs", "Birds"], shuffle=False, image_size=(2, 2),
                                      verbose=False)
    assert ds.class_names == ["dogs", "Birds"]
    assert relative(ds.file_paths, folder) == ["dogs/d0.png", "dogs/d1.gif", "Birds/b0.png", "Birds/b1.JPG"]
    assert ds[0][1].tolist() == [0, 0, 1, 1]


def test_follow_links_visits_linked_folders(folder, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    Image.fromarray(pixels((1, 2, 3), 0)).save(other / "linked.png")
    try:
        os.symlink(other, os.path.join(folder, "dogs", "link"))
    except OSError:
        pytest.skip("symbolic links cannot be made here")
    plain = image_dataset_from_directory(folder, shuffle=False, image_size=(2, 2), verbose=False)
    followed = image_dataset_from_directory(folder, shuffle=False, image_size=(2, 2), verbose=False,
                                            follow_links=True)
    assert len(plain.file_paths) == 8
    assert relative(followed.file_paths, folder) == ORDER + ["dogs/link/linked.png"]


# ------------------------------------------------------------------ labels
def test_label_modes(folder, two_classes):
    common = dict(shuffle=False, image_size=(2, 3), verbose=False, batch_size=8)
    x, y = image_dataset_from_directory(folder, label_mode="categorical", **common)[0]
    assert y.dtype == numpy.float32 and y.shape == (8, 3)
    numpy.testing.assert_array_equal(y, numpy.eye(3, dtype=numpy.float32)[LABELS])
    x, y = image_dataset_from_directory(two_classes, label_mode="binary", **common)[0]
    assert y.dtype == numpy.float32 and y.shape == (6, 1) and y[:, 0].tolist() == [0, 0, 0, 1, 1, 1]
    only = image_dataset_from_directory(folder, label_mode=None, **common)
    assert only.label_mode is None and only[0].shape == (8, 2, 3, 3)
    # label_mode=None walks from the top like labels=None, as Keras does.
    assert len(only.file_paths) == 10


def test_explicit_labels_follow_the_unshuffled_file_order(folder, capsys):
    given = [3, 1, 4, 1, 5, 0, 2, 6, 5, 3]
    ds = image_dataset_from_directory(folder, labels=given, shuffle=False, image_size=(2, 2), batch_size=None)
    assert capsys.readouterr().out == "Found 10 files belonging to 7 classes.\n"
    assert ds.class_names == ["0", "1", "2", "3", "4", "5", "6"]
    assert [int(ds[i][1]) for i in range(len(ds))] == given
    shuffled = image_dataset_from_directory(folder, labels=given, seed=5, image_size=(2, 2), verbose=False)
    assert given == [3, 1, 4, 1, 5, 0, 2, 6, 5, 3]      # the caller's list is left as it was
    pairs = dict(zip(ds.file_paths, given))
    assert [pairs[p] for p in shuffled.file_paths] == shuffled.labels.tolist()


def test_unbatched_data_sets_yield_single_images(folder):
    ds = image_dataset_from_directory(folder, batch_size=None, shuffle=False, image_size=(3, 3),
                                      label_mode="categorical", verbose=False)
    assert len(ds) == 8
    image, label = ds[5]
    assert image.shape == (3, 3, 3) and label.shape == (3,) and label.tolist() == [0, 1, 0]
    assert ds.element_spec == ((3, 3, 3), (3,))


# ------------------------------------------------------------------ the validation split
def test_split_takes_the_last_files_for_validation(folder, capsys):
    train = image_dataset_from_directory(folder, validation_split=0.25, subset="training", seed=7,
                                         image_size=(2, 2))
    assert capsys.readouterr().out == "Found 8 files belonging to 3 classes.\nUsing 6 files for training.\n"
    validation = image_dataset_from_directory(folder, validation_split=0.25, subset="validation", seed=7,
                                              image_size=(2, 2))
    assert capsys.readouterr().out == "Found 8 files belonging to 3 classes.\nUsing 2 files for validation.\n"
    everything_shuffled = image_dataset_from_directory(folder, seed=7, image_size=(2, 2), verbose=False)
    assert train.file_paths + validation.file_paths == everything_shuffled.file_paths
    assert train.shuffle and validation.shuffle       # a single subset keeps the shuffle asked for, as Keras


def test_subset_both_returns_training_and_an_unshuffled_validation_set(folder, capsys):
    train, validation = image_dataset_from_directory(folder, validation_split=0.3, subset="both", seed=1,
                                                     image_size=(2, 2), batch_size=2)
    assert capsys.readouterr().out == ("Found 8 files belonging to 3 classes.\nUsing 6 files for training.\n"
                                       "Using 2 files for validation.\n")
    assert len(train.file_paths) == 6 and len(validation.file_paths) == 2
    assert not set(train.file_paths) & set(validation.file_paths)
    assert train.class_names == validation.class_names == ["Birds", "cats", "dogs"]
    assert train.shuffle and not validation.shuffle
    _, labels = everything(validation)
    truth = dict(zip(ORDER, LABELS))
    assert labels.tolist() == [truth[p] for p in relative(validation.file_paths, folder)]


# ------------------------------------------------------------------ pixels
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest", "NEAREST"])
def test_resizing_is_gpu_dls_resize_op(folder, interpolation):
    ds = image_dataset_from_directory(folder, shuffle=False, image_size=(3, 4), interpolation=interpolation,
                                      verbose=False, batch_size=8)
    images, _ = ds[0]
    assert images.shape == (8, 3, 4, 3)
    for image, path in zip(images, ds.file_paths):
        numpy.testing.assert_array_equal(image, resize(decoded(path)[None], 3, 4, interpolation.lower())[0])


def test_crop_to_aspect_ratio_resizes_the_largest_centred_crop(folder):
    square = image_dataset_from_directory(folder, shuffle=False, image_size=(4, 4), crop_to_aspect_ratio=True,
                                          verbose=False, batch_size=None)
    wide = image_dataset_from_directory(folder, shuffle=False, image_size=(2, 6), crop_to_aspect_ratio=True,
                                        verbose=False, batch_size=None)
    for i, path in enumerate(square.file_paths):
        x = decoded(path)          # 5 x 7: the square crop is 5 x 5 from column 1; the 1:3 crop 2 x 7 from row 1
        numpy.testing.assert_array_equal(square[i][0], resize(x[None, :, 1:6], 4, 4)[0])
        numpy.testing.assert_array_equal(wide[i][0], resize(x[None, 1:3, :], 2, 6)[0])


def test_pad_to_aspect_ratio_pads_with_zeros_around_the_image(folder):
    ds = image_dataset_from_directory(folder, shuffle=False, image_size=(4, 4), pad_to_aspect_ratio=True,
                                      verbose=False, batch_size=None)
    for i, path in enumerate(ds.file_paths):
        padded = numpy.pad(decoded(path), ((1, 1), (0, 0), (0, 0)))     # 5 x 7 -> 7 x 7
        numpy.testing.assert_array_equal(ds[i][0], resize(padded[None], 4, 4)[0])


def test_grayscale_and_rgba(folder, tmp_path):
    gray = image_dataset_from_directory(folder, color_mode="grayscale", shuffle=False, image_size=(HEIGHT, WIDTH),
                                        verbose=False, batch_size=8)
    images, _ = gray[0]
    assert images.shape == (8, HEIGHT, WIDTH, 1)
    for image, path in zip(images, gray.file_paths):
        numpy.testing.assert_array_equal(image, decoded(path, "L"))
    root = tmp_path / "alpha" / "only"
    root.mkdir(parents=True)
    rgba = numpy.dstack([pixels((10, 20, 30), 0), numpy.full((HEIGHT, WIDTH), 128, numpy.uint8)])
    Image.fromarray(rgba, "RGBA").save(root / "a.png")
    ds = image_dataset_from_directory(tmp_path / "alpha", color_mode="rgba", image_size=(HEIGHT, WIDTH),
                                      verbose=False, shuffle=False)
    numpy.testing.assert_array_equal(ds[0][0][0], rgba.astype(numpy.float32))
    rgb = image_dataset_from_directory(tmp_path / "alpha", image_size=(HEIGHT, WIDTH), verbose=False, shuffle=False)
    numpy.testing.assert_array_equal(rgb[0][0][0], rgba[..., :3].astype(numpy.float32))


def test_channels_first(folder):
    last = image_dataset_from_directory(folder, shuffle=False, image_size=(3, 4), verbose=False)
    first = image_dataset_from_directory(folder, shuffle=False, image_size=(3, 4), verbose=False,
                                         data_format="channels_first")
    numpy.testing.assert_array_equal(first[0][0], last[0][0].transpose(0, 3, 1, 2))


# ------------------------------------------------------------------ shuffling
def test_shuffle_is_reproducible_under_a_seed_and_new_each_pass(folder):
    make = lambda seed: image_dataset_from_directory(folder, seed=seed, image_size=(2, 2), batch_size=3,
                                                     label_mode=None, verbose=False)
    one, two, other = make(11), make(11), make(12)
    assert one.file_paths == two.file_paths != other.file_paths
    assert sorted(one.file_paths) == sorted(other.file_paths)
    first_pass, _ = everything(one)
    numpy.testing.assert_array_equal(first_pass, everything(two)[0])
    second_pass, _ = everything(one)         # iterating again reshuffles, as a tf.data data set does
    assert not numpy.array_equal(first_pass, second_pass)
    numpy.testing.assert_array_equal(numpy.sort(first_pass, axis=0), numpy.sort(second_pass, axis=0))
    numpy.testing.assert_array_equal(second_pass, everything(two)[0])    # the same sequence of passes
    before = one[0]
    one.on_epoch_end()                       # what fit calls after each epoch
    assert not numpy.array_equal(before, one[0])
    unshuffled = image_dataset_from_directory(folder, shuffle=False, image_size=(2, 2), label_mode=None,
                                              verbose=False)
    numpy.testing.assert_array_equal(everything(unshuffled)[0], everything(unshuffled)[0])


def test_without_a_seed_keras_draws_one_from_numpys_global_generator(folder):
    numpy.random.seed(0)
    a = image_dataset_from_directory(folder, image_size=(2, 2), verbose=False)
    numpy.random.seed(0)
    b = image_dataset_from_directory(folder, image_size=(2, 2), verbose=False)
    assert a.file_paths == b.file_paths


def test_labels_stay_with_their_images_when_shuffled(folder):
    ds = image_dataset_from_directory(folder, seed=3, image_size=(HEIGHT, WIDTH), batch_size=3, verbose=False)
    truth = dict(zip(ORDER, LABELS))
    assert ds.labels.tolist() == [truth[p] for p in relative(ds.file_paths, folder)]
    for _ in range(2):
        images, labels = everything(ds)
        # Each image's dominant channel is its class's colour: red cats, green dogs, blue birds.
        dominant = images.mean(axis=(1, 2)).argmax(axis=1)
        assert [{2: 0, 0: 1, 1: 2}[c] for c in dominant] == labels.tolist()


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("workers", [1, 2])
def test_fit_trains_on_the_data_set(folder, workers):
    train, validation = image_dataset_from_directory(folder, validation_split=0.25, subset="both", seed=2,
                                                     image_size=(4, 4), batch_size=3, verbose=False)
    train.workers = workers
    backend.set_random_seed(0)
    model = gpu_dl.Sequential([gpu_dl.Input((4, 4, 3)), layers.Rescaling(1 / 255), layers.Flatten(),
                               layers.Dense(3, activation="softmax")])
    model.compile(optimizer=gpu_dl.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(train, validation_data=validation, epochs=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.history["accuracy"][-1] == 1.0
    assert model.predict(validation, verbose=0).shape == (2, 3)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("kwargs,error,message", [
    (dict(directory="missing"), FileNotFoundError, "`directory`: no such folder"),
    (dict(subset="training"), ValueError, "If `subset` is set, `validation_split` must be set"),
    (dict(validation_split=0.2), ValueError, "If `subset` is set, `validation_split` must be set"),
    (dict(validation_split=1.5, subset="training"), ValueError, "`validation_split` must be between 0 and 1"),
    (dict(validation_split=-0.1, subset="training"), ValueError, "`validation_split` must be between 0 and 1"),
    (dict(validation_split=0.2, subset="train", seed=1), ValueError, '`subset` must be either "training"'),
    (dict(validation_split=0.2, subset="training"), ValueError, "you must provide a `seed` argument"),
    (dict(validation_split=0.01, subset="validation", seed=1), ValueError, "leaves no files for validation"),
    (dict(labels=[0, 1]), ValueError, "Expected the lengths of `labels` to match the number of files"),
    (dict(labels="folders"), ValueError, "`labels` argument should be a list/tuple of integer labels"),
    (dict(labels=[0.5] * 10), ValueError, "`labels` must hold integer labels"),
    (dict(labels=[0] * 10, class_names=["a"]), ValueError, 'only pass `class_names` if `labels="inferred"`'),
    (dict(class_names=["cats", "horses"]), ValueError, "The `class_names` passed did not match"),
    (dict(label_mode="sparse"), ValueError, '`label_mode` argument must be one of "int", "categorical"'),
    (dict(label_mode="binary"), ValueError, 'When passing `label_mode="binary"`, there must be exactly 2'),
    (dict(labels=[0, 2] * 5, label_mode="categorical"), ValueError, "`labels` holds the label 2"),
    (dict(color_mode="cmyk"), ValueError, "`color_mode` must be one of"),
    (dict(interpolation="cubic"), ValueError, "Argument `interpolation` should be one of"),
    (dict(interpolation="bicubic"), ValueError, "Argument `interpolation`: 'bicubic' is not supported by gpu_dl"),
    (dict(image_size=(3, 0)), ValueError, "Invalid `image_size` value"),
    (dict(image_size=(3, 4, 5)), ValueError, "Invalid `image_size` value"),
    (dict(batch_size=0), ValueError, "`batch_size` must be a positive integer or None"),
    (dict(crop_to_aspect_ratio=True, pad_to_aspect_ratio=True), ValueError, "Only one of `pad_to_aspect_ratio`"),
    (dict(data_format="NHWC"), ValueError, "`data_format` must be 'channels_last' or 'channels_first'"),
])
def test_errors_name_the_argument(folder, kwargs, error, message):
    kwargs = dict(kwargs)
    directory = kwargs.pop("directory", folder)
    if directory == "missing":
        directory = os.path.join(folder, "missing")
    with pytest.raises(error, match=None) as caught:
        image_dataset_from_directory(directory, verbose=False, **kwargs)
    assert message in str(caught.value)


def test_a_folder_without_images_and_a_file_as_folder(tmp_path):
    (tmp_path / "empty" / "a").mkdir(parents=True)
    (tmp_path / "empty" / "a" / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="No images found in directory .*Allowed formats"):
        image_dataset_from_directory(tmp_path / "empty", verbose=False)
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="`directory`: .* is a file, not a folder"):
        image_dataset_from_directory(tmp_path / "file.png", verbose=False)


def test_a_corrupt_image_names_its_file(tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    (tmp_path / "d" / "a" / "broken.png").write_bytes(b"not a png")
    ds = image_dataset_from_directory(tmp_path / "d", verbose=False)
    with pytest.raises(ValueError, match="Cannot read the image file .*broken.png"):
        ds[0]
    with pytest.raises(IndexError, match="out of range"):
        ds[1]


# ------------------------------------------------------------------ single files
def test_load_img_img_to_array_array_to_img_and_save_img(tmp_path):
    array = pixels((100, 150, 200), 1).astype(numpy.float32)
    save_img(tmp_path / "x.png", array, scale=False)
    img = load_img(tmp_path / "x.png")
    assert img.mode == "RGB" and img.size == (WIDTH, HEIGHT)
    numpy.testing.assert_array_equal(img_to_array(img), array)
    assert img_to_array(img, data_format="channels_first").shape == (3, HEIGHT, WIDTH)
    assert img_to_array(load_img(tmp_path / "x.png", color_mode="grayscale")).shape == (HEIGHT, WIDTH, 1)
    assert load_img(tmp_path / "x.png", color_mode="rgba").mode == "RGBA"
    assert load_img(str(tmp_path / "x.png"), target_size=(3, 4)).size == (4, 3)
    buffer = io.BytesIO()
    save_img(buffer, array, file_format="jpg")
    assert load_img(io.BytesIO(buffer.getvalue())).format == "JPEG"
    scaled = img_to_array(array_to_img(array))          # scale=True stretches to [0, 255]
    assert scaled.min() == 0 and scaled.max() == 255
    with pytest.warns(UserWarning, match="JPEG format does not support RGBA"):
        save_img(tmp_path / "y.jpg", numpy.zeros((2, 2, 4)))
    with pytest.raises(ValueError, match="rank 3"):
        array_to_img(numpy.zeros((2, 2)))
    with pytest.raises(ValueError, match="`color_mode` must be one of"):
        load_img(tmp_path / "x.png", color_mode="cmyk")
    with pytest.raises(TypeError, match="path-like or io.BytesIO"):
        load_img(3)


# ------------------------------------------------------------------ Keras 3.15 as the oracle
def keras_parts():
    keras = pytest.importorskip("keras")
    try:     # Keras's own image_dataset_from_directory needs TensorFlow or Grain: its parts that need neither
        from keras.src.utils import dataset_utils
        from keras.src.utils.image_dataset_utils import ALLOWLIST_FORMATS, _load_image_grain
    except ImportError as exc:
        pytest.skip(f"Keras's dataset helpers are not importable here: {exc}")
    return keras, dataset_utils, ALLOWLIST_FORMATS, _load_image_grain


@pytest.mark.parametrize("labels", ["inferred", None, "list"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_keras_oracle_file_order_labels_and_split(folder, labels, shuffle, capsys):
    _, dataset_utils, formats, _ = keras_parts()
    if labels == "list":
        labels = [7, 1, 3, 1, 0, 2, 2, 5, 4, 6]
    # A copy for Keras: it shuffles a labels list in place (gpu_dl leaves the caller's list alone).
    paths, keras_labels, class_names = dataset_utils.index_directory(
        folder, list(labels) if isinstance(labels, list) else labels, formats=formats, shuffle=shuffle, seed=42)
    ours = image_dataset_from_directory(folder, labels=labels, shuffle=shuffle, seed=42, image_size=(2, 2),
                                        verbose=False)
    assert ours.file_paths == paths and ours.class_names == class_names
    if labels is None:
        assert ours.labels is None
    else:
        assert ours.labels.tolist() == [int(v) for v in keras_labels]
    if not shuffle:
        return
    for subset in ("training", "validation"):
        keras_paths, keras_part = dataset_utils.get_training_or_validation_split(paths, keras_labels, 0.3, subset)
        capsys.readouterr()
        part = image_dataset_from_directory(folder, labels=labels, seed=42, image_size=(2, 2), verbose=False,
                                            validation_split=0.3, subset=subset)
        assert part.file_paths == keras_paths
        if labels is not None:
            assert part.labels.tolist() == [int(v) for v in keras_part]


@pytest.mark.parametrize("color_mode", ["rgb", "grayscale", "rgba"])
@pytest.mark.parametrize("interpolation,size,aspect", [
    ("bilinear", (3, 4), None), ("nearest", (3, 4), None), ("bilinear", (8, 9), None),
    ("bilinear", (4, 4), "crop"), ("nearest", (2, 6), "crop"), ("bilinear", (4, 4), "pad"), ("bilinear", (6, 3), "pad"),
])
def test_keras_oracle_pixels(folder, color_mode, interpolation, size, aspect):
    keras, _, _, load_image = keras_parts()
    channels = {"rgb": 3, "grayscale": 1, "rgba": 4}[color_mode]
    ds = image_dataset_from_directory(folder, shuffle=False, image_size=size, color_mode=color_mode,
                                      interpolation=interpolation, crop_to_aspect_ratio=aspect == "crop",
                                      pad_to_aspect_ratio=aspect == "pad", verbose=False, batch_size=None)
    for i, path in enumerate(ds.file_paths):
        expected = keras.ops.convert_to_numpy(load_image(path, size, channels, interpolation, "channels_last",
                                                         aspect == "crop", aspect == "pad"))
        numpy.testing.assert_allclose(ds[i][0], expected, rtol=1e-6, atol=1e-4)


def test_keras_oracle_single_file_helpers(folder, tmp_path):
    keras, _, _, _ = keras_parts()
    path = os.path.join(folder, "cats", "c1.jpg")
    for kwargs in (dict(), dict(color_mode="grayscale"), dict(color_mode="rgba"),
                   dict(target_size=(3, 4), interpolation="bilinear"),
                   dict(target_size=(4, 4), keep_aspect_ratio=True, interpolation="bicubic")):
        numpy.testing.assert_array_equal(img_to_array(load_img(path, **kwargs)),
                                         keras.utils.img_to_array(keras.utils.load_img(path, **kwargs)))
    x = numpy.random.default_rng(0).uniform(-3, 5, (HEIGHT, WIDTH, 3)).astype(numpy.float32)
    for data_format in ("channels_last", "channels_first"):
        y = x if data_format == "channels_last" else x.transpose(2, 0, 1)
        numpy.testing.assert_array_equal(img_to_array(array_to_img(y, data_format=data_format)),
                                         keras.utils.img_to_array(keras.utils.array_to_img(y, data_format=data_format)))
    wide = numpy.full((2, 2, 1), 300.0)
    assert array_to_img(wide, scale=False).mode == keras.utils.array_to_img(wide, scale=False).mode == "I"
    save_img(tmp_path / "ours.png", x)
    keras.utils.save_img(tmp_path / "keras.png", x)
    numpy.testing.assert_array_equal(img_to_array(load_img(tmp_path / "ours.png")),
                                     img_to_array(load_img(tmp_path / "keras.png")))
