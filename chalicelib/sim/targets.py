"""Which agents a workflow step is for: AgentSociety's `target_agent` (ids, or a filter over agent class
and profile), with `filter_str` evaluated safely.

A `filter_str` is what AgentSociety documents: a Python-like expression over the agent's profile,
each attribute written `${profile.<name>}` (a bare attribute name works too), e.g.
`${profile.age} >= 18 and ${profile.gender} == 'female'`. It is parsed into a small tree of
comparisons, `and`/`or`/`not`, arithmetic, constants and lists, and evaluated against each agent's
profile; nothing is handed to `eval`. An agent whose profile lacks a named attribute does not
match, and neither does one for which the expression fails (comparing a number with a text).
"""
from __future__ import annotations

import ast
import operator
import re
from functools import lru_cache
from typing import Any, Callable

PLACEHOLDER = re.compile(r"\$\{profile\.([A-Za-z_][A-Za-z0-9_.]*)\}")
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt,
    ast.GtE: operator.ge, ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b}
_ARITHMETIC: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.Mod: operator.mod, ast.FloorDiv: operator.floordiv}
_CONSTANTS = {"True": True, "False": False, "None": None, "true": True, "false": False}


class _Missing(Exception):
    """The profile lacks an attribute the filter names."""


@lru_cache(maxsize=256)
def _parse(filter_str: str) -> tuple[ast.expr, tuple[str, ...]]:
    """The expression's tree and the profile paths its placeholders name (placeholder i -> `_p{i}`)."""
    paths: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        paths.append(match.group(1))
        return f"_p{len(paths) - 1}"

    try:
        tree = ast.parse(PLACEHOLDER.sub(placeholder, filter_str), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"filter_str {filter_str!r} is not an expression: {exc.msg}") from exc
    _check(tree.body)
    return tree.body, tuple(paths)


def _check(node: ast.AST) -> None:
    allowed = (ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.Compare, ast.BinOp,
               ast.Constant, ast.Name, ast.Load, ast.List, ast.Tuple, ast.Set, *_COMPARE, *_ARITHMETIC)
    for child in ast.walk(node):
        if not isinstance(child, allowed):
            raise ValueError(f"filter_str may hold comparisons, and/or/not, arithmetic, numbers, quoted texts and "
                             f"lists; {type(child).__name__} is not allowed")


def check_filter(filter_str: str) -> str:
    """A ValueError says why the expression cannot be used."""
    _parse(filter_str)
    return filter_str


def matches(filter_str: str, profile: dict[str, Any]) -> bool:
    tree, paths = _parse(filter_str)
    try:
        return bool(_evaluate(tree, profile, paths))
    except _Missing:
        return False
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return False


def _lookup(profile: dict[str, Any], path: str) -> Any:
    value: Any = profile
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise _Missing(path)
        value = value[part]
    return value


def _evaluate(node: ast.AST, profile: dict[str, Any], paths: tuple[str, ...]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id.startswith("_p") and node.id[2:].isdigit() and int(node.id[2:]) < len(paths):
            return _lookup(profile, paths[int(node.id[2:])])
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        return _lookup(profile, node.id)
    if isinstance(node, ast.BoolOp):
        values = (_evaluate(v, profile, paths) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, profile, paths)
        return not operand if isinstance(node.op, ast.Not) else -operand if isinstance(node.op, ast.USub) else +operand
    if isinstance(node, ast.Compare):
        left = _evaluate(node.left, profile, paths)
        for op, comparator in zip(node.ops, node.comparators, strict=True):
            right = _evaluate(comparator, profile, paths)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, profile, paths), _evaluate(node.right, profile, paths)
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            raise TypeError("arithmetic takes numbers")  # no text repeated a billion times
        return _ARITHMETIC[type(node.op)](left, right)
    if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        return [_evaluate(e, profile, paths) for e in node.elts]
    raise ValueError(f"cannot evaluate {type(node).__name__}")
