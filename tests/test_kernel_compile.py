"""Every kernels/*.cu compiles with NVRTC, without a GPU, for the architectures gpu_dl targets.

The text and options are the loader's own (headers inlined, KERNEL_OPTIONS),
so what passes here is what a GPU machine compiles. ptxas's report must show
no register spills, every float32 kernel a float64 twin, and the kernels a launcher module lists
(``kernel_names()``) must be those its file defines. Also: the loader's error for a file that does not
compile names the file and line and carries NVRTC's log.
"""
import importlib
import pkgutil

import pytest

import gpu_dl.ops
from gpu_dl.backend import kernels

ARCHES = ["sm_80", "sm_90"]


def _listing_launchers():
    """kernel file -> the gpu_dl.ops modules that launch its kernels and list them (``kernel_names()``)."""
    found = {}
    for info in pkgutil.iter_modules(gpu_dl.ops.__path__):
        module = importlib.import_module(f"gpu_dl.ops.{info.name}")
        if hasattr(module, "_KERNEL_FILE") and hasattr(module, "kernel_names"):
            found.setdefault(module._KERNEL_FILE, []).append(module)
    return found


LISTING_LAUNCHERS = _listing_launchers()

if not kernels.nvrtc_available():
    pytest.skip("NVRTC is not importable (pip install cuda-bindings nvidia-cuda-nvrtc)", allow_module_level=True)


def test_there_are_kernel_files():
    assert "softmax_xent.cu" in kernels.kernel_files()


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("filename", kernels.kernel_files())
def test_kernel_file_compiles_without_spills(filename, arch, capsys):
    reports = kernels.compile_report(filename, arch)
    assert reports, f"{filename} defines no kernels"
    if kernels.nvrtc_version() >= (13, 5):   # the NVRTC the dev extra installs always reports figures
        assert all(r.registers is not None for r in reports), reports
    for report in reports:
        assert report.arch == arch
        assert report.registers is None or report.registers <= 255, report
        assert report.spill_stores == 0 and report.spill_loads == 0, f"{filename}: {report}"
    with capsys.disabled():   # the register figures are worth seeing in the CI log
        for report in reports:
            print(f"\n  {filename}: {report}", end="")
    # Each float kernel has both precisions, checked on this compile: a test of its own over every file would
    # compile them all again in whichever xdist worker it ran (NVRTC takes seconds per file).
    names = {r.name for r in reports}
    for name in names:
        if name.endswith("_f32"):
            assert name[:-4] + "_f64" in names, f"{filename}: {name} has no float64 twin for gradient checks"
    for module in LISTING_LAUNCHERS.get(filename, []):   # checked here too, not on a compile of its own
        assert module.kernel_names() == names, f"{module.__name__}.kernel_names() is not what {filename} defines"


def test_launchers_that_list_their_kernels_are_found():
    assert {name: [m.__name__ for m in modules] for name, modules in LISTING_LAUNCHERS.items()} == {
        "conv2d.cu": ["gpu_dl.ops.conv_kernels"], "lstm_cell.cu": ["gpu_dl.ops.rnn_kernels"],
        "augment.cu": ["gpu_dl.ops.augment_kernels"], "ctc.cu": ["gpu_dl.ops.ctc"],
        "counter_noise.cu": ["gpu_dl.ops.counter_noise"],
        "normalization.cu": ["gpu_dl.ops.norm_kernels"], "batchnorm.cu": ["gpu_dl.ops.batchnorm_kernels"],
        "groupnorm.cu": ["gpu_dl.ops.groupnorm_kernels"]}


def test_compile_error_names_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "common.cuh").write_text("#pragma once\n#define GOOD 1\n")
    (tmp_path / "broken.cu").write_text('#include "common.cuh"\n'
                                        'extern "C" __global__ void k(float* x) {\n'
                                        '    x[0] = undefined_name;\n'
                                        '}\n')
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    with pytest.raises(kernels.KernelCompileError) as caught:
        kernels.compile_report("broken.cu", "sm_90")
    assert caught.value.file == "broken.cu" and caught.value.line == 3
    assert "undefined_name" in caught.value.log and "broken.cu, line 3" in str(caught.value)


def test_headers_are_inlined_with_line_directives(tmp_path, monkeypatch):
    (tmp_path / "common.cuh").write_text("#pragma once\nint helper;\n")
    (tmp_path / "a.cu").write_text('// first line\n#include "common.cuh"\n#include "common.cuh"\nint after;\n')
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    text = kernels.kernel_source("a.cu")
    assert text.count("int helper;") == 1
    assert '#line 1 "common.cuh"' in text and '#line 3 "a.cu"' in text and text.rstrip().endswith("int after;")


def test_ptxas_log_parsing():
    log = ("ptxas info    : Compiling entry function 'k_f32' for 'sm_90'\n"
           "ptxas info    : Function properties for k_f32\n"
           "ptxas         .     16 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads\n"
           "ptxas info    : Used 40 registers, used 0 barriers\n")
    (report,) = kernels.parse_ptxas_log(log)
    assert (report.name, report.arch, report.registers, report.stack, report.spill_stores, report.spill_loads) == \
        ("k_f32", "sm_90", 40, 16, 8, 4)
