"""The clauses of MLflow's search languages: what a filter may name, identifiers and values as MLflow's
SearchUtils reads them, LIKE as the SQL store matches it, and the checks of each clause, with MLflow's
messages (chalicelib.domain.tracking.mlflow_search puts them together)."""
from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from chalicelib.domain.errors import InvalidInput

if TYPE_CHECKING:
    from chalicelib.domain.tracking.mlflow_sql import Token

# ---------------------------------------------------------------------------------------------------------------
# What a filter may name (search_utils.SearchUtils, SearchExperimentsUtils)

METRIC, PARAM, TAG, ATTRIBUTE, DATASET = "metric", "parameter", "tag", "attribute", "dataset"
_ENTITY_TYPES = [METRIC, PARAM, TAG, ATTRIBUTE, DATASET]
_ENTITY_ALIASES = {
    "metric": METRIC, "metrics": METRIC,
    "parameter": PARAM, "parameters": PARAM, "param": PARAM, "params": PARAM,
    "tag": TAG, "tags": TAG,
    "attribute": ATTRIBUTE, "attributes": ATTRIBUTE, "attr": ATTRIBUTE, "run": ATTRIBUTE,
    "dataset": DATASET, "datasets": DATASET,
}
KEY_ALIASES = {"created": "start_time", "Created": "start_time",
                "run name": "run_name", "Run name": "run_name", "Run Name": "run_name"}
RUN_NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time", "created", "Created"})
RUN_SEARCH_KEYS = frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time",
                              "created", "Created", "run name", "Run name", "Run Name"})
RUN_ORDER_KEYS = frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time",
                             "created", "Created"})
_DATASET_KEYS = ("name", "digest", "context")
_EXPERIMENT_KEYS = frozenset({"name", "experiment_id", "creation_time", "last_update_time"})
EXPERIMENT_NUMERIC_ATTRIBUTES = frozenset({"creation_time", "last_update_time"})
_EXPERIMENT_ENTITY_TYPES = ("attribute", "tag", "tags")
RUN_NAME_TAG = "mlflow.runName"

# Comparators, in the order of MLflow's source (its messages print these sets)
NUMERIC_COMPARATORS = (">", ">=", "!=", "=", "<", "<=")
PARAM_COMPARATORS = ("!=", "=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL")
STRING_ATTRIBUTE_COMPARATORS = ("!=", "=", "LIKE", "ILIKE", "IN", "NOT IN")
NULL_COMPARATORS = ("IS NULL", "IS NOT NULL")
_LIST_COMPARATORS = ("IN", "NOT IN")


def _set_repr(items: Sequence[str] | frozenset[str]) -> str:
    """A set as Python prints it; sorted when MLflow's own set has no stable order worth copying."""
    ordered = sorted(items) if isinstance(items, frozenset) else list(items)
    return "{" + ", ".join(repr(item) for item in ordered) + "}"


# ---------------------------------------------------------------------------------------------------------------
# Identifiers and values (SearchUtils._get_identifier, _strip_quotes, _get_value)

def _is_quoted(value: str, quote: str) -> bool:
    return len(value) >= 2 and value.startswith(quote) and value.endswith(quote)


def _trim_backticks(value: str) -> str:
    return value[1:-1] if _is_quoted(value, "`") else value


def _strip_quotes(value: str, expect_quoted: bool = False) -> str:
    if _is_quoted(value, "'") or _is_quoted(value, '"'):
        return value[1:-1]
    if expect_quoted:
        raise InvalidInput(f"Parameter value is either not quoted or unidentified quote types used for string value "
                           f"{value}. Use either single or double quotes.")
    return value


