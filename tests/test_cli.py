"""`gpu-dl train`, `evaluate` and `predict`: the main job end to end on the CPU, its run folder, and its errors."""
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

from gpu_dl import cli
from gpu_dl.models import load_model

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ROOT = Path(__file__).resolve().parents[1]


def gpu_dl_command(*argv, cwd):
    """`gpu-dl ARGV` in a fresh interpreter, as a user runs it: nothing of gpu_dl imported beforehand."""
    return subprocess.run([sys.executable, "-m", "gpu_dl.cli", *argv], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "GPU_DL_DEVICE": "cpu"},
                          timeout=300)


def test_the_command_starts_in_a_fresh_interpreter(tmp_path):
    # Tests in one process import gpu_dl.models first, which hides an import cycle a fresh process meets.
    for argv in (["--help"], ["train", "--help"], ["evaluate", str(tmp_path / "missing.keras"), "--device", "cpu"]):
        done = gpu_dl_command(*argv, cwd=tmp_path)
        assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 2 and "missing.keras" in done.stderr


@pytest.fixture
def trained(tmp_path_factory):
    """One short CNN run on the digits, shared by the tests that read its folder."""
    folder = tmp_path_factory.mktemp("run")
    code = cli.main(["train", "--epochs", "2", "--device", "cpu", "--verbose", "2", "--output", str(folder)])
    assert code == 0
    return folder


def test_train_by_default_is_the_cnn_on_the_digits(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.make_parser().parse_args(["train"])
    assert (args.model, args.data, args.device) == ("cnn", "digits", "auto")
    assert cli.main(["--epochs", "1", "--device", "cpu", "--verbose", "2"]) == 0   # no subcommand: train
    text = capsys.readouterr().out
    assert "gpu_dl: running on CPU" in text
    assert 'Model: "cnn"' in text and "Conv2D" in text and "MaxPooling2D" in text and "Total params:" in text
    # one epoch: no "Epoch 1/1" line, as in Keras 3
    assert "Epoch 1/1" not in text and "val_accuracy" in text and "Test accuracy: 0." in text
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-digits-cnn")
    assert {p.name for p in runs[0].iterdir()} == {"model.keras", "training_curves.png", "history.csv"}


def test_run_folder_holds_a_loadable_model_its_curves_and_history(trained):
    assert (trained / "training_curves.png").read_bytes().startswith(PNG_SIGNATURE)
    rows = (trained / "history.csv").read_text().splitlines()
    assert rows[0].split(",")[:2] == ["epoch", "accuracy"] and len(rows) == 3
    model = load_model(str(trained / "model.keras"))
    assert [type(layer).__name__ for layer in model.layers][:2] == ["Conv2D", "MaxPooling2D"]


def test_evaluate_and_predict_a_saved_model(trained, capsys, tmp_path):
    model_file = str(trained / "model.keras")
    assert cli.main(["evaluate", model_file, "--device", "cpu"]) == 0
    assert "on the 359 test images" in capsys.readouterr().out
    out = tmp_path / "probabilities.npy"
    assert cli.main(["predict", model_file, "--device", "cpu", "--output", str(out)]) == 0
    probabilities = numpy.load(out)
    assert probabilities.shape == (359, 10)
    numpy.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    out = tmp_path / "probabilities"                # no .npy: written under the name given, the one printed
    assert cli.main(["predict", model_file, "--device", "cpu", "--output", str(out)]) == 0
    assert f"to {out}\n" in capsys.readouterr().out
    numpy.testing.assert_array_equal(numpy.load(out), probabilities)
    # a write that fails half-way leaves the earlier file whole and no temporary beside it
    before = sorted(p.name for p in tmp_path.iterdir())
    real_save = numpy.save

    def failing_save(f, array):
        f.write(b"partial")
        raise OSError("disk full")
    numpy.save = failing_save
    try:
        assert cli.main(["predict", model_file, "--device", "cpu", "--output", str(out)]) != 0
    finally:
        numpy.save = real_save
    numpy.testing.assert_array_equal(numpy.load(out), probabilities)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    inputs = tmp_path / "x.npy"
    numpy.save(inputs, numpy.zeros((3, 8, 8, 1), dtype="float32"))
    assert cli.main(["predict", model_file, "--device", "cpu", "--input", str(inputs)]) == 0
    assert "3 predictions for" in capsys.readouterr().out


def test_model_from_a_python_file(tmp_path, capsys):
    source = tmp_path / "tiny.py"
    source.write_text(
        "from gpu_dl import Sequential, layers\n"
        "def build_model(input_shape, classes):\n"
        "    return Sequential([layers.Input(input_shape), layers.Flatten(), "
        "layers.Dense(classes, activation='softmax')],"
        " name='tiny')\n")
    assert cli.main(["train", "--model", str(source), "--epochs", "1", "--device", "cpu", "--verbose", "0",
                     "--output", str(tmp_path / "run")]) == 0
    assert 'Model: "tiny"' in capsys.readouterr().out
    assert (tmp_path / "run" / "model.keras").exists()


def test_functional_model_from_a_python_file(tmp_path, capsys):
    source = tmp_path / "branches.py"
    source.write_text(
        "import gpu_dl as keras\n"
        "from gpu_dl import layers\n"
        "def build_model(input_shape, classes):\n"
        "    inputs = keras.Input(input_shape)\n"
        "    x = layers.Flatten()(inputs)\n"
        "    x = layers.Add()([layers.Dense(8)(x), layers.Dense(8, activation='relu')(x)])\n"
        "    return keras.Model(inputs, layers.Dense(classes, activation='softmax')(x), name='branches')\n")
    assert cli.main(["train", "--model", str(source), "--epochs", "1", "--device", "cpu", "--verbose", "0",
                     "--output", str(tmp_path / "run")]) == 0
    printed = capsys.readouterr().out
    assert 'Model: "branches"' in printed and "Connected to" in printed
    model_file = str(tmp_path / "run" / "model.keras")
    assert cli.main(["evaluate", model_file, "--device", "cpu"]) == 0
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["train", "--model", "resnet"], "Unknown model 'resnet'"),
    (["train", "--model", "missing.py"], "does not exist"),
    (["train", "--data", "mnist", "--data-dir", "/nonexistent"], "mnist.npz"),
    (["evaluate", "missing.keras"], "missing.keras"),
])
def test_errors_are_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv + ["--device", "cpu"]) == 2
    assert message in capsys.readouterr().err


