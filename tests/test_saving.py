"""Saving and loading: `.keras` archives, `.weights.h5` files, atomic writes, bad files, Keras's own files,
and ModelCheckpoint."""
import json
import os
import subprocess
import sys
import textwrap
import time
import warnings
import zipfile

import h5py
import numpy
import pytest

import gpu_dl
from gpu_dl import backend, callbacks, layers, optimizers
from gpu_dl.models import Sequential, load_model
from peak_memory import peak_bytes

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mlp(seed=0, optimizer="adam"):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.25),
                        layers.Dense(3, activation="softmax")])
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def cnn(seed=0):
    backend.set_random_seed(seed)
    model = Sequential([
        layers.Input((9, 9, 2)), layers.ZeroPadding2D(1), layers.Conv2D(4, 3, activation="relu", padding="same"),
        layers.MaxPooling2D(), layers.AveragePooling2D(2, strides=1), layers.Conv2D(3, 2), layers.LeakyReLU(),
        layers.GlobalAveragePooling2D(), layers.Dense(3), layers.Activation("softmax"),
    ])
    model.compile(optimizer=optimizers.SGD(0.05, momentum=0.9), loss="sparse_categorical_crossentropy")
    return model


def rnn(seed=0):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((7, 3)), layers.LSTM(5, return_sequences=True),
                        layers.Bidirectional(layers.GRU(3, return_sequences=True)), layers.SimpleRNN(4),
                        layers.Dense(2)])
    model.compile(optimizer=optimizers.RMSprop(0.01, momentum=0.5), loss="mse", metrics=["mae"])
    return model


def activated(seed=0):
    backend.set_random_seed(seed)
    model = Sequential([layers.Input((5,)), layers.Dense(8, activation="gelu"), layers.Activation("mish"),
                        layers.Dense(6, activation="soft_shrink"), layers.Dense(2, activation="sparse_plus")])
    model.compile(optimizer="adam", loss="mse")
    return model


def data_for(model, n=24, seed=1):
    rng = numpy.random.default_rng(seed)
    x = rng.standard_normal((n,) + tuple(model.input_spec[1:])).astype("float32")
    out = model.output_shape[-1]
    y = rng.standard_normal((n, out)).astype("float32") if model.loss.name == "mse" else rng.integers(0, out, n)
    return x, y


def assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for u, v in zip(wa, wb):
        numpy.testing.assert_array_equal(u, v)


def assert_same_optimizer_state(a, b):
    assert type(a) is type(b)
    assert a.iterations == b.iterations
    config_a, config_b = a.get_config(), b.get_config()
    config_a.pop("name"), config_b.pop("name")
    assert config_a == config_b
    assert len(a.variables) == len(b.variables)
    for u, v in zip(a.variables, b.variables):
        numpy.testing.assert_array_equal(backend.to_numpy(u), backend.to_numpy(v))


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("build", [mlp, cnn, rnn], ids=["mlp", "cnn", "rnn"])
def test_round_trip_keeps_architecture_weights_and_optimizer(build, tmp_path, xp):
    model = build()
    x, y = data_for(model)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    assert [type(l) for l in loaded.layers] == [type(l) for l in model.layers]
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    assert loaded.name == model.name and loaded.input_spec == model.input_spec
    assert [l.get_config() for l in loaded.layers] == [l.get_config() for l in model.layers]
    assert_same_weights(model, loaded)
    numpy.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))
    assert loaded.compiled and loaded.loss.get_config() == model.loss.get_config()
    assert_same_optimizer_state(model.optimizer, loaded.optimizer)
    assert loaded.optimizer.name == model.optimizer.name
    # The file is a Keras 3 archive.
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["config.json", "metadata.json", "model.weights.h5"]
        config = json.loads(archive.read("config.json"))
        metadata = json.loads(archive.read("metadata.json"))
    assert config["module"] == "keras" and config["class_name"] == "Sequential"
    assert config["build_config"] == {"input_shape": [None] + list(model.input_spec[1:])}
    assert [e["class_name"] for e in config["config"]["layers"]] == \
        ["InputLayer"] + [type(l).__name__ for l in model.layers]
    assert all(e["module"] == "keras.layers" and e["registered_name"] is None for e in config["config"]["layers"])
    assert set(config["compile_config"]) >= {"optimizer", "loss", "metrics"}
    assert "keras_version" in metadata and "date_saved" in metadata


def test_weights_file_layout_is_keras_3s(tmp_path):
    model = rnn()
    x, y = data_for(model)
    model.fit(x, y, epochs=1, verbose=0)
    model.save_weights(tmp_path / "w.weights.h5")
    entries = {}
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        f.visititems(lambda name, obj: entries.__setitem__(name, getattr(obj, "shape", None)))
        assert f["layers/lstm/vars"].attrs["name"] == model.layers[0].name
    assert entries["layers/lstm/cell/vars/0"] == (3, 20)
    assert entries["layers/lstm/cell/vars/1"] == (5, 20)
    assert entries["layers/lstm/cell/vars/2"] == (20,)
    assert entries["layers/bidirectional/forward_layer/cell/vars/2"] == (2, 9)
    assert entries["layers/bidirectional/backward_layer/cell/vars/0"] == (5, 9)
    assert entries["layers/simple_rnn/cell/vars/1"] == (4, 4)
    assert entries["layers/dense/vars/0"] == (4, 2)
    assert entries["optimizer/vars/0"] == ()             # iterations
    assert entries["optimizer/vars/1"] == ()             # learning rate
    n_slots = 2 * len(model.trainable_weights)           # RMSprop with momentum: velocity and momentum
    assert sum(1 for k in entries if k.startswith("optimizer/vars/")) == 2 + n_slots


