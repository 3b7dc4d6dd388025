"""Throughput of `benchgate run` against a local OpenAI-compatible server with a fixed latency.

N items at concurrency C can take no less than N·L/C seconds of model time; the benchmark prints
how close the pipeline gets (server-side span first request -> last response, and wall time),
the most requests the server saw at once, the client's CPU per 1,000 requests, start-up time to
the first request, an identical rerun (everything cached: zero requests expected), and a run with
injected faults (20% 429 with Retry-After: 1, 10% 500).

    .venv/bin/python bench/throughput.py                       # N=5000, L=0.1 s, C=32 and C=128
    .venv/bin/python bench/throughput.py --n 1000 --concurrency 32 --no-faults

The chat server and Prefect's server run as separate processes, so the CPU measured is the
`benchgate run` process alone (resource usage of the waited-for child). As a peer measured in the
same run, the provider alone (no Prefect, no store) drives the same N requests at the same C from
this process: what the pipeline adds is the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchgate.providers import provider_class  # noqa: E402
from benchgate.spec.example import Example  # noqa: E402
from benchgate.spec.request import ModelSpec  # noqa: E402
from tests.support.prefect_server import PrefectServer  # noqa: E402

TARGET_SPAN_EFFICIENCY = {32: 0.95, 128: 0.90}
TARGET_CPU_PER_1000 = 2.0


class ChatServerProcess:
    """tests/support/chat_servers.py as a separate process, so its CPU is not the client's."""

    def __init__(self, latency: float, faults: list[str], retry_after: str | None) -> None:
        command = [sys.executable, "-m", "tests.support.chat_servers", "--port", "0"]
        command += ["--latency", str(latency)]
        for fault in faults:
            command += ["--fault", fault]
        if retry_after:
            command += ["--retry-after", retry_after]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = json.loads(self.process.stdout.readline())["url"]

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_stats").json()

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@dataclass
class Run:
    wall: float
    cpu: float
    exit_code: int
    stats: dict[str, Any]
    startup: float | None  # launch -> first request the server saw
    n_errors: int


def write_dataset(directory: Path, n: int) -> Path:
    """N short questions in SQuAD v2's own format, for the built-in question-answering task."""
    paragraphs = [
        {
            "context": f"Item {i} has the code {i * 7}.",
            "qas": [
                {
                    "id": f"q{i:06d}",
                    "question": f"What is the code of item {i}?",
                    "answers": [{"text": str(i * 7), "answer_start": 0}],
                    "is_impossible": False,
                }
            ],
        }
        for i in range(n)
    ]
    path = directory / "squad.json"
    path.write_text(json.dumps({"version": "v2.0", "data": [{"title": "bench", "paragraphs": paragraphs}]}))
    return path


def write_request(directory: Path, dataset: Path, base_url: str, model_id: str, concurrency: int) -> Path:
    request = {
        "name": f"throughput {model_id}",
        "models": [
            {
                "id": model_id,
                "provider": "openai-compatible",
                "base_url": base_url,
                "concurrency": concurrency,
                "params": {"temperature": 0, "max_tokens": 16},
            }
        ],
        "tasks": [{"task": "question-answering", "dataset": "squad-v2", "path": str(dataset)}],
        "error_budget": 1.0,
    }
    path = directory / f"{model_id}.json"
    path.write_text(json.dumps(request, indent=2))
    return path


def run_benchgate(request: Path, out: Path, env: dict[str, str], server: ChatServerProcess) -> Run:
    server.reset()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launched = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "benchgate", "run", str(request), "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.monotonic() - launched
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode not in (0, 1, 3):
        raise SystemExit(
            f"benchgate run exit {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
        )
    stats = server.stats()
    first = stats["first_request_at"]
    # time.monotonic() is CLOCK_MONOTONIC, the same clock in every process of this machine.
    startup = first - launched if first is not None else None
    report_path = out / "report.json"
    if not report_path.exists():
        raise SystemExit(
            f"no report.json, exit {completed.returncode}:\n{completed.stdout}\n{completed.stderr}"
        )
    report = json.loads(report_path.read_text())
    n_errors = sum(
        detail.get("n_errors", 0) for task in report.get("details", {}).values() for detail in task.values()
    )
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, completed.returncode, stats, startup, n_errors)


def efficiency(ideal: float, actual: float | None) -> str:
    return f"{ideal / actual:.3f}" if actual else "n/a"


def report_run(label: str, run: Run, n: int, latency: float, concurrency: int) -> dict[str, Any]:
    ideal = n * latency / concurrency
    span = run.stats["span_seconds"]
    requests = run.stats["requests"]
    beyond_startup = run.wall - run.startup if run.startup is not None else None
    cpu_per_1000 = 1000 * run.cpu / requests if requests else None
    print(f"  {label}")
    print(f"    wall {run.wall:.2f} s   server span {span or 0:.2f} s   ideal N·L/C {ideal:.2f} s")
    print(f"    efficiency ideal/span {efficiency(ideal, span)}   ideal/wall {efficiency(ideal, run.wall)}")
    print(
        f"    requests {requests}   max in flight {run.stats['max_in_flight']} (C={concurrency})"
        f"   faults injected {run.stats['faults_injected']}   items with errors {run.n_errors}"
    )
    startup = f"{run.startup:.2f} s" if run.startup is not None else "n/a (no request)"
    beyond = f"{beyond_startup:.2f} s" if beyond_startup is not None else "n/a"
    per_1000 = f"{cpu_per_1000:.2f} s" if cpu_per_1000 is not None else "n/a"
    print(f"    start-up to first request {startup}   wall beyond start-up {beyond}")
    print(f"    client CPU {run.cpu:.2f} s = {per_1000} per 1,000 requests (whole process, with start-up)")
    return {
        "wall": run.wall,
        "span": span,
        "ideal": ideal,
        "requests": requests,
        "max_in_flight": run.stats["max_in_flight"],
        "cpu": run.cpu,
        "startup": run.startup,
        "errors": run.n_errors,
    }


