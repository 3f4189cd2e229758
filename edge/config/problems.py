"""Config errors in a technician's words, located in the YAML (``file:line:column: key.path``).

Shared by every config file of the project (the lane's, ``lane broker``'s, ``lane ingest``'s),
so that all of them read alike.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, get_args

import yaml
from pydantic import BaseModel


class _Locator:
    """Maps key paths to positions in the YAML text."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def find(self, loc: tuple[int | str, ...]) -> tuple[int | None, int | None]:
        node = self.root
        mark = node.start_mark if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                # The last occurrence: the one the data holds (a duplicate is reported too).
                match = [(k, v) for k, v in node.value if k.value == str(part)]
                if not match:
                    break
                key, node = match[-1]
                mark = key.start_mark
            elif isinstance(node, yaml.SequenceNode) and str(part).isdigit():
                if int(part) >= len(node.value):
                    break
                node = node.value[int(part)]
                mark = node.start_mark
            else:
                break
        if mark is None:
            return None, None
        return mark.line + 1, mark.column + 1


_TAG = re.compile(r"^(function-after|function-before|function-wrap)\[.*\]$")


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop pydantic's union and validator tags from an error location."""
    return tuple(p for p in loc if not (isinstance(p, str) and _TAG.match(p)))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # a list index: the list's item model was taken with the field
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
    return model


def _unknown_key(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"unknown key; did you mean `{close[0]}`?" if close else "unknown key"


def _message(
    error: Any, model: type[BaseModel] | None = None, *, extra: frozenset[str] = frozenset()
) -> str:
    """One pydantic error in the words a technician reads (no pydantic jargon)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = _clean_loc(tuple(error["loc"]))
        parent = _model_at(model, loc[:-1])
        known = set(parent.model_fields) if parent is not None else set()
        return _unknown_key(str(loc[-1]), known | extra) if loc else "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")