def run_identifier(text: str, valid_attributes: frozenset[str]) -> tuple[str, str]:
    """(entity, key) of a run identifier: `metrics.loss`, `` `params`.`a b` ``, `tags."x.y"`, `status`."""
    entity, _, key = text.partition(".") if "." in text else (ATTRIBUTE, "", text)
    if "." in text:
        entity = _trim_backticks(entity)
        if entity not in _ENTITY_ALIASES:
            raise InvalidInput(f"Invalid entity type '{entity}'. Valid values are {_ENTITY_TYPES}")
        entity = _ENTITY_ALIASES[entity]
    key = _trim_backticks(_strip_quotes(key))
    if entity == ATTRIBUTE and key not in valid_attributes:
        raise InvalidInput(f"Invalid attribute key '{key}' specified. Valid keys are '{_set_repr(valid_attributes)}'")
    if entity == DATASET and key not in _DATASET_KEYS:
        raise InvalidInput(f"Invalid dataset key '{key}' specified. Valid keys are '{_set_repr(_DATASET_KEYS)}'")
    return entity, key


def experiment_identifier(text: str) -> tuple[str, str]:
    """(entity, key) of an experiment identifier: `name`, `attribute.name`, `tags.k`, ``tag.`a b` ``."""
    entity, _, key = text.partition(".") if "." in text else (ATTRIBUTE, "", text)
    if "." in text:
        if entity not in _EXPERIMENT_ENTITY_TYPES:
            raise InvalidInput(f"Invalid entity type '{entity}'. Valid entity types are {_EXPERIMENT_ENTITY_TYPES}")
        entity = _ENTITY_ALIASES[entity]
    key = _trim_backticks(_strip_quotes(key))
    if entity == ATTRIBUTE and key not in _EXPERIMENT_KEYS:
        raise InvalidInput(f"Invalid attribute key '{key}' specified. Valid keys are '{_set_repr(_EXPERIMENT_KEYS)}'")
    return entity, key


def _string_list(token: Token, list_key: str, key: str) -> tuple[str, ...]:
    """An `IN (...)` list: a Python literal of non-empty strings, as MLflow reads it (`ast.literal_eval`)."""
    if key != list_key:
        raise InvalidInput(f"Only ['{list_key}'] attributes support comparison with a list of quoted string values.")
    try:
        parsed = ast.literal_eval(token.text)
    except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
        raise InvalidInput("While parsing a list in the query, expected a non-empty list of string values, "
                           "but got ill-formed list.") from None
    values = parsed if isinstance(parsed, tuple) else (parsed,)
    if not values:
        raise InvalidInput("While parsing a list in the query, expected a non-empty list of string values, "
                           "but got empty list")
    if not all(isinstance(value, str) for value in values):
        raise InvalidInput("While parsing a list in the query, expected string value, punctuation, or whitespace, "
                           f"but got different type in list: {values}")
    return values


def _number(token: Token) -> int | float:
    return int(token.text) if token.kind == "int" else float(token.text)


def clause_value(entity: str, key: str, token: Token, numeric_keys: frozenset[str], list_key: str) -> Any:
    """The value of `<identifier> <comparator> <value>`, checked against the identifier's type."""
    quoted = token.kind in ("string", "identifier")
    if entity == METRIC:
        if token.kind not in ("int", "float"):
            raise InvalidInput(f"Expected numeric value type for metric. Found {token.text}")
        return float(token.text)
    if entity in (PARAM, TAG):
        if not quoted:
            raise InvalidInput(f"Expected a quoted string value for {entity} (e.g. 'my-value'). Got value {token.text}")
        return _strip_quotes(token.text, expect_quoted=True)
    if entity == ATTRIBUTE:
        if key in numeric_keys:
            if token.kind not in ("int", "float"):
                raise InvalidInput(f"Expected numeric value type for numeric attribute: {key}. Found {token.text}")
            return _number(token)
        if quoted:
            return _strip_quotes(token.text, expect_quoted=True)
        if token.kind == "paren":
            return _string_list(token, list_key, key)
        raise InvalidInput(f"Expected a quoted string value for attributes. Got value {token.text}")
    # dataset
    if quoted:
        return _strip_quotes(token.text, expect_quoted=True)
    if token.kind == "paren":
        return _string_list(token, key, key)
    raise InvalidInput(f"Expected a quoted string value for dataset attributes. Got value {token.text}")


