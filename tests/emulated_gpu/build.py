"""Build CUDA C kernel source into a host shared library (``cuda_host.h``) and launch its kernels.

``HostModule(code)`` takes the text the kernel loader hands ``cupy.RawModule``
(``gpu_dl.backend.kernels.kernel_source``), rewrites its dynamic shared-memory
declarations (``extern __shared__ T name[];``) into pointers to the launch's
buffer and each inline-PTX ``asm`` statement into the call of
``cuda_host.h`` that does what the instruction does (an instruction without
one is an error), lists its ``extern "C"`` kernels from the preprocessed text,
and compiles it with the host's C++20 compiler as for sm_80
(``__CUDA_ARCH__`` = 800). The module's NVRTC options that change the text
(``-D``, ``-U``) go to the host compiler too; ``-std=`` is left to the host
build (always C++20), and any other option is refused rather than ignored.
Libraries are cached by the hash of what went into them
(``GPU_DL_EMULATION_CACHE``, default ``~/.cache/gpu_dl/emulated_gpu``).

``HostModule.launch(name, grid, block, args, shared_mem)`` checks every
argument against the kernel's C signature (a pointer gets an array of its
element type, an ``int`` an ``int32`` scalar, ...), which a real launch
cannot do, then runs the kernel. Each array is handed over inside a buffer
with guard bytes before and after it: a kernel that writes past either end
of an argument fails the launch, naming the argument, and one that reads
there gets NaN (or -1 as an integer).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import numpy

HERE = Path(__file__).resolve().parent
ARCH = 800   # the emulated device's compute capability 8.0: the tensor-core paths (inline PTX) are built
FLAGS = ("-std=c++20", f"-D__CUDA_ARCH__={ARCH}", "-O1", "-shared", "-fPIC", "-pthread", "-ffp-contract=off",
         "-fvisibility=hidden", "-fno-gnu-unique", "-w")
GUARD_BYTES = 256
GUARD_VALUE = 0xFF   # read as float32 or float64 a guard is NaN, so a read past an end shows in the result

_DYNAMIC_SHARED = re.compile(r"extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?"
                             r"([A-Za-z_][\w\s]*?)\s+(\w+)\s*\[\s*\]\s*;")
_KERNEL = re.compile(r'extern\s+"C"\s+void\s+(\w+)\s*\(')
_SOURCE_START = "emu_kernel_source_starts_here"   # marks where the kernel text begins after preprocessing
_lock = threading.Lock()


class EmulationError(RuntimeError):
    """The emulated launch failed: a bad argument, a deadlock, a trap or a write out of bounds."""


def compiler() -> str | None:
    """The C++ compiler to build with: ``$CXX``, else g++ or c++ on the PATH."""
    return os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")


def _cache_dir() -> Path:
    folder = Path(os.environ.get("GPU_DL_EMULATION_CACHE", Path.home() / ".cache" / "gpu_dl" / "emulated_gpu"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def host_source(code: str) -> str:
    """The kernel text as host C++: dynamic shared memory from the launch, PTX emulated, the shim header first."""
    code = _DYNAMIC_SHARED.sub(lambda m: f"{m.group(1)}* {m.group(2)} = reinterpret_cast<{m.group(1)}*>"
                                         f"(emu::dynamic_shared());", code)
    code = _replace_asm(code)
    return f'#include "cuda_host.h"\nnamespace {_SOURCE_START} {{}}\n' + code


# Each emulated instruction: its PTX text (whitespace normalised) and the C++ that replaces it, with
# {out0}... the asm's output operands and {in0}... its inputs, in order.
_PTX = [
    (r"cp\.async\.c[ag]\.shared\.global \[%0\], \[%1\], (?P<bytes>\d+), %2;",
     "emu::ptx::cp_async({in0}, {in1}, {bytes}, {in2})"),
    (r"cp\.async\.commit_group;", "emu::ptx::cp_async_commit()"),
    (r"cp\.async\.wait_group %0;", "emu::ptx::cp_async_wait({in0})"),
    (r"cvt\.rna\.tf32\.f32 %0, %1;", "{out0} = emu::ptx::cvt_rna_tf32({in0})"),
    (r"cvt\.rn\.bf16x2\.f32 %0, %1, %2;", "{out0} = emu::ptx::cvt_rn_bf16x2({in0}, {in1})"),
    (r"mma\.sync\.aligned\.m16n8k8\.row\.col\.f32\.tf32\.tf32\.f32 \{%0, %1, %2, %3\}, \{%4, %5, %6, %7\}, "
     r"\{%8, %9\}, \{%0, %1, %2, %3\};",
     "emu::ptx::mma<false>({out0}, {out1}, {out2}, {out3}, {in0}, {in1}, {in2}, {in3}, {in4}, {in5})"),
    (r"mma\.sync\.aligned\.m16n8k16\.row\.col\.f32\.bf16\.bf16\.f32 \{%0, %1, %2, %3\}, \{%4, %5, %6, %7\}, "
     r"\{%8, %9\}, \{%0, %1, %2, %3\};",
     "emu::ptx::mma<true>({out0}, {out1}, {out2}, {out3}, {in0}, {in1}, {in2}, {in3}, {in4}, {in5})"),
]
_ASM = re.compile(r"\basm\s*(?:volatile\s*)?\(")


def _split_top_level(text, separator):
    """``text`` split at ``separator`` outside parentheses and string literals."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == separator:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _operands(section):
    """The C++ expressions of an asm operand list: ``"r"(expr), "f"(x)`` -> ``["expr", "x"]``."""
    found = []
    for operand in _split_top_level(section, ","):
        operand = operand.strip()
        if operand:
            found.append(operand[operand.index("(") + 1:operand.rindex(")")].strip())
    return found


