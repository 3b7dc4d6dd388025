"""`benchgate run` against lm-eval and a raw HTTP client, on one local server, in one run: ratios.

A local OpenAI-compatible server (tests/support/chat_servers.py, its own process) answers every
request after a fixed latency with "echo: <prompt>"; N items whose target is that echo are
evaluated with exact match by
  - lm-eval 0.4.13 (`local-chat-completions`, num_concurrent=C, a local JSONL task), installed by
    this script in its own venv outside the repository (~/.cache/benchgate-bench),
  - a raw client: a few lines of aiohttp at concurrency C (the floor: no evaluation at all),
  - `benchgate run` (a custom task, exact-match), embedded (no Prefect server configured: it starts
    its temporary one) and against a running Prefect server (started once, not counted): a run on
    a new store, its identical rerun, and another model on a store that already holds the examples.
    The growth curve (N up to 50,000, C=128, 20 ms) has both: embedded first, as a user gets it;
    embedded, running and the raw client take turns, --repeat times each.
CPU is that of the whole process tree (every server or worker a command starts), wall is launch to
exit, start-up is launch to the first request the server saw, span is the server's first request to
its last response. The machine may be shared: each figure is the median of --repeat runs.

    .venv/bin/python bench/vs_lm_eval.py            # N=5,000, L=100 ms, C=32 and 128; growth to 50,000
    .venv/bin/python bench/vs_lm_eval.py --quick    # N=1,000, one repeat, growth to 5,000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil
from throughput import ROOT, ChatServerProcess

from tests.support.prefect_server import PrefectServer

LM_EVAL = "lm-eval[api]==0.4.13"
TOOLS_VENV = Path(
    os.environ.get("BENCHGATE_BENCH_VENV", "~/.cache/benchgate-bench/lm-eval-0.4.13")
).expanduser()
RAW_CLIENT = """
import asyncio, sys, aiohttp
url, n, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
async def main():
    slots = asyncio.Semaphore(c)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=c)) as session:
        async def one(i):
            body = {"model": "m", "messages": [{"role": "user", "content": f"What is the code of item {i}?"}],
                    "temperature": 0, "max_tokens": 16}
            async with slots, session.post(url, json=body) as response:
                return (await response.json())["choices"][0]["message"]["content"]
        answers = await asyncio.gather(*(one(i) for i in range(n)))
    assert all(a.startswith("echo: ") for a in answers)
asyncio.run(main())
"""
LM_EVAL_TASK = """task: bench_echo
dataset_path: json
dataset_kwargs:
  data_files:
    test: {items}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 16
  temperature: 0
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


@dataclass
class Run:
    wall: float
    cpu: float
    peak_rss: int
    requests: int
    startup: float | None
    span: float | None
    output: str


def tools_python() -> Path:
    """lm-eval (and aiohttp, its dependency) in a venv of their own, installed once."""
    python = TOOLS_VENV / "bin" / "python"
    if not (TOOLS_VENV / "bin" / "lm-eval").exists():
        print(f"installing {LM_EVAL} into {TOOLS_VENV} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", LM_EVAL], check=True)
    return python


def measure(command: list[str], env: dict[str, str], server: ChatServerProcess) -> Run:
    """Wall, CPU of the process tree (rusage of waited-for children) and its peak resident memory."""
    server.reset()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.monotonic()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    root, peak = psutil.Process(child.pid), 0
    while True:
        rss = 0
        try:
            for process in [root, *root.children(recursive=True)]:
                rss += process.memory_info().rss
        except psutil.Error:
            pass
        peak = max(peak, rss)
        try:  # the exit as it happens, not at the next of these samples
            child.wait(timeout=0.05)
            break
        except subprocess.TimeoutExpired:
            pass
    wall = time.monotonic() - launched
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    output = child.stdout.read().decode(errors="replace") if child.stdout else ""
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])} exit {child.returncode}:\n{output[-3000:]}")
    stats = server.stats()
    first = stats["first_request_at"]  # CLOCK_MONOTONIC: the same clock in every process here
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    startup = first - launched if first is not None else None
    return Run(wall, cpu, peak, stats["requests"], startup, stats["span_seconds"], output)


