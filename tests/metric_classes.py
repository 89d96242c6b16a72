"""Custom metrics written as Keras 3's guides write them, each class written once as a function of the library
module (gpu_dl or keras), so that the tests and the Keras-oracle tests build the same classes in both libraries."""


def categorical_true_positives(lib):
    """The metric of Keras's guide "Training & evaluation with the built-in methods", as written there."""
    ops = lib.ops

    class CategoricalTruePositives(lib.metrics.Metric):
        def __init__(self, name="categorical_true_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
            values = ops.cast(y_true, "int32") == ops.cast(y_pred, "int32")
            values = ops.cast(values, "float32")
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, "float32")
                values = ops.multiply(values, sample_weight)
            self.true_positives.assign_add(ops.sum(values))

        def result(self):
            return self.true_positives

        def reset_state(self):
            self.true_positives.assign(0.0)

    return CategoricalTruePositives


def error_stats(lib):
    """Several variables (one of them a vector) and a dict result; the default reset_state; a config of its own."""
    ops = lib.ops

    class ErrorStats(lib.metrics.Metric):
        """The weighted mean and the largest absolute error, and the weighted count of errors above ``limit``."""

        def __init__(self, limit=0.5, name="error_stats", **kwargs):
            super().__init__(name=name, **kwargs)
            self.limit = limit
            self.total = self.add_variable(shape=(), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")
            self.largest = self.add_weight(shape=(), initializer="zeros", name="largest")
            self.above = self.add_variable(shape=(2,), initializer="zeros", name="above")

        def update_state(self, y_true, y_pred, sample_weight=None):
            errors = ops.mean(ops.abs(ops.cast(y_true, "float32") - ops.cast(y_pred, "float32")), axis=-1)
            weights = ops.ones_like(errors) if sample_weight is None else ops.cast(sample_weight, "float32")
            self.total.assign_add(ops.sum(errors * weights))
            self.count.assign_add(ops.sum(weights))
            self.largest.assign(ops.maximum(self.largest, ops.max(errors)))
            over = ops.cast(errors > self.limit, "float32")
            self.above.assign_add(ops.stack([ops.sum(over * weights), ops.sum((1.0 - over) * weights)]))

        def result(self):
            return {"mean_error": ops.divide(self.total, ops.maximum(self.count, 1e-7)),
                    "largest_error": self.largest, "share_above": self.above[0] / ops.maximum(self.count, 1e-7)}

        def get_config(self):
            return {**super().get_config(), "limit": self.limit}

    return ErrorStats


def mean_of_positives(lib):
    """A subclass of Keras's Mean (its update_state given other values), with a variable of its own that its
    reset_state (which calls Mean's) also resets: the constructor must not run it before the variable exists."""
    ops = lib.ops

    class MeanOfPositives(lib.metrics.Mean):
        def __init__(self, name="mean_of_positives", **kwargs):
            super().__init__(name=name, **kwargs)
            self.seen = self.add_variable(shape=(), initializer="zeros", name="seen")

        def update_state(self, y_true, y_pred, sample_weight=None):
            values = ops.cast(y_pred > 0.5, "float32")
            self.seen.assign_add(ops.cast(ops.shape(values)[0], "float32"))
            super().update_state(values, sample_weight=sample_weight)

        def reset_state(self):
            super().reset_state()
            self.seen.assign(0.0)

    return MeanOfPositives


def holder(lib):
    """A metric holding another metric as an attribute: its variables follow its own; reset_state resets both."""
    ops = lib.ops

    class Holder(lib.metrics.Metric):
        def __init__(self, name="holder", **kwargs):
            super().__init__(name=name, **kwargs)
            self.inner = lib.metrics.MeanAbsoluteError(name="inner")
            self.calls = self.add_variable(shape=(), initializer="ones", name="calls")

        def update_state(self, y_true, y_pred, sample_weight=None):
            self.inner.update_state(y_true, y_pred, sample_weight=sample_weight)
            self.calls.assign_add(1.0)

        def result(self):
            return ops.add(self.inner.result(), ops.multiply(self.calls, 0.0))

    return Holder


def mean_max_error(lib):
    """A plain function given to compile(metrics=[...]): Keras wraps it in MeanMetricWrapper, named in snake case."""
    ops = lib.ops

    def meanMaxError(y_true, y_pred):      # noqa: N802 -- Keras logs it as "mean_max_error"
        return ops.max(ops.abs(ops.cast(y_true, "float32") - y_pred), axis=-1)

    return meanMaxError
