"""MLflow 3.17's search languages for runs and experiments, in plain Python (no sqlparse, no MLflow).

MLflow parses a `filter_string` with sqlparse and checks the pieces in `mlflow/utils/search_utils.py`; its SQL
store then turns them into SQL (`mlflow/store/tracking/sqlalchemy_store.py`). Here, over records in memory:

- sqlparse's reading of a filter: chalicelib.domain.tracking.mlflow_sql (its lexer rules and grouping steps);
- MLflow's clause checks, in MLflow's order and with MLflow's messages, each raised as `InvalidInput`:
  chalicelib.domain.tracking.mlflow_clauses;
- evaluation with the SQL store's semantics (this module): a metric, param or tag clause is an inner join, so
  a run without the key never matches (not even `!=`); a NaN metric only matches `!=`; `attributes.run_name`
  reads the `mlflow.runName` tag; LIKE is case-sensitive, ILIKE is not;
- ordering as the SQL store's: missing values (and NaN metrics) last whatever the direction, then
  `start_time DESC` unless given, then `run_id` ascending; experiments by `creation_time DESC, experiment_id`.

MLflow's messages print Python sets, whose order changes between processes; here they print in one fixed order
(comparators as MLflow's source lists them, keys sorted), so a message is the same on every call. Where MLflow
fails with a 500 (a list after `=`, `IN (abc)`, a field ordered on twice), this raises InvalidInput too.
"""
from __future__ import annotations

import math
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.tracking.mlflow_clauses import (
    ATTRIBUTE,
    DATASET,
    EXPERIMENT_NUMERIC_ATTRIBUTES,
    KEY_ALIASES,
    METRIC,
    NULL_COMPARATORS,
    NUMERIC_COMPARATORS,
    PARAM,
    PARAM_COMPARATORS,
    RUN_NAME_TAG,
    RUN_NUMERIC_ATTRIBUTES,
    RUN_ORDER_KEYS,
    RUN_SEARCH_KEYS,
    STRING_ATTRIBUTE_COMPARATORS,
    TAG,
    Clause,
    check_comparator,
    check_list_comparator,
    clause_value,
    experiment_identifier,
    run_identifier,
)
from chalicelib.domain.tracking.mlflow_sql import (
    ParseError,
    Token,
    filter_clauses,
    group,
    identifier_of,
    split_statements,
)

# ---------------------------------------------------------------------------------------------------------------
# Runs

@dataclass(frozen=True)
class Searchable:
    """One run as the filter sees it."""
    attributes: Mapping[str, Any]  # run_id, run_name, status, start_time (epoch ms), end_time, artifact_uri, user_id
    metrics: Mapping[str, float]  # the latest value of each metric key
    params: Mapping[str, str]
    tags: Mapping[str, str]


def _run_value(run: Searchable, entity: str, key: str) -> Any:
    if entity == METRIC:
        return run.metrics.get(key)
    if entity == PARAM:
        return run.params.get(key)
    if entity == TAG:
        return run.tags.get(key)
    return run.attributes.get(key)


@dataclass(frozen=True)
class RunFilter:
    """A parsed run filter: every clause must hold (MLflow has AND only)."""
    clauses: tuple[Clause, ...] = ()

    def matches(self, run: Searchable) -> bool:
        return all(self._holds(clause, run) for clause in self.clauses)

    @staticmethod
    def _holds(clause: Clause, run: Searchable) -> bool:
        if clause.entity == DATASET:
            return False  # Agora keeps no dataset inputs; MLflow's join then finds no row
        if clause.entity == ATTRIBUTE and clause.key == "run_name":
            # MLflow matches the mlflow.runName tag (runs of MLflow <= 1.29 have no name column)
            return clause.compare(run.tags.get(RUN_NAME_TAG, run.attributes.get("run_name")))
        return clause.compare(_run_value(run, clause.entity, clause.key))


