"""Real parts for the web view and capture tests: a tiny ONNX model whose answer is the colour in
the ROI, drawn videos, and ``python -m runtime.webcam --serve`` run as a user runs it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np

from tests.helpers import ROOT

ROI = (192, 112, 256)  # the default ROI of a 640x480 frame: x, y, side
# BGR colours and the class the tiny model gives them
COLOURS = {0: (0, 0, 255), 1: (0, 255, 0), 2: (255, 0, 0)}  # red, green, blue


def tiny_colour_model(path: Path) -> Path:
    """An ONNX classifier with the SIGNS model's interface (N x 64 x 64 x 3 float in [0, 1] ->
    N x 6 probabilities) that answers by the mean colour: red 0, green 1, blue 2.

    Built with onnx.helper in milliseconds, so HTTP tests need no training run.
    """
    import onnx
    from onnx import TensorProto, helper

    w = np.zeros((3, 6), np.float32)
    w[0, 0] = w[1, 1] = w[2, 2] = 12.0  # RGB channel -> its class
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["z"]),
        helper.make_node("Softmax", ["z"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_colour",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64, 64, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 6])],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def colour_frame(bgr: tuple[int, int, int], t: int = 0) -> np.ndarray:
    """A 640x480 frame: a grey backdrop with moving shapes, the ROI filled with one colour."""
    frame = np.full((480, 640, 3), 90, np.uint8)
    cv2.circle(frame, (60 + (7 * t) % 80, 60), 30, (200, 200, 200), -1)
    cv2.rectangle(frame, (500, 300 + (5 * t) % 60), (600, 400), (30, 30, 30), -1)
    x, y, side = ROI
    frame[y : y + side, x : x + side] = bgr
    return frame


def write_colour_video(path: Path, labels: list[int], frames_each: int, fps: float = 30.0) -> Path:
    """An MJPG video: for each label, ``frames_each`` frames whose ROI has its colour."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    assert writer.isOpened()
    t = 0
    for label in labels:
        for _ in range(frames_each):
            writer.write(colour_frame(COLOURS[label], t))
            t += 1
    writer.release()
    return path


class Served:
    """``python -m runtime.webcam ... --serve HOST:0``, started and read until it prints its URL.

    ``stop()`` sends SIGTERM and returns (returncode, stdout, stderr).
    """

    def __init__(self, *args: str, cwd: Path | None = None, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "runtime.webcam", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd or ROOT,
        )
        self.head: list[str] = []
        deadline = time.monotonic() + timeout
        self.url = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                out, err = self.proc.communicate(timeout=10)
                raise AssertionError(f"server exited: {self.proc.returncode}\n{out}\n{err}")
            self.head.append(line)
            m = re.search(r"serving the live view on (\S+)", line)
            if m:
                self.url = m.group(1)
                break
        assert self.url, self.head
        m = re.match(r"http://([^/]+):(\d+)/(\?token=(\S+))?$", self.url)
        assert m, self.url
        self.port = int(m.group(2))
        self.token = m.group(4)
        self.base = f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: str | None = None, headers: dict | None = None):
        """(status, headers, body bytes) of a GET on 127.0.0.1."""
        return request(self.base + path, token=token, headers=headers)

    def post_json(self, path: str, obj: object, token: str | None = None):
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        return request(
            self.base + path,
            token=token,
            data=data,
            headers={"Content-Type": "application/json"},
        )

    def state(self) -> dict:
        status, _, body = self.get("/api/state", token=self.token)
        assert status == 200, (status, body)
        return json.loads(body)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, "".join(self.head) + out, err


def request(
    url: str, token: str | None = None, data: bytes | None = None, headers: dict | None = None
):
    if token:
        url += ("&" if "?" in url else "?") + f"token={token}"
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(predicate, timeout: float = 10.0, every: float = 0.05):
    """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
