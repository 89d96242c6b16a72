"""Custom losses written with the library's ops, each written once as a function of the library module (gpu_dl or
keras), so that the tests and the Keras-oracle tests use the same loss bodies in both libraries. The first two are
those of Keras's guide "Training & evaluation with the built-in methods"."""


def custom_mean_squared_error(lib):
    ops = lib.ops

    def custom_mean_squared_error(y_true, y_pred):
        return ops.mean(ops.square(y_true - y_pred), axis=-1)

    return custom_mean_squared_error


def custom_mse(lib):
    ops = lib.ops

    class CustomMSE(lib.losses.Loss):
        def __init__(self, regularization_factor=0.1, name="custom_mse"):
            super().__init__(name=name)
            self.regularization_factor = regularization_factor

        def call(self, y_true, y_pred):
            mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
            reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
            return mse + reg * self.regularization_factor

    return CustomMSE


def robust_log_loss(lib):
    """ops.where, abs, log, clip and maximum: a log-error that turns linear past 1, on clipped predictions."""
    ops = lib.ops

    def robust_log_loss(y_true, y_pred):
        p = ops.clip(y_pred, -3.0, 3.0)
        error = ops.abs(y_true - p)
        smooth = ops.log(1.0 + ops.square(error))
        per_entry = ops.where(error > 1.0, ops.maximum(error, smooth) - 1.0 + ops.log(2.0), smooth)
        return ops.mean(per_entry, axis=-1)

    return robust_log_loss


def focal_like(lib):
    """A Loss subclass with settings, a get_config, and a call of sigmoid, log and a comparison on y_true."""
    ops = lib.ops

    class FocalLike(lib.losses.Loss):
        def __init__(self, gamma=2.0, name="focal_like", reduction="sum_over_batch_size", dtype=None):
            super().__init__(name=name, reduction=reduction, dtype=dtype)
            self.gamma = gamma

        def call(self, y_true, y_pred):
            p = ops.clip(ops.sigmoid(y_pred), 1e-6, 1.0 - 1e-6)
            p_t = ops.where(y_true > 0.5, p, 1.0 - p)
            return ops.sum(-((1.0 - p_t) ** self.gamma) * ops.log(p_t), axis=-1)

        def get_config(self):
            return {**super().get_config(), "gamma": self.gamma}

    return FocalLike
