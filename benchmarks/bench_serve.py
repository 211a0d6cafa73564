"""Load check for `aimc serve`: N concurrent viewers, the frames/s each receives, and the server's CPU.

Starts `aimc serve` (the shipped agent) as a separate process on a free port, then for each N and speed:
  games   N viewers, each with its own game (one panel, "chop a tree", world seeds 0..N-1): the usual case,
          every viewer makes the server step a world and run a policy forward per frame;
  watch   N viewers of one game (a demo on a projector and a few laptops): one game, N streams.
Each viewer reads the game's event stream (as the page does, JPEG frames as data URLs) for `--seconds`
after a warm-up; a frame counts when a message carries one. Printed per row: viewers, target speed
(steps/s, 0 = as fast as possible), frames/s per viewer (mean and slowest), the server process's CPU as a
percentage of one core, its CPU milliseconds per streamed frame, and the machine's load average (other work
on the machine slows the server down: read the CPU ms per frame for what the server itself costs).

    python benchmarks/bench_serve.py [--viewers 1 2 4] [--speeds 10 0] [--seconds 10] [--modes games watch]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

WARMUP_S = 2.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


class Viewer(threading.Thread):
    """Reads one game's stream, counting messages that carry a frame, stamped by arrival time."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url, self.stamps, self.stop = url, [], threading.Event()

    def run(self) -> None:
        with urllib.request.urlopen(self.url, timeout=600) as r:
            for line in r:
                if self.stop.is_set():
                    return
                if line.startswith(b"data:") and b'"frame": "data:image' in line:
                    self.stamps.append(time.monotonic())

    def fps(self, start: float, end: float) -> float:
        return sum(start <= t < end for t in self.stamps) / (end - start)


def measure(base: str, pid: int, mode: str, viewers: int, speed: float, seconds: float, steps: int) -> dict[str, Any]:
    n_games = viewers if mode == "games" else 1
    games = [_post(f"{base}/api/games", {"seed": i, "speed": speed, "max_steps": steps,
                                          "panels": [{"instruction": "chop a tree"}]})["id"] for i in range(n_games)]
    readers = [Viewer(f"{base}/api/games/{games[i % n_games]}/stream") for i in range(viewers)]
    for r in readers:
        r.start()
    time.sleep(WARMUP_S)
    cpu0, t0 = _cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    cpu1, t1 = _cpu_seconds(pid), time.monotonic()
    for r in readers:
        r.stop.set()
    for g in games:
        urllib.request.urlopen(urllib.request.Request(f"{base}/api/games/{g}", method="DELETE"), timeout=60).read()
    fps = [r.fps(t0, t1) for r in readers]
    frames = sum(fps) * (t1 - t0)
    return {"mode": mode, "viewers": viewers, "speed": speed, "fps_mean": sum(fps) / len(fps), "fps_min": min(fps),
            "cpu_pct": 100 * (cpu1 - cpu0) / (t1 - t0), "cpu_ms_per_frame": 1000 * (cpu1 - cpu0) / max(frames, 1),
            "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--speeds", type=float, nargs="+", default=[10.0, 0.0])
    ap.add_argument("--modes", nargs="+", default=["games", "watch"], choices=["games", "watch"])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    args = ap.parse_args()

    port, steps = _free_port(), 5000
    cmd = [sys.executable, "-m", "aimc", "serve", "--port", str(port), "--max-games", str(max(args.viewers)),
           "--max-steps", str(steps), "--threads", str(args.threads)]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{base}/api/info", timeout=5).read()
                break
            except OSError:
                time.sleep(0.5)
        measure(base, server.pid, "games", 1, 0.0, 1.0, steps)  # the first game waits for the model to load
        print(f"aimc serve, shipped agent, 1 panel per game, {os.cpu_count()} CPUs, server torch threads {args.threads}")
        print(f"{'mode':>6} {'viewers':>7} {'speed':>6} {'fps/viewer':>10} {'slowest':>8} {'server CPU':>10} "
              f"{'CPU ms/frame':>12} {'load':>5}")
        for mode in args.modes:
            for speed in args.speeds:
                for n in args.viewers:
                    r = measure(base, server.pid, mode, n, speed, args.seconds, steps)
                    print(f"{mode:>6} {n:>7} {speed or 'max':>6} {r['fps_mean']:>10.1f} {r['fps_min']:>8.1f} "
                          f"{r['cpu_pct']:>9.0f}% {r['cpu_ms_per_frame']:>12.1f} {r['load']:>5.2f}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=60)


if __name__ == "__main__":
    main()
