"""Reader for SQuAD's original JSON format (v1.1 and v2.0: data -> paragraphs -> qas)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from benchgate.datasets.textio import open_text, parse_json
from benchgate.errors import DatasetError


@dataclass(frozen=True)
class SquadItem:
    """One question. `answers` are the gold texts (duplicates kept, as in the file); [] if unanswerable."""

    qid: str
    title: str
    context: str
    question: str
    answers: list[str]
    is_impossible: bool


def _field(obj: Any, key: str, kind: type, where: str) -> Any:
    value = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(value, kind):
        raise DatasetError(f"{where}: field {key!r} is missing or not a {kind.__name__}")
    return value


def read_squad(path: str) -> list[SquadItem]:
    """All questions of a SQuAD JSON file, in file order.

    SQuAD ships as one JSON document, so it is read whole (dev-v2.0 is 4 MB). Errors name the file and
    the JSON position (line/column for syntax, data[i].paragraphs[j].qas[k] for structure).
    """
    with open_text(path) as handle:
        document = parse_json(handle.read(), path)
    items: list[SquadItem] = []
    for i, article in enumerate(_field(document, "data", list, path)):
        where_article = f"{path}: data[{i}]"
        title = article.get("title", "") if isinstance(article, dict) else ""
        for j, paragraph in enumerate(_field(article, "paragraphs", list, where_article)):
            where_paragraph = f"{where_article}.paragraphs[{j}]"
            context = _field(paragraph, "context", str, where_paragraph)
            for k, qa in enumerate(_field(paragraph, "qas", list, where_paragraph)):
                where = f"{where_paragraph}.qas[{k}]"
                answers = [
                    _field(a, "text", str, f"{where}.answers[{m}]")
                    for m, a in enumerate(_field(qa, "answers", list, where))
                ]
                impossible = qa.get("is_impossible", False)
                if not isinstance(impossible, bool):
                    raise DatasetError(f"{where}: field 'is_impossible' is not a boolean")
                items.append(
                    SquadItem(
                        qid=_field(qa, "id", str, where),
                        title=str(title),
                        context=context,
                        question=_field(qa, "question", str, where),
                        answers=answers,
                        is_impossible=impossible,
                    )
                )
    return items
