"""`gpu-dl info` and the NVML facts behind it, with a stand-in pynvml module."""
import sys
import types

from gpu_dl import cli
from gpu_dl.backend import nvml


def fake_pynvml():
    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: None
    module.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    module.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    module.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(total=80 * 2**30, used=2 * 2**30, free=78 * 2**30)
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=37, memory=12)
    module.nvmlSystemGetDriverVersion = lambda: "580.65"
    return module


def test_device_facts_from_nvml(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    facts = nvml.device_facts(0)
    assert facts["name"] == "NVIDIA H100 80GB HBM3" and facts["gpu_utilization"] == 37
    assert nvml.device_memory_info(0) == (78 * 2**30, 80 * 2**30)


def test_no_nvml_gives_none(monkeypatch):
    broken = types.ModuleType("pynvml")

    def fail():
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert nvml.device_facts() is None and nvml.device_memory_info() is None


def test_info_lists_versions_device_and_backend(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    assert cli.main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "NumPy" in out and "GPU 0: NVIDIA H100 80GB HBM3" in out and "utilisation 37%" in out
    assert "running on CPU" in out


def test_info_says_whether_each_kernel_file_compiles(monkeypatch, capsys):
    from gpu_dl.backend import kernels
    if not kernels.nvrtc_available():
        import pytest
        pytest.skip("NVRTC not importable")
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    assert cli.main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    for filename in kernels.kernel_files():
        assert f"  {filename}: compiles:" in out
    assert "FAILS" not in out


def test_memory_by_pci_bus_id(monkeypatch):
    module = fake_pynvml()
    seen = []
    module.nvmlDeviceGetHandleByPciBusId = lambda bus: seen.append(bus) or "handle"
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert nvml.memory_info_by_pci_bus_id("0000:19:00.0") == (78 * 2**30, 80 * 2**30)
    assert seen == [b"0000:19:00.0"]