def test_layer_groups_are_numbered_per_class_like_keras(tmp_path):
    model = Sequential([layers.Input((4,)), layers.Dense(3, name="first"), layers.Dense(2, name="second"),
                        layers.Dropout(0.1, name="drop")])
    model.save_weights(tmp_path / "w.weights.h5")
    with h5py.File(tmp_path / "w.weights.h5", "r") as f:
        assert sorted(f["layers"].keys()) == ["dense", "dense_1", "dropout"]
        assert f["layers/dense_1/vars"].attrs["name"] == "second"
        assert f["vars"].attrs["name"] == model.name


def test_load_model_without_compile(tmp_path):
    model = mlp()
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras", compile=False)
    assert not loaded.compiled
    assert_same_weights(model, loaded)
    assert gpu_dl.models.load_model is load_model and gpu_dl.load_model is load_model


def test_unbuilt_and_uncompiled_models_round_trip(tmp_path):
    model = Sequential([layers.Dense(3), layers.Dense(2)])
    model.save(tmp_path / "unbuilt.keras")
    loaded = load_model(tmp_path / "unbuilt.keras")
    assert not loaded.built and not loaded.compiled and len(loaded.layers) == 2
    with pytest.raises(ValueError, match="not yet been built"):
        model.save_weights(tmp_path / "w.weights.h5")


# ------------------------------------------------------------------- resuming
def _fit(model, x, y, epochs):
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0)


@pytest.mark.parametrize("optimizer", ["adam", "nadam", "sgd", "muon", "schedulefreeadamw"])
def test_resuming_from_a_saved_model_equals_uninterrupted_training(optimizer, tmp_path):
    def build():
        backend.set_random_seed(3)
        model = Sequential([layers.Input((6,)), layers.Dense(8, activation="tanh"),
                            layers.Dense(3, activation="softmax")])
        opt = optimizers.SGD(0.1, momentum=0.9) if optimizer == "sgd" else optimizers.get(optimizer)
        model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    rng = numpy.random.default_rng(0)
    x = rng.standard_normal((64, 6)).astype("float32")
    y = rng.integers(0, 3, 64)
    straight = build()
    _fit(straight, x, y, 4)

    first = build()
    _fit(first, x, y, 2)
    first.save(tmp_path / "half.keras")
    resumed = load_model(tmp_path / "half.keras")
    assert resumed.optimizer.iterations == 8
    _fit(resumed, x, y, 2)
    assert_same_weights(straight, resumed)
    assert_same_optimizer_state(straight.optimizer, resumed.optimizer)

    # The same through save_weights / load_weights into a fresh compiled model.
    first.save_weights(tmp_path / "half.weights.h5")
    fresh = build()
    fresh.load_weights(tmp_path / "half.weights.h5")
    assert fresh.optimizer.iterations == 8
    _fit(fresh, x, y, 2)
    assert_same_weights(straight, fresh)


def test_load_weights_accepts_a_keras_archive(tmp_path):
    model = mlp(seed=1)
    model.save(tmp_path / "m.keras")
    other = mlp(seed=2)
    other.load_weights(tmp_path / "m.keras")
    assert_same_weights(model, other)


def test_suffix_rules(tmp_path):
    model = mlp()
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        model.save_weights(tmp_path / "w.h5")
    with pytest.raises(ValueError, match=r"\.keras"):
        model.save(tmp_path / "m.zip")
    with pytest.raises(ValueError, match="legacy"):
        model.save(tmp_path / "m.h5")
    with pytest.raises(ValueError, match="File format not supported"):
        model.load_weights(tmp_path / "w.bin")
    with pytest.raises(ValueError, match="load_weights"):
        load_model(tmp_path / "w.weights.h5")
    model.save(tmp_path / "m.keras")
    with pytest.raises(FileExistsError):
        model.save(tmp_path / "m.keras", overwrite=False)
    for call in (lambda: model.save(bytes(tmp_path / "b.keras")), lambda: load_model(bytes(tmp_path / "m.keras")),
                 lambda: model.save_weights(42)):
        with pytest.raises(TypeError, match=r"must be a path \(str or os.PathLike\)"):
            call()


