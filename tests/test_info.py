"""`gpu-dl info` and the NVML facts behind it, with a stand-in pynvml module."""
import sys
import types

from gpu_dl import cli
from gpu_dl.backend import kernels, nvml


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


def fake_compile_report(broken=None):
    """A stand-in for ``kernels.compile_report``: NVRTC takes a minute over the kernel files, and
    tests/test_kernel_compile.py compiles each of them already. Two kernels per file, ``broken`` failing."""
    def compile_report(filename, arch="sm_90", options=()):
        assert arch == "sm_90"
        if filename == broken:
            raise kernels.KernelCompileError(filename, 12, f'{filename}(12): error: identifier "x" is undefined', ())
        spills = 8 if filename == "ctc.cu" else 0
        return [kernels.KernelReport(f"{filename}_a", arch, registers=40),
                kernels.KernelReport(f"{filename}_b", arch, registers=96, spill_stores=spills)]
    return compile_report


def test_info_lists_versions_device_and_backend(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setattr(kernels, "compile_report", fake_compile_report())
    assert cli.main(["info", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "NumPy" in out and "GPU 0: NVIDIA H100 80GB HBM3" in out and "utilisation 37%" in out
    assert "running on CPU" in out


def test_info_says_whether_each_kernel_file_compiles(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setattr(kernels, "nvrtc_available", lambda: True)
    monkeypatch.setattr(kernels, "compile_report", fake_compile_report(broken="pooling.cu"))
    assert cli.main(["info", "--device", "cpu"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for filename in kernels.kernel_files():
        (line,) = [line for line in lines if line.startswith(f"  {filename}: ")]
        if filename == "pooling.cu":
            assert line == ("  pooling.cu: FAILS: CUDA kernel file pooling.cu, line 12 failed to compile with "
                            "options [].")
        else:
            spills = "8 B of spill stores" if filename == "ctc.cu" else "no spills"
            assert line == f"  {filename}: compiles: 2 kernels, at most 96 registers, {spills}"


def test_info_says_when_it_cannot_compile(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setattr(kernels, "nvrtc_available", lambda: False)
    assert cli.main(["info", "--device", "cpu"]) == 0
    assert "Kernels: not compiled here (no GPU, and no NVRTC" in capsys.readouterr().out


def test_memory_by_pci_bus_id(monkeypatch):
    module = fake_pynvml()
    seen = []
    module.nvmlDeviceGetHandleByPciBusId = lambda bus: seen.append(bus) or "handle"
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert nvml.memory_info_by_pci_bus_id("0000:19:00.0") == (78 * 2**30, 80 * 2**30)
    assert seen == [b"0000:19:00.0"]
