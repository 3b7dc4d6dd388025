"""Drill-down, `benchgate diff` and `benchgate export` on real runs through the CLI.

A local OpenAI-compatible server answers a 40-item arithmetic task; the candidate model is made wrong
on ten known items (one answer crafted to break a markdown table), right on one the baseline gets wrong.
Everything the drill-down and the export should say is worked out here from that design.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import cli_env, run_cli
from tests.support.chat_servers import ChatRequest, ChatServer, Reply
from tests.support.prefect_server import PrefectServer

pytestmark = pytest.mark.slow

IDS = [f"q{i:02d}" for i in range(40)]
WORSE = ["q01", "q04", "q09", "q12", "q16", "q20", "q25", "q28", "q33", "q37"]  # cand wrong, prod right
IMPROVED = ["q03"]  # prod wrong, cand right
BOTH_WRONG = ["q07"]
WRONG = {"prod-1": set(IMPROVED + BOTH_WRONG), "cand-1": set(WORSE + BOTH_WRONG)}
CRAFTED = "q01"
CRAFTED_TAIL = " | </td><img src=x onerror=alert(1)> `rm -rf /` **bold** [x](javascript:alert(1))\n# heading"


def answer(model: str, n: int) -> str:
    item = f"q{n:02d}"
    if item not in WRONG[model]:
        return f"Let me add.\nAnswer: {2 * n}"
    return f"Answer: {2 * n + 1}" + (CRAFTED_TAIL if item == CRAFTED else "")


def reply(request: ChatRequest) -> Reply:
    match = re.fullmatch(r"What is (\d+) plus \1\?", request.prompt)
    assert match and request.model
    n = int(match.group(1))
    return Reply(text=answer(request.model, n), input_tokens=10 + n, output_tokens=3)


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ChatServer]:
    with ChatServer(reply=reply) as server:
        yield server


def request(path: Path, data: Path, models: dict[str, str], server: ChatServer, gate: bool) -> Path:
    """A request for the arithmetic task; ``models`` maps model id -> the server's model name."""
    body: dict[str, Any] = {
        "name": "drill-down e2e",
        "models": [
            {
                "id": model_id,
                "provider": "openai-compatible",
                "model": name,
                "base_url": server.url + "/v1",
                "concurrency": 8,
            }
            for model_id, name in models.items()
        ],
        "tasks": [
            {
                "task": "arith",
                "dataset": str(data),
                "id_field": "id",
                "prompt": "{{ question }}",
                "target": "answer",
                "postprocess": [{"regex": r"Answer:\s*(\S+)"}],
                "metrics": ["exact-match"],
            }
        ],
    }
    if gate:
        body["gate"] = {
            "baseline": "prod",
            "rules": [
                {"model": "cand", "task": "arith", "metric": "exact-match", "at_least": 10},
                {
                    "model": "cand",
                    "task": "arith",
                    "metric": "exact-match",
                    "no_worse_than": "baseline",
                    "confidence": 0.95,
                    "name": "cand | no worse",
                },
            ],
        }
    path.write_text(json.dumps(body))
    return path


def dataset(path: Path, ids: list[str]) -> Path:
    rows = [
        {"id": i, "question": f"What is {int(i[1:])} plus {int(i[1:])}?", "answer": str(2 * int(i[1:]))}
        for i in ids
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class Runs:
    """The stored runs every test here reads: one gated, two of one model id for `diff`, one disjoint."""

    def __init__(self, tmp: Path, server: PrefectServer, chat: ChatServer) -> None:
        self.tmp, self.store = tmp, tmp / "store"
        self.env = cli_env(server, self.store)
        data = dataset(tmp / "arith.jsonl", IDS)
        self.gated = self.run(
            "gated", request(tmp / "gated.json", data, {"prod": "prod-1", "cand": "cand-1"}, chat, True), 1
        )
        self.bot_prod = self.run("bot-prod", request(tmp / "a.json", data, {"bot": "prod-1"}, chat, False), 0)
        self.bot_cand = self.run("bot-cand", request(tmp / "b.json", data, {"bot": "cand-1"}, chat, False), 0)
        other = dataset(tmp / "other.jsonl", ["q90", "q91", "q92"])
        self.disjoint = self.run(
            "disjoint", request(tmp / "c.json", other, {"bot": "prod-1"}, chat, False), 0
        )

    def run(self, name: str, path: Path, expected_exit: int) -> Path:
        out = self.tmp / name
        result = run_cli(["run", str(path), "--out", str(out)], self.env)
        assert result.returncode == expected_exit, result.stdout + result.stderr
        return out

    def cli(self, *args: str) -> Any:
        return run_cli(list(args), self.env)


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, prefect_server: PrefectServer, chat_server: ChatServer
) -> Runs:
    return Runs(tmp_path_factory.mktemp("drilldown"), prefect_server, chat_server)


