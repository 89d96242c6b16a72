"""The ``gpu-dl`` command.

    gpu-dl train [--data NAME|FOLDER] [--data-dir DIR] [--image-size N|HxW] [--model cnn|mlp|lstm|FILE.py]
                 [--epochs N] [--batch-size N] [--learning-rate LR] [--device auto|cpu|gpu] [--output DIR]
                 [--seed N] [--verbose 0|1|2]
    gpu-dl evaluate MODEL.keras [--data NAME] [--data-dir DIR]
    gpu-dl predict MODEL.keras [--input X.npy | --data NAME] [--output PROBABILITIES.npy]
    gpu-dl info

With no arguments it trains the seed notes' CNN on scikit-learn's digits and
writes the model, its training curves and its history into a run folder.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
import time
from pathlib import Path


def _run_folder_path(args):
    """The run folder: --output, or runs/<date-time>-<data>-<model> (made unique)."""
    if args.output:
        return Path(args.output)
    model = Path(args.model).stem if args.model.endswith(".py") else args.model
    data = Path(args.data).name or "images"      # a folder of images: its name, not its path
    folder = Path("runs") / f"{time.strftime('%Y%m%d-%H%M%S')}-{data}-{model}"
    base, n = folder, 1
    while folder.exists():
        folder, n = Path(f"{base}-{n}"), n + 1
    return folder


def _check_paths(args):
    """The options that name files, checked before any work, with errors that name the option."""
    if args.command == "train" and args.output:
        folder = Path(args.output)
        if folder.exists() and not folder.is_dir():
            raise ValueError(f"argument --output: {args.output!r} is a file, not a folder.")
        if folder.is_dir() and any(folder.iterdir()):
            # The run would replace another run's model and mix its history with this one's.
            raise ValueError(f"argument --output: the folder {args.output!r} already exists and is not empty; "
                             "give a new or empty folder.")
        parent = folder.parent
        while not parent.exists():
            parent = parent.parent
        if not parent.is_dir():
            raise ValueError(f"argument --output: {str(parent)!r} is a file, so {args.output!r} cannot be made.")
    if args.command == "predict":
        if args.input and not Path(args.input).is_file():
            raise ValueError(f"argument --input: no such file {args.input!r} (expected a .npy array of inputs).")
        if args.output:
            out = Path(args.output)
            if out.is_dir():
                raise ValueError(f"argument --output: {args.output!r} is a folder; give a file name such as "
                                 f"{str(out / 'probabilities.npy')!r}.")
            if not out.parent.is_dir():
                raise ValueError(f"argument --output: the folder {str(out.parent)!r} does not exist.")


def _make_folder(folder):
    """Create ``folder`` (and missing parents); return the topmost folder created, or None if it existed."""
    created = None
    for path in reversed([folder, *folder.parents]):
        if not path.exists():
            path.mkdir()
            created = created or path
    return created


def _remove_run(folder, created):
    """Undo a failed run: remove the folders it created, or (a folder that existed, empty) what it wrote there."""
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
        return
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def train(args):
    from . import backend, callbacks, optimizers
    from .data.catalog import is_image_folder, load_dataset, load_image_folder
    from .models.examples import build_model
    backend.set_device(args.device)
    backend.set_random_seed(args.seed)
    if is_image_folder(args.data):
        if args.data_dir:
            raise ValueError(f"argument --data-dir: --data {args.data!r} is a folder of images; --data-dir is for "
                             "the named data sets.")
        # The folder's last fifth (in the seed's shuffled order) is held out: it reports the test accuracy.
        size = args.image_size or (64, 64)
        train_data, test_data, description, class_names = load_image_folder(args.data, size, args.batch_size,
                                                                            args.seed)
        shape, classes = tuple(size) + (3,), len(class_names)
        counts = len(train_data.dataset.file_paths), len(test_data.dataset.file_paths)
        fit_data = {"x": train_data, "validation_data": test_data}
        test = (test_data,)
    else:
        if args.image_size:
            raise ValueError(f"argument --image-size: only with --data FOLDER; the {args.data} images keep their "
                             "size.")
        (x_train, y_train), (x_test, y_test), description = load_dataset(args.data, args.data_dir)
        shape, classes = x_train.shape[1:], int(max(y_train.max(), y_test.max())) + 1
        counts = len(x_train), len(x_test)
        fit_data = {"x": x_train, "y": y_train, "batch_size": args.batch_size, "validation_split": 0.1}
        test = (x_test, y_test)
    print(f"Data: {description}: {counts[0]} training and {counts[1]} test images "
          f"of shape {shape}, {classes} classes")
    model = build_model(args.model, shape, classes)
    model.compile(optimizer=optimizers.Adam(args.learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.summary()
    folder = _run_folder_path(args)
    created = _make_folder(folder)
    try:
        curves = folder / "training_curves.png"
        model.fit(**fit_data, epochs=args.epochs, verbose=args.verbose,
                  callbacks=[callbacks.TrainingCurves(str(curves)), callbacks.CSVLogger(str(folder / "history.csv"))])
        loss, accuracy = model.evaluate(*test, verbose=0)
        print(f"Test accuracy: {accuracy:.4f} (loss {loss:.4f}) on {counts[1]} held-out images")
        model.save(str(folder / "model.keras"))
    except BaseException:
        # A run folder holds a whole run or nothing: no curves and history without their model
        # (Ctrl-C included).
        _remove_run(folder, created)
        raise
    print(f"Run folder {folder}: model.keras, training_curves.png, history.csv")
    return 0


def _saved_model(args):
    from . import backend
    from .models import load_model
    backend.set_device(args.device)
    return load_model(args.model)


def evaluate(args):
    from .data.catalog import load_dataset
    from .utils.progbar import format_value
    model = _saved_model(args)
    _, (x_test, y_test), description = load_dataset(args.data, args.data_dir)
    results = model.evaluate(x_test, y_test, batch_size=args.batch_size, verbose=0, return_dict=True)
    shown = ", ".join(f"{name} {format_value(value)}" for name, value in results.items())
    print(f"{args.model} on the {len(x_test)} test images of {description}: {shown}")
    return 0


def predict(args):
    import numpy
    model = _saved_model(args)
    if args.input:
        x = numpy.load(args.input, allow_pickle=False)
        source = args.input
    else:
        from .data.catalog import load_dataset
        _, (x, _), description = load_dataset(args.data, args.data_dir)
        source = f"the test images of {description}"
    probabilities = model.predict(x, batch_size=args.batch_size, verbose=0)
    classes = probabilities.argmax(axis=-1)
    print(f"{len(classes)} predictions for {source}; the first: {' '.join(map(str, classes[:20]))}")
    if args.output:
        from .models.saving import atomic_write

        def write(path):
            with open(path, "wb") as f:     # the name given: numpy.save(path) would add ".npy" to it
                numpy.save(f, probabilities)
        atomic_write(args.output, write)     # an interrupted run leaves any earlier file whole
        print(f"Wrote the class probabilities {probabilities.shape} to {args.output}")
    return 0


def _gib(n):
    return f"{n / 2**30:.1f} GiB"


def info(args):
    import numpy
    from . import __version__, backend
    from .backend import nvml
    print(f"gpu_dl {__version__}, Python {sys.version.split()[0]}, NumPy {numpy.__version__}")
    try:
        import cupy
        runtime = cupy.cuda.runtime.runtimeGetVersion()
        print(f"CuPy {cupy.__version__}, CUDA runtime {runtime // 1000}.{runtime % 1000 // 10}")
    except Exception as exc:
        print(f"CuPy: not available ({exc.__class__.__name__}: {exc})")
    facts = nvml.device_facts(0)
    if facts is None:
        print("NVML: no NVIDIA driver or nvidia-ml-py (device facts unknown)")
    else:
        print(f"GPU 0: {facts['name']}, driver {facts['driver']}, memory {_gib(facts['memory_used'])} used of "
              f"{_gib(facts['memory_total'])}, utilisation {facts['gpu_utilization']}% "
              f"(memory {facts['memory_utilization']}%)")
    try:
        backend.set_device(args.device)
    except backend.DeviceUnavailableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(backend.describe_device())
    _print_kernel_status(backend.get_device() == "gpu")
    return 0


def _print_kernel_status(on_gpu):
    """One line per kernel file: compiled for this GPU through CuPy, or with NVRTC for sm_90 without one."""
    from .backend import kernels
    how = "for this GPU (CuPy)" if on_gpu else "with NVRTC for sm_90 (no GPU)"
    if not on_gpu and not kernels.nvrtc_available():
        print("Kernels: not compiled here (no GPU, and no NVRTC: pip install cuda-bindings nvidia-cuda-nvrtc)")
        return
    print(f"Kernels, compiled {how}:")
    for filename in kernels.kernel_files():
        try:
            if on_gpu:
                kernels.get_module(filename)
                detail = "compiles"
            else:
                reports = kernels.compile_report(filename, "sm_90")
                spills = sum(r.spill_stores for r in reports)
                most = max((r.registers or 0 for r in reports), default=0)
                detail = (f"compiles: {len(reports)} kernels, at most {most} registers, "
                          f"{'no spills' if not spills else f'{spills} B of spill stores'}")
        except Exception as exc:   # report every file, whatever broke
            first = str(exc).splitlines()[0]
            detail = f"FAILS: {first}"
        print(f"  {filename}: {detail}")


def positive(text):
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative(text):
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def positive_number(text):
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def image_size(text):
    """``N`` (square) or ``HxW``: the size images of a folder are resized to."""
    parts = text.lower().split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(parts) == 1:
        size = size * 2
    if len(size) != 2 or min(size) <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer N or HxW, got {text}")
    return size


def data_source(text):
    """A data set's name, or a folder of class subfolders of images."""
    from .data.catalog import DATASETS
    if text in DATASETS or Path(text).is_dir():
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is neither a data set ({', '.join(sorted(DATASETS))}) nor a "
                                     "folder of class subfolders of images")