def _run_clause(comparison: Token) -> Clause:
    entity, key = run_identifier(identifier_of(comparison), RUN_SEARCH_KEYS)
    if len(comparison.parts) == 2:
        if entity not in (TAG, PARAM):
            raise InvalidInput(f"IS NULL / IS NOT NULL is only supported for tags and params, "
                               f"not for '{entity}' '{key}'")
        return Clause(entity, key, comparison.parts[1].text, None)
    _, comparator, right = comparison.parts
    value = clause_value(entity, key, right, RUN_NUMERIC_ATTRIBUTES, "run_id")
    return Clause(entity, KEY_ALIASES.get(key, key), comparator.text.upper(), value)


def _check_run_clause(clause: Clause) -> None:
    """The SQL store's comparator checks (`_get_sqlalchemy_filter_clauses`), with MLflow's messages."""
    comparator = clause.comparator
    if clause.entity == ATTRIBUTE and clause.key in RUN_NUMERIC_ATTRIBUTES:
        # sic: MLflow lists the string comparators here, and leaves the quote open
        check_comparator(comparator, NUMERIC_COMPARATORS, STRING_ATTRIBUTE_COMPARATORS, False)
    elif clause.entity == ATTRIBUTE:
        check_comparator(comparator, STRING_ATTRIBUTE_COMPARATORS, STRING_ATTRIBUTE_COMPARATORS, True)
    elif clause.entity == METRIC:
        check_comparator(comparator, NUMERIC_COMPARATORS, NUMERIC_COMPARATORS, False)
    elif clause.entity == PARAM:
        check_comparator(comparator, PARAM_COMPARATORS, PARAM_COMPARATORS, True)
    elif clause.entity == TAG:
        check_comparator(comparator, PARAM_COMPARATORS, PARAM_COMPARATORS, False)
    else:
        check_comparator(comparator, STRING_ATTRIBUTE_COMPARATORS, STRING_ATTRIBUTE_COMPARATORS, False)
    if clause.comparator not in NULL_COMPARATORS:
        check_list_comparator(clause)


def parse_run_filter(text: Optional[str]) -> RunFilter:
    """A `runs/search` filter_string, checked as MLflow checks it; None or "" matches every run.

    Raises InvalidInput with MLflow's message for anything MLflow refuses (OR, parentheses, unknown entity or
    attribute, wrong comparator or value type...)."""
    if not text:
        return RunFilter()
    clauses = [_run_clause(comparison) for comparison in filter_clauses(text, quote_invalid=True)]
    for clause in clauses:
        _check_run_clause(clause)
    return RunFilter(tuple(clauses))


# ---------------------------------------------------------------------------------------------------------------
# Ordering

class _Ordered:
    """A sort value in one direction; two of them compare as their values do, reversed for DESC."""
    __slots__ = ("descending", "value")

    def __init__(self, value: Any, descending: bool) -> None:
        self.value = value
        self.descending = descending

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Ordered) and bool(self.value == other.value)

    def __lt__(self, other: _Ordered) -> bool:
        return bool(other.value < self.value) if self.descending else bool(self.value < other.value)

    def __repr__(self) -> str:
        return f"_Ordered({self.value!r}, {'DESC' if self.descending else 'ASC'})"


def _order_by_parts(order_by: str) -> tuple[str, bool]:
    """(identifier text, ascending) of one order_by clause (`_validate_order_by_and_generate_token` and
    `_parse_order_by_string`): one sqlparse identifier, optionally followed by ASC or DESC."""
    unparsable = f"Invalid order_by clause '{order_by}'. Could not be parsed."
    try:
        statements = split_statements(order_by)
        grouped = group(statements[0]) if len(statements) == 1 else []
    except ParseError:
        raise InvalidInput(f"Error on parsing order_by clause '{order_by}'") from None
    if len(grouped) != 1 or grouped[0].kind != "identifier":
        raise InvalidInput(unparsable)
    text = grouped[0].text
    try:
        words = shlex.split(text.replace("`", '"'))
    except ValueError:
        raise InvalidInput(unparsable) from None
    if len(words) > 2:
        raise InvalidInput(unparsable)
    if len(words) == 2:
        if words[1].lower() not in ("asc", "desc"):
            raise InvalidInput(f"Invalid ordering key in order_by clause '{order_by}'.")
        return words[0].strip(), words[1].lower() == "asc"
    return text.strip(), True