def benchmark_id(out: Path) -> str:
    return json.loads((out / "report.json").read_text())["benchmarkId"]


def design_counts() -> tuple[int, int, int]:
    """(improved, worse, unchanged) of cand against prod, from the per-item design alone."""
    right = {model: {i for i in IDS if i not in WRONG[model]} for model in WRONG}
    improved = len(right["cand-1"] - right["prod-1"])
    worse = len(right["prod-1"] - right["cand-1"])
    return improved, worse, len(IDS) - improved - worse


def test_gate_json_and_report_md_list_the_items_made_worse(runs: Runs) -> None:
    gate = json.loads((runs.gated / "gate.json").read_text())
    passing, failing = gate["rules"]
    assert passing["verdict"] == "pass" and "drilldown" not in passing  # only failed or warned rules
    assert failing["verdict"] == "fail"
    drill = failing["drilldown"]
    improved, worse, unchanged = design_counts()
    assert (
        (drill["improved"], drill["worse"], drill["unchanged"]) == (improved, worse, unchanged) == (1, 10, 29)
    )
    assert (drill["model"], drill["baseline"], drill["task"], drill["metric"]) == (
        "cand",
        "prod",
        "arith",
        "exact-match",
    )
    assert [item["example_id"] for item in drill["most_worse"]] == WORSE
    assert [item["example_id"] for item in drill["most_improved"]] == IMPROVED
    for item in drill["most_worse"]:
        n = int(item["example_id"][1:])
        assert (item["score"], item["baseline_score"], item["change"]) == (0.0, 100.0, -100.0)
        assert item["prompt"] == f"What is {n} plus {n}?"
        assert item["reference"] == str(2 * n)
        assert item["baseline_output"] == f"Let me add. Answer: {2 * n}"
        if item["example_id"] != CRAFTED:
            assert item["output"] == f"Answer: {2 * n + 1}"
    crafted = next(item for item in drill["most_worse"] if item["example_id"] == CRAFTED)
    flat = " ".join(answer("cand-1", 1).split())
    assert (
        crafted["output"] == flat[:79] + "…"
        and len(crafted["output"]) == 80
        and "\n" not in crafted["output"]
    )

    markdown = (runs.gated / "report.md").read_text()
    section = markdown.split("### Items that moved most: cand \\| no worse", 1)[1]
    assert (
        "cand against prod, exact-match on arith, 40 paired items: 10 worse, 1 improved, 29 unchanged."
        in section
    )
    rows = [line for line in section.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[1] for row in rows[1:]] == WORSE + IMPROVED
    assert [row.split(" | ")[0] for row in rows[1:]] == ["| worse"] * 10 + ["| improved"]
    assert all(row.count("|") - row.count("\\|") == 10 for row in rows)  # 9 cells: nothing broke out
    assert "<img" not in markdown and "</td>" not in markdown and "&lt;img" in markdown
    assert "\\`rm -rf /\\`" in markdown and "\\[x\\](javas" in markdown
    assert json.loads((runs.gated / "report.json").read_text())["gate"]["rules"][1]["drilldown"] == drill


def test_the_drilldown_is_a_table_artifact_in_prefect(runs: Runs, prefect_server: PrefectServer) -> None:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    key = f"benchgate-{benchmark_id(runs.gated)}-drilldown"

    async def read() -> list[Any]:
        async with PrefectClient(prefect_server.api_url) as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))
            )

    (artifact,) = asyncio.run(read())
    assert artifact.type == "table"
    rows = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    assert [(r["direction"], r["example_id"]) for r in rows] == [("worse", i) for i in WORSE] + [
        ("improved", "q03")
    ]
    assert {(r["rule"], r["model"], r["baseline"], r["change"]) for r in rows[:10]} == {
        ("cand | no worse", "cand", "prod", -100.0)
    }


