"""text-summarization on CNN/DailyMail, scored with rouge-score (ROUGE-Lsum for rouge-l)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from benchgate.datasets.cnn_dailymail import read_cnn_dailymail
from benchgate.datasets.files import file_revision
from benchgate.datasets.hub import load_hub_rows
from benchgate.datasets.sampling import seeded_sample
from benchgate.evaltasks.base import EvalTask, LoadedDataset, MetricInfo, registry_metric
from benchgate.spec.example import Example
from scorers.rouge import score_summaries

SYSTEM = "You are a news editor who writes short, factual summaries."
INSTRUCTION = (
    "Summarize the news article below in at most 3 short sentences, one sentence per line, "
    "with no heading or bullet marks.\n\nArticle:\n"
)
HUB_REPO, HUB_SUBSET = "abisee/cnn_dailymail", "3.0.0"


class TextSummarization(EvalTask):
    @property
    def dataset_name(self) -> str:
        return self.spec.dataset or "cnn-dailymail"

    def metrics(self) -> list[MetricInfo]:
        return [registry_metric(name) for name in ("rouge-1", "rouge-2", "rouge-l")]

    def problems(self) -> list[str]:
        if self.dataset_name != "cnn-dailymail":
            return [
                f"dataset: unknown dataset {self.dataset_name!r} for text-summarization "
                "(built in: cnn-dailymail)"
            ]
        return []

    def load(self) -> LoadedDataset:
        if self.spec.path:
            revision, rows = file_revision(self.spec.path), read_cnn_dailymail(self.spec.path)
        else:
            revision, rows = load_hub_rows(
                HUB_REPO,
                subset=HUB_SUBSET,
                split=self.spec.split or "test",
                revision=None,
                task_name=self.spec.task,
            )
        chosen = seeded_sample(rows, self.spec.limit, self.spec.seed, key=lambda row: str(row["id"]))
        return LoadedDataset(self.dataset_name, revision, self._examples(chosen))

    @staticmethod
    def _examples(rows: Iterator[dict]) -> Iterator[Example]:
        for row in rows:
            yield Example(
                example_id=str(row["id"]),
                messages=[
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": INSTRUCTION + row["article"]},
                ],
                references=[row["highlights"]],
                fields={"article": row["article"]},
            )

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        ids = [e.example_id for e in examples]
        scores = score_summaries([predictions[i][0] for i in ids], [e.references[0] for e in examples])
        return pd.DataFrame(
            {"example_id": ids, **{m: [s[m] for s in scores] for m in ("rouge-1", "rouge-2", "rouge-l")}}
        )
