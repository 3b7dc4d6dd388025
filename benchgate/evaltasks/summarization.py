"""text-summarization on CNN/DailyMail, scored with rouge-score (ROUGE-Lsum for rouge-l)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from benchgate.datasets.cnn_dailymail import read_cnn_dailymail
from benchgate.datasets.files import file_revision
from benchgate.datasets.hub import load_hub_rows
from benchgate.datasets.kinds import KIND_FIELD, NEWS_ARTICLE
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
    required_dataset,
)
from benchgate.spec.example import Example

if TYPE_CHECKING:
    import pandas as pd

SYSTEM = "You are a news editor who writes short, factual summaries."
INSTRUCTION = (
    "Summarize the news article below in at most 3 short sentences, one sentence per line, "
    "with no heading or bullet marks.\n\nArticle:\n"
)

HUB_REPO, HUB_SUBSET = "abisee/cnn_dailymail", "3.0.0"
METRICS = ("rouge-1", "rouge-2", "rouge-l")
SUMMARY_FIELDS = ("summary", "prediction", "lead3")


class TextSummarization(EvalTask):
    example_kind = NEWS_ARTICLE

    @property
    def dataset_name(self) -> str:
        return self.spec.dataset or "cnn-dailymail"

    def metrics(self) -> list[MetricInfo]:
        return [registry_metric(name) for name in METRICS]

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
                fields={KIND_FIELD: NEWS_ARTICLE.name, "article": row["article"]},
            )

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        import pandas as pd

        from scorers.rouge import score_summaries  # nltk and scipy: only when scoring

        ids = [e.example_id for e in examples]
        scores = score_summaries([predictions[i][0] for i in ids], [e.references[0] for e in examples])
        return pd.DataFrame({"example_id": ids, **{m: [s[m] for s in scores] for m in METRICS}})

    @classmethod
    def score_offline(
        cls, predictions_path: str, dataset_path: str | None, *, code_checker: CodeChecker | None = None
    ) -> OfflineScores:
        """JSONL {id, summary}; the text field is the first of "summary", "prediction", "lead3" present
        (the last so the shared Lead-3 baseline file scores as is). Only predicted ids are scored;
        dataset rows without a prediction are counted in "missing_predictions"."""
        dataset_path = required_dataset(dataset_path, "text-summarization")
        references = {row["id"]: row["highlights"] for row in read_cnn_dailymail(dataset_path)}
        ids: list[str] = []
        summaries: list[str] = []
        seen: set[str] = set()
        for lineno, row in jsonl_objects(predictions_path, "predictions"):
            where = f"{predictions_path}, line {lineno}"
            row_id = row.get("id")
            if not isinstance(row_id, str) or row_id not in references:
                raise DatasetError(f"{where}: id {row_id!r} is not in {dataset_path}")
            if row_id in seen:
                raise DatasetError(f"{where}: duplicate prediction for id {row_id!r}")
            field = next((f for f in SUMMARY_FIELDS if f in row), None)
            if field is None or not isinstance(row[field], str):
                raise DatasetError(f"{where}: needs a string field, one of {', '.join(SUMMARY_FIELDS)}")
            seen.add(row_id)
            ids.append(row_id)
            summaries.append(row[field])
        if not ids:
            raise DatasetError(f"{predictions_path}: no predictions")
        from scorers.rouge import score_summaries

        scores = score_summaries(summaries, [references[i] for i in ids])
        metrics: dict[str, Any] = {name: sum(s[name] for s in scores) / len(scores) for name in METRICS}
        metrics["n"] = len(scores)
        metrics["ci"] = bootstrap_cis({name: [s[name] for s in scores] for name in METRICS})
        metrics["missing_predictions"] = len(references) - len(ids)
        return OfflineScores(metrics, [{"id": i, **s} for i, s in zip(ids, scores, strict=True)])