def median_run(runs: list[Run]) -> Run:
    """Each figure's median over the repeats (the machine may be busy with other work)."""

    def med(get: Callable[[Run], float | None]) -> float | None:
        values = [v for v in map(get, runs) if v is not None]
        return statistics.median(values) if values else None

    return Run(
        wall=med(lambda r: r.wall) or 0.0,
        cpu=med(lambda r: r.cpu) or 0.0,
        peak_rss=int(med(lambda r: r.peak_rss) or 0),
        requests=runs[0].requests,
        startup=med(lambda r: r.startup),
        span=med(lambda r: r.span),
        output=runs[-1].output,
    )


def write_items(directory: Path, n: int) -> Path:
    path = directory / f"items-{n}.jsonl"
    with path.open("w") as handle:
        for i in range(n):
            question = f"What is the code of item {i}?"
            handle.write(json.dumps({"id": f"q{i:06d}", "question": question, "answer": f"echo: {question}"}))
            handle.write("\n")
    return path


def write_request(directory: Path, items: Path, url: str, concurrency: int, model_id: str = "m") -> Path:
    request = {
        "name": "vs-lm-eval",
        "models": [
            {
                "id": model_id,
                "provider": "openai-compatible",
                "base_url": url + "/v1",
                "concurrency": concurrency,
                "params": {"temperature": 0, "max_tokens": 16},
            }
        ],
        "tasks": [
            {
                "task": "echo",
                "dataset": str(items),
                "id_field": "id",
                "prompt": "{{ question }}",
                "target": "answer",
                "metrics": ["exact-match"],
            }
        ],
    }
    path = directory / f"request-{items.stem}-c{concurrency}-{model_id}.json"
    path.write_text(json.dumps(request))
    return path


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.tools = tools_python()
        # As a user runs it: Prefect's own logging defaults (INFO, sent to the server), no server named.
        self.base_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        for name in ("PREFECT_API_URL", "PREFECT_LOGGING_LEVEL"):
            self.base_env.pop(name, None)
        self.runs = 0

    def benchgate(self, request: Path, env: dict[str, str], server: ChatServerProcess, store: Path) -> Run:
        self.runs += 1
        out = self.work / f"out-{self.runs}"
        command = [sys.executable, "-m", "benchgate", "run", str(request), "--out", str(out)]
        run = measure(command, {**env, "BENCHGATE_STORE": str(store)}, server)
        report = json.loads((out / "report.json").read_text())
        run.output = str(report["report"]["echo"]["results"][0]["exact-match"])
        return run

    def lm_eval(self, items: Path, server: ChatServerProcess, concurrency: int) -> Run:
        self.runs += 1
        tasks = self.work / f"lm-eval-tasks-{self.runs}"
        tasks.mkdir()
        (tasks / "bench_echo.yaml").write_text(LM_EVAL_TASK.format(items=items))
        args = f"model=m,base_url={server.url}/v1/chat/completions,num_concurrent={concurrency},max_retries=3"
        command = [str(self.tools.parent / "lm-eval"), "--model", "local-chat-completions"]
        command += ["--model_args", args, "--tasks", "bench_echo", "--include_path", str(tasks)]
        command += ["--apply_chat_template"]
        env = {**self.base_env, "HF_DATASETS_CACHE": str(self.work / f"hf-{self.runs}")}  # cold, as ours
        run = measure(command, env, server)
        row = next((line for line in run.output.splitlines() if "exact_match" in line), "")
        run.output = row.split("|")[-4].strip() if row.count("|") > 4 else row
        return run

    def raw(self, server: ChatServerProcess, n: int, concurrency: int) -> Run:
        command = [str(self.tools), "-c", RAW_CLIENT, f"{server.url}/v1/chat/completions", str(n)]
        return measure([*command, str(concurrency)], self.base_env, server)

    def repeat(self, make: Callable[[], Run]) -> Run:
        return median_run([make() for _ in range(self.args.repeat)])

    def first_and_rerun(
        self, request: Path, env: dict[str, str], server: ChatServerProcess
    ) -> tuple[Run, Run, Path]:
        """A run on a new store, then the identical request again: every answer and score reused."""
        self.runs += 1
        store = self.work / f"store-{self.runs}"
        first = self.benchgate(request, env, server, store)
        scored = len(list(store.glob("score-cache/*/*")))
        rerun = self.benchgate(request, env, server, store)
        if len(list(store.glob("score-cache/*/*"))) != scored:
            raise SystemExit("the rerun scored again instead of reusing the shards' scores")
        return first, rerun, store

    def cold(self, items: Path, summary: list[str]) -> None:
        """Target 1 and the embedded start-up: no Prefect server configured, a new store each run."""
        n, latency = self.args.n, self.args.latency
        print(f"\n1. cold, no Prefect server configured: N={n:,}, L={latency * 1000:.0f} ms, C=32")
        server = ChatServerProcess(latency, [], None)
        try:
            env = {**self.base_env, "PREFECT_HOME": str(self.work / "prefect-home")}
            request = write_request(self.work, items, server.url, 32)
            stores = itertools.count()
            first_ever = self.benchgate(request, env, server, self.work / "store-first")
            cold = self.repeat(lambda: self.benchgate(request, env, server, self.work / f"s{next(stores)}"))
            lm = self.repeat(lambda: self.lm_eval(items, server, 32))
            raw = self.repeat(lambda: self.raw(server, n, 32))
        finally:
            server.stop()
        ideal = n * latency / 32
        line("benchgate, first run in a new home", first_ever)
        line("benchgate run (embedded Prefect)", cold, ideal)
        line("lm-eval 0.4.13", lm, ideal)
        line("raw aiohttp client", raw, ideal)
        print(f"  exact match: benchgate {cold.output}, lm-eval {lm.output}")
        print(f"  first run in a new PREFECT_HOME (its database created): {ratio(first_ever.wall, lm.wall)}x")
        summary.append(f"cold wall / lm-eval {verdict(cold.wall / lm.wall, 0.6)}")
        summary.append(f"cold CPU / lm-eval {verdict(cold.cpu / lm.cpu, 0.5)}")
        summary.append(f"start-up, embedded {verdict(cold.startup, 6.0)} s")

    def running(self, items: Path, env: dict[str, str], concurrency: int, summary: list[str]) -> None:
        """Targets 2-4: a running Prefect server; span efficiency, start-up, the cached rerun."""
        n, latency = self.args.n, self.args.latency
        print(f"\n2. running Prefect server: N={n:,}, L={latency * 1000:.0f} ms, C={concurrency}")
        server = ChatServerProcess(latency, [], None)
        try:
            request = write_request(self.work, items, server.url, concurrency)
            pairs = [self.first_and_rerun(request, env, server) for _ in range(self.args.repeat)]
            # A store that already holds the task's examples, as a nightly gate's does: a new model.
            models = (f"m{i}" for i in itertools.count(2))
            warm = self.repeat(
                lambda: self.benchgate(
                    write_request(self.work, items, server.url, concurrency, next(models)),
                    env,
                    server,
                    pairs[-1][2],
                )
            )
            raw = self.repeat(lambda: self.raw(server, n, concurrency))
        finally:
            server.stop()
        first, rerun = median_run([p[0] for p in pairs]), median_run([p[1] for p in pairs])
        ideal = n * latency / concurrency
        line("benchgate run", first, ideal)
        line("identical rerun (all cached)", rerun)
        line("another model, examples in store", warm, ideal)
        line("raw aiohttp client", raw, ideal)
        efficiency = ideal / first.span if first.span else None
        target = 0.92 if concurrency == 32 else 0.85
        summary.append(f"C={concurrency} wall / raw client {verdict(first.wall / raw.wall, 1.25)}")
        summary.append(f"C={concurrency} span efficiency {verdict(efficiency, target, at_most=False)}")
        if concurrency == 32:
            startup = first.startup or 0.0
            summary.append(f"start-up, running server {verdict(first.startup, 2.0)} s")
            summary.append(f"start-up, running server, examples in the store {verdict(warm.startup, 2.0)} s")
            # The rerun sends nothing, so its own start-up cannot be seen: the first run's stands in.
            beyond = max(0.0, rerun.wall - startup) / (first.wall - startup)
            summary.append(
                f"rerun ({rerun.requests} requests): wall beyond the first run's start-up "
                f"{verdict(beyond, 0.15)} of the first's (whole walls: {ratio(rerun.wall, first.wall)})"
            )
            summary.append(f"rerun CPU per 1,000 reused items {verdict(rerun.cpu / (n / 1000), 1.0)} s")

    def growth(self, sizes: list[int], running_env: dict[str, str], summary: list[str]) -> None:
        """Target 5: N up to 50,000 at C=128 and 20 ms latency, embedded (as a user gets it) and
        against a running Prefect server, each beside the raw client; the three take turns."""
        print("\n5. growth: L=20 ms, C=128 (wall, CPU, peak memory of the tree)")
        embedded_env = {**self.base_env, "PREFECT_HOME": str(self.work / "prefect-home")}
        server = ChatServerProcess(0.02, [], None)
        try:
            for size in sizes:
                request = write_request(self.work, write_items(self.work, size), server.url, 128)
                kinds: dict[str, list[Run]] = {"embedded": [], "running server": [], "raw": []}
                for turn in range(self.args.repeat):
                    for kind, env in (("embedded", embedded_env), ("running server", running_env)):
                        store = self.work / f"g{size}-{turn}-{kind[0]}"
                        kinds[kind].append(self.benchgate(request, env, server, store))
                    kinds["raw"].append(self.raw(server, size, 128))
                runs = {kind: median_run(measured) for kind, measured in kinds.items()}
                raw = runs.pop("raw")
                for kind, run in runs.items():
                    line(f"N={size:,} benchgate, {kind}", run, size * 0.02 / 128)
                line(f"N={size:,} raw aiohttp client", raw, size * 0.02 / 128)
                for kind, run in runs.items():
                    print(f"    {kind}: wall {ratio(run.wall, raw.wall)}x the raw client's")
                    if size == max(sizes):
                        wall, memory = verdict(run.wall / raw.wall, 1.5), verdict(run.peak_rss / 2**30, 1.0)
                        summary.append(f"N={size:,} {kind}: wall / raw client {wall}")
                        summary.append(f"N={size:,} {kind}: peak memory {memory} GiB")
        finally:
            server.stop()


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "n/a"


