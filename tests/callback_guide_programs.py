"""The programs of Keras 3's guide "Writing your own callbacks", written once for both libraries: ``lib`` is
``gpu_dl`` or ``keras``. Each prints what the guide's program prints (``print`` as the guide does it), so a test
compares the two libraries' printed lines. The guide loads MNIST: these take random arrays of MNIST's shapes
(1000 samples of 784 features, integer targets below 10), and start from the same weights; ``shuffle=False``
makes both libraries take the same batches. ``predict`` runs with ``verbose=0``: the progress bars of the two
libraries differ in their colours."""
import numpy


def data(seed=0):
    rng = numpy.random.default_rng(seed)
    return (rng.random((1000, 784)).astype("float32"), rng.integers(0, 10, 1000),
            rng.random((1000, 784)).astype("float32"), rng.integers(0, 10, 1000))


def get_model(lib):
    """The guide's model: Dense(1) on 784 features, RMSprop(0.1), mean squared error and mean absolute error;
    here with the same weights in both libraries."""
    model = lib.Sequential()
    model.add(lib.layers.Dense(1, input_dim=784))
    model.compile(optimizer=lib.optimizers.RMSprop(learning_rate=0.1), loss="mean_squared_error",
                  metrics=["mean_absolute_error"])
    kernel = numpy.linspace(-0.05, 0.05, 784, dtype="float32").reshape(784, 1)
    model.set_weights([kernel, numpy.full((1,), 0.01, "float32")])
    return model


def custom_callback(lib):
    """The guide's CustomCallback: every hook prints its name and the keys of its logs."""
    class CustomCallback(lib.callbacks.Callback):
        def on_train_begin(self, logs=None):
            print("Starting training; got log keys: {}".format(list(logs.keys())))

        def on_train_end(self, logs=None):
            print("Stop training; got log keys: {}".format(list(logs.keys())))

        def on_epoch_begin(self, epoch, logs=None):
            print("Start epoch {} of training; got log keys: {}".format(epoch, list(logs.keys())))

        def on_epoch_end(self, epoch, logs=None):
            print("End epoch {} of training; got log keys: {}".format(epoch, list(logs.keys())))

        def on_test_begin(self, logs=None):
            print("Start testing; got log keys: {}".format(list(logs.keys())))

        def on_test_end(self, logs=None):
            print("Stop testing; got log keys: {}".format(list(logs.keys())))

        def on_predict_begin(self, logs=None):
            print("Start predicting; got log keys: {}".format(list(logs.keys())))

        def on_predict_end(self, logs=None):
            print("Stop predicting; got log keys: {}".format(list(logs.keys())))

        def on_train_batch_begin(self, batch, logs=None):
            print("...Training: start of batch {}; got log keys: {}".format(batch, list(logs.keys())))

        def on_train_batch_end(self, batch, logs=None):
            print("...Training: end of batch {}; got log keys: {}".format(batch, list(logs.keys())))

        def on_test_batch_begin(self, batch, logs=None):
            print("...Evaluating: start of batch {}; got log keys: {}".format(batch, list(logs.keys())))

        def on_test_batch_end(self, batch, logs=None):
            print("...Evaluating: end of batch {}; got log keys: {}".format(batch, list(logs.keys())))

        def on_predict_batch_begin(self, batch, logs=None):
            print("...Predicting: start of batch {}; got log keys: {}".format(batch, list(logs.keys())))

        def on_predict_batch_end(self, batch, logs=None):
            print("...Predicting: end of batch {}; got log keys: {}".format(batch, list(logs.keys())))
    return CustomCallback


