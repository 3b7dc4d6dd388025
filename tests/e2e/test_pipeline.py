"""End to end through the `benchgate` CLI: two OpenAI-compatible models x three tasks against a local server.

The server's replies are known in advance, so every metric is recomputed here independently: exact
match by definition, ROUGE with the rouge-score package itself, pass@1 from which replies are correct.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest
from rouge_score import rouge_scorer

from benchgate.datasets.humaneval import read_humaneval
from benchgate.datasets.squad import read_squad
from benchgate.gate.webhooks import verify
from benchgate.report.build import DIGITS
from benchgate.run.validation import parse_request
from scorers.stats import bootstrap_ci
from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.chat_servers import ChatRequest, ChatServer, Reply
from tests.support.processes import run_and_kill_when

pytestmark = pytest.mark.slow

DATA = REPO_ROOT / "benchgate" / "data"
SQUAD = {item.question: item for item in read_squad(str(DATA / "squad_v2_sample.json"))}
ARTICLES = [json.loads(line) for line in (DATA / "cnn_dailymail_sample.jsonl").read_text().splitlines()]
CODE_LIMIT = 8
PROBLEMS = {p["task_id"]: p for p in read_humaneval()}
FAKE_KEY = "sk-test-e2e-4f1c9b-NEVER-LOG-ME"
HOOK_SECRET = "whsec-e2e-secret"


def _first_sentence(article: str) -> str:
    return re.split(r"(?<=[.!?])\s+", article.strip())[0]


def good_reply(request: ChatRequest) -> str:
    """Gold for half the questions, a wrong span for the rest; first sentence; correct code for even ids."""
    prompt = request.prompt
    if prompt.startswith("Passage:"):
        item = SQUAD[prompt.rsplit("Question: ", 1)[1]]
        if item.qid[-1] in "02468ace":
            return item.answers[0] if item.answers else "unanswerable"
        return "zebra crossing"
    if "Article:\n" in prompt:
        return _first_sentence(prompt.split("Article:\n", 1)[1])
    task_id = next(t for t, p in PROBLEMS.items() if p["prompt"] in prompt)
    if int(task_id.split("/")[1]) % 2 == 0:
        return "```python\n" + PROBLEMS[task_id]["prompt"] + PROBLEMS[task_id]["canonical_solution"] + "```"
    return "```python\n    raise RuntimeError('wrong on purpose')\n```"


def weak_reply(request: ChatRequest) -> str:
    if request.prompt.startswith("Passage:"):
        return "unanswerable"
    if "Article:\n" in request.prompt:
        return "Nothing happened today."
    return "```python\n    raise RuntimeError('no')\n```"


def reply(request: ChatRequest) -> str | Reply:
    return good_reply(request) if request.model == "good-1" else weak_reply(request)


class HookReceiver:
    """A real webhook receiver on 127.0.0.1 that keeps what it was sent."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.deliveries.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/promote"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    with ChatServer(reply=reply) as server:
        yield server


@pytest.fixture
def hook() -> Iterator[HookReceiver]:
    receiver = HookReceiver()
    yield receiver
    receiver.close()


def write_request(path: Path, server_url: str, hook_url: str | None = None, concurrency: int = 4) -> Path:
    models = [
        {
            "id": model_id,
            "provider": "openai-compatible",
            "model": f"{model_id}-1",
            "base_url": server_url + "/v1",
            "api_key_env": "E2E_API_KEY",
            "params": {"temperature": 0, "max_tokens": 256},
            "concurrency": concurrency,
        }
        for model_id in ("good", "weak")
    ]
    request = {
        "name": "e2e",
        "models": models,
        "tasks": [
            {"task": "text-summarization", "path": str(DATA / "cnn_dailymail_sample.jsonl")},
            {"task": "question-answering", "path": str(DATA / "squad_v2_sample.json"), "shard_size": 10},
            {"task": "code-generation", "limit": CODE_LIMIT},
        ],
        "gate": {
            "baseline": "weak",
            "rules": [
                {"model": "good", "task": "question-answering", "metric": "exact-match", "at_least": 30},
                {
                    "model": "good",
                    "task": "text-summarization",
                    "metric": "rouge-l",
                    "no_worse_than": "baseline",
                },
            ],
            "on_pass": [{"url": hook_url, "secret_env": "E2E_HOOK_SECRET"}] if hook_url else [],
        },
    }
    path.write_text(json.dumps(request))
    return path


