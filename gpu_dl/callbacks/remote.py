"""Keras's ``RemoteMonitor``: each epoch's logs sent to an HTTP server.

At the end of each epoch it POSTs ``{"epoch": epoch, **logs}`` (NumPy scalars as Python numbers) to
``root + path``: as a form field ``field`` holding that dict as JSON (``application/x-www-form-urlencoded``), or
with ``send_as_json=True`` as the JSON body itself (``application/json``), with ``headers`` added. Keras sends it
with the ``requests`` library; gpu_dl with the standard library's ``urllib``, so it needs nothing installed. A
server that cannot be reached gives a warning, not an error, and training goes on; an answer with an error
status is taken as reached, as Keras takes it.
"""
from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import numpy

from ..backend.user_warnings import warn
from .base import Callback


class RemoteMonitor(Callback):
    """``RemoteMonitor(root="http://localhost:9000", path="/publish/epoch/end/", field="data", headers=None,
    send_as_json=False)``: see the module docstring."""

    def __init__(self, root="http://localhost:9000", path="/publish/epoch/end/", field="data", headers=None,
                 send_as_json=False):
        super().__init__()
        for name, value in (("root", root), ("path", path), ("field", field)):
            if not isinstance(value, str):
                raise TypeError(f"RemoteMonitor: `{name}` must be a string, got {value!r}.")
        if headers is not None and not isinstance(headers, dict):
            raise TypeError(f"RemoteMonitor: `headers` must be a dict of header names to values, got {headers!r}.")
        scheme = urllib.parse.urlsplit(root + path).scheme
        if scheme not in ("http", "https"):
            raise ValueError(f"RemoteMonitor: `root` must be an http:// or https:// address, got {root!r}.")
        self.root = root
        self.path = path
        self.field = field
        self.headers = headers
        self.send_as_json = send_as_json

    def on_epoch_end(self, epoch, logs=None):
        send = {"epoch": epoch}
        for key, value in (logs or {}).items():
            send[key] = value.item() if isinstance(value, (numpy.ndarray, numpy.generic)) else value
        if self.send_as_json:
            body, content_type = json.dumps(send).encode("utf-8"), "application/json"
        else:
            body = urllib.parse.urlencode({self.field: json.dumps(send)}).encode("ascii")
            content_type = "application/x-www-form-urlencoded"
        headers = {"Content-Type": content_type, **(self.headers or {})}
        request = urllib.request.Request(self.root + self.path, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                response.read()
        except urllib.error.HTTPError as answer:
            answer.close()      # the server answered: reached, as Keras's requests.post counts it
        except (urllib.error.URLError, OSError):
            warn(f"Could not reach RemoteMonitor root server at {self.root}")
