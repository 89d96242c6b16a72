"""The classes of Keras 3's guides "Customizing what happens in fit() with PyTorch" and "Writing a training loop
from scratch in PyTorch", written once for both libraries: ``lib`` is ``gpu_dl`` or ``keras``. gpu_dl's spelling
differs from the guides' in two places, which ``gradients`` and ``apply`` hide: a variable's gradient is ``v.grad``
(torch's is ``v.value.grad``) and the optimizer needs no ``torch.no_grad()``. The calls that backward goes through
pass ``training=True`` (gpu_dl keeps a call's backward state only then; the models here have no dropout or
normalization, so Keras computes the same either way)."""


def is_keras(lib):
    return lib.__name__ == "keras"


def gradients(lib, variables):
    return [v.value.grad if is_keras(lib) else v.grad for v in variables]


def apply(lib, optimizer, grads, variables):
    if is_keras(lib):
        import torch
        with torch.no_grad():
            optimizer.apply(grads, variables)
    else:
        optimizer.apply(grads, variables)


def compute_loss_model(lib):
    """The guide's first CustomModel: compute_loss, and the metrics of self.metrics updated by hand."""
    class CustomModel(lib.Model):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            apply(lib, self.optimizer, gradients(lib, trainable_weights), trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}
    return CustomModel


def own_metrics_model(lib):
    """The guide's second: its own loss function and Mean / MAE trackers, listed by the metrics property."""
    class CustomModel(lib.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = lib.metrics.Mean(name="loss")
            self.mae_metric = lib.metrics.MeanAbsoluteError(name="mae")
            self.loss_fn = lib.losses.MeanSquaredError()

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            apply(lib, self.optimizer, gradients(lib, trainable_weights), trainable_weights)
            self.loss_tracker.update_state(loss)
            self.mae_metric.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]
    return CustomModel


def sample_weight_model(lib):
    """The guide's third: sample weights unpacked from data and passed to compute_loss and the metrics."""
    class CustomModel(lib.Model):
        def train_step(self, data):
            if len(data) == 3:
                x, y, sample_weight = data
            else:
                sample_weight = None
                x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            apply(lib, self.optimizer, gradients(lib, trainable_weights), trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}
    return CustomModel


def test_step_model(lib):
    """The guide's evaluation step of its own."""
    class CustomModel(lib.Model):
        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}
    return CustomModel


def extra_loss_model(lib):
    """compute_loss overridden alone, adding a term: the built-in train step trains on it."""
    class CustomModel(lib.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.extra = lib.losses.MeanAbsoluteError()

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss = super().compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training)
            return loss + 0.5 * self.extra(y, y_pred)
    return CustomModel


def dense_model(lib, cls, inputs=32, outputs=1):
    """The guide's model: Dense(1) on inputs of 32 features, of class ``cls``."""
    x = lib.Input(shape=(inputs,))
    return cls(x, lib.layers.Dense(outputs)(x))


