"""NVTX ranges: pushed and popped in pairs, by layer, step and epoch; nothing without the nvtx package."""
import contextlib

import numpy
import pytest

from gpu_dl import backend, layers
from gpu_dl.backend import nvtx as nvtx_module
from gpu_dl.models import Sequential


class RecordingDomain:
    def __init__(self):
        self.events = []

    def get_event_attributes(self, message):
        return message

    def push_range(self, attributes):
        self.events.append(("push", attributes))

    def pop_range(self):
        self.events.append(("pop", None))


@pytest.fixture
def domain(monkeypatch):
    recording = RecordingDomain()
    monkeypatch.setattr(nvtx_module, "_domain", recording)
    monkeypatch.setattr(nvtx_module, "_state", {"checked": True, "enabled": True})
    monkeypatch.setattr(nvtx_module, "_attributes", {})
    return recording


def test_training_marks_epochs_steps_layers_and_optimizer(domain):
    backend.set_random_seed(0)
    model = Sequential([layers.Input((3,)), layers.Dense(4, activation="relu", name="hidden"),
                        layers.Dense(2, activation="softmax", name="out")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(numpy.ones((10, 3), "float32"), numpy.zeros(10, int), batch_size=5, epochs=2, verbose=0)
    pushed = [name for kind, name in domain.events if kind == "push"]
    assert pushed.count("epoch 1") == 1 and pushed.count("epoch 2") == 1
    assert pushed.count("train_step") == 4 and pushed.count("optimizer_step") == 4
    for name in ("hidden.forward", "out.forward", "hidden.backward", "out.backward"):
        assert pushed.count(name) == 4
    depth = 0
    for kind, _ in domain.events:
        depth += 1 if kind == "push" else -1
        assert depth >= 0
    assert depth == 0


def test_no_nvtx_package_means_a_shared_no_op(monkeypatch):
    monkeypatch.setattr(nvtx_module, "_state", {"checked": False, "enabled": False})
    monkeypatch.setenv("GPU_DL_NVTX", "0")
    first = nvtx_module.nvtx_range("a")
    assert isinstance(first, contextlib.nullcontext) and first is nvtx_module.nvtx_range("b")
    assert not nvtx_module.nvtx_enabled()