def verdict(value: float | None, limit: float, at_most: bool = True) -> str:
    if value is None:
        return "n/a"
    ok = value <= limit if at_most else value >= limit
    return f"{value:.2f} ({'<=' if at_most else '>='} {limit}: {'met' if ok else 'NOT met'})"


def line(label: str, run: Run, ideal: float | None = None) -> None:
    startup = f"{run.startup:5.2f} s" if run.startup is not None else "  n/a  "
    span = f"{run.span:6.2f} s" if run.span is not None else "   n/a  "
    efficiency = f"  span efficiency {ideal / run.span:.3f}" if ideal and run.span else ""
    print(
        f"  {label:<34} wall {run.wall:6.2f} s  CPU {run.cpu:6.2f} s  peak {run.peak_rss / 2**20:6.0f} MiB"
        f"  start-up {startup}  span {span}  requests {run.requests}{efficiency}"
    )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--quick", action="store_true", help="N=1,000, one repeat, growth to 5,000")
    parser.add_argument("--n", type=int, default=None, help="items (default 5,000; 1,000 with --quick)")
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeat", type=int, default=None, help="runs per figure (median; default 3)")
    parser.add_argument("--growth", type=int, nargs="*", default=None, help="N for the growth curve")
    args = parser.parse_args()
    args.n = args.n or (1000 if args.quick else 5000)
    args.repeat = args.repeat or (1 if args.quick else 3)
    growth = (
        args.growth if args.growth is not None else ([2000, 5000] if args.quick else [5000, 20000, 50000])
    )
    load = os.getloadavg()[0]
    print(f"benchgate vs lm-eval: {os.cpu_count()} CPUs, load average {load:.1f}, median of {args.repeat}")
    with tempfile.TemporaryDirectory(prefix="benchgate-vs-lm-eval-") as tmp:
        work = Path(tmp)
        bench = Bench(args, work)
        items = write_items(work, args.n)
        summary: list[str] = []
        bench.cold(items, summary)
        prefect = PrefectServer(work / "prefect-server-home").start()
        try:
            env = {**bench.base_env, **prefect.env()}
            env.pop("PREFECT_LOGGING_LEVEL")  # the test clients' quiet setting: not what a user has
            for concurrency in (32, 128):
                bench.running(items, env, concurrency, summary)
            bench.growth(growth, env, summary)
        finally:
            prefect.stop()
    print("\nTargets:")
    for text in summary:
        print(f"  {text}")


if __name__ == "__main__":
    main()
