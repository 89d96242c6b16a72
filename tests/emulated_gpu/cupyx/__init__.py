"""A stand-in for the part of ``cupyx`` gpu_dl calls, beside the emulated ``cupy`` (see ``cupy/__init__.py``).

Only ``cupyx.scipy.special.erf`` (the exact GELU's erf on the GPU). CuPy's
deprecated synchronisation detector (``allow_synchronize``) is not emulated:
the emulated arrays live on the host, so there is nothing to detect.
"""
