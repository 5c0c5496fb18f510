"""DynamoDB expressions built from named parts: conditions and filters, updates, sort-key ranges, indexes.

Each part carries its own placeholders (`#n3`, `:v3`), so parts combine without clashes; `with_expressions`
puts a request's parts into its keyword arguments. chalicelib.store.dynamo's `Table` takes them.
"""
from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from chalicelib.store.items import to_item

# --- expressions from named parts -------------------------------------------------------------------
_placeholders = itertools.count()


@dataclass(frozen=True)
class Condition:
    """A condition or filter built from named parts, with its own placeholders; combine with `&`, `|`, `~`.

    `Condition.absent()` (the item does not exist), `Condition.equals("version", 3)`, ...
    """

    text: str
    names: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)

    def __and__(self, other: Condition) -> Condition:
        return Condition(f"({self.text}) AND ({other.text})", {**self.names, **other.names},
                         {**self.values, **other.values})

    def __or__(self, other: Condition) -> Condition:
        return Condition(f"({self.text}) OR ({other.text})", {**self.names, **other.names},
                         {**self.values, **other.values})

    def __invert__(self) -> Condition:
        return Condition(f"NOT ({self.text})", self.names, self.values)

    @classmethod
    def exists(cls, attribute: str = "pk") -> Condition:
        name, names = _name(attribute)
        return cls(f"attribute_exists({name})", names)

    @classmethod
    def absent(cls, attribute: str = "pk") -> Condition:
        name, names = _name(attribute)
        return cls(f"attribute_not_exists({name})", names)

    @classmethod
    def equals(cls, attribute: str, value: Any) -> Condition:
        return _compare(attribute, "=", value)

    @classmethod
    def less_than(cls, attribute: str, value: Any) -> Condition:
        return _compare(attribute, "<", value)

    @classmethod
    def one_of(cls, attribute: str, choices: Iterable[Any]) -> Condition:
        name, names = _name(attribute)
        values: dict[str, Any] = {}
        for choice in choices:
            values.update(_value(choice)[1])
        return cls(f"{name} IN ({', '.join(values)})", names, values)

    @classmethod
    def begins_with(cls, attribute: str, prefix: str) -> Condition:
        name, names = _name(attribute)
        placeholder, values = _value(prefix)
        return cls(f"begins_with({name}, {placeholder})", names, values)


def _name(attribute: str) -> tuple[str, dict[str, str]]:
    placeholder = f"#n{next(_placeholders)}"
    return placeholder, {placeholder: attribute}


def _value(value: Any) -> tuple[str, dict[str, Any]]:
    placeholder = f":v{next(_placeholders)}"
    return placeholder, {placeholder: value}


def _compare(attribute: str, operator: str, value: Any) -> Condition:
    name, names = _name(attribute)
    placeholder, values = _value(value)
    return Condition(f"{name} {operator} {placeholder}", names, values)


@dataclass
class Update:
    """An update expression built clause by clause: `Update().set("a", 1).add("n", 2).remove("b")`."""

    _sets: list[str] = field(default_factory=list)
    _adds: list[str] = field(default_factory=list)
    _removes: list[str] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)

    def set(self, attribute: str, value: Any, *, if_absent: bool = False) -> Update:
        name = self._attribute(attribute)
        placeholder = self._put(value)
        self._sets.append(f"{name} = if_not_exists({name}, {placeholder})" if if_absent else f"{name} = {placeholder}")
        return self

    def increment(self, attribute: str, delta: Any, *, start: Any = 0) -> Update:
        """attribute = (attribute, or `start` when absent) + delta."""
        name = self._attribute(attribute)
        self._sets.append(f"{name} = if_not_exists({name}, {self._put(start)}) + {self._put(delta)}")
        return self

    def add(self, attribute: str, delta: Any) -> Update:
        self._adds.append(f"{self._attribute(attribute)} {self._put(delta)}")
        return self

    def remove(self, attribute: str) -> Update:
        self._removes.append(self._attribute(attribute))
        return self

    def assign(self, changes: Mapping[str, Any]) -> Update:
        """SET every attribute with a value, REMOVE every attribute given as None."""
        for attribute, value in changes.items():
            if value is None:
                self.remove(attribute)
            else:
                self.set(attribute, value)
        return self

    @property
    def text(self) -> str:
        clauses = [("SET", self._sets), ("ADD", self._adds), ("REMOVE", self._removes)]
        return " ".join(f"{verb} {', '.join(parts)}" for verb, parts in clauses if parts)

    def _attribute(self, attribute: str) -> str:
        placeholder, names = _name(attribute)
        self.names.update(names)
        return placeholder

    def _put(self, value: Any) -> str:
        placeholder, values = _value(value)
        self.values.update(values)
        return placeholder


# --- sort-key ranges --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SortRange:
    """Which sort keys of a partition a query reads."""

    operator: str  # "begins_with" | ">=" | ">" | "<" | "BETWEEN"
    bounds: tuple[str, ...]

    @classmethod
    def prefix(cls, prefix: str) -> SortRange:
        return cls("begins_with", (prefix,))

    @classmethod
    def starting_at(cls, low: str) -> SortRange:
        return cls(">=", (low,))

    @classmethod
    def after(cls, low: str) -> SortRange:
        return cls(">", (low,))

    @classmethod
    def before(cls, high: str) -> SortRange:
        return cls("<", (high,))

    @classmethod
    def between(cls, low: str, high: str) -> SortRange:
        """low <= sort key <= high."""
        return cls("BETWEEN", (low, high))

@dataclass(frozen=True)
class Index:
    name: str
    partition_key: str
    sort_key: str


def key_condition(partition_attr: str, partition: str, sort_attr: str,
                   sort: Optional[SortRange]) -> Condition:
    condition = Condition.equals(partition_attr, partition)
    if sort is None:
        return condition
    name, names = _name(sort_attr)
    values: dict[str, Any] = {}
    placeholders = []
    for bound in sort.bounds:
        placeholder, value = _value(bound)
        placeholders.append(placeholder)
        values.update(value)
    if sort.operator == "begins_with":
        text = f"begins_with({name}, {placeholders[0]})"
    elif sort.operator == "BETWEEN":
        text = f"{name} BETWEEN {placeholders[0]} AND {placeholders[1]}"
    else:
        text = f"{name} {sort.operator} {placeholders[0]}"
    return condition & Condition(text, names, values)


def projection_expression(attributes: Optional[Sequence[str]]) -> tuple[Optional[str], dict[str, str]]:
    if not attributes:
        return None, {}
    names: dict[str, str] = {}
    parts = []
    for attribute in attributes:
        placeholder, name = _name(attribute)
        names.update(name)
        parts.append(placeholder)
    return ", ".join(parts), names


def with_expressions(kwargs: dict[str, Any], *, condition: Optional[Condition] = None,
                      filter: Optional[Condition] = None, key: Optional[Condition] = None,
                      update: Optional[Update] = None, projection: Optional[Sequence[str]] = None) -> dict[str, Any]:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for argument, expression in (("ConditionExpression", condition), ("FilterExpression", filter),
                                 ("KeyConditionExpression", key)):
        if expression is not None:
            kwargs[argument] = expression.text
            names.update(expression.names)
            values.update(expression.values)
    if update is not None:
        kwargs["UpdateExpression"] = update.text
        names.update(update.names)
        values.update(update.values)
    text, projected = projection_expression(projection)
    if text:
        kwargs["ProjectionExpression"] = text
        names.update(projected)
    if names:
        kwargs["ExpressionAttributeNames"] = names
    if values:
        kwargs["ExpressionAttributeValues"] = to_item(values)
    return kwargs
