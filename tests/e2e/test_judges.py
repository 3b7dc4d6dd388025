"""Judge metrics end to end through `benchgate run`, against the deterministic local judge server.

A chat dataset (`messages`) with `epochs: 2`; the fine-tune answers even-numbered orders right every
time and odd ones right once in two; the baseline answers generically; the judge (judge() in
tests/support/chat_servers.py) grades by whether the reference is in the answer and garbles one item.
Every expected figure is computed here from those rules; a rerun makes no model or judge call.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT, cli_env, run_cli
from tests.support.chat_servers import GENERIC_REPLY, JUDGE_GARBLE, ChatRequest, ChatServer, judge

pytestmark = pytest.mark.slow

N = 8  # order 8's conversation garbles the judge


def reference(n: int) -> str:
    return f"Order {n} ships on Monday."


def rows() -> list[dict]:
    return [
        {
            "id": f"c{n}",
            "messages": [
                {"role": "system", "content": "You are a support agent for an online shop."},
                {"role": "user", "content": "Hello"},
                {"role": "assistant", "content": "Hi! How can I help?"},
                {
                    "role": "user",
                    "content": f"When does order {n} ship?" + (f" {JUDGE_GARBLE}" if n == N else ""),
                },
            ],
            "answer": reference(n),
        }
        for n in range(1, N + 1)
    ]


class Replies:
    """finetune: right for even orders; for odd ones wrong the first time it is asked, right the second."""

    def __init__(self) -> None:
        self.asked: Counter[tuple[str, str]] = Counter()

    def __call__(self, request: ChatRequest) -> str:
        if request.model == "judge":
            return judge(request)
        if request.model == "baseline":
            return GENERIC_REPLY
        n = int(re.search(r"order (\d+)", request.prompt).group(1))  # type: ignore[union-attr]
        self.asked[(request.model or "", request.prompt)] += 1
        right = n % 2 == 0 or self.asked[(request.model or "", request.prompt)] == 2
        return reference(n) if right else "I do not know."


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer(reply=Replies()) as chat_server:
        yield chat_server


def test_rubric_and_pairwise_judges_with_epochs_on_a_chat_dataset(
    tmp_path: Path, prefect_server, server
) -> None:
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    url = server.url + "/v1"
    request = {
        "name": "judged",
        "error_budget": 0.2,
        "models": [
            {
                "id": "finetune",
                "provider": "openai-compatible",
                "base_url": url,
                "params": {"temperature": 0.7},
            },
            {"id": "baseline", "provider": "openai-compatible", "base_url": url},
            {
                "id": "judge",
                "provider": "openai-compatible",
                "base_url": url,
                "judge_only": True,
                "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            },
        ],
        "tasks": [
            {
                "task": "support-chat",
                "dataset": str(tmp_path / "chat.jsonl"),
                "id_field": "id",
                "messages": "messages",
                "target": "answer",
                "epochs": 2,
                "metrics": [
                    "contains",
                    {"rubric": {"judge": "judge", "rubric": "correctness", "scale": [1, 5]}},
                    {"pairwise": {"judge": "judge", "baseline": "baseline"}},
                ],
            }
        ],
        "gate": {
            "baseline": "baseline",
            "rules": [
                {"model": "finetune", "task": "support-chat", "metric": "win-rate", "at_least": 60},
                {
                    "model": "finetune",
                    "task": "support-chat",
                    "metric": "correctness",
                    "better_than": "baseline",
                },
            ],
        },
    }
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(request))
    env = cli_env(prefect_server, tmp_path / "store")
    out = tmp_path / "out"
    result = run_cli(["run", str(tmp_path / "request.yaml"), "--out", str(out)], env)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())

    even, odd = [2, 4, 6], [1, 3, 5, 7]  # order 8: a judge error, left out
    results = {row["model"]: row for row in report["report"]["support-chat"]["results"]}
    assert results["finetune"]["correctness"] == pytest.approx(
        (75.0 * len(even) + 37.5 * len(odd)) / 7, abs=1e-6
    )
    assert results["finetune"]["win-rate"] == pytest.approx(
        (100.0 * len(even) + 75.0 * len(odd)) / 7, abs=1e-6
    )
    assert results["finetune"]["contains"] == pytest.approx(
        (100.0 * len(even) + 50.0 * len(odd)) / 7, abs=1e-6
    )
    assert results["baseline"]["correctness"] == 0.0 and results["baseline"]["win-rate"] is None
    assert "judge" not in results  # judge_only: never evaluated itself

    details = report["details"]["support-chat"]
    tuned = details["finetune"]
    assert (tuned["n"], tuned["n_errors"], tuned["n_items"]) == (7, 1, N)
    assert tuned["metrics"]["win-rate"]["n"] == 7 and tuned["per_item_kind"]["correctness"] == "continuous"
    low, high = tuned["metrics"]["correctness"]["ci_low"], tuned["metrics"]["correctness"]["ci_high"]
    assert (
        37.5 <= low < results["finetune"]["correctness"] < high <= 75.0
    )  # items resampled: means lie within
    rubric_calls, pairwise_calls = N * 2, 7 * 2 * 2  # items x epochs; scored items x epochs x both orders
    assert tuned["judge"]["requests"] == rubric_calls + pairwise_calls
    assert tuned["judge"]["errors"] == 1 and tuned["judge"]["tokens"]["input"] > 0
    assert tuned["judge"]["cost_usd"] > 0
    assert details["baseline"]["judge"]["requests"] == rubric_calls
    assert tuned["requests"] == N * 2  # every item answered once per epoch
    judge_prompts = [r for r in server.requests if r.model == "judge"]
    assert len(judge_prompts) == 2 * rubric_calls + pairwise_calls
    assert report["gate"]["decision"] == "pass"

    server.reset()
    again = run_cli(["run", str(tmp_path / "request.yaml"), "--out", str(tmp_path / "again")], env)
    assert again.returncode == 0, again.stdout + again.stderr
    rerun = json.loads((tmp_path / "again" / "report.json").read_text())
    assert server.count == 0  # every answer and every verdict reused
    assert rerun["report"] == report["report"]
    assert rerun["details"]["support-chat"]["finetune"]["judge"]["reused"] == rubric_calls + pairwise_calls


def test_judge_problems_exit_2_before_any_call(tmp_path: Path, prefect_server, server) -> None:
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows()))
    request = {
        "name": "judged",
        "models": [{"id": "finetune", "provider": "openai-compatible", "base_url": server.url + "/v1"}],
        "tasks": [
            {
                "task": "support-chat",
                "dataset": str(tmp_path / "chat.jsonl"),
                "messages": "messages",
                "target": "answer",
                "metrics": [
                    {"rubric": {"judge": "gpt-judge", "rubric": "correctness"}},
                    {"pairwise": {"judge": "finetune"}},
                ],
            }
        ],
    }
    (tmp_path / "request.yaml").write_text(yaml.safe_dump(request))
    result = run_cli(["run", str(tmp_path / "request.yaml")], cli_env(prefect_server, tmp_path / "store"))
    assert result.returncode == 2, result.stdout + result.stderr
    for message in (
        "tasks[0].metrics[0].rubric.scale: the scale's bounds",
        "tasks[0].metrics[1].pairwise.baseline: pairwise needs the baseline",
    ):
        assert message in result.stderr, result.stderr
    assert server.count == 0


def test_the_shipped_judged_example_gates_the_fine_tune(tmp_path: Path, prefect_server) -> None:
    """examples/judged/request.yaml as its comment says to run it, the local judge server on port 8765."""
    with ChatServer(reply=judge, port=8765):
        out = tmp_path / "out"
        result = run_cli(
            ["run", str(REPO_ROOT / "examples" / "judged" / "request.yaml"), "--out", str(out)],
            cli_env(prefect_server, tmp_path / "store"),
        )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / "report.json").read_text())
    results = {row["model"]: row for row in report["report"]["support-chat"]["results"]}
    # The fine-tune answers with the reference (Score: 4 of 1-5, and wins both orders); the baseline does not.
    assert results["finetune"] == {
        "model": "finetune",
        "contains": 100.0,
        "correctness": 75.0,
        "win-rate": 100.0,
    }
    assert results["baseline"]["correctness"] == 0.0
    assert report["gate"]["decision"] == "pass"
