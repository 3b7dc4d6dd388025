"""question-answering on SQuAD v2, scored exactly as the official v2 script (unanswerables included)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from benchgate.datasets.files import file_revision
from benchgate.datasets.hub import load_hub_rows
from benchgate.datasets.kinds import KIND_FIELD, PASSAGE_QUESTION
from benchgate.datasets.sampling import seeded_sample
from benchgate.datasets.squad import SquadItem, read_squad
from benchgate.datasets.textio import open_text, parse_json
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
from scorers.squad import evaluate_squad_v2, exact_match, f1

if TYPE_CHECKING:
    import pandas as pd

ABSTAIN = "unanswerable"
SYSTEM = (
    "You answer questions about a passage. Reply with the shortest span of the passage that answers "
    "the question, copied exactly, and nothing else. If the passage does not contain the answer, "
    f"reply with exactly: {ABSTAIN}"
)

_ABSTENTIONS = {ABSTAIN, "unanswerable.", "no answer", "cannot be answered", "not answerable", "n/a", "none"}
HUB_REPO = "rajpurkar/squad_v2"


def to_squad_answer(reply: str) -> str:
    """The official script reads "" as abstaining, so every way a model abstains maps to ""."""
    first_line = reply.strip().splitlines()[0].strip() if reply.strip() else ""
    answer = (
        re.sub(r"^(answer|the answer is)\s*:\s*", "", first_line, flags=re.IGNORECASE).strip().strip("\"'`")
    )
    if answer.lower().rstrip(".") in {a.rstrip(".") for a in _ABSTENTIONS}:
        return ""
    return answer


class QuestionAnswering(EvalTask):
    example_kind = PASSAGE_QUESTION

    @property
    def dataset_name(self) -> str:
        return self.spec.dataset or "squad-v2"

    def metrics(self) -> list[MetricInfo]:
        return [registry_metric("exact-match"), registry_metric("f1-score")]

    def problems(self) -> list[str]:
        if self.dataset_name != "squad-v2":
            return [
                f"dataset: unknown dataset {self.dataset_name!r} for question-answering (built in: squad-v2)"
            ]
        return []

    def load(self) -> LoadedDataset:
        if self.spec.path:
            revision, items = file_revision(self.spec.path), iter(read_squad(self.spec.path))
        else:
            revision, rows = load_hub_rows(
                HUB_REPO,
                subset=None,
                split=self.spec.split or "validation",
                revision=None,
                task_name=self.spec.task,
            )
            items = _from_hub(rows)
        chosen = seeded_sample(items, self.spec.limit, self.spec.seed, key=lambda item: item.qid)
        return LoadedDataset(self.dataset_name, revision, (self._example(item) for item in chosen))

    @staticmethod
    def _example(item: SquadItem) -> Example:
        return Example(
            example_id=item.qid,
            messages=[
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Passage:\n{item.context}\n\nQuestion: {item.question}"},
            ],
            references=list(item.answers),
            fields={
                KIND_FIELD: PASSAGE_QUESTION.name,
                "context": item.context,
                "question": item.question,
                "title": item.title,
            },
        )

    def postprocess(self, output: str) -> str:
        return to_squad_answer(output)

    def score(self, examples: list[Example], predictions: dict[str, list[str]]) -> pd.DataFrame:
        import pandas as pd

        rows = []
        for example in examples:
            prediction = predictions[example.example_id][0]
            rows.append(
                {
                    "example_id": example.example_id,
                    "exact-match": 100.0 * exact_match(prediction, example.references),
                    "f1-score": 100.0 * f1(prediction, example.references),
                    "has_answer": bool(example.references),
                }
            )
        return pd.DataFrame(rows, columns=["example_id", "exact-match", "f1-score", "has_answer"])

    def breakdown(self, scores: pd.DataFrame) -> dict[str, float]:
        """The official script's HasAns_/NoAns_ keys, over the scored items."""
        figures: dict[str, float] = {}
        for prefix, subset in (
            ("HasAns", scores[scores["has_answer"]]),
            ("NoAns", scores[~scores["has_answer"]]),
        ):
            figures[f"{prefix}_total"] = len(subset)
            if len(subset):
                figures[f"{prefix}_exact"] = float(subset["exact-match"].mean())
                figures[f"{prefix}_f1"] = float(subset["f1-score"].mean())
        return figures

    @classmethod
    def score_offline(
        cls, predictions_path: str, dataset_path: str | None, *, code_checker: CodeChecker | None = None
    ) -> OfflineScores:
        """SQuAD's official predictions JSON {question_id: answer}, scored as the official SQuAD v2
        script does; a question without a prediction counts as "" (abstain)."""
        dataset_path = required_dataset(dataset_path, "question-answering")
        predictions = _read_predictions(predictions_path)
        golds = {item.qid: item.answers for item in read_squad(dataset_path)}
        unmatched = len(set(predictions) - set(golds))
        if predictions and unmatched == len(predictions):
            raise DatasetError(
                f"{predictions_path}: none of the {len(predictions)} question ids is in {dataset_path}; "
                "are these predictions for another dataset?"
            )
        official = evaluate_squad_v2(golds, predictions)
        rows: list[dict[str, Any]] = []
        for qid, answers in golds.items():
            prediction = predictions.get(qid, "")
            rows.append(
                {
                    "id": qid,
                    "prediction": prediction,
                    "has_answer": bool(answers),
                    "exact-match": 100.0 * exact_match(prediction, answers),
                    "f1-score": 100.0 * f1(prediction, answers),
                }
            )
        metrics = {
            "exact-match": official["exact"],
            "f1-score": official["f1"],
            "n": official["total"],
            "ci": bootstrap_cis({name: [r[name] for r in rows] for name in ("exact-match", "f1-score")}),
            "details": {k: v for k, v in official.items() if k.startswith(("HasAns_", "NoAns_"))},
            "missing_predictions": sum(qid not in predictions for qid in golds),
            "unmatched_predictions": unmatched,
        }
        return OfflineScores(metrics, rows)


def _read_predictions(path: str) -> dict[str, str]:
    with open_text(path, "predictions") as handle:
        predictions = parse_json(handle.read(), path)
    if not isinstance(predictions, dict):
        raise DatasetError(f"{path}: expected SQuAD's predictions format {{question_id: answer}}")
    if not predictions:
        raise DatasetError(
            f"{path}: no predictions (an empty object would score every question as abstained)"
        )
    for qid, answer in predictions.items():
        if not isinstance(answer, str):
            raise DatasetError(f"{path}: prediction for {qid!r} is not a string")
    return predictions


def _from_hub(rows: Iterable[dict]) -> Iterator[SquadItem]:
    for row in rows:
        answers = list(row["answers"]["text"])
        yield SquadItem(
            qid=row["id"],
            title=row["title"],
            context=row["context"],
            question=row["question"],
            answers=answers,
            is_impossible=not answers,
        )