def _replace_asm(code):
    """Every ``asm [volatile] ("..." : outputs : inputs [: clobbers]);`` as its emulating call."""
    out, position = [], 0
    for match in _ASM.finditer(code):
        if match.start() < position:
            continue
        depth, i, quoted = 1, match.end(), False
        while depth:
            ch = code[i]
            if ch == '"' and code[i - 1] != "\\":
                quoted = not quoted
            elif not quoted:
                depth += {"(": 1, ")": -1}.get(ch, 0)
            i += 1
        body = code[match.end():i - 1]
        sections = _split_top_level(body, ":")
        template = " ".join("".join(re.findall(r'"((?:[^"\\]|\\.)*)"', sections[0])).replace("\\n", " ").split())
        outputs = _operands(sections[1]) if len(sections) > 1 else []
        inputs = _operands(sections[2]) if len(sections) > 2 else []
        for pattern, replacement in _PTX:
            instruction = re.fullmatch(pattern, template)
            if instruction:
                names = {f"out{k}": v for k, v in enumerate(outputs)} | {f"in{k}": v for k, v in enumerate(inputs)}
                out.append(code[position:match.start()] + replacement.format(**names, **instruction.groupdict()))
                break
        else:
            raise EmulationError(f"no host emulation for the inline PTX {template!r}")
        position = i
    return "".join(out) + code[position:]


def _run(command, what):
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise EmulationError(f"{what} failed ({' '.join(command)}):\n{done.stderr[-4000:]}")
    return done.stdout


def host_options(options) -> list:
    """The host compiler's share of a ``RawModule``'s NVRTC ``options``: the macro definitions.

    ``-std=`` is dropped (the host build is C++20 whatever the kernels ask); an option the emulation
    cannot honour is an error, so a setting a benchmark compares is never silently left out.
    """
    kept = []
    for option in options:
        if re.fullmatch(r"-[DU]\w+(=.*)?", option):
            kept.append(option)
        elif not option.startswith("-std="):
            raise EmulationError(f"the emulated GPU cannot build with the NVRTC option {option!r} "
                                 "(it takes -D, -U and -std=)")
    return kept


