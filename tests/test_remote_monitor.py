"""callbacks.RemoteMonitor against a local HTTP server in a thread: what each epoch posts (a form field or a JSON
body, the headers), a warning where no server answers, and the same payloads as Keras 3's RemoteMonitor (with
its ``requests`` replaced by a recorder) where Keras is installed."""
import http.server
import json
import os
import threading
import urllib.parse

import numpy
import pytest

from gpu_dl import callbacks, layers
from gpu_dl.models import Sequential


class Recorder(http.server.BaseHTTPRequestHandler):
    received = None

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
        status = 500 if self.path.startswith("/fail") else 200
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    received = []
    handler = type("Handler", (Recorder,), {"received": received})
    httpd = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def payload(request, field="data"):
    if request["headers"]["Content-Type"] == "application/json":
        return json.loads(request["body"])
    form = urllib.parse.parse_qs(request["body"].decode("ascii"))
    assert list(form) == [field]
    return json.loads(form[field][0])


def test_posts_each_epochs_logs_as_a_form_field_in_fit(server, on_cpu):
    root, received = server
    rng = numpy.random.default_rng(0)
    x, y = rng.standard_normal((12, 3)).astype("float32"), rng.standard_normal((12, 1)).astype("float32")
    model = Sequential([layers.Input((3,)), layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[callbacks.RemoteMonitor(root=root)])
    assert [r["path"] for r in received] == ["/publish/epoch/end/"] * 3
    assert all(r["headers"]["Content-Type"] == "application/x-www-form-urlencoded" for r in received)
    sent = [payload(r) for r in received]
    assert [s["epoch"] for s in sent] == [0, 1, 2]
    assert [s["loss"] for s in sent] == pytest.approx(history.history["loss"])
    assert [s["mae"] for s in sent] == pytest.approx(history.history["mae"])


def test_json_body_headers_field_and_numpy_values(server):
    root, received = server
    monitor = callbacks.RemoteMonitor(root=root, path="/p", field="logs", headers={"X-Run": "seven"})
    monitor.on_epoch_end(4, {"loss": numpy.float32(0.5), "acc": numpy.array(0.25), "lr": 0.1})
    as_json = callbacks.RemoteMonitor(root=root, path="/j", send_as_json=True)
    as_json.on_epoch_end(5, {"loss": numpy.float64(1.5)})
    assert received[0]["path"] == "/p" and received[0]["headers"]["X-Run"] == "seven"
    assert payload(received[0], "logs") == {"epoch": 4, "loss": 0.5, "acc": 0.25, "lr": 0.1}
    assert received[1]["headers"]["Content-Type"] == "application/json"
    assert payload(received[1]) == {"epoch": 5, "loss": 1.5}


def test_an_unreachable_server_warns_and_an_error_status_does_not(server):
    root, received = server
    with pytest.warns(UserWarning, match="Could not reach RemoteMonitor root server at http://127.0.0.1:9"):
        callbacks.RemoteMonitor(root="http://127.0.0.1:9").on_epoch_end(0, {"loss": 1.0})
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        callbacks.RemoteMonitor(root=root, path="/fail").on_epoch_end(0, {"loss": 1.0})
    assert len(received) == 1


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="http:// or https://"):
        callbacks.RemoteMonitor(root="ftp://example.org")
    with pytest.raises(TypeError, match="`headers` must be a dict"):
        callbacks.RemoteMonitor(headers=[("a", "b")])
    with pytest.raises(TypeError, match="`path` must be a string"):
        callbacks.RemoteMonitor(path=3)


@pytest.fixture
def keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return pytest.importorskip("keras")


@pytest.mark.parametrize("send_as_json", [False, True])
def test_same_payloads_as_keras(keras, server, monkeypatch, send_as_json):
    """Keras posts with ``requests``; a recorder in its place gives the url, the data and the headers Keras
    hands it, which must be what the server received from gpu_dl."""
    from keras.src.callbacks import remote_monitor
    posted = []

    class Requests:
        class exceptions:
            RequestException = OSError

        @staticmethod
        def post(url, data=None, json=None, headers=None):
            posted.append({"url": url, "data": data, "json": json, "headers": headers})

    monkeypatch.setattr(remote_monitor, "requests", Requests)
    root, received = server
    logs = {"loss": numpy.float32(0.75), "val_loss": 1.25, "accuracy": numpy.array(0.5)}
    arguments = dict(root=root, path="/x/", field="f", headers={"A": "b"}, send_as_json=send_as_json)
    keras.callbacks.RemoteMonitor(**arguments).on_epoch_end(2, dict(logs))
    callbacks.RemoteMonitor(**arguments).on_epoch_end(2, dict(logs))
    theirs, ours = posted[0], received[0]
    assert theirs["url"] == root + ours["path"] and ours["headers"]["A"] == theirs["headers"]["A"]
    if send_as_json:
        assert payload(ours) == theirs["json"]
    else:
        assert payload(ours, "f") == json.loads(theirs["data"]["f"])
