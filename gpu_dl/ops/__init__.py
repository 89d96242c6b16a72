"""Stateless differentiable operations, one module per family.

Each operation takes arrays of one module (NumPy or CuPy) and is written once
against that module's NumPy-compatible API; where a hand-written kernel pays,
the CUDA path sits behind the same function. A forward returns what its
backward needs.
"""
