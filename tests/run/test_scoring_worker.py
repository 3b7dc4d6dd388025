"""The forked scoring worker scores as the run's own thread does, and the run outlives its death."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

# In a process of its own: the worker is only forked from a process without other threads.
SCRIPT = """
import asyncio, json, os, signal, sys
from benchgate.evaltasks import make_task
from benchgate.run import scoring_worker
from benchgate.run.evaluation import prepare_examples
from benchgate.spec.request import TaskSpec
from benchgate.store import Store

root, sample = sys.argv[1], sys.argv[2]
task = make_task(TaskSpec(task="question-answering", path=sample))


def shard(name):
    store = Store(f"{root}/{name}")
    info = prepare_examples(store, task)
    examples_file = store.open_examples(info.digest)
    examples = [e for group in range(info.n_shards) for e in examples_file.read_group(group)]
    examples_file.close()
    rows = [
        {"example_id": e.example_id, "sample_index": 0, "error": None, "latency_ms": 1.0,
         "output": e.references[0] if i % 2 and e.references else "no answer"}
        for i, e in enumerate(examples)
    ]
    return store, info.digest, range(info.n_shards), examples, rows


def score(name):
    store, digest, groups, examples, rows = shard(name)
    frame = asyncio.run(scoring_worker.score_outside_loop(task, store, digest, groups, examples, rows))
    return frame.sort_values("example_id").reset_index(drop=True)


here = score("thread")
own_score = scoring_worker._score
with scoring_worker.forked() as started:
    def refuse(*args):
        raise AssertionError("scored in the run's process")

    scoring_worker._score = refuse  # the worker was forked before: it keeps the real one
    forked = score("worker")
    scoring_worker._score = own_score
    worker_pid = next(iter(scoring_worker._worker._processes))
    os.kill(worker_pid, signal.SIGKILL)
    os.waitpid(worker_pid, 0)
    after_death = score("after-death")
    left = scoring_worker._worker
print(json.dumps({
    "started": started,
    "n": len(here),
    "distinct_exact_match": sorted(set(here["exact-match"])),
    "worker_equal": bool(forked.equals(here)),
    "after_death_equal": bool(after_death.equals(here)),
    "worker_left": left is not None,
}))
"""


def test_the_worker_scores_what_the_thread_scores_and_its_death_falls_back_to_the_thread(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), str(REPO_ROOT / "benchgate/data/squad_v2_sample.json")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout.splitlines()[-1])
    assert outcome["started"] is True
    assert outcome["n"] > 10 and outcome["distinct_exact_match"] == [0.0, 100.0]
    assert outcome["worker_equal"], "the worker's scores differ from the thread's"
    assert outcome["after_death_equal"] and not outcome["worker_left"]
