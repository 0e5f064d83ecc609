"""The view of `config show`'s result: the resolved config as YAML (that `load` reads back
to an equal config), a record and CSV rows."""

from __future__ import annotations

import json
from collections.abc import Sequence

import yaml

from mlpcli.model.config import Config
from mlpcli.report import records
from mlpcli.report.records import (
    Record,
    Rows,
)
from mlpcli.report.view import View


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


def to_yaml(config: Config) -> str:
    """The resolved config as YAML that `load` reads back to an equal config."""
    return yaml.safe_dump(
        config.to_dict(), sort_keys=False, default_flow_style=None, allow_unicode=True
    )


def config_text(configs: Sequence[Config]) -> str:
    """The resolved configs as YAML, `---` between them."""
    return "---\n".join(map(to_yaml, configs))


VIEW = View(Config, config_record, records.each(config_rows), text=config_text)
