"""Custom evaluation tasks: any task name with a `prompt`, over the user's dataset and the metric registry.

definition.py reads the settings (table, templates, chosen metrics), items.py turns rows into Examples,
validation.py checks what can be checked before a model is called, postprocess.py and scoring.py turn
replies into per-item scores; task.py puts them behind the EvalTask interface.
"""

from __future__ import annotations

from benchgate.evaltasks.custom.rows import row_id
from benchgate.evaltasks.custom.task import CustomTask

__all__ = ["CustomTask", "row_id"]
