"""Peak memory of a full-size benchmark: CNN/DailyMail test (11,490 articles) x 3 builtin models.

Runs `benchgate run` in a subprocess (its own store and PREFECT_HOME, ephemeral Prefect server) and
samples the resident set size of the whole process tree (the CLI and every child: Prefect's server,
ROUGE workers) every 50 ms, and its proportional set size (pages shared between processes split
among them). The budget of 1.5 GB is held to the resident figure, the larger. The peer measured in
the same run is the same pipeline on a small seeded subset (`--peer-limit`, 200 articles by
default): with examples and generations streamed per shard, the full run's peak should stay close to
it, so the ratio full / peer is what shows memory growing with dataset size.

`--rerun` also measures a second identical run on the same store, which reuses every generation from
the cache (the cache is read per model x task before generating).

Run from the repository root: .venv/bin/python bench/memory.py [--data FILE] [--limit N] [--rerun]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

DEFAULT_DATA = (
    Path(
        os.environ.get("BENCHGATE_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    / "cnn_dailymail"
    / "test.jsonl"
)
BUDGET_BYTES = 1536 * 1024 * 1024
MODELS = ("reference", "baseline", "lead-3")


@dataclass(frozen=True)
class Measurement:
    peak_bytes: int
    peak_pss_bytes: int
    peak_processes: int
    wall_seconds: float
    exit_code: int
    output: str


def tree_memory(root: psutil.Process) -> tuple[int, int, int]:
    """Resident and proportional bytes of a process and all its descendants, and how many there are
    (processes that vanish mid-sample count 0). Resident bytes count a page shared by several
    processes once in each (the temporary Prefect server is forked from the CLI on Linux, so the
    modules both use are such pages); proportional bytes (PSS) split it among them: the tree's
    physical memory."""
    rss, pss, count = 0, 0, 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0, 0
    for process in processes:
        try:
            memory = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += memory.rss
        pss += getattr(memory, "pss", memory.rss)  # PSS is Linux's; elsewhere resident bytes
        count += 1
    return rss, pss, count


def write_request(directory: Path, data: Path, limit: int | None) -> Path:
    task: dict[str, object] = {"task": "text-summarization", "dataset": "cnn-dailymail", "path": str(data)}
    if limit:
        task["limit"] = limit
    request = {
        "name": f"memory · cnn-dailymail x {len(MODELS)} models",
        "models": [{"id": m, "provider": "builtin", "model": m} for m in MODELS],
        "tasks": [task],
    }
    path = directory / "request.json"
    path.write_text(json.dumps(request))
    return path


def _run(command: list[str], env: dict[str, str], interval: float) -> Measurement:
    started = time.perf_counter()
    child = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    root = psutil.Process(child.pid)
    peak, peak_pss, peak_processes = 0, 0, 0
    while child.poll() is None:
        rss, pss, count = tree_memory(root)
        peak_pss = max(peak_pss, pss)
        if rss > peak:
            peak, peak_processes = rss, count
        time.sleep(interval)
    wall = time.perf_counter() - started
    output = child.stdout.read().decode(errors="replace") if child.stdout else ""
    return Measurement(peak, peak_pss, peak_processes, wall, child.returncode, output)


def measure(data: Path, limit: int | None, interval: float, runs: int) -> list[Measurement]:
    """`runs` identical runs on one store: the second and later reuse every generation from the cache."""
    with tempfile.TemporaryDirectory(prefix="benchgate-memory-") as tmp:
        directory = Path(tmp)
        request = write_request(directory, data, limit)
        env = {
            **os.environ,
            "BENCHGATE_STORE": str(directory / "store"),
            "PREFECT_HOME": str(directory / "prefect"),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            "HF_HUB_OFFLINE": "1",
        }
        env.pop("PREFECT_API_URL", None)
        command = [
            sys.executable,
            "-m",
            "benchgate",
            "run",
            str(request),
            "--out",
            str(directory / "out"),
        ]
        return [_run(command, env, interval) for _ in range(runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CNN/DailyMail test split (JSONL).")
    parser.add_argument(
        "--limit", type=int, default=None, help="Seeded subset for the main run (default: all)."
    )
    parser.add_argument("--peer-limit", type=int, default=200, help="Subset for the peer run; 0 skips it.")
    parser.add_argument("--rerun", action="store_true", help="Also measure a second run reusing the cache.")
    parser.add_argument("--interval", type=float, default=0.05, help="Seconds between RSS samples.")
    args = parser.parse_args()
    if not args.data.is_file():
        print(f"dataset not found: {args.data}", file=sys.stderr)
        return 2
    label = "full" if args.limit is None else f"limit {args.limit}"
    results = dict(
        zip(
            [label, f"{label}, rerun from cache"],
            measure(args.data, args.limit, args.interval, 2 if args.rerun else 1),
            strict=False,
        )
    )
    if args.peer_limit:
        results[f"peer (limit {args.peer_limit})"] = measure(args.data, args.peer_limit, args.interval, 1)[0]
    for name, result in results.items():
        print(
            f"{name:<28} peak RSS {result.peak_bytes / 2**20:8.1f} MiB "
            f"({result.peak_processes} processes; PSS {result.peak_pss_bytes / 2**20:.1f} MiB)  "
            f"wall {result.wall_seconds:7.1f} s  exit {result.exit_code}"
        )
        if result.exit_code != 0:
            print(result.output[-4000:], file=sys.stderr)
    peak = max(r.peak_bytes for name, r in results.items() if not name.startswith("peer"))
    peer = next((r.peak_bytes for name, r in results.items() if name.startswith("peer")), 0)
    print(
        f"budget {BUDGET_BYTES / 2**20:.0f} MiB: peak is {peak / BUDGET_BYTES:.2f} x budget"
        + (f"; full / peer = {peak / peer:.2f}" if peer else "")
    )
    ok = all(r.exit_code == 0 for r in results.values()) and peak <= BUDGET_BYTES
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
