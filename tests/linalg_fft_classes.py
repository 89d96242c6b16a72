"""Layers whose call uses the linear algebra and Fourier ops, each written once as a function of the library
module (gpu_dl or keras), so that the tests and the Keras-oracle tests build the same classes in both."""


def whitening(lib):
    ops = lib.ops

    class Whitening(lib.layers.Layer):
        """x ↦ L⁻¹ x for the Cholesky factor L of a learned covariance W Wᵀ + I, less a tenth of its log-determinant:
        cholesky, solve_triangular and logdet of a weight in call."""

        def build(self, input_shape):
            self.size = input_shape[-1]
            self.w = self.add_weight(shape=(self.size, self.size), initializer="random_normal", trainable=True)

        def call(self, x):
            covariance = ops.matmul(self.w, ops.transpose(self.w)) + ops.eye(self.size, dtype=x.dtype)
            factor = ops.cholesky(covariance)
            white = ops.transpose(ops.solve_triangular(factor, ops.transpose(x), lower=True))
            return white - 0.1 * ops.logdet(covariance)

    return Whitening


def spectral_pooling(lib):
    ops = lib.ops

    class SpectralPooling(lib.layers.Layer):
        """The magnitudes of a signal's half spectrum (rfft), and the signal made again from half of it (irfft),
        mixed by a Dense."""

        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(units, dtype=kwargs.get("dtype"))

        def call(self, x):
            real, imag = ops.rfft(x)
            magnitude = ops.sqrt(real * real + imag * imag + 1e-6)
            smooth = ops.irfft((real * 0.5, imag * 0.5), fft_length=x.shape[-1])
            return self.dense(ops.concatenate([magnitude, smooth], axis=-1))

    return SpectralPooling


def model(lib, dtype=None):
    x = lib.Input(shape=(6,), name="x", dtype=dtype)
    h = whitening(lib)(name="whitening", dtype=dtype)(x)
    h = spectral_pooling(lib)(5, name="spectral", dtype=dtype)(h)
    return lib.Model(x, lib.layers.Dense(3, activation="softmax", name="probs", dtype=dtype)(h))