def loss_and_error_printing_callback(lib):
    class LossAndErrorPrintingCallback(lib.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            print("For batch {}, loss is {:7.2f}.".format(batch, logs["loss"]))

        def on_test_batch_end(self, batch, logs=None):
            print("For batch {}, loss is {:7.2f}.".format(batch, logs["loss"]))

        def on_epoch_end(self, epoch, logs=None):
            print("The average loss for epoch {} is {:7.2f} and mean absolute error is {:7.2f}.".format(
                epoch, logs["loss"], logs["mean_absolute_error"]))
    return LossAndErrorPrintingCallback


def early_stopping_at_min_loss(lib):
    class EarlyStoppingAtMinLoss(lib.callbacks.Callback):
        """Stop training when the loss stops decreasing, restoring the weights of the best epoch."""

        def __init__(self, patience=0):
            super().__init__()
            self.patience = patience
            self.best_weights = None

        def on_train_begin(self, logs=None):
            self.wait = 0
            self.stopped_epoch = 0
            self.best = numpy.inf

        def on_epoch_end(self, epoch, logs=None):
            current = logs.get("loss")
            if numpy.less(current, self.best):
                self.best = current
                self.wait = 0
                self.best_weights = self.model.get_weights()
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    self.stopped_epoch = epoch
                    self.model.stop_training = True
                    print("Restoring model weights from the end of the best epoch.")
                    self.model.set_weights(self.best_weights)

        def on_train_end(self, logs=None):
            if self.stopped_epoch > 0:
                print(f"Epoch {self.stopped_epoch + 1}: early stopping")
    return EarlyStoppingAtMinLoss


def custom_learning_rate_scheduler(lib):
    class CustomLearningRateScheduler(lib.callbacks.Callback):
        """Sets the optimizer's learning rate from ``schedule(epoch, lr)`` before each epoch."""

        def __init__(self, schedule):
            super().__init__()
            self.schedule = schedule

        def on_epoch_begin(self, epoch, logs=None):
            if not hasattr(self.model.optimizer, "learning_rate"):
                raise ValueError('Optimizer must have a "learning_rate" attribute.')
            lr = self.model.optimizer.learning_rate
            scheduled_lr = self.schedule(epoch, lr)
            self.model.optimizer.learning_rate = scheduled_lr
            # The rate is a float32 variable on both sides; the schedule may give it back or a number.
            print(f"\nEpoch {epoch}: Learning rate is {float(numpy.array(scheduled_lr)):6.4f}.")
    return CustomLearningRateScheduler


LR_SCHEDULE = [(3, 0.05), (6, 0.01), (9, 0.005), (12, 0.001)]


def lr_schedule(epoch, lr):
    if epoch < LR_SCHEDULE[0][0] or epoch > LR_SCHEDULE[-1][0]:
        return lr
    for start, rate in LR_SCHEDULE:
        if epoch == start:
            return rate
    return lr


def basic_example(lib):
    x_train, y_train, x_test, y_test = data()
    model = get_model(lib)
    model.fit(x_train, y_train, batch_size=128, epochs=1, verbose=0, validation_split=0.5, shuffle=False,
              callbacks=[custom_callback(lib)()])
    model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[custom_callback(lib)()])
    return model.predict(x_test, batch_size=128, verbose=0, callbacks=[custom_callback(lib)()])


def logs_dict(lib):
    x_train, y_train, x_test, y_test = data()
    model = get_model(lib)
    model.fit(x_train, y_train, batch_size=128, epochs=2, verbose=0, shuffle=False,
              callbacks=[loss_and_error_printing_callback(lib)()])
    model.evaluate(x_test, y_test, batch_size=128, verbose=0, callbacks=[loss_and_error_printing_callback(lib)()])
    return model


def early_stopping(lib):
    x_train, y_train, _, _ = data()
    model = get_model(lib)
    stopper = early_stopping_at_min_loss(lib)()
    history = model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=30, verbose=0, shuffle=False,
                        callbacks=[loss_and_error_printing_callback(lib)(), stopper])
    return model, history, stopper


def learning_rate_scheduling(lib):
    x_train, y_train, _, _ = data()
    model = get_model(lib)
    history = model.fit(x_train, y_train, batch_size=64, steps_per_epoch=5, epochs=15, verbose=0, shuffle=False,
                        callbacks=[loss_and_error_printing_callback(lib)(),
                                   custom_learning_rate_scheduler(lib)(lr_schedule)])
    return model, history
