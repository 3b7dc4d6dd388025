"""ROUGE on the full CNN/DailyMail test split: benchgate's scorer vs single-process rouge-score.

Scores the shared Lead-3 predictions against the highlights (rouge1, rouge2, rougeLsum with stemming,
11,490 pairs) both ways in the same run, checks the numbers are identical, and prints both wall times
and their ratio (target: benchgate <= 0.6x on 2 cores). Data loading is outside both timings.

Run from the repository root: .venv/bin/python bench/rouge.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from rouge_score import rouge_scorer

from scorers.rouge import score_summaries

DATA = (
    Path(
        os.environ.get("BENCHGATE_TEST_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data")
    )
    / "cnn_dailymail"
)
TARGET_RATIO = 0.6


def load_pairs() -> tuple[list[str], list[str]]:
    with (DATA / "test.jsonl").open(encoding="utf-8") as handle:
        highlights = {row["id"]: row["highlights"] for row in map(json.loads, handle)}
    with (DATA / "lead3_predictions.jsonl").open(encoding="utf-8") as handle:
        predictions = [json.loads(line) for line in handle]
    return [p["lead3"] for p in predictions], [highlights[p["id"]] for p in predictions]


def main() -> int:
    if not DATA.is_dir():
        print(f"shared data not found at {DATA}", file=sys.stderr)
        return 2
    predictions, references = load_pairs()
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CNN/DailyMail test split: {len(predictions):,} Lead-3 / highlight pairs; {cpus} CPUs available")
    print(f"load average before: {os.getloadavg()[0]:.2f} (other processes on the machine skew both timings)")

    start = time.perf_counter()
    ours = score_summaries(predictions, references)
    ours_seconds = time.perf_counter() - start

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    start = time.perf_counter()
    theirs = [scorer.score(ref, pred) for pred, ref in zip(predictions, references, strict=True)]
    peer_seconds = time.perf_counter() - start

    identical = ours == [
        {"rouge-1": s["rouge1"].fmeasure, "rouge-2": s["rouge2"].fmeasure, "rouge-l": s["rougeLsum"].fmeasure}
        for s in theirs
    ]
    means = {name: 100 * sum(s[name] for s in ours) / len(ours) for name in ("rouge-1", "rouge-2", "rouge-l")}
    ratio = ours_seconds / peer_seconds
    print("mean F-measure x100: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    print(f"per-item scores identical to rouge-score: {identical}")
    print(f"rouge-score, single process        : {peer_seconds:7.2f} s")
    print(f"benchgate scorers.rouge (pool+memo): {ours_seconds:7.2f} s")
    verdict = "meets" if ratio <= TARGET_RATIO else "MISSES"
    print(f"ratio benchgate / rouge-score      : {ratio:7.2f}x  ({verdict} the <= {TARGET_RATIO}x target)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