# ---------------------------------------------------------------------------------------------------------------
# Comparing

def _matches_at(value: str, start: int, piece: str) -> bool:
    """Whether `piece` (literal characters and `_`, which stands for any one) is in `value` at `start`."""
    if "_" not in piece:
        return value.startswith(piece, start)
    window = value[start:start + len(piece)]
    return len(window) == len(piece) and all(p == "_" or p == v for p, v in zip(piece, window, strict=True))


def _find(value: str, piece: str, start: int, end: int) -> int:
    """The first place from `start` where `piece` fits in `value` ending by `end`, or -1."""
    if "_" not in piece:
        return value.find(piece, start, end)
    return next((i for i in range(start, end - len(piece) + 1) if _matches_at(value, i, piece)), -1)


def _like(value: str, pattern: str, ignore_case: bool) -> bool:
    """SQL LIKE over the whole value: `%` is any run of characters, `_` any one, anything else itself (no
    escape character, as MLflow's SQL). Each piece between two `%` is taken at its first fit, which is
    enough since pieces have fixed lengths: no backtracking, so no pattern can make a match slow."""
    if ignore_case:
        value, pattern = value.lower(), pattern.lower()
    pieces = pattern.split("%")
    if len(pieces) == 1:
        return len(value) == len(pattern) and _matches_at(value, 0, pattern)
    first, middle, last = pieces[0], pieces[1:-1], pieces[-1]
    end = len(value) - len(last)
    if end < len(first) or not _matches_at(value, 0, first) or not _matches_at(value, end, last):
        return False
    pos = len(first)
    for piece in middle:
        found = _find(value, piece, pos, end)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq, "!=": operator.ne, ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
    "LIKE": lambda lhs, rhs: _like(str(lhs), rhs, False),
    "ILIKE": lambda lhs, rhs: _like(str(lhs), rhs, True),
    "IN": lambda lhs, rhs: lhs in rhs,
    "NOT IN": lambda lhs, rhs: lhs not in rhs,
}


@dataclass(frozen=True)
class Clause:
    """One `<entity>.<key> <comparator> <value>` of a filter, keys with their aliases resolved
    (`created` is `start_time`, `` `Run name` `` is `run_name`)."""
    entity: str  # metric, parameter, tag, attribute or dataset
    key: str
    comparator: str  # upper case: = != > >= < <= LIKE ILIKE IN NOT IN IS NULL IS NOT NULL
    value: Any  # float for metrics; int or float for numeric attributes; str; tuple of str for IN; None

    def compare(self, lhs: Any) -> bool:
        """The clause over one stored value; a missing value never matches (SQL's inner join, or NULL)."""
        if self.comparator in NULL_COMPARATORS:
            return (lhs is None) == (self.comparator == "IS NULL")
        if lhs is None:
            return False
        if self.entity == METRIC:
            lhs = float(lhs)
            if math.isnan(lhs):  # MLflow stores NaN as is_nan: only "!=" matches it
                return self.comparator == "!="
        if isinstance(self.value, tuple) and self.comparator not in _LIST_COMPARATORS:
            return False
        return _OPERATORS[self.comparator](lhs, self.value)


def check_comparator(comparator: str, valid: Sequence[str], shown: Sequence[str], close_quote: bool) -> None:
    """MLflow's `is_metric`, `is_tag`... checks; some of its messages leave the closing quote out."""
    if comparator not in valid:
        closing = "'" if close_quote else ""
        raise InvalidInput(f"Invalid comparator '{comparator}' not one of '{_set_repr(shown)}{closing}")


def check_list_comparator(clause: Clause) -> None:
    """A list only goes with IN / NOT IN, and IN / NOT IN only with a list (MLflow's SQL store fails on others)."""
    if isinstance(clause.value, tuple) != (clause.comparator in _LIST_COMPARATORS):
        raise InvalidInput(f"Invalid comparator '{clause.comparator}' for a list of values: use IN or NOT IN "
                           "with a list, and a single quoted value otherwise.")