def build(code: str, options=()) -> Path:
    """The shared library built from kernel text ``code`` with NVRTC ``options`` (built once per content)."""
    cxx = compiler()
    if cxx is None:
        raise EmulationError("no C++ compiler (set CXX, or install g++)")
    source = host_source(code)
    defines = host_options(options)
    header = (HERE / "cuda_host.h").read_text()
    key = hashlib.sha256("\0".join([source, header, cxx, *FLAGS, *defines]).encode()).hexdigest()[:24]
    library = _cache_dir() / f"kernels-{key}.so"
    with _lock:
        if library.is_file():
            return library
        with tempfile.TemporaryDirectory() as scratch:
            unit = Path(scratch) / "kernels.cpp"
            unit.write_text(source)
            expanded = _run([cxx, "-std=c++20", "-E", "-P", *defines, f"-I{HERE}", str(unit)], "preprocessing")
            names = sorted(set(_KERNEL.findall(expanded[expanded.index(_SOURCE_START):])))
            if not names:
                raise EmulationError('no extern "C" kernel found in the source')
            unit.write_text(source + "\n" + "".join(f"EMU_KERNEL({name})\n" for name in names))
            built = Path(scratch) / library.name
            _run([cxx, *FLAGS, *defines, f"-I{HERE}", str(unit), "-o", str(built)],
                 "building the kernels for the host")
            os.replace(built, library)   # atomic: a concurrent build of the same text writes the same file
    return library


_DTYPES = {"float32": numpy.float32, "float64": numpy.float64, "int32": numpy.int32, "uint32": numpy.uint32,
           "int64": numpy.int64, "uint64": numpy.uint64, "int8": numpy.int8, "uint8": numpy.uint8,
           "bool": numpy.bool_}


class HostModule:
    """The kernels of one source text, built for the host with ``options``' macro definitions."""

    def __init__(self, code: str, options=()):
        self.path = build(code, options)
        self.lib = ctypes.CDLL(str(self.path))
        self.lib.emu_kernel_count.restype = ctypes.c_int
        self.lib.emu_kernel_name.restype = ctypes.c_char_p
        self.lib.emu_signature.restype = ctypes.c_char_p
        self.lib.emu_launch.restype = ctypes.c_char_p
        self.lib.emu_launch.argtypes = [ctypes.c_char_p] + [ctypes.c_uint] * 6 + [ctypes.c_size_t,
                                                                                  ctypes.POINTER(ctypes.c_void_p)]
        self.signatures = {}
        for i in range(self.lib.emu_kernel_count()):
            name = self.lib.emu_kernel_name(i).decode()
            self.signatures[name] = self.lib.emu_signature(name.encode()).decode().split(",")

    def launch(self, name, grid, block, args, shared_mem=0):
        if name not in self.signatures:
            raise EmulationError(f"no kernel named {name!r}; the module has {sorted(self.signatures)}")
        signature = [code for code in self.signatures[name] if code]
        if len(args) != len(signature):
            raise EmulationError(f"{name}: {len(args)} arguments for a kernel that takes {len(signature)} "
                                 f"({', '.join(signature)})")
        grid, block = _dims(grid, "grid"), _dims(block, "block")
        if min(grid) < 1 or min(block) < 1 or int(numpy.prod(block)) > 1024:
            raise EmulationError(f"{name}: grid {grid} and block {block} (each size >= 1, at most 1024 threads)")
        holders = [_argument(name, index, code, arg) for index, (code, arg) in enumerate(zip(signature, args))]
        guarded = _GuardedArrays(name, [(i, a) for i, a in enumerate(args) if isinstance(holders[i], _ArrayArgument)])
        for index, address in guarded.addresses.items():
            holders[index] = ctypes.c_void_p(address)
        pointers = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
        error = self.lib.emu_launch(name.encode(), *grid, *block, int(shared_mem), pointers).decode()
        guarded.finish()
        if error:
            raise EmulationError(f"{name}: {error}")