def gan(lib, generator_trains_in_d_step=False):
    """The guide's GAN, with a tiny Dense generator and discriminator. The latent vectors and the label noise come
    from arrays given to it (the libraries' random streams differ); with ``generator_trains_in_d_step`` the
    discriminator's step calls the generator with training=True, so its backward reaches the generator through
    ops.concatenate (gradients the generator's step clears)."""
    ops = lib.ops

    class GAN(lib.Model):
        def __init__(self, discriminator, generator, latents, noise):
            super().__init__()
            self.discriminator = discriminator
            self.generator = generator
            self.latents, self.noise = latents, noise
            self.d_loss_tracker = lib.metrics.Mean(name="d_loss")
            self.g_loss_tracker = lib.metrics.Mean(name="g_loss")
            self.steps_taken = 0
            self.built = True

        @property
        def metrics(self):
            return [self.d_loss_tracker, self.g_loss_tracker]

        def compile(self, d_optimizer, g_optimizer, loss_fn):
            super().compile()
            self.d_optimizer = d_optimizer
            self.g_optimizer = g_optimizer
            self.loss_fn = loss_fn

        def train_step(self, real_images):
            if isinstance(real_images, tuple):
                real_images = real_images[0]
            batch_size = real_images.shape[0]
            step, self.steps_taken = self.steps_taken, self.steps_taken + 1
            random_latent_vectors = ops.convert_to_tensor(self.latents[step, 0, :batch_size])
            if generator_trains_in_d_step:
                generated_images = self.generator(random_latent_vectors, training=True)
            else:
                generated_images = self.generator(random_latent_vectors)
            combined_images = ops.concatenate([generated_images, real_images], axis=0)
            labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
            labels = labels + 0.05 * ops.convert_to_tensor(self.noise[step, :2 * batch_size])

            self.zero_grad()
            predictions = self.discriminator(combined_images, training=True)
            d_loss = self.loss_fn(labels, predictions)
            d_loss.backward()
            weights = self.discriminator.trainable_weights
            apply(lib, self.d_optimizer, gradients(lib, weights), weights)

            random_latent_vectors = ops.convert_to_tensor(self.latents[step, 1, :batch_size])
            misleading_labels = ops.zeros((batch_size, 1))
            self.zero_grad()
            predictions = self.discriminator(self.generator(random_latent_vectors, training=True), training=True)
            g_loss = self.loss_fn(misleading_labels, predictions)
            g_loss.backward()
            weights = self.generator.trainable_weights
            apply(lib, self.g_optimizer, gradients(lib, weights), weights)

            self.d_loss_tracker.update_state(d_loss)
            self.g_loss_tracker.update_state(g_loss)
            return {"d_loss": self.d_loss_tracker.result(), "g_loss": self.g_loss_tracker.result()}
    return GAN


def gan_networks(lib, image_size=6, latent_dim=3):
    layers = lib.layers
    discriminator = lib.Sequential([lib.Input((image_size,)), layers.Dense(8), layers.LeakyReLU(negative_slope=0.2),
                                    layers.Dense(1)], name="discriminator")
    generator = lib.Sequential([lib.Input((latent_dim,)), layers.Dense(8), layers.LeakyReLU(negative_slope=0.2),
                                layers.Dense(image_size, activation="sigmoid")], name="generator")
    return discriminator, generator


def mnist_like_model(lib, features=20, classes=5):
    """The training-loop guide's model, smaller."""
    inputs = lib.Input(shape=(features,), name="digits")
    x1 = lib.layers.Dense(16, activation="relu")(inputs)
    x2 = lib.layers.Dense(16, activation="relu")(x1)
    outputs = lib.layers.Dense(classes, name="predictions")(x2)
    return lib.Model(inputs=inputs, outputs=outputs)


def training_loop(lib, model, train, val, epochs):
    """The training-loop guide's loop with metrics and validation: returns per step the batch loss, and per epoch
    the training and validation accuracy."""
    optimizer = lib.optimizers.Adam(learning_rate=1e-3)
    loss_fn = lib.losses.CategoricalCrossentropy(from_logits=True)
    train_acc_metric = lib.metrics.CategoricalAccuracy()
    val_acc_metric = lib.metrics.CategoricalAccuracy()
    step_losses, epoch_metrics = [], []
    for epoch in range(epochs):
        for inputs, targets in train:
            logits = model(inputs, training=True)
            loss = loss_fn(targets, logits)
            model.zero_grad()
            trainable_weights = [v for v in model.trainable_weights]
            loss.backward()
            apply(lib, optimizer, gradients(lib, trainable_weights), trainable_weights)
            train_acc_metric.update_state(targets, logits)
            step_losses.append(float(loss.detach().numpy()))
        train_acc = float(train_acc_metric.result())
        train_acc_metric.reset_state()
        for x_batch_val, y_batch_val in val:
            val_logits = model(x_batch_val, training=False)
            val_acc_metric.update_state(y_batch_val, val_logits)
        val_acc = float(val_acc_metric.result())
        val_acc_metric.reset_state()
        epoch_metrics.append((train_acc, val_acc))
    return step_losses, epoch_metrics
