"""Each result type's view, a module each: how its results show themselves as a JSON record, CSV
tables, files written whole, and tables for people laid out at the width they are given
(`report.view`). `Output` finds a result's view here, by its type: a new command's results
need a view module and a line below."""

from __future__ import annotations

from typing import Any, TypeVar

from mlpcli.report.view import View
from mlpcli.report.views import bench, compare, config, env, run, shapes, validate

R = TypeVar("R")

_VIEWS: dict[type, View[Any]] = {
    view.kind: view
    for view in (
        run.VIEW,
        bench.VIEW,
        compare.VIEW,
        shapes.VIEW,
        env.VIEW,
        validate.VIEW,
        config.VIEW,
    )
}


def of(kind: type[R]) -> View[R]:
    """The view of results of type `kind`."""
    view: View[R] = _VIEWS[kind]
    return view
