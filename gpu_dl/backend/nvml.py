"""Device facts from NVML (the nvidia-ml-py package, module ``pynvml``).

Every function returns None when NVML is missing or no driver answers, so
callers can print "unknown" rather than fail on a CPU-only machine.
"""
from __future__ import annotations


def _nvml():
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml
    except Exception:
        return None


def device_facts(index: int = 0):
    """{name, memory_total, memory_used, memory_free, gpu_utilization, memory_utilization, driver} or None."""
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = nvml.nvmlDeviceGetName(handle)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        rates = nvml.nvmlDeviceGetUtilizationRates(handle)
        driver = nvml.nvmlSystemGetDriverVersion()
    except Exception:
        return None
    decode = lambda v: v.decode() if isinstance(v, bytes) else v  # noqa: E731  (older NVML returns bytes)
    return {
        "name": decode(name), "driver": decode(driver),
        "memory_total": int(memory.total), "memory_used": int(memory.used), "memory_free": int(memory.free),
        "gpu_utilization": int(rates.gpu), "memory_utilization": int(rates.memory),
    }


def device_memory_info(index: int = 0):
    """(free bytes, total bytes) of the device, or None."""
    facts = device_facts(index)
    return None if facts is None else (facts["memory_free"], facts["memory_total"])


def memory_info_by_pci_bus_id(bus_id):
    """(free bytes, total bytes) of the device at a PCI bus id, or None.

    CUDA and NVML number devices differently (CUDA_VISIBLE_DEVICES renumbers
    CUDA's); the bus id names the same device to both.
    """
    nvml = _nvml()
    if nvml is None:
        return None
    try:
        handle = nvml.nvmlDeviceGetHandleByPciBusId(bus_id.encode() if isinstance(bus_id, str) else bus_id)
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    except Exception:
        return None
    return int(memory.free), int(memory.total)
