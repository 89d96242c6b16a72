"""grain data sets as the input of fit/evaluate/predict (skipped where grain is missing): a ``MapDataset``, an
``IterDataset`` and a ``DataLoader`` of batches give what the same arrays give batch by batch, each pass ending
where the data set does (Keras knows no length for them either, and warns that the input ran out); what Keras
refuses beside them is refused; and Keras 3 (its torch backend) trains the same weights on the same data set. A
stand-in runs without grain in test_foreign_dataset_stand_ins.py."""
import warnings

import numpy
import pytest

grain = pytest.importorskip("grain")

import foreign_dataset_cases as cases  # noqa: E402


def batched(x, y=None, sw=None, batch_size=5):
    """A MapDataset of the samples' tuples, batched."""
    parts = [p for p in (x, y, sw) if p is not None]
    return grain.MapDataset.source(list(range(len(x)))).map(lambda i: tuple(p[i] for p in parts)).batch(batch_size)


def fit_quietly(model, data, **kwargs):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Your input ran out of data")
        warnings.filterwarnings("ignore", "`shuffle=True`")
        return model.fit(data, verbose=0, **kwargs).history


def test_map_dataset_trains_evaluates_and_predicts_as_the_same_arrays():
    x, y, sw = cases.arrays()
    data = batched(x, y, sw)
    ours, expected = cases.classifier(), cases.classifier()
    with pytest.warns(UserWarning, match="Your input ran out of data"):
        history = ours.fit(data, epochs=2, verbose=0, shuffle=False).history
    assert history == expected.fit(x, y, sample_weight=sw, batch_size=5, epochs=2, shuffle=False, verbose=0).history
    cases.assert_same_weights(ours, expected)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Your input ran out of data")
        assert ours.evaluate(data, verbose=0) == expected.evaluate(x, y, sample_weight=sw, batch_size=5, verbose=0)
        numpy.testing.assert_array_equal(ours.predict(data.to_iter_dataset(), verbose=0),
                                         expected.predict(x, batch_size=5, verbose=0))


def test_data_loader_and_steps_per_epoch():
    """A grain DataLoader; with steps_per_epoch an epoch goes on with the pass under way."""
    x, y, _ = cases.arrays()
    loader = grain.DataLoader(data_source=[(x[i], y[i]) for i in range(len(x))],
                              sampler=grain.samplers.IndexSampler(len(x), num_epochs=1, shuffle=False, seed=0),
                              operations=[grain.transforms.Batch(5)], worker_count=0)
    ours = cases.classifier()
    fit_quietly(ours, loader, steps_per_epoch=2, epochs=2)
    cases.assert_same_weights(ours, cases.trained_on_batches([(x[c], y[c]) for c in
                                                              (slice(0, 5), slice(5, 10), slice(10, 15),
                                                               slice(15, 20))]))


def test_refusals():
    x, y, _ = cases.arrays()
    with pytest.raises(ValueError, match="`class_weight` is not supported for grain dataset inputs"):
        fit_quietly(cases.classifier(), batched(x, y), class_weight={0: 1.0, 1: 2.0, 2: 1.0})
    with pytest.raises(ValueError, match="`y` should not be passed"):
        cases.classifier().fit(batched(x, y), y, verbose=0)


def test_keras_trains_the_same_weights_on_the_same_data_set():
    """Keras 3 (torch backend) on the same grain MapDataset: the same history and weights, with sample weights and
    with steps_per_epoch."""
    ours, theirs = cases.keras_pair()
    x, y, sw = cases.arrays()
    cases.assert_both_fit_alike(ours, theirs, lambda: batched(x, y, sw), epochs=2)
    cases.assert_both_fit_alike(ours, theirs, lambda: batched(x, y, sw), epochs=3, steps_per_epoch=2)