def test_diff_prints_the_same_items_between_two_stored_runs(runs: Runs) -> None:
    a, b = runs.bot_prod / "report.json", benchmark_id(runs.bot_cand)  # a file and a stored id
    result = runs.cli("diff", str(a), b, "--task", "arith", "--metric", "exact-match")
    assert result.returncode == 0, result.stdout + result.stderr
    improved, worse, unchanged = design_counts()
    assert f"40 paired items: {worse} worse, {improved} improved, {unchanged} unchanged." in result.stdout
    diff_rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    gate_rows = [
        line
        for line in (runs.gated / "report.md").read_text().split("### Items that moved most")[1].splitlines()
        if line.startswith("| ")
    ][1:]
    assert diff_rows == gate_rows  # same items, scores and excerpts as the gate's drill-down
    assert (
        runs.cli("diff", str(a), b).stdout == result.stdout
    )  # one task, one metric: the filters change nothing


def test_export_writes_one_row_per_item_and_model_in_every_format(runs: Runs) -> None:
    expected_columns = [
        "task", "model", "example_id", "sample_index", "prompt", "reference", "output",
        "score_exact-match", "latency_ms", "input_tokens", "output_tokens", "error",
    ]  # fmt: skip
    readers = {
        "jsonl": lambda p: pd.read_json(p, lines=True, dtype={"example_id": str, "reference": str}),
        "csv": lambda p: pd.read_csv(p, dtype={"example_id": str, "reference": str}),
        "parquet": pd.read_parquet,
    }
    for fmt, read in readers.items():
        target = runs.tmp / "exports" / f"items.{fmt}"
        result = runs.cli("export", str(runs.gated / "report.json"), "--format", fmt, "--out", str(target))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"80 rows written to {target}" in result.stdout
        frame = read(target)
        assert list(frame.columns) == expected_columns
        assert len(frame) == 80 and set(zip(frame["model"], frame["example_id"], strict=True)) == {
            (m, i) for m in ("prod", "cand") for i in IDS
        }
        for row in frame.to_dict("records"):
            n, name = int(row["example_id"][1:]), f"{row['model']}-1"
            assert (row["task"], row["sample_index"]) == ("arith", 0)
            assert row["prompt"] == f"What is {n} plus {n}?" and row["reference"] == str(2 * n)
            assert row["output"] == answer(name, n)
            assert row["score_exact-match"] == (0.0 if row["example_id"] in WRONG[name] else 100.0)
            assert (row["input_tokens"], row["output_tokens"]) == (10 + n, 3)
            assert row["latency_ms"] > 0 and pd.isna(row["error"])


def test_bad_input_exits_2_and_writes_nothing(runs: Runs) -> None:
    gated, bot_prod = str(runs.gated / "report.json"), str(runs.bot_prod / "report.json")
    target = runs.tmp / "bad" / "items.out"
    cases = {
        ("export", gated, "--format", "xml", "--out", str(target)): "unknown format 'xml'",
        (
            "export",
            gated,
            "--format",
            "csv",
            "--task",
            "nope",
            "--out",
            str(target),
        ): "unknown evaluation task 'nope'",
        (
            "export",
            str(runs.tmp / "missing.json"),
            "--format",
            "csv",
            "--out",
            str(target),
        ): "no such report.json",
        ("diff", bot_prod, str(runs.disjoint / "report.json")): "no scored item in common",
        ("diff", gated, bot_prod): "no model scored on a common task",
        ("diff", bot_prod, str(runs.bot_cand / "report.json"), "--task", "nope"): "--task: 'nope'",
        ("diff", bot_prod, str(runs.bot_cand / "report.json"), "--metric", "rouge-l"): "--metric: 'rouge-l'",
    }
    for args, message in cases.items():
        result = runs.cli(*args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr, (args, result.stderr)
    # The per-item scores of a run are gone from the store: export and diff say so, and write nothing.
    for scores in (runs.store / "scores").rglob(f"{benchmark_id(runs.bot_cand)}.parquet"):
        scores.unlink()
    for args in (
        ("export", benchmark_id(runs.bot_cand), "--format", "parquet", "--out", str(target)),
        ("diff", bot_prod, benchmark_id(runs.bot_cand)),
    ):
        result = runs.cli(*args)
        assert result.returncode == 2 and "no per-item scores for bot on arith" in result.stderr, (
            result.stderr
        )
    assert not target.parent.exists()
