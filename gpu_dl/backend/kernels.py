"""The one kernel loader: CUDA C sources in ``kernels/`` compiled through ``cupy.RawModule``.

Every hand-written kernel is reached through ``get_kernel(file, name)``.
The loader reads the ``.cu`` text, inlines the project's own headers
(``#include "common.cuh"``) behind ``#line`` directives, so that CuPy's
on-disk cache (keyed by the source text and options, ``CUPY_CACHE_DIR``)
sees every change and compile errors still name the right file and line,
and caches the compiled module per (file, options, device) in the process.

``compile_report(file, arch)`` compiles the same text with the same options
through NVRTC directly (the ``cuda-bindings`` package; no GPU or driver
needed) and returns ptxas's register and spill figures: the CI compile check
and ``gpu-dl info`` use it.
"""
from __future__ import annotations

import functools
import re
import threading
from pathlib import Path

# Options every kernel file is compiled with, on the GPU and in the compile check.
KERNEL_OPTIONS = ("-std=c++17",)

_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]+"([^"]+)"[ \t]*$', re.MULTILINE)
_ERROR_AT = re.compile(r'^(?P<file>[^\s()]+)\((?P<line>\d+)\): (?:catastrophic )?error', re.MULTILINE)
_PTXAS_FUNCTION = re.compile(r"Compiling entry function '(?P<name>[^']+)' for '(?P<arch>[^']+)'")
_PTXAS_SPILLS = re.compile(r"(?P<stack>\d+) bytes stack frame, (?P<stores>\d+) bytes spill stores, "
                           r"(?P<loads>\d+) bytes spill loads")
_PTXAS_REGISTERS = re.compile(r"Used (?P<registers>\d+) registers")
_PTX_ENTRY = re.compile(r"\.entry\s+(\w+)\s*\(")


class KernelCompileError(RuntimeError):
    """A kernel file failed to compile; ``file``, ``line`` and NVRTC's ``log`` say where and why."""

    def __init__(self, file, line, log, options):
        self.file, self.line, self.log, self.options = file, line, log, tuple(options)
        where = f"{file}, line {line}" if line is not None else file
        super().__init__(f"CUDA kernel file {where} failed to compile with options {list(options)}.\n"
                         f"NVRTC's log:\n{log.strip()}")


def kernel_dir() -> Path:
    """The folder of ``.cu`` sources: ``kernels/`` of a source checkout, or ``gpu_dl/kernels`` in a wheel."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "kernels", package.parent / "kernels"):
        if (candidate / "common.cuh").is_file():
            return candidate
    raise FileNotFoundError(f"gpu_dl's CUDA sources were not found next to the package ({package}/kernels or "
                            f"{package.parent}/kernels); reinstall gpu_dl.")


def kernel_files() -> list:
    """Names of every kernel source file (``*.cu``), sorted."""
    return sorted(p.name for p in kernel_dir().glob("*.cu"))


def kernel_source(filename: str) -> str:
    """The text compiled for ``filename``: the file with the project's headers inlined once each."""
    folder = kernel_dir()
    seen = set()

    def expand(name):
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"kernel source {name!r} is not in {folder}; files there: {kernel_files()}.")
        seen.add(name)
        lines_out = [f'#line 1 "{name}"']
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            match = _INCLUDE.match(line)
            if match and (folder / match.group(1)).is_file():
                header = match.group(1)
                if header not in seen:
                    lines_out.append(expand(header))
                lines_out.append(f'#line {number + 1} "{name}"')
            else:
                lines_out.append(line)
        return "\n".join(lines_out)

    return expand(filename) + "\n"


def first_error_location(log: str):
    """``(file, line)`` of the first error in an NVRTC log, or ``(None, None)``."""
    match = _ERROR_AT.search(log or "")
    if match is None:
        return None, None
    return Path(match.group("file")).name, int(match.group("line"))


# ----------------------------------------------------------------- on the GPU
_modules: dict = {}
_lock = threading.Lock()


def get_module(filename: str, options: tuple = ()):
    """The compiled ``cupy.RawModule`` of ``filename`` on the current device (compiled once per process)."""
    import cupy
    options = KERNEL_OPTIONS + tuple(options)
    key = (filename, options, cupy.cuda.runtime.getDevice())
    module = _modules.get(key)
    if module is not None:
        return module
    with _lock:
        module = _modules.get(key)
        if module is None:
            module = cupy.RawModule(code=kernel_source(filename), options=options)
            try:
                module.compile()
            except cupy.cuda.compiler.CompileException as exc:
                log = exc.get_message() if hasattr(exc, "get_message") else str(exc)
                file, line = first_error_location(log)
                raise KernelCompileError(file or filename, line, log, options) from None
            _modules[key] = module
    return module


_functions: dict = {}


