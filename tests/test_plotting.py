"""Training curves (``plot_history``, ``callbacks.TrainingCurves``) and ``utils.plot_model``."""
import hashlib
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import gpu_dl
from gpu_dl import backend, callbacks, layers, optimizers, utils
from gpu_dl.models import Sequential
from toy_data import blobs, quiet
from gpu_dl.utils import model_plot, plotting

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"



def classifier():
    backend.set_random_seed(0)
    model = Sequential([layers.Input((2,)), layers.Dense(8, activation="relu", name="hidden"),
                        layers.Dropout(0.1, name="drop"), layers.Dense(3, activation="softmax", name="probs")])
    model.compile(optimizer=optimizers.Adam(0.01), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model



def read_png(path):
    image = pytest.importorskip("matplotlib.image")
    return image.imread(str(path))


# ---------------------------------------------------------- training curves
def test_training_curves_redraws_a_valid_png_after_every_epoch(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs()
    path = tmp_path / "curves" / "training.png"                   # the folder is created
    seen = []

    def check(epoch, logs):
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        pixels = read_png(path)
        assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
        seen.append((os.stat(path).st_mtime_ns, len(data), hashlib.sha256(data).hexdigest()))
        assert not path.exists() or sorted(p.name for p in path.parent.iterdir()) == ["training.png"]

    model = classifier()
    quiet(model.fit, x, y, epochs=4, verbose=0, validation_split=0.25, callbacks=[
        callbacks.TrainingCurves(path), callbacks.LambdaCallback(on_epoch_end=check)])
    assert len(seen) == 4
    assert len({digest for _, _, digest in seen}) == 4             # a new drawing each epoch
    assert [m for m, _, _ in seen] == sorted(m for m, _, _ in seen)
    assert oct(os.stat(path).st_mode & 0o777) != oct(0o600)        # not left private like a temp file


def test_training_curves_panels(tmp_path):
    pytest.importorskip("matplotlib")
    curves = callbacks.TrainingCurves(tmp_path / "c.png", metrics=["loss"])
    x, y = blobs()
    quiet(classifier().fit, x, y, epochs=2, verbose=0, callbacks=[curves])
    assert set(curves.history) == {"loss", "accuracy"}
    assert curves.history["loss"][1][0] == 2                        # (epoch from 1, value)
    one_panel = read_png(tmp_path / "c.png")
    plotting.plot_history(curves.history, tmp_path / "all.png")
    assert read_png(tmp_path / "all.png").shape[1] > one_panel.shape[1]   # loss and accuracy side by side


def test_plot_history_accepts_history_dicts_gaps_and_nan(tmp_path):
    pytest.importorskip("matplotlib")
    x, y = blobs()
    history, _ = quiet(classifier().fit, x, y, epochs=4, verbose=0, validation_split=0.25, validation_freq=2)
    assert len(history.history["val_loss"]) == 2
    series = plotting._series(history)
    assert series["loss"][0] == [1, 2, 3, 4] and series["val_loss"][0] == [2, 4]
    assert plotting.plot_history(history, tmp_path / "h.png") == str(tmp_path / "h.png")
    assert (tmp_path / "h.png").read_bytes().startswith(PNG_SIGNATURE)
    plotting.plot_history({"loss": [1.0, float("nan"), float("inf"), 0.5]}, tmp_path / "nan.svg")
    assert b"<svg" in (tmp_path / "nan.svg").read_bytes()[:1000]
    plotting.plot_history({"loss": [1.0, 0.5]}, tmp_path / "m.pdf", metrics=["accuracy"])   # nothing to draw
    assert (tmp_path / "m.pdf").read_bytes().startswith(b"%PDF")
    with pytest.raises(TypeError, match="History or a dict"):
        plotting.plot_history([1.0, 0.5], tmp_path / "x.png")


def test_plot_history_replaces_the_file_atomically(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    path = tmp_path / "curves.png"
    plotting.plot_history({"loss": [1.0, 0.5]}, path)
    before = path.read_bytes()
    moves = []
    real_replace = os.replace

    def replace(source, destination):
        moves.append((source, destination))
        assert os.path.dirname(source) == str(tmp_path) and open(source, "rb").read().startswith(PNG_SIGNATURE)
        real_replace(source, destination)

    monkeypatch.setattr(plotting.os, "replace", replace)
    plotting.plot_history({"loss": [1.0, 0.5, 0.25]}, path)
    assert len(moves) == 1 and moves[0][1] == str(path)

    from matplotlib.figure import Figure

    def broken_savefig(self, stream, **kwargs):
        stream.write(PNG_SIGNATURE + b"half an image")
        raise RuntimeError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    written = path.read_bytes()
    with pytest.raises(RuntimeError, match="disk full"):
        plotting.plot_history({"loss": [1.0, 0.5, 0.2, 0.1]}, path)
    assert path.read_bytes() == written != before                  # the last complete image is still there
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]   # no temporary left behind


def test_training_curves_never_opens_a_window(tmp_path):
    """Drawn on the Agg canvas: works with an interactive MPLBACKEND and no display, and never loads pyplot."""
    pytest.importorskip("matplotlib")
    script = textwrap.dedent(f"""
        import sys
        from gpu_dl.utils import plot_history
        plot_history({{"loss": [1.0, 0.5], "val_loss": [1.1, 0.7]}}, {str(tmp_path / 'w.png')!r})
        assert "matplotlib.pyplot" not in sys.modules
        print("ok")
    """)
    env = dict(os.environ, MPLBACKEND="TkAgg")
    env.pop("DISPLAY", None)
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_training_curves_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=re.escape('pip install matplotlib')):
        callbacks.TrainingCurves("curves.png")                     # at construction, before any training
    with pytest.raises(ImportError, match=re.escape('pip install matplotlib')):
        plotting.plot_history({"loss": [1.0]}, "curves.png")


# --------------------------------------------------------------- plot_model
def dot_nodes(text):
    """(node id, label) in order, and edges, from DOT text."""
    nodes = re.findall(r"^(\d+) \[label=<(.*?)>, ", text, flags=re.M)
    edges = re.findall(r"^(\d+) -> (\d+) ", text, flags=re.M)
    return nodes, edges


def test_plot_model_writes_dot_text_without_graphviz(tmp_path, monkeypatch):
    pytest.importorskip("pydot")
    monkeypatch.setattr(model_plot.shutil, "which", lambda name: None)   # no Graphviz needed for .dot
    model = classifier()
    path = tmp_path / "model.dot"
    assert utils.plot_model(model, to_file=path, show_shapes=True, show_dtype=True, show_layer_names=True,
                            show_layer_activations=True, show_trainable=True, rankdir="LR") is None
    text = path.read_text()
    assert text.startswith("digraph G {") and "rankdir=LR;" in text and "dpi=200;" in text
    nodes, edges = dot_nodes(text)
    ids = [n for n, _ in nodes]
    assert len(nodes) == 3 and edges == list(zip(ids, ids[1:]))    # one node per layer, edges in sequence
    hidden, drop, probs = (label for _, label in nodes)
    assert "<b>hidden</b> (Dense)" in hidden and "Activation: <b>relu</b>" in hidden
    assert "Input shape: <b>(None, 2)</b>" in hidden and "Output shape: <b>(None, 8)</b>" in hidden
    assert "Output dtype: <b>float32</b>" in hidden and "<b>Trainable</b>" in hidden
    assert "<b>drop</b> (Dropout)" in drop and "Trainable" not in drop      # no weights: no trainable cell
    assert "Output shape: <b>(None, 3)</b>" in probs and "Activation: <b>softmax</b>" in probs

    model.layers[0].trainable = False
    utils.plot_model(model, to_file=path, show_trainable=True)
    nodes, _ = dot_nodes(path.read_text())
    assert "<b>Dense</b>" in nodes[0][1] and "hidden" not in nodes[0][1]   # Keras 3: no names by default
    assert "<b>Non-trainable</b>" in nodes[0][1] and "shape" not in nodes[0][1]


def test_plot_model_labels_match_keras(tmp_path, monkeypatch):
    pytest.importorskip("pydot")
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = pytest.importorskip("keras")
    from keras.src.utils import model_visualization
    ours = classifier()
    theirs = keras.Sequential([keras.Input((2,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                               keras.layers.Dropout(0.1, name="drop"),
                               keras.layers.Dense(3, activation="softmax", name="probs")])
    for options in (dict(), dict(show_shapes=True, show_dtype=True, show_layer_names=True,
                                 show_layer_activations=True, show_trainable=True, rankdir="LR", dpi=96)):
        ours_text = gpu_dl.utils.model_to_dot(ours, **options).to_string()
        theirs_text = model_visualization.model_to_dot(theirs, **options).to_string()
        ours_nodes, ours_edges = dot_nodes(ours_text)
        theirs_nodes, theirs_edges = dot_nodes(theirs_text)
        assert [label for _, label in ours_nodes] == [label for _, label in theirs_nodes]
        assert len(ours_edges) == len(theirs_edges) == 2
        strip = re.compile(r"^\d+ .*$", flags=re.M)                 # graph settings, without node ids
        assert strip.sub("", ours_text) == strip.sub("", theirs_text)


def test_plot_model_without_pydot_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pydot", None)
    with pytest.raises(ImportError, match=re.escape("pip install pydot")):
        utils.plot_model(classifier(), to_file=tmp_path / "model.png")
    with pytest.raises(ImportError, match=re.escape("pip install pydot")):
        utils.plot_model(classifier(), to_file=tmp_path / "model.dot")


def test_plot_model_without_graphviz_says_how_to_install(tmp_path, monkeypatch):
    pytest.importorskip("pydot")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    for name in ("model.png", "model.svg", "model"):
        with pytest.raises(ImportError) as error:
            utils.plot_model(classifier(), to_file=tmp_path / name)
        message = str(error.value)
        assert "apt-get install graphviz" in message and "brew install graphviz" in message
        assert "conda install graphviz" in message
        assert not (tmp_path / name).exists()


def test_plot_model_errors_before_building(tmp_path):
    pytest.importorskip("pydot")
    with pytest.raises(ValueError, match="not yet been built"):
        utils.plot_model(Sequential([layers.Dense(3)]), to_file=tmp_path / "model.dot")
    with pytest.raises(ValueError, match="layer_range"):
        utils.plot_model(classifier(), to_file=tmp_path / "model.dot", layer_range=["a", "b"])


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is not installed")
@pytest.mark.parametrize("name,start", [("model.png", PNG_SIGNATURE), ("model.svg", None), ("model.pdf", b"%PDF"),
                                        ("model", PNG_SIGNATURE)])
def test_plot_model_renders_with_graphviz(tmp_path, name, start):
    pytest.importorskip("pydot")
    path = tmp_path / name
    utils.plot_model(classifier(), to_file=path, show_shapes=True, show_layer_names=True)
    data = path.read_bytes()
    if start is None:
        assert b"<svg" in data and b"hidden" in data and b"(None, 8)" in data
    else:
        assert data.startswith(start)
    if start == PNG_SIGNATURE:
        across = tmp_path / "across.png"
        utils.plot_model(classifier(), to_file=across, show_shapes=True, show_layer_names=True, rankdir="LR")
        down, side = read_png(path).shape, read_png(across).shape
        assert down[0] / down[1] > 2 * side[0] / side[1]           # "TB" stacks the layers, "LR" lines them up


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's `dot` program is not installed")
def test_plot_model_into_a_missing_folder_says_so_not_that_graphviz_is_missing(tmp_path):
    pytest.importorskip("pydot")
    path = tmp_path / "no such folder" / "model.png"
    with pytest.raises(FileNotFoundError) as error:
        utils.plot_model(classifier(), to_file=path)
    assert error.value.filename == str(path) and "graphviz" not in str(error.value).lower()