def make_parser():
    from .data.catalog import DATASETS
    from .models.examples import MODELS
    parser = argparse.ArgumentParser(prog="gpu-dl", description="Train and inspect gpu_dl models.")
    sub = parser.add_subparsers(dest="command")
    device = {"choices": ["auto", "cpu", "gpu"], "default": "auto",
              "help": "auto: the GPU when one answers, else the CPU"}
    data = {"choices": sorted(DATASETS), "default": "digits",
            "help": "digits ship with scikit-learn; mnist, fashion_mnist and cifar10 are read from files you have"}
    data_dir = {"default": None, "help": "where the data set's files are (default: $GPU_DL_DATA/<name>, "
                                         "~/.gpu_dl/datasets/<name>, ~/.keras/datasets)"}

    p_train = sub.add_parser("train", help="train a model (default: the CNN on the digits)")
    p_train.add_argument("--data", type=data_source, default="digits", metavar="NAME|FOLDER",
                         help=f"{', '.join(sorted(DATASETS))}, or a folder of class subfolders of images (.png, "
                              ".jpg, .jpeg, .bmp, .gif; the last fifth of the files, shuffled by --seed, is held "
                              f"out for the test accuracy). {data['help']}")
    p_train.add_argument("--data-dir", **data_dir)
    p_train.add_argument("--image-size", type=image_size, default=None, metavar="N|HxW",
                         help="with --data FOLDER: the size images are resized to (default 64x64)")
    p_train.add_argument("--model", default="cnn",
                         help=f"{', '.join(MODELS)} (cnn: [Conv2D -> ReLU -> MaxPooling2D]*2 -> Dense -> Dense; "
                              "mlp: two hidden Dense layers; lstm: reads the image row by row), or a Python "
                              "file defining build_model()")
    p_train.add_argument("--epochs", type=positive, default=15)
    p_train.add_argument("--batch-size", type=positive, default=32)
    p_train.add_argument("--learning-rate", type=positive_number, default=0.003, help="Adam's learning rate")
    p_train.add_argument("--device", **device)
    p_train.add_argument("--output", default=None,
                         help="the run folder, new or empty (default: runs/<date-time>-<data>-<model>)")
    p_train.add_argument("--seed", type=non_negative, default=0,
                         help="random seed (default 0; results are reproducible)")
    p_train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    p_train.set_defaults(run=train)

    p_eval = sub.add_parser("evaluate", help="evaluate a saved model on a data set's test images")
    p_eval.add_argument("model", help="a .keras file written by model.save or gpu-dl train")
    p_eval.add_argument("--data", **data)
    p_eval.add_argument("--data-dir", **data_dir)
    p_eval.add_argument("--batch-size", type=positive, default=256)
    p_eval.add_argument("--device", **device)
    p_eval.set_defaults(run=evaluate)

    p_predict = sub.add_parser("predict", help="class probabilities of a saved model")
    p_predict.add_argument("model", help="a .keras file written by model.save or gpu-dl train")
    p_predict.add_argument("--input", default=None, help="a .npy array of inputs (default: the data set's test images)")
    p_predict.add_argument("--data", **data)
    p_predict.add_argument("--data-dir", **data_dir)
    p_predict.add_argument("--output", default=None, help="write the probabilities to this .npy file")
    p_predict.add_argument("--batch-size", type=positive, default=256)
    p_predict.add_argument("--device", **device)
    p_predict.set_defaults(run=predict)

    p_info = sub.add_parser("info", help="show the backend and device")
    p_info.add_argument("--device", **device)
    p_info.set_defaults(run=info)
    return parser


def main(argv=None):
    from .backend import DeviceUnavailableError
    parser = make_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["train"] + argv          # the main job: `gpu-dl` alone, or with train's options, trains
    args = parser.parse_args(argv)
    try:
        _check_paths(args)
        return args.run(args)
    except (ValueError, TypeError, OSError, ImportError, DeviceUnavailableError) as exc:
        print(f"gpu-dl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
