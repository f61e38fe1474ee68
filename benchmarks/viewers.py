"""python -m benchmarks.viewers: does watching the web view slow the inference loop?

The loop (the runtime's FramePipeline, capture hooks, LiveView and WebServer, as in
``python -m runtime.webcam --serve``) runs on a generated 640x480 video in this process; 0, 1, 5
and 20 MJPEG clients read ``/stream.mjpg`` over loopback from a separate process (viewers are
other machines; their CPU should not share this interpreter's lock), for a fixed time each.
Printed per phase: loop FPS and its drop against no viewers, frames each client received per
second, JPEG size, the loop thread's CPU time per frame and the CPU the encoder and HTTP threads
use (CPU times hold on a shared machine, where FPS swings with other people's work), and this
process's RSS before and after. Bounded: every phase stops itself,
clients have socket timeouts, and a client process still alive after its phase is killed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np

from runtime.errors import SignsError, run_cli

FRAMES = 300  # 10 s of 30 fps video, looped


@dataclass
class ViewerSettings:
    model: str | None = None  # model file; None = the runtime's default (artifacts/export)
    clients: list[int] = field(default_factory=lambda: [0, 1, 5, 20])  # stream clients per phase
    seconds: float = 10.0  # length of each phase
    paced: bool = False  # pace the video at its 30 fps as serve mode does (else: flat out)
    threads: int = 1  # inference threads


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def _video(path: Path) -> Path:
    """Textured frames (noise, moving shapes): JPEG sizes like a camera's, not a flat test card."""
    rng = np.random.default_rng(0)
    base = cv2.GaussianBlur(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for t in range(FRAMES):
        frame = base.copy()
        cv2.circle(frame, (320 + int(150 * np.sin(t / 15)), 240), 70, (40, 60, 200), -1)
        noise = rng.integers(0, 12, frame.shape, dtype=np.uint8)
        writer.write(cv2.add(frame, noise))
    writer.release()
    return path


def _client(port: int, seconds: float, out: mp.Queue) -> None:
    """One stream reader (a thread in the client process): frames and bytes received."""
    frames = nbytes = 0
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            f = sock.makefile("rb")
            while f.readline() not in (b"\r\n", b""):
                pass
            t0 = time.monotonic()
            while time.monotonic() < t0 + seconds:
                length = 0
                while (line := f.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                if not length:
                    break
                nbytes += len(f.read(length + 2))
                frames += 1
            f.close()
    except OSError:
        pass
    elapsed = time.monotonic() - t0
    out.put((frames / elapsed if elapsed else 0.0, nbytes / max(frames, 1)))


def _clients_process(port: int, n: int, seconds: float, out: mp.Queue) -> None:
    threads = [threading.Thread(target=_client, args=(port, seconds, out)) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)


def run(s: ViewerSettings) -> list[dict]:
    import tempfile

    from runtime.backends import load_backend
    from runtime.capture import Capturer
    from runtime.hooks import FrameEvent
    from runtime.modelinfo import default_model, describe_model
    from runtime.pipeline import FramePipeline
    from runtime.replay import LoopingSource
    from runtime.sources import VideoSource
    from runtime.webview import WebHook, model_facts

    if s.seconds <= 0 or s.seconds > 120:
        raise SignsError(f"--seconds {s.seconds:g}: must be in (0, 120]")
    if any(n < 0 or n > 60 for n in s.clients):
        raise SignsError(f"--clients {s.clients}: each must be 0-60")
    model = Path(s.model) if s.model else default_model()
    info = describe_model(model)
    backend = load_backend(model, threads=s.threads)
    no_sign = info.no_sign.resolve(None)  # the model's own threshold, as the webcam's default
    pipe = FramePipeline(backend, min_confidence=no_sign[0])
    tmp = Path(tempfile.mkdtemp(prefix="viewers-"))
    video = _video(tmp / "video.avi")
    source = LoopingSource(lambda: VideoSource(video))
    web = WebHook(
        "127.0.0.1", 0, info.labels, model_facts(info, backend, no_sign, None, s.threads),
        Capturer(tmp / "captures"), source, pace=s.paced,
    ).__enter__()  # fmt: skip
    live, port = web.server.live, web.server.port

    def step() -> None:
        """One frame of the served loop, as runtime.webcam runs it (headless)."""
        c0 = time.perf_counter_ns()
        i, frame = source.read()
        c1 = time.perf_counter_ns()
        res = pipe.step(frame)
        total = (time.perf_counter_ns() - c0) / 1e6
        web.on_frame(FrameEvent(i, frame, res, (c1 - c0) / 1e6, 0.0, total))

    pace = "paced at 30 fps" if s.paced else "flat out"
    print(
        f"model {info.path} ({backend.runtime}, threads {s.threads}); 640x480 video {pace}; "
        f"{s.seconds:g} s per phase",
        flush=True,
    )

    ctx = mp.get_context("spawn")
    rows = []
    try:
        for _ in range(30):  # warm-up: first calls allocate
            step()
        for n in s.clients:
            out = ctx.Queue()
            proc = ctx.Process(target=_clients_process, args=(port, n, s.seconds - 0.5, out))
            if n:
                proc.start()
                # Let every client connect before timing.
                deadline = time.monotonic() + 10
                while live.viewers < n and time.monotonic() < deadline:
                    step()
            rss0, jpegs0 = _rss_mb(), live.jpegs_encoded
            cpu0, loop_cpu0 = _cpu_s(), time.thread_time()
            frames, t0 = 0, time.perf_counter()
            end = t0 + s.seconds
            while time.perf_counter() < end:
                step()
                frames += 1
            elapsed = time.perf_counter() - t0
            cpu = _cpu_s() - cpu0
            loop_cpu = time.thread_time() - loop_cpu0  # this thread is the loop
            jpegs = live.jpegs_encoded - jpegs0
            got = []
            if n:
                got = [out.get(timeout=s.seconds + 20) for _ in range(n)]
                proc.join(timeout=20)
                if proc.is_alive():
                    proc.kill()
            recv_fps = [f for f, _ in got]
            row = {
                "clients": n,
                "loop_fps": frames / elapsed,
                "client_fps_min": min(recv_fps) if recv_fps else None,
                "client_fps_mean": float(np.mean(recv_fps)) if recv_fps else None,
                "jpegs_per_s": jpegs / elapsed,
                # CPU time, unlike FPS, does not depend on what else the machine runs:
                "loop_cpu_ms": 1000.0 * loop_cpu / frames,  # per frame, the loop's own thread
                "serve_cpu_pct": 100.0 * (cpu - loop_cpu) / elapsed,  # encoder + HTTP threads
                "jpeg_kb": float(np.mean([b for _, b in got])) / 1024 if got else None,
                "rss_before_mb": rss0,
                "rss_after_mb": _rss_mb(),
            }
            base = rows[0]["loop_fps"] if rows else row["loop_fps"]
            row["drop_pct"] = 100.0 * (1 - row["loop_fps"] / base)
            rows.append(row)
            _print_row(row, header=len(rows) == 1)
    finally:
        web.__exit__(None, None, None)
        source.close()
    print(json.dumps({"settings": asdict(s), "rows": rows}))
    return rows


def _print_row(r: dict, header: bool) -> None:
    if header:
        print(
            f"{'clients':>7} {'loop FPS':>9} {'drop %':>7} {'client FPS min/mean':>20} "
            f"{'JPEG/s':>7} {'JPEG KB':>8} {'loop CPU ms/frame':>18} {'serve CPU %':>12} "
            f"{'RSS MiB before -> after':>24}"
        )
    client = (
        f"{r['client_fps_min']:.1f} / {r['client_fps_mean']:.1f}"
        if r["client_fps_min"] is not None
        else "-"
    )
    kb = f"{r['jpeg_kb']:.0f}" if r["jpeg_kb"] is not None else "-"
    print(
        f"{r['clients']:>7} {r['loop_fps']:>9.1f} {r['drop_pct']:>7.1f} {client:>20} "
        f"{r['jpegs_per_s']:>7.1f} {kb:>8} {r['loop_cpu_ms']:>18.3f} {r['serve_cpu_pct']:>12.1f} "
        f"{r['rss_before_mb']:>12.1f} -> {r['rss_after_mb']:.1f}",
        flush=True,
    )


def _client_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected counts like 0,1,5,20") from None


def main(argv: list[str] | None = None) -> None:
    d = ViewerSettings()
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.viewers",
        description="Inference FPS of the served loop with 0, 1, 5 and 20 MJPEG viewers.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", type=str, default=d.model, help="model file (default: the runtime's)")
    p.add_argument(
        "--clients", type=_client_list, default=d.clients, help="stream clients per phase"
    )
    p.add_argument("--seconds", type=float, default=d.seconds, help="length of each phase")
    p.add_argument("--paced", action="store_true", help="pace the video at 30 fps (serve mode)")
    p.add_argument("--threads", type=int, default=d.threads, help="inference threads")
    a = p.parse_args(argv)
    settings = ViewerSettings(a.model, a.clients, a.seconds, a.paced, a.threads)
    run_cli(lambda: run(settings))


if __name__ == "__main__":
    main()
