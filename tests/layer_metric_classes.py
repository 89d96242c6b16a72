"""Layers and models that hold metrics and update them in their calls, written once for gpu_dl and Keras 3
(``lib`` is either): the cases of tests/test_layer_metrics.py and its Keras-oracle twin."""


def accuracy_endpoint(lib):
    """The guide's endpoint layer with the accuracy Keras 2's version logged: a loss and a metric of its call."""
    class LogisticEndpoint(lib.layers.Layer):
        def __init__(self, name=None):
            super().__init__(name=name)
            self.loss_fn = lib.losses.BinaryCrossentropy(from_logits=True)
            self.accuracy_fn = lib.metrics.BinaryAccuracy()

        def call(self, targets, logits, sample_weights=None):
            self.add_loss(self.loss_fn(targets, logits, sample_weights))
            self.accuracy_fn.update_state(targets, lib.ops.sigmoid(logits), sample_weights)
            return lib.ops.softmax(logits)
    return LogisticEndpoint


def endpoint_model(lib, classes=4):
    inputs, targets = lib.Input((3,), name="inputs"), lib.Input((classes,), name="targets")
    logits = lib.layers.Dense(classes, name="dense")(inputs)
    return lib.Model([inputs, targets], accuracy_endpoint(lib)(name="predictions")(targets, logits))


def nested(lib):
    """An outer layer holding a metric and an inner layer holding another: the inner one is listed by both."""
    class Inner(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mean = lib.metrics.Mean(name="inner_mean")
            self.dense = lib.layers.Dense(2)

        def call(self, x):
            y = self.dense(x)
            self.mean.update_state(y)
            return y

    class Outer(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = Inner()
            self.row_sums = lib.metrics.Mean(name="outer_mean")

        def call(self, x):
            self.row_sums.update_state(lib.ops.sum(x, axis=-1))
            return self.inner(x)
    return Outer


def training_only(lib):
    """A layer passing its input on and logging the share of positive entries among those of its training calls
    (a branch on the training flag: evaluation leaves the metric as it is)."""
    class TrainingOnly(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.positive = lib.metrics.Mean(name="positive_share")

        def call(self, x, training=None):
            if training:
                self.positive.update_state(lib.ops.cast(x > 0.0, "float32"))
            return x * 1.0
    return TrainingOnly


def running_mean_output(lib):
    """A layer whose output adds the running mean of its rows' sums: calling the metric gives its result."""
    class RunningMean(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.mean = lib.metrics.Mean(name="running")

        def call(self, x):
            return x + self.mean(lib.ops.sum(x, axis=-1))
    return RunningMean


def counted(lib):
    """A metric of the caller's own (variables and ops), updated in a call: the rows seen and their largest value."""
    class Extremes(lib.metrics.Metric):
        def __init__(self, name="extremes", **kwargs):
            super().__init__(name=name, **kwargs)
            self.rows = self.add_variable(shape=(), initializer="zeros", name="rows")
            self.largest = self.add_variable(shape=(), initializer="zeros", name="largest")

        def update_state(self, values):
            self.rows.assign_add(lib.ops.cast(lib.ops.shape(values)[0], "float32"))
            self.largest.assign(lib.ops.maximum(self.largest, lib.ops.max(values)))

        def result(self):
            return {"rows": self.rows, "largest": self.largest}

    class Watched(lib.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.extremes = Extremes()

        def call(self, x):
            self.extremes.update_state(x)
            return x * 2.0
    return Watched


def tracking_model(lib):
    """A subclassed model holding a metric it updates in its call."""
    class Tracking(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense = lib.layers.Dense(2)
            self.magnitude = lib.metrics.Mean(name="magnitude")

        def call(self, x):
            y = self.dense(x)
            self.magnitude.update_state(lib.ops.abs(y))
            return y
    return Tracking
