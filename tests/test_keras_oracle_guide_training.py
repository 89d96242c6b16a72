"""Keras's guide "Training & evaluation with the built-in methods" against Keras itself
(tests/guide_training_programs.py): from the same initial weights, the same histories, evaluations, predictions and
weights for built-in, custom-function and subclassed losses and metrics, losses added by layers, validation data
and splits, datasets, class and sample weights, multi-input and multi-output models, callbacks, checkpoints and
learning-rate schedules. ``shuffle=False`` throughout: the libraries draw different shuffles."""
import contextlib
import os

import numpy
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import gpu_dl  # noqa: E402

import guide_training_programs as guide  # noqa: E402


@pytest.fixture(autouse=True)
def cpu(on_cpu):
    """gpu_dl on NumPy, as Keras runs here on the CPU."""


def _clear():
    for lib in (gpu_dl, keras):
        lib.backend.clear_session()
    keras.utils.set_random_seed(1)      # Keras's initial weights, which gpu_dl's models copy: the same each run


def _pair(program, *args):
    """(ours, theirs) made by ``program(lib, *args)``, ours holding Keras's initial weights."""
    _clear()
    ours, theirs = program(gpu_dl, *args), program(keras, *args)
    ours.set_weights(theirs.get_weights())
    return ours, theirs


def _assert_same_history(ours, theirs, rtol=2e-5, atol=1e-6):
    assert list(ours.history) == list(theirs.history)
    for key in theirs.history:
        numpy.testing.assert_allclose(ours.history[key], theirs.history[key], rtol=rtol, atol=atol, err_msg=key)


def _assert_same_weights(ours, theirs, rtol=1e-4, atol=1e-6):
    a, b = ours.get_weights(), theirs.get_weights()
    assert len(a) == len(b)
    for u, v in zip(a, b):
        numpy.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


@pytest.fixture
def mnist_like():
    """Small stand-ins for the guide's MNIST arrays: (x_train, y_train, x_val, y_val, x_test, y_test), labels as
    float32 as the guide casts them."""
    rng = numpy.random.default_rng(7)
    x = rng.random((200, 784)).astype("float32")
    y = rng.integers(0, 10, 200).astype("float32")
    return x[:120], y[:120], x[120:160], y[120:160], x[160:], y[160:]


def _fit_both(ours, theirs, *args, **kwargs):
    kwargs = {"verbose": 0, "shuffle": False, **kwargs}
    return ours.fit(*args, **kwargs), theirs.fit(*args, **kwargs)


def test_the_end_to_end_example(mnist_like):
    x_train, y_train, x_val, y_val, x_test, y_test = mnist_like
    ours, theirs = _pair(guide.get_uncompiled_model)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        model.compile(optimizer=lib.optimizers.RMSprop(), loss=lib.losses.SparseCategoricalCrossentropy(),
                      metrics=[lib.metrics.SparseCategoricalAccuracy()])
    histories = _fit_both(ours, theirs, x_train, y_train, batch_size=64, epochs=2, validation_data=(x_val, y_val))
    _assert_same_history(*histories)
    assert list(histories[0].history) == ["loss", "sparse_categorical_accuracy", "val_loss",
                                          "val_sparse_categorical_accuracy"]
    _assert_same_weights(ours, theirs)
    numpy.testing.assert_allclose(ours.evaluate(x_test, y_test, batch_size=128, verbose=0),
                                  theirs.evaluate(x_test, y_test, batch_size=128, verbose=0), rtol=2e-5)
    predictions = ours.predict(x_test[:3], verbose=0)
    assert predictions.shape == (3, 10)
    numpy.testing.assert_allclose(predictions, theirs.predict(x_test[:3], verbose=0), rtol=1e-4, atol=1e-6)
    # recompiled with the objects again, then with the string shortcuts: the same training
    for compile_kwargs in ("objects", "strings"):
        for model, lib in ((ours, gpu_dl), (theirs, keras)):
            if compile_kwargs == "objects":
                model.compile(optimizer=lib.optimizers.RMSprop(learning_rate=1e-3),
                              loss=lib.losses.SparseCategoricalCrossentropy(),
                              metrics=[lib.metrics.SparseCategoricalAccuracy()])
            else:
                guide.compile_default(lib, model)
        _assert_same_history(*_fit_both(ours, theirs, x_train, y_train, batch_size=64, epochs=1))
    _assert_same_weights(ours, theirs)