async def _drive_provider(url: str, n: int, concurrency: int) -> None:
    spec = ModelSpec(
        id=f"peer-c{concurrency}",
        provider="openai-compatible",
        base_url=url + "/v1",
        concurrency=concurrency,
        params={"temperature": 0, "max_tokens": 16},
    )
    provider = provider_class("openai-compatible")(spec, None)
    examples = [
        Example(f"q{i}", [{"role": "user", "content": f"What is the code of item {i}?"}], [])
        for i in range(n)
    ]
    try:
        await asyncio.gather(*(provider.complete(example, 0) for example in examples))
    finally:
        await provider.aclose()


def provider_only(server: ChatServerProcess, n: int, latency: float, concurrency: int) -> None:
    """The peer: the same requests through the provider alone, from this process."""
    server.reset()
    cpu = time.process_time()
    started = time.monotonic()
    asyncio.run(_drive_provider(server.url, n, concurrency))
    wall = time.monotonic() - started
    cpu = time.process_time() - cpu
    span = server.stats()["span_seconds"]
    ideal = n * latency / concurrency
    print("  provider alone (peer: no Prefect, no store)")
    print(
        f"    wall {wall:.2f} s   server span {span:.2f} s   efficiency ideal/span {efficiency(ideal, span)}"
        f"   CPU {1000 * cpu / n:.2f} s per 1,000 requests"
    )


def bench_concurrency(args: argparse.Namespace, concurrency: int, env: dict[str, str], work: Path) -> None:
    n, latency = args.n, args.latency
    directory = work / f"c{concurrency}"
    directory.mkdir()
    dataset = write_dataset(directory, n)
    print(f"\nN={n} L={latency * 1000:.0f} ms C={concurrency}")
    server = ChatServerProcess(latency, [], None)
    try:
        provider_only(server, n, latency, concurrency)
        request = write_request(directory, dataset, server.url + "/v1", f"bench-c{concurrency}", concurrency)
        store = {**env, "BENCHGATE_STORE": str(directory / "store")}
        first_run = run_benchgate(request, directory / "out1", store, server)
        first = report_run("benchgate run", first_run, n, latency, concurrency)
        rerun = run_benchgate(request, directory / "out2", store, server)
        report_run("identical rerun (everything cached)", rerun, n, latency, concurrency)
    finally:
        server.stop()
    target = TARGET_SPAN_EFFICIENCY.get(concurrency)
    span_eff = first["ideal"] / first["span"] if first["span"] else 0.0
    verdict = f" (target >= {target}: {'met' if span_eff >= target else 'NOT met'})" if target else ""
    print(f"  => span efficiency {span_eff:.3f}{verdict}")
    cpu_per_1000 = 1000 * first["cpu"] / max(1, first["requests"])
    verdict = "met" if cpu_per_1000 <= TARGET_CPU_PER_1000 else "NOT met"
    print(
        f"  => client CPU {cpu_per_1000:.2f} s / 1,000 requests (target <= {TARGET_CPU_PER_1000}: {verdict})"
    )
    if first["startup"] is not None:
        beyond = rerun.wall - first["startup"]
        print(
            f"  => rerun: {rerun.stats['requests']} requests, {beyond:.2f} s beyond the first run's start-up"
        )
    if args.faults:
        fault_server = ChatServerProcess(latency, ["429=0.2", "500=0.1"], "1")
        try:
            url = fault_server.url + "/v1"
            request = write_request(directory, dataset, url, f"bench-f{concurrency}", concurrency)
            store = {**env, "BENCHGATE_STORE": str(directory / "store-faults")}
            run = run_benchgate(request, directory / "out3", store, fault_server)
            info = report_run("faults: 20% 429 (Retry-After: 1) + 10% 500", run, n, latency, concurrency)
        finally:
            fault_server.stop()
        # Each item needs 1/0.7 attempts on average; a 429's one-second wait does not hold a slot.
        ideal = n * latency / 0.7 / concurrency
        print(
            f"  => fault run: ideal with retries N·L/(0.7·C) {ideal:.2f} s, efficiency ideal/span "
            f"{efficiency(ideal, info['span'])}; {info['errors']} of {n} items ended in error"
        )


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--n", type=int, default=5000, help="items")
    parser.add_argument("--latency", type=float, default=0.1, help="server latency per request, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--no-faults", dest="faults", action="store_false", help="skip the fault run")
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="no Prefect server: each run starts Prefect's temporary one (as with no PREFECT_API_URL)",
    )
    args = parser.parse_args()
    print(f"benchgate throughput: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="benchgate-throughput-") as tmp:
        work = Path(tmp)
        env = {**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        prefect: PrefectServer | None = None
        if args.ephemeral:
            env["PREFECT_HOME"] = str(work / "prefect-home")
            env.pop("PREFECT_API_URL", None)
        else:
            prefect = PrefectServer(work / "prefect-home").start()
            env.update(prefect.env())
            print(f"Prefect server {prefect.api_url} (started once, not counted)")
        try:
            for concurrency in args.concurrency:
                bench_concurrency(args, concurrency, env, work)
        finally:
            if prefect is not None:
                prefect.stop()


if __name__ == "__main__":
    main()