def _run_order(order_by: str) -> tuple[str, str, bool]:
    text, ascending = _order_by_parts(order_by)
    entity, key = run_identifier(text, RUN_ORDER_KEYS)
    if entity == DATASET:
        raise InvalidInput(f"Invalid identifier type '{entity}'")
    return entity, KEY_ALIASES.get(key, key), ascending


def run_sort_key(order_by: Optional[Sequence[str]]) -> Callable[[Searchable], Any]:
    """A key for `sorted()` that puts runs in MLflow's order for these order_by clauses.

    Each clause is `<identifier> [ASC|DESC]` (default ASC). As in MLflow's SQL store, a run without the
    metric, param or tag (or with a NULL end_time) sorts after the others whatever the direction, a NaN
    metric after the real values and before the missing ones; then come `start_time DESC` (unless start_time
    was ordered on) and `run_id` as the tie-breaker. Raises InvalidInput for a clause MLflow refuses, and for
    a field named twice (MLflow answers that with an error without code, a 500)."""
    orders: list[tuple[str, str, bool]] = []
    seen: set[tuple[str, str]] = set()
    for clause in order_by or ():
        entity, key, ascending = _run_order(clause)
        if (entity, key) in seen:
            raise InvalidInput(f"`order_by` contains duplicate fields: {list(order_by or ())}")
        seen.add((entity, key))
        orders.append((entity, key, ascending))
    if (ATTRIBUTE, "start_time") not in seen:
        orders.append((ATTRIBUTE, "start_time", False))
    orders.append((ATTRIBUTE, "run_id", True))

    def sort_key(run: Searchable) -> tuple[Any, ...]:
        parts: list[Any] = []
        for entity, name, ascending in orders:
            value = _run_value(run, entity, name)
            rank = 0
            if value is None:
                rank = 2 if entity == METRIC else 1
            elif entity == METRIC and math.isnan(float(value)):
                rank, value = 1, None
            parts.extend((rank, _Ordered(value, not ascending)))
        return tuple(parts)

    return sort_key


# ---------------------------------------------------------------------------------------------------------------
# Experiments

@dataclass(frozen=True)
class SearchableExperiment:
    """One experiment as the filter sees it."""
    attributes: Mapping[str, Any]  # experiment_id, name, creation_time, last_update_time (epoch ms), lifecycle_stage
    tags: Mapping[str, str]


def _experiment_id(value: Any) -> tuple[int, Any]:
    """An experiment id to compare or sort: MLflow's ids are integers; Agora's may be any string."""
    try:
        return 0, int(value)
    except (TypeError, ValueError):
        return 1, str(value)


@dataclass(frozen=True)
class ExperimentFilter:
    """A parsed experiment filter: every clause must hold."""
    clauses: tuple[Clause, ...] = ()

    def matches(self, experiment: SearchableExperiment) -> bool:
        return all(self._holds(clause, experiment) for clause in self.clauses)

    @staticmethod
    def _holds(clause: Clause, experiment: SearchableExperiment) -> bool:
        if clause.entity == TAG:
            return clause.compare(experiment.tags.get(clause.key))
        value = experiment.attributes.get(clause.key)
        if clause.key != "experiment_id" or value is None:
            return clause.compare(value)
        wanted = clause.value if isinstance(clause.value, tuple) else (clause.value,)
        found = _experiment_id(value) in {_experiment_id(v) for v in wanted}
        return found == (clause.comparator in ("=", "IN"))


