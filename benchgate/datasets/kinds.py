"""The kinds of item the built-in datasets yield, declared on each Example under `fields["kind"]`.

Evaluation tasks (which make Examples) and the builtin baseline models (which answer them without a
network) are sibling layers that must not import each other; this shared vocabulary, below both, is
what lets a baseline dispatch on what an item declares it is instead of guessing from its field names.
Each kind names the fields every item of that kind carries.
"""

from __future__ import annotations

from dataclasses import dataclass

KIND_FIELD = "kind"


@dataclass(frozen=True)
class ExampleKind:
    name: str
    fields: tuple[str, ...]  # what an Example of this kind always has in `fields`, besides the kind


NEWS_ARTICLE = ExampleKind("news-article", ("article",))
PASSAGE_QUESTION = ExampleKind("passage-question", ("context", "question"))
PYTHON_FUNCTION = ExampleKind("python-function", ("prompt", "entry_point", "test"))
KINDS = {kind.name: kind for kind in (NEWS_ARTICLE, PASSAGE_QUESTION, PYTHON_FUNCTION)}
