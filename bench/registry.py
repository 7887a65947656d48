"""One Registry class for problems, optimizers, inits, regularizers, schedules and measures.

A registered factory's signature *is* its YAML schema: `bind` checks a choice's
parameters against it (names, required keys, simple types) before anything runs.
"""
from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ChoiceError(ValueError):
    """A choice does not fit its registry; `key` names the offending parameter, if any."""

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


def did_you_mean(word: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(word, allowed, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"allowed: {', '.join(allowed)}{hint}"


@dataclass
class Entry:
    name: str
    factory: Callable[..., Any]
    about: str = ""
    sample: dict = field(default_factory=dict)   # params used by generic tests
    skip_params: int = 0                         # leading positional args supplied by the suite
    rule: Callable[..., str | None] | None = None   # unsuitable(problem, **params), if given

    def unsuitable(self, problem: Any, params: dict) -> str | None:
        """Why this choice cannot run on `problem`, or None when it can (benchopt's `skip`).

        The rule is the one given at registration, else the factory's own `unsuitable`: a
        method of the built object for classes (`Init(**params).unsuitable(problem)`), a
        function `unsuitable(problem, **params)` attached to a factory function."""
        if self.rule is not None:
            return self.rule(problem, **params)
        own = getattr(self.factory, "unsuitable", None)
        if not callable(own):
            return None
        if inspect.isclass(self.factory):
            return self.factory(**params).unsuitable(problem)
        return own(problem, **params)


    def parameters(self) -> list[Param]:
        """The parameters a spec may set, with their defaults and documentation (the
        factory's docstring, "Args:" section, torch/optim's style)."""
        signature = inspect.signature(self.factory)
        docs = param_docs(inspect.getdoc(self.factory) or "")
        if inspect.isclass(self.factory) and not docs:
            docs = param_docs(inspect.getdoc(self.factory.__init__) or "")
        out = []
        for p in list(signature.parameters.values())[self.skip_params:]:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            required = p.default is inspect.Parameter.empty
            out.append(Param(p.name, None if required else p.default, required,
                             docs.get(p.name, "")))
        return out


@dataclass(frozen=True)
class Param:
    name: str
    default: Any
    required: bool
    doc: str


def param_docs(docstring: str) -> dict[str, str]:
    """{parameter: text} from a docstring's "Args:" section (4-space entries, deeper
    continuation lines), as torch/optim documents its optimizers."""
    out: dict[str, str] = {}
    lines = docstring.splitlines()
    if "Args:" not in (line.strip() for line in lines):
        return out
    start = [line.strip() for line in lines].index("Args:") + 1
    current = None
    for line in lines[start:]:
        if line.strip() and not line.startswith(" "):
            break   # the section ends at the next unindented line
        body = line.strip()
        if line.startswith("    ") and not line.startswith("     ") and ":" in body:
            current, _, text = body.partition(":")
            out[current] = text.strip()
        elif current and body:
            out[current] += " " + body
    return out


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str, *, about: str = "", sample: dict | None = None,
                 skip_params: int = 0, unsuitable: Callable | None = None) -> Callable:
        def add(factory: Callable) -> Callable:
            if name in self._entries:
                raise ValueError(f"{self.kind} '{name}' registered twice")
            self._entries[name] = Entry(name, factory, about or _first_line(factory),
                                        sample or {}, skip_params, unsuitable)
            return factory
        return add

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entries(self) -> list[Entry]:
        return [self._entries[name] for name in self.names()]

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            raise ChoiceError(f"unknown {self.kind} '{name}'; {did_you_mean(name, self.names())}")
        return self._entries[name]


def bind_params(factory: Callable, params: dict, what: str, skip: int = 0) -> inspect.BoundArguments:
    sig = inspect.signature(factory)
    allowed = list(sig.parameters)[skip:]
    for key in params:
        if key not in allowed:
            raise ChoiceError(f"{what} has no parameter '{key}'; {did_you_mean(key, allowed)}", key)
    try:
        bound = sig.bind_partial(**params)
    except TypeError as exc:
        raise ChoiceError(f"{what}: {exc}") from None
    missing = [p for p in allowed if sig.parameters[p].default is inspect.Parameter.empty
               and p not in params and sig.parameters[p].kind not in (
                   inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]
    if missing:
        raise ChoiceError(f"{what} needs parameter(s): {', '.join(missing)}")
    hints = _type_hints(factory)
    for key, value in params.items():
        _check_type(value, hints.get(key), f"{what} parameter '{key}'", key)
    return bound


def normalized(factory: Callable, params: dict) -> dict:
    """Integers given for float parameters become floats, so `kappa: 10` and `kappa: 10.0`
    resolve (and hash) the same."""
    hints = _type_hints(factory)
    return {k: _as_hinted(v, hints.get(k)) for k, v in params.items()}


def _as_hinted(value: Any, hint: Any) -> Any:
    if type(value) is int and _wants(hint, float):
        return float(value)
    if isinstance(value, list):   # list[float]: its items too (eigenvalues: [1, 0.1])
        item = next((typing.get_args(h)[0] for h in _options(hint)
                     if typing.get_origin(h) in (list, tuple) and typing.get_args(h)), None)
        return [_as_hinted(v, item) for v in value] if item is not None else value
    return value


def _options(hint: Any) -> tuple:
    origin = typing.get_origin(hint)
    union = origin is typing.Union or origin is getattr(__import__("types"), "UnionType", None)
    return typing.get_args(hint) if union else (hint,)


def _wants(hint: Any, kind: type) -> bool:
    options = _options(hint)
    return kind in options and int not in options


def _type_hints(factory: Callable) -> dict:
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        return typing.get_type_hints(target)
    except Exception:   # unresolvable annotations (third-party classes): no type checks
        return {}


def _check_type(value: Any, hint: Any, what: str, key: str) -> None:
    if hint is None or hint is Any or _matches(value, hint):
        return
    raise ChoiceError(f"{what} must be {_describe(hint)}, got {type(value).__name__} {value!r}", key)


def _matches(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return any(_matches(value, h) for h in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple):
        inner = typing.get_args(hint)
        return isinstance(value, (list, tuple)) and (
            not inner or all(_matches(v, inner[0]) for v in value))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin is not None:
        return " or ".join(_describe(h) for h in typing.get_args(hint)) if origin is not list \
            else "a list"
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string",
            type(None): "null"}.get(hint, getattr(hint, "__name__", str(hint)))


def _first_line(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").split("\n")[0]
