"""A tf.data.Dataset as the input of fit/evaluate/predict (skipped where TensorFlow is missing): batches of (x,),
(x, y), (x, y, sample_weight) and dicts give what the same arrays give batch by batch; repeat() with
steps_per_epoch; a data set that ends early; its cardinality for the progress bar; validation data; class
weights; string inputs for the layers that read text; ragged and sparse tensors refused; and Keras 3 (its torch
backend, which takes a tf.data.Dataset too) trains the same weights on the same data set.

The same checks run without TensorFlow on stand-ins in test_foreign_dataset_stand_ins.py."""
import numpy
import pytest

tf = pytest.importorskip("tensorflow")

import foreign_dataset_cases as cases  # noqa: E402
import gpu_dl  # noqa: E402
from gpu_dl import layers  # noqa: E402


def make(parts, batch_size, cardinality="known"):
    """The batches of ``parts`` as tf.data makes them; an unknown cardinality through filter(), an infinite one
    through repeat()."""
    data = tf.data.Dataset.from_tensor_slices(parts).batch(batch_size)
    if cardinality == "unknown":
        data = data.filter(lambda *_: True)
    elif cardinality == "infinite":
        data = data.repeat()
    return data


@pytest.mark.parametrize("with_weights", [False, True], ids=["x_y", "x_y_sample_weight"])
def test_fit_evaluate_predict_equal_the_same_arrays(with_weights):
    cases.fit_evaluate_predict_equal_the_same_arrays(make, with_weights)


def test_repeat_with_steps_per_epoch():
    cases.endless_with_steps(make)


def test_data_set_that_ends_before_steps_per_epoch():
    cases.ends_early(make)


def test_cardinality_gives_the_progress_bar_its_steps():
    assert int(make((numpy.zeros(3),), 2, "unknown").cardinality()) == tf.data.UNKNOWN_CARDINALITY
    cases.cardinality_for_the_progress_bar(make)


def test_dicts_of_inputs():
    cases.dicts_of_inputs(make)


def test_tuples_and_dicts_of_targets():
    cases.tuples_and_dicts_of_targets(make)


def test_validation_data_and_validation_steps():
    cases.validation_data_and_steps(make)


def test_class_weight():
    cases.class_weight(make)


def test_refusals():
    cases.refusals(make)



def test_an_unbatched_data_set_gets_a_hint_to_batch_it():
    cases.unbatched_data_sets_get_a_hint(make, tf.data.Dataset.from_tensor_slices, "tf.data.Dataset")

def test_ragged_and_sparse_tensors_are_refused():
    ragged = tf.data.Dataset.from_tensor_slices((tf.ragged.constant([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0]]),
                                                 [0, 1])).batch(2)
    with pytest.raises(TypeError, match=r"Batch 0 of `x`: a batch holds a tf.RaggedTensor.*to_tensor\(\)"):
        cases.quiet_fit(cases.classifier(), ragged)
    sparse = tf.data.Dataset.from_tensors((tf.sparse.from_dense(numpy.eye(2, 4, dtype="float32")), [0, 1]))
    with pytest.raises(TypeError, match=r"Batch 0 of `x`: a batch holds a tf.SparseTensor.*tf.sparse.to_dense"):
        cases.classifier().evaluate(sparse, verbose=0)


def test_string_inputs_for_text_vectorization_and_string_lookup():
    """tf.string batches reach an input of dtype "string" (as bytes), as the same texts as arrays."""
    texts = numpy.array([["the cat sat"], ["a dog ran"], ["the dog sat"], ["a cat ran"], ["a cat"]])
    y = numpy.array([0.0, 1.0, 0.0, 1.0, 1.0], "float32")

    def model():
        gpu_dl.utils.set_random_seed(0)
        vectorize = layers.TextVectorization(output_mode="multi_hot", vocabulary=["the", "a", "cat", "dog", "sat"])
        inputs = gpu_dl.Input(shape=(1,), dtype="string")
        m = gpu_dl.Model(inputs, layers.Dense(1)(vectorize(inputs)))
        m.compile(optimizer="sgd", loss="mse")
        return m
    ours, expected = model(), model()
    assert cases.quiet_fit(ours, make((texts, y), 2), epochs=2) == \
        expected.fit(texts, y, batch_size=2, epochs=2, shuffle=False, verbose=0).history
    numpy.testing.assert_array_equal(ours.predict(make(texts, 2), verbose=0),
                                     expected.predict(texts, batch_size=2, verbose=0))
    inputs = gpu_dl.Input(shape=(1,), dtype="string")
    lookup = gpu_dl.Model(inputs, layers.StringLookup(vocabulary=["cat", "dog"])(inputs))
    numpy.testing.assert_array_equal(lookup.predict(make(numpy.array([["cat"], ["dog"], ["emu"]]), 2), verbose=0),
                                     [[1], [2], [0]])


def test_keras_trains_the_same_weights_on_the_same_data_set():
    """Keras 3 (torch backend) on the same tf.data.Dataset: the same history, weights, evaluation and predictions,
    with repeat() and steps_per_epoch, sample weights, validation data, an unknown cardinality and class
    weights."""
    ours, theirs = cases.keras_pair()
    x, y, sw = cases.arrays()
    xv, yv, _ = cases.arrays(11, seed=5)
    cases.assert_both_fit_alike(ours, theirs, lambda: make((x, y, sw), 5), epochs=2)
    cases.assert_both_fit_alike(ours, theirs, lambda: make((x, y), 5, "infinite"), steps_per_epoch=3, epochs=2,
                                validation_data=make((xv, yv), 3), validation_steps=2)
    cases.assert_both_fit_alike(ours, theirs, lambda: make((x, y), 5, "unknown"), epochs=2,
                                class_weight={0: 0.5, 1: 2.0, 2: 1.0})
    numpy.testing.assert_allclose(ours.evaluate(make((x, y, sw), 5), verbose=0),
                                  theirs.evaluate(make((x, y, sw), 5), verbose=0), rtol=2e-5, atol=1e-6)
    numpy.testing.assert_allclose(ours.predict(make(x, 5), verbose=0), theirs.predict(make(x, 5), verbose=0),
                                  rtol=1e-5, atol=1e-6)