@pytest.mark.parametrize("loss", ["function", "subclass"])
def test_custom_losses(loss, mnist_like):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_uncompiled_model)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        fn = guide.custom_mean_squared_error(lib) if loss == "function" else guide.custom_mse_class(lib)()
        model.compile(optimizer=lib.optimizers.Adam(), loss=fn)
    # We need to one-hot encode the labels to use MSE
    y_one_hot = gpu_dl.ops.one_hot(y_train, 10)
    numpy.testing.assert_array_equal(y_one_hot, keras.ops.convert_to_numpy(keras.ops.one_hot(y_train, 10)))
    _assert_same_history(*_fit_both(ours, theirs, x_train, y_one_hot, batch_size=64, epochs=1))
    _assert_same_weights(ours, theirs)


def test_a_custom_metric(mnist_like):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_uncompiled_model)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        model.compile(optimizer=lib.optimizers.RMSprop(learning_rate=1e-3),
                      loss=lib.losses.SparseCategoricalCrossentropy(),
                      metrics=[guide.categorical_true_positives_class(lib)()])
    histories = _fit_both(ours, theirs, x_train, y_train, batch_size=64, epochs=3)
    _assert_same_history(*histories)
    # As written, the metric compares labels of shape (batch,) with argmaxes of shape (batch, 1): both libraries
    # broadcast them to (batch, batch) and count matching pairs, more than the samples of an epoch.
    assert max(histories[0].history["categorical_true_positives"]) > len(x_train)
    _assert_same_weights(ours, theirs)


def test_a_layer_adding_a_loss(mnist_like):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.activity_regularization_model)
    _assert_same_history(*_fit_both(ours, theirs, x_train, y_train, batch_size=64, epochs=1), rtol=1e-4)
    _assert_same_weights(ours, theirs, rtol=1e-3, atol=1e-5)
    # Keras 3 dropped add_metric: both refuse it
    for lib in (gpu_dl, keras):
        with pytest.raises(NotImplementedError):
            lib.layers.Layer().add_metric(1.0, name="std_of_activation")
    # and the guide's model.add_loss of a symbolic tensor of a functional model: Keras 3.15 raises a bare
    # NotImplementedError, gpu_dl a ValueError saying where such a loss goes
    for lib, error in ((gpu_dl, ValueError), (keras, NotImplementedError)):
        inputs = lib.Input(shape=(784,), name="digits")
        x1 = lib.layers.Dense(64, activation="relu", name="dense_1")(inputs)
        model = lib.Model(inputs=inputs, outputs=lib.layers.Dense(10, name="predictions")(x1))
        with pytest.raises(error, match="call of a layer" if lib is gpu_dl else ""):
            model.add_loss(lib.ops.sum(x1) * 0.1)


@pytest.mark.parametrize("as_written", [True, False], ids=["as_written", "targets_first"])
def test_an_endpoint_layer_with_its_own_loss_and_no_compiled_loss(as_written):
    ours, theirs = _pair(guide.logistic_endpoint_model, as_written)
    rng = numpy.random.default_rng(3)
    data = {"inputs": rng.random((3, 3)).astype("float32"), "targets": rng.random((3, 10)).astype("float32")}
    _assert_same_history(*_fit_both(ours, theirs, data))
    _assert_same_weights(ours, theirs)
    numpy.testing.assert_allclose(ours.predict(data, verbose=0), theirs.predict(data, verbose=0), rtol=1e-5)