def get_kernel(filename: str, name: str, options: tuple = ()):
    """The ``extern "C"`` kernel ``name`` of ``filename`` as a ``cupy.RawKernel``, made once per device.

    Launchers call this for every launch: CuPy's ``RawModule.get_function`` builds a new ``RawKernel``
    (and looks its function up in CuPy's own cache) on each call, host work a launch need not repeat.
    """
    import cupy
    key = (filename, name, options, cupy.cuda.runtime.getDevice())
    kernel = _functions.get(key)
    if kernel is None:
        kernel = _functions[key] = get_module(filename, options).get_function(name)
    return kernel


# ------------------------------------------------- without a GPU: NVRTC itself
class KernelReport:
    """What ptxas said of one kernel: registers, stack frame and spill bytes."""

    def __init__(self, name, arch, registers=None, stack=0, spill_stores=0, spill_loads=0):
        self.name, self.arch = name, arch
        self.registers, self.stack = registers, stack
        self.spill_stores, self.spill_loads = spill_stores, spill_loads

    def __repr__(self):
        return (f"{self.name} [{self.arch}]: {self.registers} registers, {self.stack} B stack, "
                f"{self.spill_stores} B spill stores, {self.spill_loads} B spill loads")


def parse_ptxas_log(log: str) -> list:
    """The per-kernel figures of a ``--ptxas-options=-v`` log."""
    reports, current = [], None
    for line in log.splitlines():
        match = _PTXAS_FUNCTION.search(line)
        if match:
            current = KernelReport(match.group("name"), match.group("arch"))
            reports.append(current)
            continue
        if current is None:
            continue
        match = _PTXAS_SPILLS.search(line)
        if match:
            current.stack = int(match.group("stack"))
            current.spill_stores = int(match.group("stores"))
            current.spill_loads = int(match.group("loads"))
        match = _PTXAS_REGISTERS.search(line)
        if match:
            current.registers = int(match.group("registers"))
    return reports


@functools.lru_cache(maxsize=None)
def _nvrtc():
    from cuda.bindings import nvrtc   # pip install cuda-bindings nvidia-cuda-nvrtc
    return nvrtc


def nvrtc_version():
    """``(major, minor)`` of the NVRTC that ``cuda-bindings`` loads."""
    nvrtc = _nvrtc()
    _, major, minor = nvrtc.nvrtcVersion()
    return major, minor


def nvrtc_available() -> bool:
    try:
        nvrtc = _nvrtc()
        return nvrtc.nvrtcVersion()[0] == nvrtc.nvrtcResult.NVRTC_SUCCESS
    except Exception:
        return False


def compile_report(filename: str, arch: str = "sm_90", options: tuple = ()) -> list:
    """Compile ``filename`` to machine code for ``arch`` with NVRTC; returns a ``KernelReport`` per kernel
    (registers None where this NVRTC printed no ptxas report).

    Raises ``KernelCompileError`` with NVRTC's log when the file does not compile. Reports are kept per
    (source text, arch, options) for the life of the process: a large file takes NVRTC tens of seconds.
    """
    source = kernel_source(filename)
    return list(_compiled_report(filename, source, arch, KERNEL_OPTIONS + tuple(options)))


@functools.lru_cache(maxsize=64)
def _compiled_report(filename: str, source: str, arch: str, options: tuple) -> tuple:
    nvrtc = _nvrtc()
    flags = [o.encode() for o in options + (f"--gpu-architecture={arch}", "--ptxas-options=-v")]
    err, program = nvrtc.nvrtcCreateProgram(source.encode(), filename.encode(), 0, [], [])
    if err != nvrtc.nvrtcResult.NVRTC_SUCCESS:
        raise RuntimeError(f"nvrtcCreateProgram failed for {filename}: {err}")
    try:
        (result,) = nvrtc.nvrtcCompileProgram(program, len(flags), flags)
        _, size = nvrtc.nvrtcGetProgramLogSize(program)
        buffer = bytearray(size)
        nvrtc.nvrtcGetProgramLog(program, buffer)
        log = bytes(buffer).rstrip(b"\x00 ").decode(errors="replace")
        if result != nvrtc.nvrtcResult.NVRTC_SUCCESS:
            file, line = first_error_location(log)
            raise KernelCompileError(file or filename, line, log, options + (f"--gpu-architecture={arch}",))
        _, size = nvrtc.nvrtcGetPTXSize(program)
        buffer = bytearray(size)
        nvrtc.nvrtcGetPTX(program, buffer)
        entries = _PTX_ENTRY.findall(bytes(buffer).decode(errors="replace"))
    finally:
        nvrtc.nvrtcDestroyProgram(program)
    # The kernel list comes from the PTX; the figures from ptxas's report, which some NVRTC builds
    # leave out of the log (seen with NVRTC 13.0 inside a process that also runs CuPy): None there.
    figures = {r.name: r for r in parse_ptxas_log(log)}
    return tuple(figures.get(name) or KernelReport(name, arch) for name in entries)