def image_folder(root, classes=("blue", "red"), per_class=5):
    """Class subfolders of small PNG files whose colour is their class."""
    from PIL import Image
    rng = numpy.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (6, 9, 3))
            pixels[..., 2 - 2 * c] += 190
            Image.fromarray(pixels.astype("uint8")).save(root / name / f"{i}.png")
    return root


def test_train_on_a_folder_of_images(tmp_path, capsys, monkeypatch):
    """--data FOLDER: image_dataset_from_directory's batches, the last fifth held out for the test accuracy."""
    folder = image_folder(tmp_path / "shapes")
    monkeypatch.chdir(tmp_path)
    code = cli.main(["train", "--data", str(folder), "--image-size", "4x6", "--model", "cnn", "--epochs", "2",
                     "--batch-size", "4", "--device", "cpu", "--verbose", "0"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Found 10 files belonging to 2 classes.\nUsing 8 files for training.\nUsing 2 files for validation." in text
    assert (f"Data: image folder {folder}, resized to 4x6: 8 training and 2 test images of shape (4, 6, 3), "
            "2 classes") in text
    assert "Test accuracy:" in text and "on 2 held-out images" in text
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.endswith("-shapes-cnn") and (run / "model.keras").exists()
    assert load_model(str(run / "model.keras")).input_shape == (None, 4, 6, 3)


def test_folder_options_are_checked(tmp_path, capsys, monkeypatch):
    folder = image_folder(tmp_path / "shapes")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--data", str(folder), "--data-dir", str(tmp_path), "--device", "cpu"]) == 2
    assert "argument --data-dir: --data" in capsys.readouterr().err
    assert cli.main(["train", "--image-size", "8", "--device", "cpu"]) == 2
    assert "argument --image-size: only with --data FOLDER" in capsys.readouterr().err
    (tmp_path / "empty" / "a").mkdir(parents=True)
    assert cli.main(["train", "--data", str(tmp_path / "empty"), "--device", "cpu"]) == 2
    assert "No images found in directory" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_train_reads_a_data_set_from_the_users_files(tmp_path, capsys):
    """--data mnist --data-dir: Keras's mnist.npz format, here a small one made by the test."""
    rng = numpy.random.default_rng(0)
    labels_train, labels_test = rng.integers(0, 10, 60).astype("uint8"), rng.integers(0, 10, 20).astype("uint8")
    images = lambda labels: (labels[:, None, None] * 25 + rng.integers(0, 5, (len(labels), 28, 28))).astype("uint8")
    numpy.savez(tmp_path / "mnist.npz", x_train=images(labels_train), y_train=labels_train,
                x_test=images(labels_test), y_test=labels_test)
    code = cli.main(["train", "--data", "mnist", "--data-dir", str(tmp_path), "--model", "mlp", "--epochs", "1",
                     "--device", "cpu", "--verbose", "0", "--output", str(tmp_path / "run")])
    assert code == 0
    text = capsys.readouterr().out
    assert "MNIST handwritten digits, 28x28: 60 training and 20 test images of shape (28, 28, 1), 10 classes" in text
    assert "Test accuracy:" in text and (tmp_path / "run" / "model.keras").exists()


@pytest.mark.parametrize("argv,message", [
    (["train", "--epochs", "0"], "argument --epochs: must be a positive integer, got 0"),
    (["train", "--epochs", "-2"], "argument --epochs: must be a positive integer, got -2"),
    (["train", "--batch-size", "0"], "argument --batch-size: must be a positive integer"),
    (["train", "--seed", "-1"], "argument --seed: must be a non-negative integer, got -1"),
    (["train", "--learning-rate", "-0.1"], "argument --learning-rate: must be a positive number, got -0.1"),
    (["train", "--learning-rate", "nan"], "argument --learning-rate: must be a positive number, got nan"),
    (["train", "--model"], "argument --model: expected one argument"),
    (["train", "--data", "no_such_folder"], "argument --data: 'no_such_folder' is neither a data set"),
    (["train", "--image-size", "8x"], "argument --image-size: must be a positive integer N or HxW, got 8x"),
    (["train", "--image-size", "0"], "argument --image-size: must be a positive integer N or HxW, got 0"),
])
def test_bad_option_values_are_refused_by_the_parser(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv + ["--device", "cpu"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_output_paths_are_checked_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "previous_run").mkdir()
    (tmp_path / "previous_run" / "model.keras").write_bytes(b"an earlier run")
    for argv, message in [
        (["train", "--output", "a_file"], "argument --output: 'a_file' is a file, not a folder"),
        (["train", "--output", "a_file/run"], "argument --output: 'a_file' is a file"),
        (["train", "--output", "previous_run"],
         "argument --output: the folder 'previous_run' already exists and is not empty"),
        (["predict", "m.keras", "--input", "missing.npy"], "argument --input: no such file 'missing.npy'"),
        (["predict", "m.keras", "--output", "previous_run"], "argument --output: 'previous_run' is a folder"),
        (["predict", "m.keras", "--output", "no/such/p.npy"], "argument --output: the folder 'no/such' does not exist"),
    ]:
        assert cli.main(argv + ["--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert f"gpu-dl {argv[0]}: error: {message}" in err, err
    assert (tmp_path / "previous_run" / "model.keras").read_bytes() == b"an earlier run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "previous_run"]


def test_a_failed_run_leaves_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "three.py"      # 3 outputs for the digits' 10 classes: fit refuses the labels
    source.write_text(
        "from gpu_dl import Sequential, layers\n"
        "def build_model(input_shape, classes):\n"
        "    return Sequential([layers.Input(input_shape), layers.Flatten(), layers.Dense(3, activation='softmax')])\n")
    assert cli.main(["train", "--model", str(source), "--device", "cpu", "--verbose", "0"]) == 2
    assert "class labels" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()

    # A failure after training (here: saving the model) removes the curves and history already written ...
    from gpu_dl.models.model import Model

    def failing_save(self, filepath, *args, **kwargs):
        written = {p.name for p in Path(filepath).parent.iterdir()}
        assert {"history.csv", "training_curves.png"} <= written, written
        raise OSError("disk full")

    monkeypatch.setattr(Model, "save", failing_save)
    argv = ["train", "--model", "mlp", "--epochs", "1", "--device", "cpu", "--verbose", "0"]
    assert cli.main(argv + ["--output", "out/run"]) == 2
    assert "disk full" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # ... and an empty folder given as --output stays, empty.
    (tmp_path / "empty").mkdir()
    assert cli.main(argv + ["--output", "empty"]) == 2
    assert list((tmp_path / "empty").iterdir()) == []


@pytest.mark.parametrize("signature,call", [("()", "(8, 8, 1), 10"), ("(input_shape)", "input_shape, 10"),
                                            ("(input_shape, classes=10)", "input_shape, classes"),
                                            ("(*shape_and_classes)", "*shape_and_classes")])
def test_build_model_is_called_with_the_arguments_it_takes(tmp_path, signature, call):
    from gpu_dl.models.examples import build_from_file
    source = tmp_path / "model.py"
    source.write_text(
        "from gpu_dl import Sequential, layers\n"
        f"def build_model{signature}:\n"
        f"    return make({call})\n"
        "def make(input_shape, classes):\n"
        "    return Sequential([layers.Input(input_shape), layers.Flatten(), layers.Dense(classes)])\n")
    assert build_from_file(source, (8, 8, 1), 10).output_shape == (None, 10)


def test_a_model_file_that_is_not_python_is_one_clear_line(tmp_path, capsys):
    source = tmp_path / "broken.py"
    source.write_text("def build_model(:\n    pass\n")
    assert cli.main(["train", "--model", str(source), "--device", "cpu", "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "broken.py' is not valid Python" in err and "line 1" in err and "Traceback" not in err