def test_a_validation_split(mnist_like):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_compiled_model)
    histories = _fit_both(ours, theirs, x_train, y_train, batch_size=64, validation_split=0.2, epochs=1)
    _assert_same_history(*histories)
    assert "val_sparse_categorical_accuracy" in histories[0].history
    _assert_same_weights(ours, theirs)


def test_datasets_with_steps_and_validation_steps(mnist_like):
    x_train, y_train, x_val, y_val, x_test, y_test = mnist_like
    ours, theirs = _pair(guide.get_compiled_model)
    datasets = {lib: (guide.batches_class(lib)((x_train, y_train), 32), guide.batches_class(lib)((x_test, y_test), 32))
                for lib in (gpu_dl, keras)}
    # shuffle=False: fit shuffles a PyDataset's batch order by default, each library with its own draws
    histories = (ours.fit(datasets[gpu_dl][0], epochs=3, verbose=0, shuffle=False),
                 theirs.fit(datasets[keras][0], epochs=3, verbose=0, shuffle=False))
    _assert_same_history(*histories)
    ours_result, theirs_result = ours.evaluate(datasets[gpu_dl][1], verbose=0), \
        theirs.evaluate(datasets[keras][1], verbose=0)
    numpy.testing.assert_allclose(ours_result, theirs_result, rtol=2e-5)
    assert ours.metrics_names == theirs.metrics_names
    assert list(dict(zip(ours.metrics_names, ours_result))) == list(dict(zip(theirs.metrics_names, theirs_result)))

    # steps_per_epoch draws the next batches without going back to the start: two epochs of two steps train as
    # one epoch of the four batches (of 32, the last of 24), and two epochs of three run out of data, which both
    # libraries say, stopping there
    ours, theirs = _pair(guide.get_compiled_model)
    initial = theirs.get_weights()
    fits = []
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        train = guide.batches_class(lib)((x_train, y_train), 32)
        val = guide.batches_class(lib)((x_val, y_val), 16)
        fits.append(model.fit(train, epochs=2, steps_per_epoch=2, validation_data=val, validation_steps=2,
                              verbose=0, shuffle=False))
    _assert_same_history(*fits)
    _assert_same_weights(ours, theirs)
    in_two = ours.get_weights()
    for steps, epochs in ((4, 1), (3, 2)):
        fits = []
        for model, lib in ((ours, gpu_dl), (theirs, keras)):
            model.set_weights(initial)
            guide.compile_default(lib, model)
            train = guide.batches_class(lib)((x_train, y_train), 32)
            with pytest.warns(UserWarning, match="ran out of data") if steps == 3 else contextlib.nullcontext():
                fits.append(model.fit(train, epochs=epochs, steps_per_epoch=steps, verbose=0, shuffle=False))
        _assert_same_history(*fits)
        _assert_same_weights(ours, theirs)
        if steps == 4:
            for a, b in zip(ours.get_weights(), in_two):
                numpy.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_a_sequence_without_its_base_init(mnist_like):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_compiled_model)
    fits = []
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        # both warn that the subclass should call super().__init__(**kwargs), and train on it all the same
        with pytest.warns(UserWarning, match=r"should call `super\(\).__init__\(\*\*kwargs\)`"):
            fits.append(model.fit(guide.sequence_class(lib)(x_train, y_train, 32), epochs=2, verbose=0,
                                  shuffle=False))
    _assert_same_history(*fits)
    _assert_same_weights(ours, theirs)