def _experiment_clause(comparison: Token) -> Clause:
    entity, key = experiment_identifier(identifier_of(comparison))
    if len(comparison.parts) == 2:
        if entity != TAG:
            raise InvalidInput(f"IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'")
        return Clause(entity, key, comparison.parts[1].text, None)
    _, comparator, right = comparison.parts
    value = clause_value(entity, key, right, EXPERIMENT_NUMERIC_ATTRIBUTES, "experiment_id")
    # MLflow checks experiment comparators as written: `name like 'x'` is refused, `name LIKE 'x'` is not
    return Clause(entity, key, comparator.text, value)


def _check_experiment_clause(clause: Clause) -> None:
    """The SQL store's checks (`_get_search_experiments_filter_clauses`), with MLflow's messages."""
    comparator = clause.comparator
    if clause.entity == TAG:
        if comparator not in NULL_COMPARATORS and comparator not in ("=", "!=", "LIKE", "ILIKE"):
            raise InvalidInput(f"Invalid comparator for tag: {comparator}")
    elif clause.key == "experiment_id":
        if comparator not in ("=", "!=", "IN", "NOT IN"):
            raise InvalidInput(f"Invalid comparator for experiment_id: {comparator}")
        # MLflow also refuses ids that are not integers; Agora's ids are not, so any string is compared
    elif clause.key in EXPERIMENT_NUMERIC_ATTRIBUTES:
        check_comparator(comparator, NUMERIC_COMPARATORS, STRING_ATTRIBUTE_COMPARATORS, False)  # sic
        if isinstance(clause.value, float):
            raise InvalidInput(f"Invalid value for numeric attribute '{clause.key}': {str(clause.value)!r}")
    else:
        check_comparator(comparator, STRING_ATTRIBUTE_COMPARATORS, STRING_ATTRIBUTE_COMPARATORS, True)
        if comparator not in ("=", "!=", "LIKE", "ILIKE"):
            raise InvalidInput(f"Invalid comparator for string attribute: {comparator}")
    if comparator not in NULL_COMPARATORS:
        check_list_comparator(clause)


def parse_experiment_filter(text: Optional[str]) -> ExperimentFilter:
    """An `experiments/search` filter_string, checked as MLflow checks it; None or "" matches everything.

    Attributes `name`, `experiment_id`, `creation_time`, `last_update_time` (bare or `attribute.`), and tags
    (`tag.` / `tags.`). Raises InvalidInput with MLflow's message for anything MLflow refuses."""
    if not text:
        return ExperimentFilter()
    clauses = [_experiment_clause(comparison) for comparison in filter_clauses(text, quote_invalid=False)]
    for clause in clauses:
        _check_experiment_clause(clause)
    return ExperimentFilter(tuple(clauses))


DEFAULT_EXPERIMENT_ORDER = ("creation_time DESC", "experiment_id ASC")


def experiment_sort_key(order_by: Optional[Sequence[str]]) -> Callable[[SearchableExperiment], Any]:
    """A key for `sorted()` that puts experiments in MLflow's order.

    No order_by means `creation_time DESC, experiment_id ASC`; otherwise the clauses then `experiment_id DESC`
    as the tie-breaker, unless experiment_id was ordered on (as MLflow's SQL store). Only attributes can be
    ordered on. A missing value (None) sorts last whatever the direction. Raises InvalidInput as MLflow."""
    orders: list[tuple[str, bool]] = []
    for clause in order_by or DEFAULT_EXPERIMENT_ORDER:
        text, ascending = _order_by_parts(clause)
        entity, key = experiment_identifier(text)
        if entity != ATTRIBUTE:
            raise InvalidInput(f"Invalid order_by entity: {entity}")
        orders.append((key, ascending))
    if not any(key == "experiment_id" for key, _ in orders):
        orders.append(("experiment_id", False))

    def sort_key(experiment: SearchableExperiment) -> tuple[Any, ...]:
        parts: list[Any] = []
        for name, ascending in orders:
            value = experiment.attributes.get(name)
            if value is not None and name == "experiment_id":
                value = _experiment_id(value)
            parts.extend((value is None, _Ordered(value, not ascending)))
        return tuple(parts)

    return sort_key