def test_keras_2_arguments_keras_3_still_takes(tmp_path):
    model = mlp()
    _fit(model, *data_for(model), 1)
    with pytest.warns(UserWarning, match="include_optimizer=False"):
        model.save(tmp_path / "a.keras", include_optimizer=False)
    assert load_model(tmp_path / "a.keras").optimizer.iterations == model.optimizer.iterations   # as in Keras 3
    with pytest.warns(UserWarning, match="save_format"):
        model.save(tmp_path / "b.keras", save_format="keras")
    assert_same_weights(load_model(tmp_path / "b.keras"), model)
    with pytest.raises(ValueError, match="save_format='tf'.*`.keras`"):
        model.save(tmp_path / "c", save_format="tf")
    with pytest.raises(TypeError, match="signatures"):
        model.save(tmp_path / "d.keras", signatures=None)
    with pytest.raises(ValueError, match="`by_name` applies only to legacy"):
        model.load_weights(tmp_path / "a.keras", by_name=True)
    with pytest.raises(ValueError, match="objects_to_skip"):
        model.load_weights(tmp_path / "a.keras", objects_to_skip=[model.layers[0]])


# ------------------------------------------------------------- atomic writes
_CHILD = """
import os, sys
sys.path.insert(0, {repo!r})
import numpy, h5py, zipfile
from gpu_dl import backend, layers
from gpu_dl.models import Sequential
backend.set_random_seed(99)
model = Sequential([layers.Input((6,)), layers.Dense(8, activation="relu"), layers.Dropout(0.25),
                    layers.Dense(3, activation="softmax")])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
path = {path!r}
mode = {mode!r}
if mode == "h5":
    original = h5py.Group.create_dataset
    calls = [0]
    def create_dataset(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            os._exit(17)          # dies half-way through writing the weights
        return original(self, *args, **kwargs)
    h5py.Group.create_dataset = create_dataset
    model.save_weights(path) if path.endswith(".weights.h5") else model.save(path)
elif mode == "zip":
    original = zipfile.ZipFile.writestr
    def writestr(self, name, data, *args, **kwargs):
        if name == "model.weights.h5":
            self.fp.write(bytes(data)[: len(data) // 2])
            self.fp.flush()
            os._exit(17)          # dies with half an archive on disk
        return original(self, name, data, *args, **kwargs)
    zipfile.ZipFile.writestr = writestr
    model.save(path)
else:
    model.save(path)
    print("saved", flush=True)
    while True:
        model.save(path)
"""


def _child(path, mode):
    code = textwrap.dedent(_CHILD).format(repo=REPO, path=str(path), mode=mode)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("name,mode", [("m.keras", "h5"), ("m.keras", "zip"), ("w.weights.h5", "h5")])
def test_a_crash_during_save_leaves_the_previous_file_intact(name, mode, tmp_path):
    model = mlp(seed=5)
    path = tmp_path / name
    model.save(path) if name.endswith(".keras") else model.save_weights(path)
    before = path.read_bytes()
    child = _child(path, mode)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 17, err
    assert path.read_bytes() == before
    x = numpy.random.default_rng(0).standard_normal((5, 6)).astype("float32")
    if name.endswith(".keras"):
        restored = load_model(path)
    else:
        restored = mlp(seed=6)
        restored.load_weights(path)
    numpy.testing.assert_array_equal(restored.predict(x, verbose=0), model.predict(x, verbose=0))


def test_sigkill_while_saving_repeatedly_leaves_a_loadable_file(tmp_path):
    path = tmp_path / "m.keras"
    child = _child(path, "loop")
    try:
        assert child.stdout.readline().strip() == "saved"
        time.sleep(0.3)
    finally:
        child.kill()
        child.communicate(timeout=60)
    model = load_model(path)
    assert len(model.layers) == 3


# ------------------------------------------------------------------ bad files
def _edit_archive(src, dst, replace=None, drop=()):
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w") as b:
        for name in a.namelist():
            if name in drop:
                continue
            data = a.read(name)
            if replace and name in replace:
                data = replace[name](data)
            b.writestr(name, data)


def _edit_config(fn):
    def edit(data):
        config = json.loads(data)
        fn(config)
        return json.dumps(config).encode()
    return edit


@pytest.fixture
def saved(tmp_path):
    model = mlp()
    path = tmp_path / "good.keras"
    model.save(path)
    return model, path