def test_class_and_sample_weights(mnist_like):
    x_train, y_train = mnist_like[:2]
    class_weight = {i: 1.0 for i in range(10)}
    class_weight[5] = 2.0
    ours, theirs = _pair(guide.get_compiled_model)
    _assert_same_history(*_fit_both(ours, theirs, x_train, y_train, class_weight=class_weight, batch_size=64,
                                    epochs=1))
    _assert_same_weights(ours, theirs)

    sample_weight = numpy.ones(shape=(len(y_train),))
    sample_weight[y_train == 5] = 2.0
    ours, theirs = _pair(guide.get_compiled_model)
    initial = theirs.get_weights()
    _assert_same_history(*_fit_both(ours, theirs, x_train, y_train, sample_weight=sample_weight, batch_size=64,
                                    epochs=1))
    _assert_same_weights(ours, theirs)
    weighted = ours.get_weights()

    # a dataset yielding (inputs, targets, sample weights) trains the same
    ours, theirs = _pair(guide.get_compiled_model)
    for model in (ours, theirs):
        model.set_weights(initial)
    fits = [model.fit(guide.batches_class(lib)((x_train, y_train, sample_weight), 64), epochs=1, verbose=0,
                      shuffle=False) for model, lib in ((ours, gpu_dl), (theirs, keras))]
    _assert_same_history(*fits)
    _assert_same_weights(ours, theirs)
    for a, b in zip(ours.get_weights(), weighted):
        numpy.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


@pytest.fixture
def multi_io_data():
    rng = numpy.random.default_rng(11)
    return (rng.random((40, 32, 32, 3)).astype("float32"), rng.random((40, 20, 10)).astype("float32"),
            rng.random((40, 1)).astype("float32"), rng.random((40, 5)).astype("float32"))


def _assert_same_summary_rows(ours, theirs, monkeypatch):
    """The same summary rows, where Keras cut a "Connected to" entry short with "…" in the middle of a cell (its
    column has a width of its own) each of its pieces in ours."""
    from keras_steps import summary_rows
    (ours_rows, *ours_totals), (theirs_rows, *theirs_totals) = \
        summary_rows(ours, monkeypatch), summary_rows(theirs, monkeypatch)
    assert ours_totals == theirs_totals and len(ours_rows) == len(theirs_rows)
    for mine, keras_row in zip(ours_rows, theirs_rows):
        assert mine[:3] == keras_row[:3]
        assert all(piece.strip(" ,") in mine[3] for piece in keras_row[3].split("…")), (mine, keras_row)


def test_the_multi_input_multi_output_model_under_each_compile(multi_io_data, monkeypatch):
    img_data, ts_data, score_targets, class_targets = multi_io_data
    ours, theirs = _pair(guide.multi_io_model)
    _assert_same_summary_rows(ours, theirs, monkeypatch)
    initial = theirs.get_weights()
    for ours_kwargs, theirs_kwargs in zip(guide.multi_io_compiles(gpu_dl), guide.multi_io_compiles(keras)):
        if isinstance(ours_kwargs["loss"], dict) and len(ours_kwargs["loss"]) == 1:
            # The guide's dict leaving out an output: Keras 3.15 refuses it at fit (a model of a list of outputs
            # needs every key), gpu_dl at compile, saying so.
            theirs.compile(optimizer=keras.optimizers.RMSprop(1e-3), **theirs_kwargs)
            with pytest.raises(ValueError, match=r"Expected keys \['score_output', 'class_output'\] in loss dict"):
                theirs.fit([img_data, ts_data], {"class_output": class_targets}, verbose=0)
            with pytest.raises(ValueError, match="needs an entry for every output.*give None for an output"):
                ours.compile(optimizer=gpu_dl.optimizers.RMSprop(1e-3), **ours_kwargs)
            continue
        for model, kwargs, lib in ((ours, ours_kwargs, gpu_dl), (theirs, theirs_kwargs, keras)):
            model.set_weights(initial)
            model.compile(optimizer=lib.optimizers.RMSprop(1e-3), **kwargs)
        # a loss for the second output only: the targets still have one entry per output, as in Keras
        y = [score_targets, class_targets]
        histories = _fit_both(ours, theirs, [img_data, ts_data], y, batch_size=16, epochs=1)
        _assert_same_history(*histories, rtol=1e-4)
        _assert_same_weights(ours, theirs, rtol=1e-3, atol=1e-5)

    # fit on lists, then on dicts, then on a dataset of dicts
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        model.set_weights(initial)
        model.compile(optimizer=lib.optimizers.RMSprop(1e-3),
                      loss=[lib.losses.MeanSquaredError(), lib.losses.CategoricalCrossentropy()])
    _assert_same_history(*_fit_both(ours, theirs, [img_data, ts_data], [score_targets, class_targets],
                                    batch_size=32, epochs=1), rtol=1e-4)
    histories = _fit_both(ours, theirs, {"img_input": img_data, "ts_input": ts_data},
                          {"score_output": score_targets, "class_output": class_targets}, batch_size=32, epochs=1)
    _assert_same_history(*histories, rtol=1e-4)
    # as in Keras, the History of a model keeps the keys of its earlier fits (the metrics compiled before)
    assert {"class_output_loss", "loss", "score_output_loss"} < set(histories[0].history)
    fits = [model.fit(guide.batches_class(lib)(({"img_input": img_data, "ts_input": ts_data},
                                                {"score_output": score_targets, "class_output": class_targets}),
                                               16), epochs=1, verbose=0, shuffle=False)
            for model, lib in ((ours, gpu_dl), (theirs, keras))]
    _assert_same_history(*fits, rtol=1e-4)
    _assert_same_weights(ours, theirs, rtol=1e-3, atol=1e-5)


