"""The layers and models of Keras's guide "Making new layers and models via subclassing" that add losses, each class
written once as a function of the library module (gpu_dl or keras), so that tests/test_add_loss.py and the Keras
oracle tests build the same classes in both libraries. The VAE's sampling draws no random numbers: ``epsilon`` is a
constant, since the two libraries' random streams differ."""


def activity_regularization(lib):
    class ActivityRegularizationLayer(lib.layers.Layer):
        def __init__(self, rate=1e-2, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * lib.ops.mean(inputs))
            return inputs

    return ActivityRegularizationLayer


def outer(lib):
    ActivityRegularizationLayer = activity_regularization(lib)

    class OuterLayer(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.activity_reg = ActivityRegularizationLayer(1e-2)

        def call(self, inputs):
            return self.activity_reg(inputs)

    return OuterLayer


def outer_with_kernel_regularizer(lib):
    class OuterLayerWithKernelRegularizer(lib.layers.Layer):
        def __init__(self, activity_regularizer=None, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(32, kernel_regularizer=lib.regularizers.l2(1e-3),
                                          activity_regularizer=activity_regularizer)

        def call(self, inputs):
            return self.dense(inputs)

    return OuterLayerWithKernelRegularizer


def vae(lib, epsilon=0.3):
    L, ops = lib.layers, lib.ops

    class Sampling(L.Layer):
        """z = z_mean + exp(z_log_var / 2) * epsilon, epsilon a constant in place of the guide's normal draw."""

        def call(self, inputs):
            z_mean, z_log_var = inputs
            return z_mean + ops.exp(0.5 * z_log_var) * (ops.ones_like(z_mean) * epsilon)

    class Encoder(L.Layer):
        def __init__(self, latent_dim=3, intermediate_dim=8, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = L.Dense(intermediate_dim, activation="relu", dtype=self.dtype)
            self.dense_mean = L.Dense(latent_dim, dtype=self.dtype)
            self.dense_log_var = L.Dense(latent_dim, dtype=self.dtype)
            self.sampling = Sampling(dtype=self.dtype)

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean = self.dense_mean(x)
            z_log_var = self.dense_log_var(x)
            z = self.sampling((z_mean, z_log_var))
            return z_mean, z_log_var, z

    class Decoder(L.Layer):
        def __init__(self, original_dim, intermediate_dim=8, name="decoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = L.Dense(intermediate_dim, activation="relu", dtype=self.dtype)
            self.dense_output = L.Dense(original_dim, activation="sigmoid", dtype=self.dtype)

        def call(self, inputs):
            x = self.dense_proj(inputs)
            return self.dense_output(x)

    class VariationalAutoEncoder(lib.Model):
        def __init__(self, original_dim, intermediate_dim=8, latent_dim=3, name="autoencoder", dtype=None):
            super().__init__(name=name, dtype=dtype)
            self.original_dim = original_dim
            self.encoder = Encoder(latent_dim=latent_dim, intermediate_dim=intermediate_dim, dtype=self.dtype)
            self.decoder = Decoder(original_dim, intermediate_dim=intermediate_dim, dtype=self.dtype)

        def call(self, inputs):
            z_mean, z_log_var, z = self.encoder(inputs)
            reconstructed = self.decoder(z)
            # Add KL divergence regularization loss.
            kl_loss = -0.5 * ops.mean(z_log_var - ops.square(z_mean) - ops.exp(z_log_var) + 1)
            self.add_loss(kl_loss)
            return reconstructed

    return VariationalAutoEncoder