def expected_metrics(code_ids: list[str]) -> dict[str, dict[str, dict[str, float]]]:
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    expected: dict[str, dict[str, dict[str, float]]] = {}
    for model, summarize in (
        ("good", lambda a: _first_sentence(a)),
        ("weak", lambda a: "Nothing happened today."),
    ):
        scores = [scorer.score(a["highlights"], summarize(a["article"])) for a in ARTICLES]
        expected.setdefault("text-summarization", {})[model] = {
            "rouge-1": sum(s["rouge1"].fmeasure for s in scores) / len(scores),
            "rouge-2": sum(s["rouge2"].fmeasure for s in scores) / len(scores),
            "rouge-l": sum(s["rougeLsum"].fmeasure for s in scores) / len(scores),
        }
    items = list(SQUAD.values())
    good_correct = [i.qid[-1] in "02468ace" for i in items]
    weak_correct = [not i.answers for i in items]
    expected["question-answering"] = {
        model: {"exact-match": 100 * sum(c) / len(c), "f1-score": 100 * sum(c) / len(c)}
        for model, c in (("good", good_correct), ("weak", weak_correct))
    }
    if code_ids:
        even = [int(t.split("/")[1]) % 2 == 0 for t in code_ids]
        expected["code-generation"] = {
            "good": {"pass@1": 100 * sum(even) / len(even)},
            "weak": {"pass@1": 0.0},
        }
    return expected