def test_early_stopping_and_a_callback_of_ones_own(mnist_like, capsys):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_compiled_model)
    callbacks = {lib: [lib.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-2, patience=2, verbose=1),
                       guide.loss_history_class(lib)()] for lib in (gpu_dl, keras)}
    histories, printed = [], []
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        capsys.readouterr()
        histories.append(model.fit(x_train, y_train, epochs=20, batch_size=16, callbacks=callbacks[lib],
                                   validation_split=0.2, verbose=0, shuffle=False))
        printed.append(capsys.readouterr().out)
    assert printed[0] == printed[1] and "early stopping" in printed[0]
    _assert_same_history(*histories, rtol=1e-4)
    assert len(histories[0].history["loss"]) < 20           # stopped early, at the same epoch as Keras
    assert callbacks[gpu_dl][0].stopped_epoch == callbacks[keras][0].stopped_epoch
    ours_losses, theirs_losses = callbacks[gpu_dl][1].per_batch_losses, callbacks[keras][1].per_batch_losses
    assert len(ours_losses) == len(theirs_losses) == 6 * len(histories[0].history["loss"])
    numpy.testing.assert_allclose(numpy.asarray(ours_losses, "float64"), numpy.asarray(theirs_losses, "float64"),
                                  rtol=1e-4)
    _assert_same_weights(ours, theirs, rtol=1e-3, atol=1e-5)