def test_truncated_archive(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "truncated.keras"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.keras"):
        load_model(bad)


def test_not_a_zip(tmp_path):
    bad = tmp_path / "text.keras"
    bad.write_text("hello")
    with pytest.raises(ValueError, match=r"text.keras is not a `\.keras` zip archive"):
        load_model(bad)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.keras")


def test_archive_without_config(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "noconfig.keras"
    _edit_archive(path, bad, drop=("config.json",))
    with pytest.raises(ValueError, match="noconfig.keras.*no 'config.json'"):
        load_model(bad)


def test_archive_without_weights(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "noweights.keras"
    _edit_archive(path, bad, drop=("model.weights.h5",))
    with pytest.raises(ValueError, match="no 'model.weights.h5'"):
        load_model(bad)


def test_config_that_is_not_json(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "badjson.keras"
    _edit_archive(path, bad, replace={"config.json": lambda d: d[:-10]})
    with pytest.raises(ValueError, match="config.json' is not valid JSON"):
        load_model(bad)


@pytest.mark.parametrize("depth", [100_000, 900])
def test_config_nested_too_deeply_is_refused(depth, saved, tmp_path):
    # 100,000 levels overflow the JSON parser's recursion; 900 parse but would overflow the config readers.
    _, path = saved
    bad = tmp_path / "deep.keras"

    def nest(data):
        config = json.loads(data)
        inner = {}
        for _ in range(depth // 2):
            inner = {"class_name": "Foo", "config": inner}
        config["config"]["layers"][-1]["config"]["activation"] = inner
        return json.dumps(config).encode() if depth < 1000 else b"[" * depth + b"]" * depth

    _edit_archive(path, bad, replace={"config.json": nest})
    with pytest.raises(ValueError, match="deep.keras: 'config.json' nests lists and objects more than 100 levels"):
        load_model(bad)
    load_model(path)                                # a real config is far shallower


def test_decompression_bombs_are_refused_before_they_are_read(saved, tmp_path, monkeypatch):
    from gpu_dl.models import saving
    model, path = saved
    monkeypatch.setattr(saving, "_BOMB_FLOOR_BYTES", 2**20)    # Keras's 4 GiB floor, scaled down for the test
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    bomb, deflated = tmp_path / "bomb.keras", tmp_path / "deflated.keras"
    for target, padding in ((bomb, bytes(4 * 2**20)), (deflated, b"")):
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, data in members.items():
                archive.writestr(name, data + padding if name == "model.weights.h5" else data)
    with pytest.raises(ValueError, match=r"bomb.keras: 'model.weights.h5' declares \d+ bytes but stores only"):
        load_model(bomb)
    with pytest.raises(ValueError, match="decompression bomb"):
        model.load_weights(bomb)
    assert_same_weights(load_model(deflated), model)     # a compressed archive of normal size still loads


def test_weights_that_do_not_fit_the_config(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "shapes.keras"

    def more_units(config):
        config["config"]["layers"][3]["config"]["units"] = 4
    _edit_archive(path, bad, replace={"config.json": _edit_config(more_units)})
    with pytest.raises(ValueError, match=r"shapes.keras.*'layers/dense_1/vars'.*\(8, 3\).*\(8, 4\)"):
        load_model(bad)


def test_unknown_class_and_foreign_module_are_refused_without_importing(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "unknown.keras"

    def unknown(config):
        config["config"]["layers"][1]["class_name"] = "MyCustomDense"
    _edit_archive(path, bad, replace={"config.json": _edit_config(unknown)})
    with pytest.raises(ValueError, match="unknown layer class 'MyCustomDense'"):
        load_model(bad)

    def foreign(config):
        config["config"]["layers"][1]["module"] = "gpu_dl_test_never_imported_module"
    _edit_archive(path, bad, replace={"config.json": _edit_config(foreign)})
    with pytest.raises(ValueError, match="names the module 'gpu_dl_test_never_imported_module'"):
        load_model(bad)
    assert "gpu_dl_test_never_imported_module" not in sys.modules

    def os_system(config):
        config["compile_config"]["optimizer"]["module"] = "os"
        config["compile_config"]["optimizer"]["class_name"] = "system"
    _edit_archive(path, bad, replace={"config.json": _edit_config(os_system)})
    with pytest.raises(ValueError, match="names the module 'os'"):
        load_model(bad)
    assert load_model(bad, compile=False).layers   # the architecture itself is fine

    def lambda_code(config):
        config["config"]["layers"][1]["config"]["activation"] = {
            "class_name": "__lambda__", "config": {"code": "ZGVmIGYoKTogcGFzcw==", "defaults": None,
                                                    "closure": None}}
    _edit_archive(path, bad, replace={"config.json": _edit_config(lambda_code)})
    with pytest.raises(ValueError, match="'__lambda__' is not read"):
        load_model(bad)


def test_unsupported_config_keys_name_the_layer_and_key(saved, tmp_path):
    _, path = saved
    bad = tmp_path / "keys.keras"

    def extra_key(config):
        config["config"]["layers"][1]["config"]["ragged"] = True
    _edit_archive(path, bad, replace={"config.json": _edit_config(extra_key)})
    with pytest.raises(ValueError, match=r"layer 'dense\w*' \(Dense\): `ragged=True` is not supported"):
        load_model(bad)

    def strange_key(config):
        config["config"]["layers"][1]["config"]["frobnicate"] = True
    _edit_archive(path, bad, replace={"config.json": _edit_config(strange_key)})
    with pytest.raises(ValueError, match=r"layer 'dense\w*' \(Dense\).*'frobnicate'"):
        load_model(bad)

    def mixed_precision(config):
        config["config"]["layers"][1]["config"]["dtype"] = {
            "module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"},
            "registered_name": None}
    _edit_archive(path, bad, replace={"config.json": _edit_config(mixed_precision)})
    # NumPy and CuPy have no bfloat16: the error names the policy refused and the supported one.
    with pytest.raises(ValueError, match=r"layer 'dense\w*' \(Dense\).*'mixed_bfloat16'.*'mixed_float16'"):
        load_model(bad)


def test_foreign_and_truncated_hdf5(tmp_path):
    model = mlp()
    foreign = tmp_path / "foreign.weights.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = numpy.zeros(3)
    with pytest.raises(ValueError, match="foreign.weights.h5 is an HDF5 file, but not Keras 3 weights"):
        model.load_weights(foreign)
    legacy = tmp_path / "legacy.weights.h5"
    with h5py.File(legacy, "w") as f:
        f.attrs["layer_names"] = [b"dense"]
        f.create_group("dense")
    with pytest.raises(ValueError, match="legacy Keras 2"):
        model.load_weights(legacy)
    good = tmp_path / "good.weights.h5"
    model.save_weights(good)
    truncated = tmp_path / "truncated.weights.h5"
    truncated.write_bytes(good.read_bytes()[:1500])
    with pytest.raises(ValueError, match="truncated.weights.h5"):
        model.load_weights(truncated)
    not_h5 = tmp_path / "text.weights.h5"
    not_h5.write_text("not hdf5")
    with pytest.raises(ValueError, match="text.weights.h5 is not an HDF5 file"):
        model.load_weights(not_h5)


def test_links_to_other_files_are_refused(tmp_path):
    model = mlp()
    path = tmp_path / "linked.weights.h5"
    model.save_weights(path)
    with h5py.File(tmp_path / "elsewhere.h5", "w") as f:
        f.create_group("vars")["0"] = numpy.zeros((6, 8), "float32")
    with h5py.File(path, "a") as f:
        del f["layers/dense"]
        f["layers/dense"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/")
    with pytest.raises(ValueError, match="ExternalLink"):
        model.load_weights(path)


@pytest.mark.parametrize("kind", ["external", "soft", "dataset"])
def test_entries_of_no_layer_are_checked_before_they_are_looked_into(kind, tmp_path):
    # With skip_mismatch, weights of layers the model lacks are skipped; a link among them is still refused,
    # not followed into the file it names.
    model = mlp()
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(tmp_path / "elsewhere.h5", "w") as f:
        f.create_group("vars")["0"] = numpy.zeros((6, 8), "float32")
    with h5py.File(path, "a") as f:
        if kind == "external":
            f["layers/unknown"] = h5py.ExternalLink(str(tmp_path / "elsewhere.h5"), "/")
        elif kind == "soft":
            f["layers/unknown"] = h5py.SoftLink("/layers/dense")
        else:
            f["layers/unknown"] = numpy.zeros(3)
    message = {"external": "'unknown' is a ExternalLink", "soft": "'unknown' is a SoftLink",
               "dataset": "'unknown' should be a group"}[kind]
    before = model.get_weights()
    with pytest.raises(ValueError, match=f"w.weights.h5: entry 'layers': {message}"):
        model.load_weights(path, skip_mismatch=True)
    assert_same_weights_as(model, before)


def assert_same_weights_as(model, arrays):
    for a, b in zip(model.get_weights(), arrays, strict=True):
        numpy.testing.assert_array_equal(a, b)


def test_a_failed_load_weights_changes_nothing(tmp_path):
    source = Sequential([layers.Input((6,)), layers.Dense(8), layers.Dense(4)])
    source.save_weights(tmp_path / "w.weights.h5")
    target = mlp(seed=9)       # same first layer, last layer of 3 units instead of 4
    x = numpy.ones((2, 6), "float32")
    _fit(target, x, numpy.array([0, 1]), 1)
    before = target.get_weights()
    iterations = target.optimizer.iterations
    with pytest.raises(ValueError, match=r"'layers/dense_1/vars'.*\(8, 4\).*\(8, 3\)"):
        target.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(before, target.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    assert target.optimizer.iterations == iterations
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target.load_weights(tmp_path / "w.weights.h5", skip_mismatch=True)
    assert any("Skipped" in str(w.message) for w in caught)
    numpy.testing.assert_array_equal(target.get_weights()[0], source.get_weights()[0])


@pytest.mark.parametrize("optimizer,entry,value,message", [
    ("adam", "1", -1.0, "the learning rate"), ("adam", "1", float("nan"), "the learning rate"),
    ("adam", "0", -5, "the step count"), ("adam", "0", 2.5, "the step count"),
    ("nadam", "-1", float("inf"), "u_product"),
])
def test_bad_optimizer_scalars_change_nothing(optimizer, entry, value, message, tmp_path, xp):
    # The optimizer refuses these values only while it assigns them, which comes after the weights.
    source = mlp(seed=1, optimizer=optimizer)
    _fit(source, *data_for(source), 1)
    path = tmp_path / "w.weights.h5"
    source.save_weights(path)
    with h5py.File(path, "r+") as f:
        group = f["optimizer/vars"]
        key = str(len(group) - 1) if entry == "-1" else entry
        data = numpy.asarray(value, dtype="float64" if isinstance(value, float) else "int64")
        del group[key]
        group.create_dataset(key, data=data)
        del group.attrs["gpu_dl_scalars"]     # as Keras writes it: the datasets alone
    target = mlp(seed=2, optimizer=optimizer)
    _fit(target, *data_for(target, seed=3), 1)
    before, state = target.get_weights(), target.optimizer.state_dict(target.trainable_weights)
    with pytest.raises(ValueError, match=f"w.weights.h5: entry 'optimizer/vars/\\d+' \\({message}"):
        target.load_weights(path)
    for a, b in zip(before, target.get_weights()):
        numpy.testing.assert_array_equal(a, b)
    after = target.optimizer.state_dict(target.trainable_weights)
    assert (after["iterations"], after["learning_rate"], after["extra"]) == \
        (state["iterations"], state["learning_rate"], state["extra"])
    with pytest.raises(ValueError, match=message):
        load_model(_saved_model_with_weights(source, path, tmp_path / "m.keras"))


def _saved_model_with_weights(model, weights_path, path):
    model.save(path)
    _edit_archive(path, path.with_suffix(".edited.keras"),
                  replace={"model.weights.h5": lambda data: weights_path.read_bytes()})
    return path.with_suffix(".edited.keras")


def test_weights_of_the_wrong_size_are_refused_before_they_are_read(tmp_path):
    # A few kilobytes of HDF5 can declare an array of terabytes; its size is checked before its data is read.
    model = Sequential([layers.Input((6,)), layers.Dense(8)])
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "r+") as f:
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=(2**20, 2**20), dtype="float32", chunks=(64, 64))
    assert path.stat().st_size < 2**20
    with pytest.raises(ValueError, match=r"\(1048576, 1048576\).*\(6, 8\)"):
        model.load_weights(path)


def test_a_model_with_more_layers_than_the_file(tmp_path):
    small = Sequential([layers.Input((6,)), layers.Dense(8)])
    small.save_weights(tmp_path / "w.weights.h5")
    big = Sequential([layers.Input((6,)), layers.Dense(8), layers.Dense(3)])
    with pytest.raises(ValueError, match="no entry 'layers/dense_1/vars' for layer"):
        big.load_weights(tmp_path / "w.weights.h5")
    with pytest.raises(ValueError, match=r"weights for layer entries \['dense_1'\]"):
        small.load_weights(_saved_weights(big, tmp_path / "big.weights.h5"))


def _saved_weights(model, path):
    model.save_weights(path)
    return path


@pytest.mark.parametrize("compile_", [True, False])
def test_a_config_declaring_more_weights_than_the_file_holds_is_refused_before_allocating(compile_, saved, tmp_path):
    # 10**5 inputs into 10**6 units: a 400 GB kernel declared by a config of a few bytes.
    _, path = saved
    bad = tmp_path / "huge.keras"

    def huge(config):
        config["config"]["layers"][0]["config"]["batch_shape"] = [None, 10**5]
        config["config"]["layers"][1]["config"]["units"] = 10**6
        config["build_config"]["input_shape"] = config["config"]["build_input_shape"] = [None, 10**5]
    _edit_archive(path, bad, replace={"config.json": _edit_config(huge)})
    raised, peak = peak_bytes(lambda: load_model(bad, compile=compile_))
    assert isinstance(raised, ValueError)
    message = str(raised)
    assert "huge.keras (config.json)" in message and "(100000, 1000000) (400000000000 bytes)" in message
    assert "the archive's model.weights.h5 holds" in message
    assert peak < 2**24
    load_model(path, compile=compile_)          # a real file fits its own weights


def test_an_encrypted_member_is_a_clear_error(saved, tmp_path):
    _, path = saved
    data = bytearray(path.read_bytes())
    central = data.find(b"PK\x01\x02")
    while central >= 0:           # set the "encrypted" flag of every entry in the central directory
        data[central + 8] |= 1
        central = data.find(b"PK\x01\x02", central + 4)
    bad = tmp_path / "encrypted.keras"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="encrypted.keras: cannot read 'config.json' from the archive.*encrypted"):
        load_model(bad)


def test_an_empty_dataspace_is_refused(tmp_path):
    model = mlp()
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars"].create_dataset("1", data=h5py.Empty("f4"))
    with pytest.raises(ValueError, match="entry 'layers/dense/vars/1' has an empty dataspace"):
        model.load_weights(path)


def test_a_deeply_nested_scalars_attribute_is_refused(tmp_path):
    model = mlp()
    x, y = data_for(model)
    model.fit(x, y, epochs=1, verbose=0)
    path = tmp_path / "w.weights.h5"
    model.save_weights(path)
    with h5py.File(path, "a") as f:
        f["optimizer/vars"].attrs["gpu_dl_scalars"] = "[" * 100_000 + "]" * 100_000
    with pytest.raises(ValueError, match="unreadable 'gpu_dl_scalars' attribute"):
        model.load_weights(path)


def _set_build_config(config):
    config["build_config"] = 3


def _null_batch_shape(config):
    config["config"]["layers"][0]["config"]["batch_shape"] = None


def _tuple_compile_config(config):
    config["compile_config"] = {"class_name": "__tuple__", "config": {"value": [1]}}


def _tuple_model(config):
    config.clear()
    config.update({"class_name": "__tuple__", "config": {"value": [1, 2]}})


def _bad_numpy_dtype(config):
    config["config"]["layers"][1]["config"]["units"] = {
        "class_name": "__numpy__", "config": {"value": [1], "dtype": "(1000000000,)f8"}}


def _too_many_layers(config):
    from gpu_dl.models.keras_config import MAX_LAYERS
    config["config"]["layers"] += [{"module": "keras.layers", "class_name": "Dropout", "config": {"rate": 0.1}}
                                   ] * MAX_LAYERS


@pytest.mark.parametrize("edit,message", [
    (_set_build_config, "'build_config' must be an object"),
    (_null_batch_shape, "`batch_shape` must be a list of integers or nulls, got None"),
    (_tuple_compile_config, "'compile_config' must be an object"),
    (_tuple_model, "expected a model's 'class_name' and 'config', got a tuple"),
    (_bad_numpy_dtype, "a '__numpy__' entry needs config"),
    (_too_many_layers, "lists 10004 layers, more than the 10000 gpu_dl rebuilds"),
], ids=["build_config", "batch_shape", "compile_config", "model", "numpy_dtype", "many_layers"])
def test_malformed_configs_are_clear_errors(edit, message, saved, tmp_path):
    _, path = saved
    bad = tmp_path / "bad.keras"
    _edit_archive(path, bad, replace={"config.json": _edit_config(edit)})
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"bad.keras \(config.json\).*" + message):
        load_model(bad)
    assert time.perf_counter() - started < 10


def test_a_bidirectional_layer_whose_inner_config_is_not_an_object(tmp_path):
    model = rnn()
    model.save(tmp_path / "r.keras")
    bad = tmp_path / "bad.keras"

    def edit(config):
        config["config"]["layers"][2]["config"]["layer"]["config"] = [1, 2]
    _edit_archive(tmp_path / "r.keras", bad, replace={"config.json": _edit_config(edit)})
    with pytest.raises(ValueError, match="the wrapped layer's 'config' must be an object"):
        load_model(bad)


# ------------------------------------------------------------- Keras's files
def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


def _keras_models(keras):
    L = keras.layers
    return {
        "mlp": (keras.Sequential([keras.Input((5,)), L.Dense(7, activation="relu"), L.Dropout(0.3),
                                  L.Dense(4, activation="tanh"), L.Activation("softmax")]), (5,)),
        "cnn": (keras.Sequential([keras.Input((10, 10, 3)), L.ZeroPadding2D(((1, 0), (2, 1))),
                                  L.Conv2D(4, 3, padding="same", activation="relu"), L.MaxPooling2D(),
                                  L.AveragePooling2D(pool_size=2, strides=1), L.Conv2D(3, (2, 2), strides=2),
                                  L.ReLU(), L.Flatten(), L.Dense(3), L.LeakyReLU(), L.ELU(), L.Softmax()]),
                (10, 10, 3)),
        "gap": (keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(5, 3), L.GlobalAveragePooling2D(),
                                  L.Dense(2)]), (8, 8, 2)),
        "rnn": (keras.Sequential([keras.Input((6, 4)), L.LSTM(5, return_sequences=True),
                                  L.Bidirectional(L.GRU(3, return_sequences=True)),
                                  L.Bidirectional(L.LSTM(2), merge_mode="sum"), L.Dense(2)]), (6, 4)),
        "simple_rnn": (keras.Sequential([keras.Input((5, 3)), L.SimpleRNN(4, return_sequences=True),
                                         L.Bidirectional(L.SimpleRNN(3), merge_mode="ave"), L.Dense(1)]), (5, 3)),
        "activations": (keras.Sequential([keras.Input((5,)), L.Dense(8, activation="gelu"), L.Activation("mish"),
                                          L.Dense(6, activation="celu"), L.Activation("hard_tanh"),
                                          L.Dense(4, activation="squareplus"), L.Activation("log_sigmoid")]), (5,)),
    }


@pytest.mark.parametrize("name", ["mlp", "cnn", "gap", "rnn", "simple_rnn", "activations"])
def test_files_written_by_keras_load_and_predict_the_same(name, tmp_path):
    keras = _keras()
    keras.utils.set_random_seed(0)
    theirs, shape = _keras_models(keras)[name]
    rng = numpy.random.default_rng(0)
    theirs.set_weights([0.5 * rng.standard_normal(w.shape).astype("float32") for w in theirs.get_weights()])
    theirs.compile(optimizer="adam", loss="mse")
    x = rng.standard_normal((9,) + shape).astype("float32")
    theirs.fit(x, theirs.predict(x, verbose=0) + 0.1, epochs=1, batch_size=3, verbose=0)
    theirs.save(tmp_path / "k.keras")
    theirs.save_weights(tmp_path / "k.weights.h5")

    ours = load_model(tmp_path / "k.keras")
    expected = theirs.predict(x, verbose=0)
    numpy.testing.assert_allclose(ours.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)
    assert [type(l).__name__ for l in ours.layers] == [type(l).__name__ for l in theirs.layers]
    assert ours.optimizer.iterations == int(theirs.optimizer.iterations) == 3
    keras_values = [keras.ops.convert_to_numpy(v) for v in theirs.optimizer.variables]
    assert len(keras_values) == len(ours.optimizer.variables)
    for a, b in zip(ours.optimizer.variables, keras_values):
        numpy.testing.assert_array_equal(a.numpy(), b)

    again = load_model(tmp_path / "k.keras", compile=False)
    for layer in again.layers:
        for v in layer.weights:
            v.assign(numpy.zeros(v.shape))
    again.load_weights(tmp_path / "k.weights.h5")
    numpy.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("build", [mlp, cnn, rnn, activated], ids=["mlp", "cnn", "rnn", "activations"])
def test_keras_loads_files_written_by_gpu_dl(build, tmp_path):
    keras = _keras()
    model = build()
    x, y = data_for(model)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    model.save(tmp_path / "g.keras")
    theirs = keras.models.load_model(tmp_path / "g.keras")
    numpy.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert int(theirs.optimizer.iterations) == model.optimizer.iterations


# ------------------------------------------------------------ ModelCheckpoint
def test_model_checkpoint_save_best_only_writes_only_on_improvement(tmp_path, capsys):
    model = mlp()
    checkpoint = callbacks.ModelCheckpoint(str(tmp_path / "m-{epoch:02d}-{val_loss:.2f}.keras"),
                                           save_best_only=True, verbose=1)
    checkpoint.set_model(model)
    for epoch, val_loss in enumerate([1.0, 2.0, 0.5, 0.5, 0.7]):
        checkpoint.on_epoch_begin(epoch)
        checkpoint.on_epoch_end(epoch, {"loss": 1.0, "val_loss": val_loss})
    assert sorted(os.listdir(tmp_path)) == ["m-01-1.00.keras", "m-03-0.50.keras"]
    out = capsys.readouterr().out
    assert "Epoch 1: val_loss improved from None to 1.00000, saving model to" in out
    assert "Epoch 2: val_loss did not improve from 1.00000" in out
    assert "Epoch 3: val_loss improved from 1.00000 to 0.50000" in out
    assert "Epoch 4: val_loss did not improve from 0.50000" in out


def test_model_checkpoint_modes_and_threshold(tmp_path):
    model = mlp()
    model.fit(*data_for(model), epochs=1, verbose=0)   # resolves the accuracy metric
    path = tmp_path / "best.weights.h5"
    checkpoint = callbacks.ModelCheckpoint(path, monitor="accuracy", save_best_only=True, save_weights_only=True,
                                           initial_value_threshold=0.6)
    checkpoint.set_model(model)
    checkpoint.on_epoch_end(0, {"accuracy": 0.5})
    assert not path.exists()
    checkpoint.on_epoch_end(1, {"accuracy": 0.7})
    assert path.exists() and checkpoint.best == 0.7
    loss_watch = callbacks.ModelCheckpoint(tmp_path / "l.keras", monitor="val_loss", mode="max", save_best_only=True)
    loss_watch.set_model(model)
    loss_watch.on_epoch_end(0, {"val_loss": 1.0})
    os.remove(tmp_path / "l.keras")
    loss_watch.on_epoch_end(1, {"val_loss": 2.0})
    assert (tmp_path / "l.keras").exists()


def test_model_checkpoint_during_fit_and_by_batches(tmp_path):
    model = mlp()
    x, y = data_for(model, n=40)
    every_epoch = callbacks.ModelCheckpoint(tmp_path / "e{epoch}.keras", monitor="loss")
    every_3_batches = callbacks.ModelCheckpoint(tmp_path / "b-e{epoch}-b{batch}.weights.h5",
                                                save_weights_only=True, save_freq=3)
    model.fit(x, y, batch_size=8, epochs=2, callbacks=[every_epoch, every_3_batches], verbose=0)
    names = sorted(os.listdir(tmp_path))
    assert names == ["b-e1-b3.weights.h5", "b-e2-b1.weights.h5", "b-e2-b4.weights.h5", "e1.keras", "e2.keras"]
    assert_same_weights(load_model(tmp_path / "e2.keras"), model)


def test_model_checkpoint_argument_errors(tmp_path):
    with pytest.raises(ValueError, match=r"must end in `\.weights\.h5`"):
        callbacks.ModelCheckpoint(tmp_path / "w.keras", save_weights_only=True)
    with pytest.raises(ValueError, match=r"must end in `\.keras`"):
        callbacks.ModelCheckpoint(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match="Unrecognized save_freq"):
        callbacks.ModelCheckpoint(tmp_path / "m.keras", save_freq="batch")
    checkpoint = callbacks.ModelCheckpoint(tmp_path / "m-{missing}.keras")
    checkpoint.set_model(mlp())
    with pytest.raises(KeyError, match="Failed to format this callback filepath"):
        checkpoint.on_epoch_end(0, {"loss": 1.0})


def test_saving_over_a_symbolic_link_writes_the_file_it_names(tmp_path):
    model = mlp()
    target_dir = tmp_path / "store"
    target_dir.mkdir()
    target = target_dir / "real.keras"
    model.save(target)
    link = tmp_path / "latest.keras"
    link.symlink_to(target)
    x, _ = data_for(model)
    model.fit(*data_for(model), epochs=1, verbose=0)
    model.save(link)
    model.save_weights(tmp_path / "w.weights.h5")
    (tmp_path / "w-link.weights.h5").symlink_to(tmp_path / "w.weights.h5")
    model.save_weights(tmp_path / "w-link.weights.h5")
    assert link.is_symlink() and (tmp_path / "w-link.weights.h5").is_symlink()
    numpy.testing.assert_array_equal(load_model(target).predict(x, verbose=0), model.predict(x, verbose=0))
    assert not [p for p in target_dir.iterdir() if p.name != "real.keras"]     # no temporary left behind
