"""Keras's guide's layers that draw noise, as written there, for either library: Sampling (a SeedGenerator of its
own; its seed, fixed at 1337 in the guide, may be given), an Encoder holding it, and CustomDropout."""


def guide_layers(lib):
    """(Sampling, Encoder, CustomDropout) written with ``lib`` (gpu_dl or keras)."""
    layers, ops = lib.layers, lib.ops

    class Sampling(layers.Layer):
        def __init__(self, seed=1337, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = lib.random.SeedGenerator(seed)

        def call(self, inputs):
            z_mean, z_log_var = inputs
            batch = ops.shape(z_mean)[0]
            dim = ops.shape(z_mean)[1]
            epsilon = lib.random.normal(shape=(batch, dim), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    class Encoder(layers.Layer):
        def __init__(self, latent_dim=4, intermediate_dim=16, seed=1337, name="encoder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.dense_proj = layers.Dense(intermediate_dim, activation="relu")
            self.dense_mean = layers.Dense(latent_dim)
            self.dense_log_var = layers.Dense(latent_dim)
            self.sampling = Sampling(seed)

        def call(self, inputs):
            x = self.dense_proj(inputs)
            z_mean = self.dense_mean(x)
            z_log_var = self.dense_log_var(x)
            return self.sampling((z_mean, z_log_var))

    class CustomDropout(layers.Layer):
        def __init__(self, rate, **kwargs):
            super().__init__(**kwargs)
            self.rate = rate

        def call(self, inputs, training=None):
            if training:
                return lib.random.dropout(inputs, rate=self.rate)
            return inputs

    return Sampling, Encoder, CustomDropout
