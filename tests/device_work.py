"""Counting the work a piece of gpu_dl issues on the GPU backend: ``DeviceWork``.

Used by tests/test_rnn_layer_host_work.py (which pins what one recurrent
layer call issues) and profiling/rnn_layer_host_work.py (which prints it
with host times). Counted while active, by category:

- ``launches``: launches of the RawKernels that ``gpu_dl.ops.rnn_kernels``
  binds (through its ``get_kernel``), on the emulated GPU and on a GPU;
  with ``no_op_launches`` they do nothing (what is left is host work);
- on the emulated GPU only (its CuPy stand-in runs through Python hooks
  that real CuPy does not have): ``products`` (``@``/matmul, ``dot``),
  ``elementwise`` (other ufunc calls, reductions included), ``functions``
  (other NumPy functions on device arrays), ``fills`` (``zeros``,
  ``zeros_like``, ``fill``: a memset on a GPU), ``copies`` (assignments into
  device arrays, and ``ascontiguousarray``/``array``/``asarray``/``copy``/
  ``astype`` where they copy) and ``allocations`` (every new device buffer:
  ufunc and function results, ``empty``/``zeros``, copies);
- on a GPU: ``allocations`` (every call of CuPy's allocator).

Two more, asked for (``every_launch``, ``transfers``; tests/test_train_step_host_work.py
and profiling/train_step_host_work.py), on the emulated GPU only:

- ``every_launch``: ``launches`` counts every ``RawKernel`` launch, of all
  of gpu_dl's kernels rather than the recurrent ones only;
- ``transfers``: ``syncs`` (every point where CuPy makes the host wait for
  the device: a copy to the host by ``asnumpy``/``get``, ``item``/``float``/
  ``bool``/``int`` of an array, a ``synchronize``, the functions that read a
  size back; the stand-in declares each one) and ``uploads`` (host arrays
  copied to the device by ``asarray``/``array``).
"""
import collections

import numpy

_INHERITED = object()

class DeviceWork:
    """``with DeviceWork(cupy) as work: ...``, then ``work.counts`` (a Counter); ``work.take()`` returns the
    counts so far and starts again. Everything patched is restored on exit."""

    def __init__(self, cupy, no_op_launches=False, every_launch=False, transfers=False):
        self.cupy, self.no_op_launches = cupy, no_op_launches
        self.every_launch, self.transfers = every_launch, transfers
        self.counts = collections.Counter()
        self.emulated = cupy.__version__.endswith("emulated")
        if (every_launch or transfers) and not self.emulated:
            raise ValueError("DeviceWork: `every_launch` and `transfers` count through the emulated GPU's hooks, "
                             "which CuPy does not have")
        self._restore = []

    def take(self):
        taken = dict(self.counts)
        self.counts.clear()
        return taken

    def _patch(self, owner, name, value):
        # what the owner does not hold itself (inherited, or made by a module's __getattr__) is deleted on exit
        self._restore.append((owner, name, vars(owner).get(name, _INHERITED)))
        setattr(owner, name, value)

    def __enter__(self):
        from gpu_dl.ops import rnn_kernels
        counts, get_kernel, no_op = self.counts, rnn_kernels.get_kernel, self.no_op_launches

        def counting_kernel(*args, **kwargs):
            function = get_kernel(*args, **kwargs)

            def launch(*a, **k):
                counts["launches"] += 1
                return None if no_op else function(*a, **k)
            return launch
        if self.every_launch:
            self._count_every_launch()
        else:
            self._patch(rnn_kernels, "get_kernel", counting_kernel)
        if self.transfers:
            self._count_transfers()
        if self.emulated:
            self._count_emulated()
        else:
            pool, previous = self.cupy.get_default_memory_pool(), self.cupy.cuda.get_allocator()

            def counting_malloc(size):
                counts["allocations"] += 1
                return pool.malloc(size)
            self.cupy.cuda.set_allocator(counting_malloc)
            self._restore.append((None, None, previous))
        return self

    def __exit__(self, *exc):
        for owner, name, value in reversed(self._restore):
            if owner is None:
                self.cupy.cuda.set_allocator(value)
            elif value is _INHERITED:
                delattr(owner, name)
            else:
                setattr(owner, name, value)
        self._restore.clear()

    def _count_every_launch(self):
        counts, launch, no_op = self.counts, self.cupy.RawKernel.__call__, self.no_op_launches

        def counting_launch(kernel, *args, **kwargs):
            counts["launches"] += 1
            return None if no_op else launch(kernel, *args, **kwargs)
        self._patch(self.cupy.RawKernel, "__call__", counting_launch)

    def _count_transfers(self):
        cupy, counts = self.cupy, self.counts
        declare = cupy._declare_synchronize

        def counting_synchronize():
            counts["syncs"] += 1
            return declare()
        # the stand-in's functions look the name up in their module at each call
        self._patch(cupy, "_declare_synchronize", counting_synchronize)

        def uploading(name):
            original = getattr(cupy, name)

            def upload(a, *args, **kwargs):
                if not isinstance(a, cupy.ndarray):
                    counts["uploads"] += 1
                return original(a, *args, **kwargs)
            return upload
        for name in ("asarray", "array"):
            self._patch(cupy, name, uploading(name))

    def _count_emulated(self):
        cupy, counts = self.cupy, self.counts
        device_array = cupy.ndarray
        ufunc, function, device, set_item = (device_array.__array_ufunc__, device_array.__array_function__,
                                             cupy._device, device_array.__setitem__)

        def counting_ufunc(array, op, method, *inputs, **kwargs):
            counts["products" if op is numpy.matmul else "elementwise"] += 1
            return ufunc(array, op, method, *inputs, **kwargs)

        def counting_function(array, func, types, args, kwargs):
            counts["products" if func is numpy.dot else "functions"] += 1
            return function(array, func, types, args, kwargs)

        def counting_device(a):
            # every device array the stand-in makes of a NumPy result passes here; one owning its memory is new
            if isinstance(a, numpy.ndarray) and not isinstance(a, device_array) and a.base is None:
                counts["allocations"] += 1
            return device(a)

        def finalize(array, template):
            # copies made by the device array's own methods (copy, astype, fancy indexing) own their memory
            if array.flags.owndata:
                counts["allocations"] += 1

        def counting_set_item(array, key, value):
            counts["copies"] += 1      # a copy (or fill) kernel on a GPU
            return set_item(array, key, value)

        def copying(owner, name):
            original = getattr(owner, name)

            def copy(a, *args, **kwargs):
                result = original(a, *args, **kwargs)
                # on plain views: the device arrays' own shares_memory would count as a NumPy function
                if isinstance(a, device_array) and result is not a and \
                        not numpy.shares_memory(result.view(numpy.ndarray), a.view(numpy.ndarray)):
                    counts["copies"] += 1
                return result
            return copy

        def filling(original):
            def fill(*args, **kwargs):
                counts["fills"] += 1
                return original(*args, **kwargs)
            return fill

        for name, value in (("__array_ufunc__", counting_ufunc), ("__array_function__", counting_function),
                            ("__array_finalize__", finalize), ("__setitem__", counting_set_item),
                            ("copy", copying(device_array, "copy")), ("astype", copying(device_array, "astype")),
                            ("fill", filling(device_array.fill))):
            self._patch(device_array, name, value)
        self._patch(cupy, "_device", counting_device)
        for name in ("ascontiguousarray", "array", "asarray"):
            self._patch(cupy, name, copying(cupy, name))
        for name in ("zeros", "zeros_like"):
            self._patch(cupy, name, filling(getattr(cupy, name)))
