"""The ``gpu-dl`` command.

    gpu-dl train [--model mlp|cnn|lstm] [--epochs N] [--batch-size N] [--device auto|cpu|gpu] [--seed N]
    gpu-dl info
"""
from __future__ import annotations

import argparse
import sys


def build_mlp(input_dim, classes):
    from . import layers
    from .models import Sequential
    return Sequential([
        layers.Input(shape=(input_dim,)),
        layers.Dense(64, activation="relu"),
        layers.Dropout(0.1),
        layers.Dense(64, activation="relu"),
        layers.Dense(classes, activation="softmax"),
    ], name="digits_mlp")


def build_cnn(image_shape, classes):
    """The seed notes' network: INPUT -> [CONV -> RELU -> POOL]*2 -> FC -> RELU -> FC."""
    from . import layers
    from .models import Sequential
    return Sequential([
        layers.Input(shape=image_shape),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(classes, activation="softmax"),
    ], name="digits_cnn")


def build_lstm(image_shape, classes):
    """An LSTM reading each image row by row: rows are the time steps, a row's pixels the features."""
    from . import layers
    from .models import Sequential
    rows, cols = image_shape[0], image_shape[1] * (image_shape[2] if len(image_shape) > 2 else 1)
    return Sequential([
        layers.Input(shape=image_shape),
        layers.Reshape((rows, cols)),
        layers.LSTM(64),
        layers.Dense(classes, activation="softmax"),
    ], name="digits_lstm")


MODELS = {"mlp": (build_mlp, False), "cnn": (build_cnn, True), "lstm": (build_lstm, True)}


def train(args):
    from . import backend, data
    backend.set_device(args.device)
    if args.seed is not None:
        backend.set_random_seed(args.seed)
    build, images = MODELS[args.model]
    (x_train, y_train), (x_test, y_test) = data.load_digits(image_shape=images)
    print(f"Data: scikit-learn digits, {len(x_train)} training and {len(x_test)} test images of 8x8 pixels, 10 classes")
    model = build(x_train.shape[1:] if images else x_train.shape[1], 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    model.fit(x_train, y_train, batch_size=args.batch_size, epochs=args.epochs, validation_split=0.1,
              verbose=args.verbose)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"Test accuracy: {accuracy:.4f} (loss {loss:.4f}) on {len(x_test)} held-out images")
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
              f"{_gib(facts['memory_total'])}, utilisation {facts['gpu_utilization']}% (memory {facts['memory_utilization']}%)")
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


def make_parser():
    parser = argparse.ArgumentParser(prog="gpu-dl", description="Train and inspect gpu_dl models.")
    sub = parser.add_subparsers(dest="command")
    p_train = sub.add_parser("train", help="train the default model on the bundled digits data")
    p_train.add_argument("--model", choices=sorted(MODELS), default="mlp",
                         help="mlp: two hidden Dense layers; cnn: [Conv2D -> ReLU -> MaxPooling2D]*2 -> Dense; "
                              "lstm: an LSTM reading the image row by row")
    p_train.add_argument("--epochs", type=positive, default=30)
    p_train.add_argument("--batch-size", type=positive, default=32)
    p_train.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p_train.add_argument("--seed", type=int, default=0, help="random seed (default 0; results are reproducible)")
    p_train.add_argument("--verbose", type=int, choices=[0, 1, 2], default=1)
    p_train.set_defaults(run=train)
    p_info = sub.add_parser("info", help="show the backend and device")
    p_info.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto")
    p_info.set_defaults(run=info)
    return parser


def main(argv=None):
    from .backend import DeviceUnavailableError
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["train"] + list(argv or sys.argv[1:]))
    try:
        return args.run(args)
    except (ValueError, TypeError, DeviceUnavailableError) as exc:
        print(f"gpu-dl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
