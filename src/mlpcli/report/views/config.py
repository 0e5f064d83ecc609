"""The view of `config show`'s result: the resolved config as a record and CSV rows."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from mlpcli.report.records import (
    Record,
    Rows,
)

if TYPE_CHECKING:
    from mlpcli.model.config import Config


def config_record(config: Config) -> Record:
    """Schema `mlpcli.config/1`: the resolved config."""
    return {"schema": "mlpcli.config/1", **config.to_dict()}


def config_rows(config: Config) -> Rows:
    """One row per field; lists as JSON."""
    rows: list[list[object]] = [
        [key, json.dumps(value) if isinstance(value, list) else value]
        for key, value in config.to_dict().items()
    ]
    return ["field", "value"], rows
