"""PyTorch's CPU build standing in for its CUDA build, beside the emulated GPU (``run_script.py --torch``).

The emulated device's arrays are host memory, so a CPU tensor is what a CUDA
tensor is to a real CuPy array: ``torch.as_tensor(array, device="cuda")``
gives a tensor sharing the array's memory, and ``cupy.asarray(tensor)``
copies it back. ``install()`` makes ``torch.cuda.is_available()`` true, turns
the device ``"cuda"`` into ``"cpu"`` in the calls that take one
(``as_tensor``, ``tensor``, the factories, ``autocast``), makes ``.cuda()`` of
tensors and modules the identity and ``torch.cuda.synchronize()`` and
``empty_cache()`` no-ops (CPU work is done when its call returns).

This runs a script's PyTorch side, its checks against PyTorch included; it
says nothing of cuDNN or cuBLAS (CPU kernels compute the reference), and a
call the patch does not cover (another factory, ``.to("cuda")``) fails as
on a CPU-only machine, rather than running somewhere unseen.
"""
import functools

import torch

FACTORIES = ("as_tensor", "tensor", "randn", "rand", "zeros", "ones", "empty", "full", "arange")


def _on_cpu(device):
    text = str(device) if device is not None else None
    return "cpu" if text is not None and text.split(":")[0] == "cuda" else device


def _moved(function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        if "device" in kwargs:
            kwargs["device"] = _on_cpu(kwargs["device"])
        return function(*args, **kwargs)
    return call


def _autocast(device_type, *args, **kwargs):
    return _real_autocast(_on_cpu(device_type), *args, **kwargs)


_real_autocast = torch.autocast


def install():
    for name in FACTORIES:
        setattr(torch, name, _moved(getattr(torch, name)))
    torch.autocast = _autocast
    torch.Tensor.cuda = lambda self, device=None, non_blocking=False, **kwargs: self
    torch.nn.Module.cuda = lambda self, device=None: self
    torch.cuda.is_available = lambda: True
    torch.cuda.synchronize = lambda device=None: None
    torch.cuda.empty_cache = lambda: None