def test_checkpoints_of_the_best_model_and_restoring_the_latest(mnist_like, tmp_path, capsys):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_compiled_model)
    printed = []
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        where = tmp_path / lib.__name__
        where.mkdir()
        callbacks = [lib.callbacks.ModelCheckpoint(filepath=str(where / "mymodel_{epoch}.keras"),
                                                   save_best_only=True, monitor="val_loss", verbose=1)]
        capsys.readouterr()
        model.fit(x_train, y_train, epochs=2, batch_size=64, callbacks=callbacks, validation_split=0.2,
                  verbose=0, shuffle=False)
        printed.append(capsys.readouterr().out.replace(str(where), "<dir>"))
    # the same lines ("Epoch 1: val_loss improved from None to ..., saving model to <dir>/mymodel_1.keras", ...)
    assert printed[0] == printed[1] and "saving model to <dir>/mymodel_1.keras" in printed[0]
    assert sorted(os.listdir(tmp_path / "gpu_dl")) == sorted(os.listdir(tmp_path / "keras"))
    for name in os.listdir(tmp_path / "keras"):
        # each library reads the other's checkpoint to the same predictions
        ours_read_by_keras = keras.models.load_model(tmp_path / "gpu_dl" / name)
        keras_read_by_ours = gpu_dl.models.load_model(tmp_path / "keras" / name)
        numpy.testing.assert_allclose(ours_read_by_keras.predict(x_train[:5], verbose=0),
                                      keras_read_by_ours.predict(x_train[:5], verbose=0), rtol=1e-4, atol=1e-6)

    # fault tolerance: a fresh model, checkpoints every 3 batches named by the loss, then the latest restored
    models = {}
    for lib in (gpu_dl, keras):
        checkpoint_dir = tmp_path / f"ckpt_{lib.__name__}"
        checkpoint_dir.mkdir()
        model, restored = guide.make_or_restore_model(lib, checkpoint_dir, lambda: guide.get_compiled_model(lib))
        assert restored is None
        models[lib] = model
    models[gpu_dl].set_weights(models[keras].get_weights())
    for lib, model in models.items():
        checkpoint_dir = tmp_path / f"ckpt_{lib.__name__}"
        callbacks = [lib.callbacks.ModelCheckpoint(filepath=str(checkpoint_dir / "ckpt-loss={loss:.2f}.keras"),
                                                   save_freq=3)]
        model.fit(x_train, y_train, epochs=1, batch_size=16, callbacks=callbacks, verbose=0, shuffle=False)
    assert sorted(os.listdir(tmp_path / "ckpt_gpu_dl")) == sorted(os.listdir(tmp_path / "ckpt_keras"))
    ours_restored, ours_path = guide.make_or_restore_model(gpu_dl, tmp_path / "ckpt_keras", None)
    theirs_restored, theirs_path = guide.make_or_restore_model(keras, tmp_path / "ckpt_keras", None)
    assert ours_path == theirs_path
    _assert_same_weights(ours_restored, theirs_restored, rtol=0, atol=0)
    # the restored model goes on training as Keras's does, its optimizer state included
    _assert_same_history(*_fit_both(ours_restored, theirs_restored, x_train, y_train, batch_size=16, epochs=1),
                         rtol=1e-4)


def test_a_learning_rate_schedule_and_reduce_on_plateau(mnist_like):
    x_train, y_train = mnist_like[:2]
    ours, theirs = _pair(guide.get_uncompiled_model)
    for model, lib in ((ours, gpu_dl), (theirs, keras)):
        # a fast decay, so that the few steps here cross its staircase
        optimizer = guide.exponential_decay_rmsprop(lib, initial_learning_rate=0.002, decay_steps=4)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      metrics=["sparse_categorical_accuracy"])
    _assert_same_history(*_fit_both(ours, theirs, x_train, y_train, batch_size=16, epochs=2), rtol=1e-4)
    _assert_same_weights(ours, theirs, rtol=1e-3, atol=1e-5)
    # 16 steps: four stairs down
    for model in (ours, theirs):
        assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.002 * 0.96 ** 4,
                                                                                                 rel=1e-6)
    for lib in (gpu_dl, keras):
        # the guide's schedule: a staircase of 0.96 every 100000 steps from 0.1, read by the optimizer's
        # learning_rate at its current step
        assert float(lib.ops.convert_to_numpy(guide.exponential_decay_rmsprop(lib).learning_rate)) == \
            pytest.approx(0.1, rel=1e-6)
        schedule = lib.optimizers.schedules.ExponentialDecay(0.1, decay_steps=100000, decay_rate=0.96,
                                                             staircase=True)
        assert float(lib.ops.convert_to_numpy(schedule(250000))) == pytest.approx(0.1 * 0.96 ** 2, rel=1e-6)

    ours, theirs = _pair(guide.get_compiled_model)
    callbacks = {lib: [lib.callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, min_delta=1.0)]
                 for lib in (gpu_dl, keras)}
    histories = [model.fit(x_train, y_train, epochs=3, batch_size=32, validation_split=0.25, verbose=0,
                           shuffle=False, callbacks=callbacks[lib])
                 for model, lib in ((ours, gpu_dl), (theirs, keras))]
    _assert_same_history(*histories, rtol=1e-4)
    assert histories[0].history["learning_rate"][-1] < histories[0].history["learning_rate"][0]
