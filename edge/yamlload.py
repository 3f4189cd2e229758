"""YAML config files read with bounds: every bad input is a located problem, never a traceback.

PyYAML's safe loader alone lets four inputs through badly: a file that is not UTF-8 or holds
a NUL byte raises an unlocated error, deep nesting (``[[[[...``) exhausts the recursion of its
composer (``RecursionError``), and a key given twice in one mapping silently replaces the
first (a second ``mqtt:`` block changes the broker). Here:

* the file is at most ``MAX_BYTES`` and must be UTF-8 (the line and column of the first
  byte that is not are given);
* characters YAML forbids (NUL and other C0 controls, YAML 1.1 section 5.1) are located;
* nesting deeper than ``MAX_DEPTH`` stops the composer at the node that goes too deep;
* a key that appears twice in a mapping is a problem at the second occurrence, naming the
  line of the first. The merge key ``<<`` is exempt: overriding a merged key is its purpose.

One document per file; it is composed once, checked, then constructed from that node tree, so
the positions used in error messages come from the same parse as the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from edge.errors import ConfigError, ConfigProblem

MAX_BYTES = 1 << 20  # a lane config is a few KiB; anything near this is not one
MAX_DEPTH = 64  # the deepest lane config key path is 5 levels
MERGE_TAG = "tag:yaml.org,2002:merge"


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """A parsed file: its node tree (for positions), its data and its non-fatal problems."""

    root: yaml.Node | None
    data: Any
    problems: list[ConfigProblem] = field(default_factory=list)


class _NestingError(yaml.MarkedYAMLError):
    def __init__(self, mark: yaml.Mark, path: tuple[str, ...]) -> None:
        super().__init__(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        self.path = path


class _BoundedLoader(yaml.SafeLoader):
    """The safe loader with a nesting bound kept while composing."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._path: list[str] = []

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if parent is None:  # the document's root
            return super().compose_node(parent, index)
        if isinstance(index, int):
            part = str(index)
        elif isinstance(index, yaml.ScalarNode):
            part = str(index.value)
        else:
            part = "?"  # a mapping key being composed, or a value under a complex key
        self._path.append(part)
        try:
            if len(self._path) > MAX_DEPTH:
                raise _NestingError(self.peek_event().start_mark, tuple(self._path[:4]))
            return super().compose_node(parent, index)
        finally:
            self._path.pop()


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of character ``index`` of ``text``."""
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def decode(data: bytes, *, source: str) -> str:
    """The file's text; not UTF-8 or too large is a ConfigError with the position."""
    if len(data) > MAX_BYTES:
        raise ConfigError(
            [
                ConfigProblem(
                    source,
                    None,
                    None,
                    "",
                    f"larger than {MAX_BYTES} bytes: not a lane config",
                )
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        before = data[start : exc.start].decode("utf-8", "replace")
        index = len(data[: exc.start].decode("utf-8", "replace"))
        raise ConfigError(
            [
                ConfigProblem(
                    source,
                    line,
                    len(before) + 1,
                    _path_at(data.decode("utf-8", "replace"), index),
                    f"not UTF-8: byte 0x{data[exc.start]:02x} cannot be decoded "
                    "(save the file as UTF-8)",
                )
            ]
        ) from None


def _path_at(text: str, index: int) -> str:
    """The key path whose value holds character ``index`` of ``text`` (best effort: the text
    is parsed with that character made harmless; "" when even that does not parse)."""
    text = text[:index] + " " + text[index + 1 :]
    try:
        loader = _BoundedLoader(text)
        try:
            node: yaml.Node | None = loader.get_single_node()
        finally:
            loader.dispose()
    except (yaml.YAMLError, RecursionError):
        return ""
    path: list[str] = []
    while node is not None:
        children: list[tuple[str, yaml.Node, yaml.Node]] = []
        if isinstance(node, yaml.MappingNode):
            children = [
                (str(k.value), k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)
            ]
        elif isinstance(node, yaml.SequenceNode):
            children = [(str(i), item, item) for i, item in enumerate(node.value)]
        for name, first, last in children:
            if first.start_mark.index <= index < max(last.end_mark.index, first.end_mark.index + 1):
                path.append(name)
                node = last
                break
        else:
            node = None
    return ".".join(path)


def _duplicate_keys(root: yaml.Node, source: str) -> list[ConfigProblem]:
    """Every key given twice in one mapping, at its second (third ...) occurrence."""
    problems: list[tuple[int, int, ConfigProblem]] = []
    seen: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str, ...]]] = [(root, ())]
    while stack:  # iterative: an alias-heavy tree is visited once per node, not per path
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[str, yaml.Mark] = {}
            for key, value in node.value:
                if not isinstance(key, yaml.ScalarNode):
                    continue
                name = str(key.value)
                if key.tag == MERGE_TAG:
                    continue
                if name in first:
                    mark = key.start_mark
                    problems.append(
                        (
                            mark.line,
                            mark.column,
                            ConfigProblem(
                                source,
                                mark.line + 1,
                                mark.column + 1,
                                ".".join((*path, name)),
                                f"duplicate key (first given at line {first[name].line + 1}); "
                                "a key appears once in its block",
                            ),
                        )
                    )
                else:
                    first[name] = key.start_mark
                stack.append((value, (*path, name)))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                stack.append((item, (*path, str(index))))
    return [problem for _line, _column, problem in sorted(problems, key=lambda p: p[:2])]


def _fatal(source: str, line: int | None, column: int | None, path: str, message: str) -> Any:
    raise ConfigError([ConfigProblem(source, line, column, path, message)])


def load_yaml(text: str, *, source: str) -> YamlDocument:
    """Parse one YAML document. Fatal problems raise ConfigError; duplicate keys come back in
    ``problems`` so that the caller reports them with the rest in one round."""
    try:
        loader = _BoundedLoader(text)
        try:
            root = loader.get_single_node()
            problems = _duplicate_keys(root, source) if root is not None else []
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        code = exc.character if isinstance(exc.character, int) else 0
        name = " (NUL)" if code == 0 else ""
        _fatal(
            source,
            line,
            column,
            _path_at(text, exc.position),
            f"character U+{code:04X}{name} is not allowed in YAML",
        )
    except _NestingError as exc:
        mark = exc.problem_mark
        path = ".".join(exc.path) + "..."  # the first levels: where the deep part starts
        _fatal(
            source,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            path,
            f"nested deeper than {MAX_DEPTH} levels; a lane config is a few levels deep",
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        _fatal(
            source,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
            "",
            f"not valid YAML: {exc.problem}",
        )
    except yaml.YAMLError as exc:
        _fatal(source, None, None, "", f"not valid YAML: {exc}")
    except RecursionError:  # a bound above was not enough: still a config error, not a crash
        _fatal(source, None, None, "", "nested too deeply to read")
    return YamlDocument(root, data, problems)