def test_two_models_three_tasks_end_to_end(
    tmp_path: Path, prefect_server, chat_server: ChatServer, hook: HookReceiver
) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    request = write_request(tmp_path / "request.json", chat_server.url, hook.url)
    env = cli_env(prefect_server, store, E2E_API_KEY=FAKE_KEY, E2E_HOOK_SECRET=HOOK_SECRET)

    first = run_cli(["run", str(request), "--out", str(out)], env)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads((out / "report.json").read_text())

    assert set(report) == {"benchmarkId", "name", "status", "completedAt", "report", "details", "gate"}
    assert re.fullmatch(r"bmk-[0-9a-f]{12}", report["benchmarkId"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", report["completedAt"])
    assert (report["name"], report["status"]) == ("e2e", "completed")
    assert list(report["report"]) == ["text-summarization", "question-answering", "code-generation"]
    code_ids = sorted(
        {
            t
            for r in chat_server.requests
            if r.model == "good-1"
            for t, p in PROBLEMS.items()
            if p["prompt"] in r.prompt
        }
    )
    assert len(code_ids) == CODE_LIMIT
    expected = expected_metrics(code_ids)
    datasets = {
        "text-summarization": "cnn-dailymail",
        "question-answering": "squad-v2",
        "code-generation": "humaneval",
    }
    for task, section in report["report"].items():
        assert set(section) == {"dataset", "results"} and section["dataset"] == datasets[task]
        assert [row["model"] for row in section["results"]] == ["good", "weak"]
        for row in section["results"]:
            assert set(row) == {"model", *expected[task][row["model"]]}
            for metric, value in expected[task][row["model"]].items():
                assert row[metric] == pytest.approx(value, abs=1e-5), (task, row["model"], metric)

    # Each interval is the bootstrap of the stored per-item scores, whichever way it was computed
    # (exact match's from resamples drawn while the model answered, F1's and ROUGE's at the end).
    for task, per_model in report["details"].items():
        for model, detail in per_model.items():
            scores = pq.read_table(
                store / "scores" / f"model={model}" / f"task={task}" / f"{report['benchmarkId']}.parquet"
            )
            for metric, stats in detail["metrics"].items():
                values = scores.column(metric).to_numpy()
                published = tuple(round(bound, DIGITS) for bound in bootstrap_ci(values))
                assert (stats["ci_low"], stats["ci_high"]) == published, (task, model, metric)

    n_items = {
        "text-summarization": len(ARTICLES),
        "question-answering": len(SQUAD),
        "code-generation": CODE_LIMIT,
    }
    assert len(chat_server.requests) == 2 * sum(n_items.values())
    assert all(r.headers["authorization"] == f"Bearer {FAKE_KEY}" for r in chat_server.requests)

    for model in ("good", "weak"):
        for task, count in n_items.items():
            directory = store / "generations" / f"model={model}" / f"task={task}"
            table = pq.read_table(sorted(directory.glob("*.parquet"))).to_pylist()
            assert len(table) == count and not list(directory.glob("*.journal"))
            assert len({r["example_id"] for r in table}) == count
            assert all(json.loads(r["prompt"])[-1]["role"] == "user" for r in table)
            assert all(r["error"] is None and r["output"] and len(r["cache_key"]) == 64 for r in table)
            assert {r["model_name"] for r in table} == {f"{model}-1"}
            assert all(r["benchmark_id"] == report["benchmarkId"] for r in table)

    for name in ("report.json", "report.md", "junit.xml", "gate.json"):
        assert (out / name).is_file()
        assert FAKE_KEY not in (out / name).read_text()
    assert FAKE_KEY not in first.stdout + first.stderr
    assert all(FAKE_KEY.encode() not in p.read_bytes() for p in store.rglob("*") if p.is_file())

    recorded = httpx.post(
        f"{prefect_server.api_url}/flow_runs/filter", json={"flow_runs": {"name": {"like_": "benchmark ·"}}}
    ).json()
    (parameters,) = [
        run["parameters"]
        for run in recorded
        if run["parameters"].get("benchmark_id") == report["benchmarkId"]
    ]
    assert parameters == {
        "request": parse_request(json.loads(request.read_text())).model_dump(mode="json"),
        "out_dir": str(out),
        "benchmark_id": report["benchmarkId"],
        "store_url": str(store),
    }, "the UI shows the request the run was given"

    assert report["gate"]["decision"] == "pass"
    assert len(hook.deliveries) == 1
    headers, body = hook.deliveries[0]
    assert verify(HOOK_SECRET.encode(), headers, body)
    payload = json.loads(body)
    assert payload["decision"] == "pass" and payload["benchmarkId"] == report["benchmarkId"]
    assert FAKE_KEY.encode() not in body and HOOK_SECRET.encode() not in body

    calls_before = len(chat_server.requests)
    scored = sorted(store.glob("score-cache/*/*.parquet"))
    assert scored, "each shard's scores are stored by content"
    shard_task_runs = recorded_task_runs(prefect_server.api_url, ("generate ·", "score ·"))
    assert all(shard_task_runs), shard_task_runs
    second = run_cli(["run", str(request), "--out", str(tmp_path / "again")], env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(chat_server.requests) == calls_before, "an identical rerun must make zero model calls"
    assert sorted(store.glob("score-cache/*/*.parquet")) == scored, "nor score an unchanged shard again"
    assert recorded_task_runs(prefect_server.api_url, ("generate ·", "score ·")) == shard_task_runs, (
        "a shard with nothing to ask or score is no task run"
    )
    again = json.loads((tmp_path / "again" / "report.json").read_text())
    assert again["report"] == report["report"]
    assert again["benchmarkId"] != report["benchmarkId"]


def recorded_task_runs(api_url: str, prefixes: tuple[str, ...]) -> list[int]:
    """The server's count of task runs named with each prefix, once it stops changing: Prefect records
    task runs from their events, after the command has exited."""
    counts: list[int] = []
    for _ in range(40):
        latest = [
            httpx.post(f"{api_url}/task_runs/count", json={"task_runs": {"name": {"like_": prefix}}}).json()
            for prefix in prefixes
        ]
        if latest == counts:
            return counts
        counts = latest
        time.sleep(0.5)
    raise AssertionError(f"task run counts still changing: {counts}")


def test_sigkill_mid_generation_then_resume(tmp_path: Path, prefect_server) -> None:
    concurrency = 2
    with ChatServer(reply=reply, latency=0.15) as server:
        request = write_request(tmp_path / "request.json", server.url, concurrency=concurrency)
        data = json.loads(request.read_text())
        data["tasks"] = [data["tasks"][1]]
        data["gate"] = None
        request.write_text(json.dumps(data))
        env = cli_env(prefect_server, tmp_path / "store", E2E_API_KEY=FAKE_KEY)
        run_and_kill_when(request, env, lambda: server.count >= 12)
        killed_at = server.count
        in_flight_at_kill = server.in_flight
        time.sleep(0.3)

        resumed = run_cli(["run", str(request), "--out", str(tmp_path / "out")], env)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        items = 2 * len(SQUAD)
        total = server.count
        assert killed_at < items
        # Only requests that were in flight at the kill are asked again (one slot per model).
        assert total <= items + max(in_flight_at_kill, 2 * concurrency)
        assert total >= items
        report = json.loads((tmp_path / "out" / "report.json").read_text())
        expected = expected_metrics([])["question-answering"]
        for row in report["report"]["question-answering"]["results"]:
            assert row["exact-match"] == pytest.approx(expected[row["model"]]["exact-match"], abs=1e-5)
