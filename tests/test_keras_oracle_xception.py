"""gpu_dl.applications.Xception against Keras 3's keras.applications.Xception (where Keras is installed): the
same layers, configs and weights; the same predictions from Keras's weights and files. Inputs are 71x71, the
smallest Xception takes, to keep the file fast."""
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
pytest.importorskip("h5py")

import gpu_dl  # noqa: E402
from gpu_dl import applications  # noqa: E402
from gpu_dl.models import load_model  # noqa: E402

from applications_oracle import check_family, check_imagenet_file, check_preprocessing  # noqa: E402
from keras_steps import assert_training_steps_match  # noqa: E402


@pytest.mark.parametrize("kwargs", [dict(include_top=True, input_shape=(71, 71, 3), classes=5),
                                    dict(include_top=False, input_shape=(75, 71, 3), pooling="avg")],
                         ids=["top", "notop_avg"])
def test_xception_matches_keras(kwargs, rng, tmp_path):
    check_family(keras, applications, "Xception", kwargs, rng, tmp_path, load_model)


def test_xception_imagenet_file_and_preprocessing(rng, tmp_path, monkeypatch):
    check_imagenet_file(keras, applications, "Xception", dict(include_top=False, input_shape=(71, 71, 3),
                                                              pooling="max"),
                        "xception_weights_tf_dim_ordering_tf_kernels_notop.h5", rng, tmp_path, monkeypatch)
    assert applications.xception.Xception is applications.Xception
    check_preprocessing(applications.xception, keras.applications.xception, rng)



def test_transfer_learning_guide_model_trains_as_in_keras(rng):
    """The model of Keras's transfer-learning guide (a frozen Xception called in inference mode under a new
    head, here without its Dropout, whose random masks differ between the libraries) trains the same steps."""
    def guide_model(lib, apps):
        base = apps.Xception(weights=None, input_shape=(71, 71, 3), include_top=False)
        base.trainable = False
        inputs = lib.Input(shape=(71, 71, 3))
        x = lib.layers.Rescaling(scale=1 / 127.5, offset=-1)(inputs)
        x = base(x, training=False)
        x = lib.layers.GlobalAveragePooling2D()(x)
        return lib.Model(inputs, lib.layers.Dense(1)(x))

    ours, theirs = guide_model(gpu_dl, applications), guide_model(keras, keras.applications)
    assert len(ours.trainable_weights) == len(theirs.trainable_weights) == 2
    assert_training_steps_match(keras, ours, theirs, rng, (71, 71, 3), classes=2, batch=2, steps=2,
                                loss=gpu_dl.losses.BinaryCrossentropy(from_logits=True),
                                keras_loss=keras.losses.BinaryCrossentropy(from_logits=True),
                                targets=lambda r, b: r.integers(0, 2, (b, 1)).astype("float32"))