def _dims(value, what):
    value = tuple(int(v) for v in (value if isinstance(value, (tuple, list)) else (value,)))
    if not 1 <= len(value) <= 3:
        raise EmulationError(f"{what} {value} must have 1 to 3 sizes")
    return value + (1,) * (3 - len(value))


class _ArrayArgument:
    """Placeholder for an array argument until its guarded copy exists."""


def _argument(name, index, code, arg):
    """A ctypes object holding the bytes the kernel's parameter ``index`` (type ``code``) receives."""
    where = f"{name}: argument {index} (C type {code})"
    if code.endswith("*"):
        if isinstance(arg, numpy.uint64) and int(arg) == 0:
            return ctypes.c_void_p(0)   # the launchers' null pointer
        if not isinstance(arg, numpy.ndarray) or type(arg).__module__.split(".")[0] != "cupy":
            raise EmulationError(f"{where} must be a device array, got {type(arg).__name__}")
        element = code[:-1]
        if element != "void" and arg.dtype != numpy.dtype(_DTYPES[element]):
            raise EmulationError(f"{where} got an array of {arg.dtype.name}")
        if not arg.flags.c_contiguous:
            raise EmulationError(f"{where} got a non-contiguous array (the kernel would read it as contiguous)")
        return _ArrayArgument()
    if not isinstance(arg, numpy.generic):
        raise EmulationError(f"{where} got {type(arg).__name__} {arg!r}: pass NumPy scalars of the exact type")
    if arg.dtype != numpy.dtype(_DTYPES[code]):
        raise EmulationError(f"{where} got a {arg.dtype.name} scalar")
    return ctypes.create_string_buffer(arg.tobytes(), max(8, arg.itemsize))


class _GuardedArrays:
    """Copies of a launch's array arguments between guard bytes, written back after the launch.

    Arguments that share memory (an in-place update, a view of another argument) share one copy
    of the bytes they span together, so the kernel sees their aliasing as on the GPU.
    """

    def __init__(self, kernel, arrays):
        """``arrays``: (argument index, array) of every array argument of the launch."""
        self.kernel = kernel
        spans = sorted((a.__array_interface__["data"][0], a.nbytes, i, a) for i, a in arrays)
        self.groups = []   # [start, stop, buffer, [(index, array)]]
        for start, nbytes, index, array in spans:
            if self.groups and start < self.groups[-1][1]:
                group = self.groups[-1]
                group[1] = max(group[1], start + nbytes)
                group[3].append((index, array))
            else:
                self.groups.append([start, start + nbytes, None, [(index, array)]])
        self.addresses = {}
        for group in self.groups:
            start, stop = group[0], group[1]
            buffer = numpy.full(stop - start + 2 * GUARD_BYTES, GUARD_VALUE, dtype=numpy.uint8)
            ctypes.memmove(buffer.ctypes.data + GUARD_BYTES, start, stop - start)
            group[2] = buffer
            for index, array in group[3]:
                self.addresses[index] = buffer.ctypes.data + GUARD_BYTES + array.__array_interface__["data"][0] - start

    def finish(self):
        """Check the guards of every copy, then write the copies back."""
        for start, stop, buffer, members in self.groups:
            if (buffer[:GUARD_BYTES] != GUARD_VALUE).any() or (buffer[-GUARD_BYTES:] != GUARD_VALUE).any():
                index, array = members[0] if (buffer[:GUARD_BYTES] != GUARD_VALUE).any() else members[-1]
                raise EmulationError(f"{self.kernel}: wrote outside argument {index} "
                                     f"({array.dtype.name}, {array.size} elements)")
        for start, stop, buffer, _ in self.groups:
            ctypes.memmove(start, buffer.ctypes.data + GUARD_BYTES, stop - start)
