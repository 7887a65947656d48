"""Safe YAML 1.2 loading that remembers where every value came from.

PyYAML alone follows YAML 1.1 (`1e-3` is a string, `yes` is a bool), silently keeps the
last of duplicate keys, and forgets line numbers once data is built. Here the document is
composed into nodes, scalars are resolved with the YAML 1.2 core schema, duplicate keys and
non-standard tags are errors, and each value's position is kept in `marks` by its path.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

Path = tuple  # keys and list indices from the document root


@dataclass(frozen=True)
class Mark:
    file: str
    line: int   # 1-based
    col: int    # 1-based

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Issue:
    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}"


class SpecError(Exception):
    """One or more problems with a spec, each tied to a file position."""

    def __init__(self, issues: list[Issue]):
        unique = dict.fromkeys(issues)   # shared defaults would repeat per experiment
        self.issues = sorted(unique, key=lambda i: (i.mark.line, i.mark.col, i.message))
        super().__init__("\n".join(str(i) for i in self.issues))


class _Resolver12(BaseResolver):
    """The YAML 1.2 core schema: only true/false are booleans, `1e-3` is a float."""


_CORE = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", list("~nN") + [""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$", list("-+0123456789.")),
]
for _tag, _pattern, _first in _CORE:
    _Resolver12.add_implicit_resolver(_tag, re.compile(_pattern), _first)


class _Composer12(Reader, Scanner, Parser, Composer, _Resolver12):
    def __init__(self, stream: str):
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Resolver12.__init__(self)


def load(text: str, file: str) -> tuple[Any, dict[Path, Mark]]:
    """Parse `text`; return the data and a map from each value's path to its position."""
    try:
        node = _Composer12(text).get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise SpecError([Issue(_mark(file, mark), f"not valid YAML: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([Issue(Mark(file, 1, 1), f"not valid YAML: {exc}")]) from None
    if node is None:
        raise SpecError([Issue(Mark(file, 1, 1), "the file is empty")])
    builder = _Builder(file)
    try:
        data = builder.build(node, ())
    except RecursionError:
        raise SpecError([Issue(Mark(file, 1, 1), "an alias refers to itself (a recursive "
                                                 "anchor): the document is infinite")]) from None
    if builder.issues:
        raise SpecError(builder.issues)
    return data, builder.marks


def _mark(file: str, mark: Any) -> Mark:
    return Mark(file, mark.line + 1, mark.column + 1) if mark else Mark(file, 1, 1)


_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


class _Builder:
    def __init__(self, file: str):
        self.file = file
        self.marks: dict[Path, Mark] = {}
        self.issues: list[Issue] = []

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.marks.setdefault(path, _mark(self.file, node.start_mark))
        if not isinstance(node, yaml.ScalarNode) and node.tag not in _COLLECTION_TAGS:
            self.issues.append(Issue(_mark(self.file, node.start_mark),
                                     f"tag '{node.tag}' is not allowed (plain YAML only)"))
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        return self._scalar(node)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict:
        out: dict = {}
        for key_node, value_node in node.value:
            key = self._scalar(key_node) if isinstance(key_node, yaml.ScalarNode) else None
            where = _mark(self.file, key_node.start_mark)
            if not isinstance(key, (str, int, float, bool)):
                self.issues.append(Issue(where, "mapping keys must be plain scalars"))
                continue
            if key in out:
                first = self.marks[path + (key,)]
                self.issues.append(Issue(where, f"duplicate key '{key}' (first at line {first.line})"))
                continue
            self.marks[path + (key,)] = where
            out[key] = self.build(value_node, path + (key,))
        return out

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        tag, value = node.tag, node.value
        if tag == "tag:yaml.org,2002:str":
            return value
        if tag == "tag:yaml.org,2002:null":
            return None
        if tag == "tag:yaml.org,2002:bool":
            return value.lower() == "true"
        if tag == "tag:yaml.org,2002:int":
            return int(value, 0) if value[:2] in ("0o", "0x") else int(value)
        if tag == "tag:yaml.org,2002:float":
            return float(value.lower().replace(".inf", "inf").replace(".nan", "nan"))
        self.issues.append(Issue(_mark(self.file, node.start_mark),
                                 f"tag '{tag}' is not allowed (plain YAML only)"))
        return None
