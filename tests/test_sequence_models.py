"""Recurrent models on real and synthetic sequences: the digits read row by row, and a windowed
sine/cosine series forecast far better than the naive last-value forecast."""
import numpy
import pytest

from gpu_dl import Sequential, backend, data, layers, optimizers


@pytest.mark.slow
def test_lstm_reads_digits_row_by_row_to_95_percent(xp):
    backend.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = data.load_digits(image_shape=True)
    x_train, x_test = x_train.reshape(-1, 8, 8), x_test.reshape(-1, 8, 8)   # 8 steps of 8 features
    model = Sequential([layers.Input((8, 8)), layers.LSTM(64), layers.Dense(10, activation="softmax")])
    model.compile(optimizer=optimizers.Adam(0.005), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=20, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    assert accuracy >= 0.95, f"test accuracy {accuracy:.4f}"


def sine_cosine_series():
    """A two-channel series: sine and cosine of one phase, the sine with a slow drift."""
    t = numpy.arange(1600, dtype="float32")
    series = numpy.stack([numpy.sin(0.13 * t) + 0.001 * t, numpy.cos(0.13 * t)], axis=1).astype("float32")
    series[:, 0] -= series[:, 0].mean()
    return series


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_windowed_series_forecast_beats_naive_by_far(xp, kind):
    """Windows of 24 frames, each labelled with the sine's next value (Keras's data[:-L] / targets[L:])."""
    backend.set_random_seed(1)
    series, length = sine_cosine_series(), 24
    split = 1280
    train = data.timeseries_dataset_from_array(series[:split - length], series[length:split, 0],
                                               sequence_length=length, batch_size=32, shuffle=True, seed=0)
    test = data.timeseries_dataset_from_array(series[split:-length], series[split + length:, 0],
                                              sequence_length=length, batch_size=32)
    model = Sequential([layers.Input((length, 2)), getattr(layers, kind)(16), layers.Dense(1)])
    model.compile(optimizer=optimizers.Adam(0.01), loss="mse")
    model.fit(train, epochs=30, verbose=0)
    x_test, y_test = test.as_arrays()
    assert x_test.shape == (len(series) - split - 2 * length + 1, length, 2)
    forecast = backend.to_numpy(model.predict(x_test, verbose=0))[:, 0]
    model_mse = float(numpy.mean((forecast - y_test) ** 2))
    naive_mse = float(numpy.mean((x_test[:, -1, 0] - y_test) ** 2))   # tomorrow = today
    assert model_mse < naive_mse / 10, f"{kind}: model MSE {model_mse:.2e}, naive {naive_mse:.2e}"
