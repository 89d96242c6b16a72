"""The main job's model: an MLP on the real scikit-learn digits reaches >= 95% test accuracy."""
import pytest

from gpu_dl import backend, cli, data
from gpu_dl.models.examples import build_mlp


@pytest.mark.slow
def test_digits_mlp_reaches_95_percent(xp):
    backend.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = data.load_digits()
    assert x_train.shape[1:] == (64,) and len(x_train) + len(x_test) == 1797
    model = build_mlp((64,), 10)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=30, batch_size=32, verbose=0)
    loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.4f}"


def test_cli_gpu_without_gpu_is_a_clear_error(monkeypatch, capsys):
    from gpu_dl.backend import device as device_module
    monkeypatch.setattr(device_module, "_probe_cupy", lambda: (None, "CuPy is not importable (test)"))
    saved = (device_module._requested, device_module._resolved)
    try:
        assert cli.main(["info", "--device", "gpu"]) == 1
    finally:
        device_module._requested, device_module._resolved = saved
    assert "CuPy is not importable" in capsys.readouterr().err
