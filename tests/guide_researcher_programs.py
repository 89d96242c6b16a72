"""The Keras parts of the guide "Introduction to Keras for researchers", written once for both libraries: ``lib`` is
``gpu_dl`` or ``keras``. The guide writes them with TensorFlow (``tf.Variable``, ``tf.matmul``, ``tf.nn.relu``,
``tf.GradientTape``); here they are written with Keras 3's own API (``Variable``, ``ops``, ``activations``,
``random``), and the training loops as the PyTorch guides write them (``loss.backward()``, ``optimizer.apply``),
the calls that backward goes through with ``training=True``."""
import custom_step_classes as steps


def linear_classes(lib):
    """(Linear with Variables made in __init__, Linear with add_weight in build)."""
    ops = lib.ops

    class VariableLinear(lib.layers.Layer):
        """y = w.x + b"""

        def __init__(self, units=32, input_dim=32):
            super().__init__()
            w_init = lib.initializers.RandomNormal()
            self.w = lib.Variable(initializer=w_init(shape=(input_dim, units), dtype="float32"), trainable=True)
            b_init = lib.initializers.Zeros()
            self.b = lib.Variable(initializer=b_init(shape=(units,), dtype="float32"), trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    class Linear(lib.layers.Layer):
        """y = w.x + b"""

        def __init__(self, units=32):
            super().__init__()
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal",
                                     trainable=True)
            self.b = self.add_weight(shape=(self.units,), initializer="random_normal", trainable=True)

        def call(self, inputs):
            return ops.matmul(inputs, self.w) + self.b

    return VariableLinear, Linear


def compute_sum_class(lib):
    class ComputeSum(lib.layers.Layer):
        """Returns the sum of the inputs."""

        def __init__(self, input_dim):
            super().__init__()
            self.total = lib.Variable(initializer=lib.ops.zeros((input_dim,)), trainable=False)

        def call(self, inputs):
            self.total.assign_add(lib.ops.sum(inputs, axis=0))
            return self.total
    return ComputeSum


def sparse_mlp_class(lib):
    """SparseMLP: Linear, relu, an activity sparsity loss added with add_loss, Linear."""
    linear = linear_classes(lib)[1]

    class ActivityRegularization(lib.layers.Layer):
        def __init__(self, rate=1e-2):
            super().__init__()
            self.rate = rate

        def call(self, inputs):
            self.add_loss(self.rate * lib.ops.sum(inputs))
            return inputs

    class SparseMLP(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1 = linear(32)
            self.regularization = ActivityRegularization(1e-2)
            self.linear_3 = linear(10)

        def call(self, inputs):
            x = self.linear_1(inputs)
            x = lib.activations.relu(x)
            x = self.regularization(x)
            return self.linear_3(x)
    return SparseMLP


def train_with_layer_losses(lib, mlp, batches, learning_rate=1e-1):
    """The guide's loop: the external loss plus the losses the forward pass added; returns each step's loss."""
    loss_fn = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = lib.optimizers.SGD(learning_rate=learning_rate)
    losses = []
    for x, y in batches:
        for v in mlp.trainable_weights:
            if steps.is_keras(lib):
                v.value.grad = None
            else:
                v.grad = None
        logits = mlp(x, training=True)
        loss = loss_fn(y, logits)
        loss += sum(mlp.losses)
        loss.backward()
        weights = mlp.trainable_weights
        steps.apply(lib, optimizer, steps.gradients(lib, weights), weights)
        losses.append(float(lib.ops.convert_to_numpy(loss.detach())) if steps.is_keras(lib) else float(loss))
    return losses


def f1_score_class(lib):
    ops = lib.ops

    class F1Score(lib.metrics.Metric):
        def __init__(self, name="f1_score", dtype="float32", threshold=0.5, **kwargs):
            super().__init__(name=name, dtype=dtype, **kwargs)
            self.threshold = 0.5
            self.true_positives = self.add_weight(name="tp", dtype=dtype, initializer="zeros")
            self.false_positives = self.add_weight(name="fp", dtype=dtype, initializer="zeros")
            self.false_negatives = self.add_weight(name="fn", dtype=dtype, initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.greater_equal(y_pred, self.threshold)
            y_true = ops.cast(y_true, "bool")
            y_pred = ops.cast(y_pred, "bool")
            true_positives = ops.cast(y_true & y_pred, self.dtype)
            false_positives = ops.cast(~y_true & y_pred, self.dtype)
            false_negatives = ops.cast(y_true & ~y_pred, self.dtype)
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, self.dtype)
                true_positives *= sample_weight
                false_positives *= sample_weight
                false_negatives *= sample_weight
            self.true_positives.assign_add(ops.sum(true_positives))
            self.false_positives.assign_add(ops.sum(false_positives))
            self.false_negatives.assign_add(ops.sum(false_negatives))

        def result(self):
            precision = self.true_positives / (self.true_positives + self.false_positives)
            recall = self.true_positives / (self.true_positives + self.false_negatives)
            return precision * recall * 2.0 / (precision + recall)

        def reset_state(self):
            self.true_positives.assign(0)
            self.false_positives.assign(0)
            self.false_negatives.assign(0)
    return F1Score


def dropout_classes(lib):
    """(Dropout with a training argument, MLPWithDropout)."""
    linear = linear_classes(lib)[1]

    class Dropout(lib.layers.Layer):
        def __init__(self, rate):
            super().__init__()
            self.rate = rate

        def call(self, inputs, training=None):
            if training:
                return lib.random.dropout(inputs, rate=self.rate)
            return inputs

    class MLPWithDropout(lib.layers.Layer):
        def __init__(self):
            super().__init__()
            self.linear_1 = linear(32)
            self.dropout = Dropout(0.5)
            self.linear_3 = linear(10)

        def call(self, inputs, training=None):
            x = self.linear_1(inputs)
            x = lib.activations.relu(x)
            x = self.dropout(x, training=training)
            return self.linear_3(x)
    return Dropout, MLPWithDropout


def custom_model_class(lib):
    """The guide's CustomModel: its own train_step, loss, metrics (listed by the metrics property) and an
    optimizer set in __init__, compiled with no arguments."""
    class CustomModel(lib.Model):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = lib.metrics.Mean(name="loss")
            self.accuracy = lib.metrics.SparseCategoricalAccuracy()
            self.loss_fn = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
            self.optimizer = lib.optimizers.Adam(learning_rate=1e-3)

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.loss_fn(y, y_pred)
            loss.backward()
            weights = self.trainable_weights
            steps.apply(lib, self.optimizer, steps.gradients(lib, weights), weights)
            self.loss_tracker.update_state(loss)
            self.accuracy.update_state(y, y_pred)
            return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy.result()}

        @property
        def metrics(self):
            return [self.loss_tracker, self.accuracy]

    inputs = lib.Input(shape=(784,), dtype="float32")
    x = lib.layers.Dense(32, activation="relu")(inputs)
    x = lib.layers.Dense(32, activation="relu")(x)
    return CustomModel(inputs, lib.layers.Dense(10)(x))
