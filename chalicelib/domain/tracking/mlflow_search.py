"""MLflow 3.17's search languages for runs and experiments, in plain Python (no sqlparse, no MLflow).

MLflow parses a `filter_string` with sqlparse and checks the pieces in `mlflow/utils/search_utils.py`; its SQL
store then turns them into SQL (`mlflow/store/tracking/sqlalchemy_store.py`). This module repeats both halves
over records in memory:

- a small lexer with sqlparse's token rules (the subset a filter can meet), then sqlparse's grouping steps that
  matter here: brackets, functions, dotted identifiers, arithmetic, comparisons, aliases;
- MLflow's clause checks, in MLflow's order and with MLflow's messages, each raised as `InvalidInput`;
- evaluation with the SQL store's semantics: a metric, param or tag clause is an inner join, so a run without
  the key never matches (not even `!=`); a NaN metric only matches `!=`; `attributes.run_name` reads the
  `mlflow.runName` tag; LIKE is case-sensitive, ILIKE is not;
- ordering as the SQL store's: missing values (and NaN metrics) last whatever the direction, then
  `start_time DESC` unless given, then `run_id` ascending; experiments by `creation_time DESC, experiment_id`.

MLflow's messages print Python sets, whose order changes between processes; here they print in one fixed order
(comparators as MLflow's source lists them, keys sorted), so a message is the same on every call. Where MLflow
fails with a 500 (a list after `=`, `IN (abc)`, a field ordered on twice), this raises InvalidInput too.
"""
from __future__ import annotations

import ast
import math
import operator
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

from chalicelib.domain.errors import InvalidInput

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
_KEY_ALIASES = {"created": "start_time", "Created": "start_time",
                "run name": "run_name", "Run name": "run_name", "Run Name": "run_name"}
_RUN_NUMERIC_ATTRIBUTES = frozenset({"start_time", "end_time", "created", "Created"})
_RUN_SEARCH_KEYS = frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time",
                              "created", "Created", "run name", "Run name", "Run Name"})
_RUN_ORDER_KEYS = frozenset({"run_id", "run_name", "status", "user_id", "artifact_uri", "start_time", "end_time",
                             "created", "Created"})
_DATASET_KEYS = ("name", "digest", "context")
_EXPERIMENT_KEYS = frozenset({"name", "experiment_id", "creation_time", "last_update_time"})
_EXPERIMENT_NUMERIC_ATTRIBUTES = frozenset({"creation_time", "last_update_time"})
_EXPERIMENT_ENTITY_TYPES = ("attribute", "tag", "tags")
RUN_NAME_TAG = "mlflow.runName"

# Comparators, in the order of MLflow's source (its messages print these sets)
_NUMERIC_COMPARATORS = (">", ">=", "!=", "=", "<", "<=")
_PARAM_COMPARATORS = ("!=", "=", "LIKE", "ILIKE", "IS NULL", "IS NOT NULL")
_STRING_ATTRIBUTE_COMPARATORS = ("!=", "=", "LIKE", "ILIKE", "IN", "NOT IN")
_NULL_COMPARATORS = ("IS NULL", "IS NOT NULL")
_LIST_COMPARATORS = ("IN", "NOT IN")


def _set_repr(items: Sequence[str] | frozenset[str]) -> str:
    """A set as Python prints it; sorted when MLflow's own set has no stable order worth copying."""
    ordered = sorted(items) if isinstance(items, frozenset) else list(items)
    return "{" + ", ".join(repr(item) for item in ordered) + "}"


# ---------------------------------------------------------------------------------------------------------------
# Lexer: sqlparse's rules (sqlparse/keywords.py, SQL_REGEX) that a filter or an order_by clause can meet

_RULES: tuple[tuple[str, str], ...] = (
    (r"(--|\#\ ).*?(\r\n|\r|\n|$)", "comment"),
    (r"(\r\n|\r|\n)", "newline"),
    (r"[^\S\r\n]+", "ws"),  # sqlparse lexes each blank alone; runs of them here, counted by length
    (r":=", "error"),
    (r"::", "punct"),
    (r"\*", "wildcard"),
    (r"`(``|[^`])*`", "name"),
    (r"´(´´|[^´])*´", "name"),
    (r"\?", "placeholder"),
    (r"%(\(\w+\))?s", "placeholder"),
    (r"(?<!\w)[$:?]\w+", "placeholder"),
    (r"\\\w+", "error"),
    (r"(CASE|IN|VALUES|USING|FROM|AS)\b", "keyword"),
    (r"(@|\#\#|\#)[A-ZÀ-Ü]\w+", "name"),
    (r"[A-ZÀ-Ü]\w*(?=\s*\.(?!\d))", "name"),
    (r"(?<=\.)[A-ZÀ-Ü]\w*", "name"),
    (r"[A-ZÀ-Ü]\w*(?=\()", "name"),
    (r"-?0x[\dA-F]+", "hex"),
    (r"-?\d+(\.\d+)?E-?\d+", "float"),
    (r"(?![_A-ZÀ-Ü])-?(\d+(\.\d*)|\.\d+)(?![_A-ZÀ-Ü])", "float"),
    (r"(?![_A-ZÀ-Ü])-?\d+(?![_A-ZÀ-Ü])", "int"),
    (r"'(''|\\'|[^'])*'", "string"),
    (r'"(""|\\"|[^"])*"', "symbol"),
    (r'(""|".*?[^\\]")', "symbol"),
    (r"(?<![\w\])])(\[[^\]\[]+\])", "name"),
    (r"NOT\s+NULL\b", "keyword"),
    (r"(ASC|DESC)(\s+NULLS\s+(FIRST|LAST))?\b", "order"),
    (r"NULLS\s+(FIRST|LAST)\b", "order"),
    (r"(NOT\s+)?(LIKE|ILIKE|RLIKE)\b", "comparison"),
    (r"(NOT\s+)?(REGEXP)(\s+(BINARY))?\b", "comparison"),
    (r"\w[$\#\w]*", "word"),
    (r"[;:()\[\],.]", "punct"),
    (r"(->>?|\#>>?|@>|<@|\?\|?|\?&|-|\#-)", "operator"),
    (r"[<>=~!]+", "comparison"),
    (r"[+/@\#%^&|-]+", "operator"),
)
_LEXER = re.compile("|".join(f"(?P<r{i}>{rule})" for i, (rule, _) in enumerate(_RULES)), re.IGNORECASE)
# The words sqlparse reads as keywords that a filter is likely to contain; any other word is a name
_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE", "BETWEEN", "EXISTS", "SELECT",
                       "FROM", "WHERE", "AS", "ALL", "ANY", "SOME", "UNKNOWN", "LIMIT", "ORDER", "BY", "WHEN",
                       "THEN", "ELSE", "ESCAPE", "KEY", "USER", "TYPE"})
_MAX_TOKENS = 10_000  # sqlparse's MAX_GROUPING_TOKENS and MAX_GROUPING_DEPTH: beyond them it refuses to parse
_MAX_DEPTH = 100


class _ParseError(Exception):
    """sqlparse would have refused the text (too many tokens, brackets nested too deep)."""


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    parts: tuple[_Tok, ...] = ()  # a comparison's identifier, comparator and value (no whitespace)

    @property
    def blank(self) -> bool:
        return self.kind in ("ws", "newline")

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "keyword" and self.text.upper() in words


def _lex(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    closer = -1  # where the next `*/` is; found once per comment, not once per `/*` (sqlparse's GHSA-prg7-hcfm-mfcr)
    while pos < len(text):
        if text.startswith("/*", pos) and closer != -2:
            if closer < pos + 2:
                closer = text.find("*/", pos + 2)
                closer = -2 if closer == -1 else closer
            if closer >= 0:
                tokens.append(_Tok("comment_multi", text[pos:closer + 2]))
                pos = closer + 2
                continue
        m = _LEXER.match(text, pos)
        if m is None or m.end() == pos:
            tokens.append(_Tok("error", text[pos]))
            pos += 1
            continue
        assert m.lastgroup is not None
        kind = _RULES[int(m.lastgroup[1:])][1]
        if kind == "word":
            kind = "keyword" if m.group().upper() in _KEYWORDS else "name"
        tokens.append(_Tok(kind, m.group()))
        pos = m.end()
    return tokens


def _statements(text: str) -> list[list[_Tok]]:
    """sqlparse's StatementSplitter: a `;` outside brackets ends a statement, which keeps the blanks and `--`
    comments of its line; a statement of nothing but whitespace is dropped."""
    statements: list[list[_Tok]] = []
    current: list[_Tok] = []
    level, ended = 0, False
    for tok in _lex(text):
        if ended and tok.kind not in ("ws", "comment"):
            statements.append(current)
            current, level, ended = [], 0, False
        if tok.kind == "punct" and tok.text == "(":
            level += 1
        elif tok.kind == "punct" and tok.text == ")":
            level -= 1
        current.append(tok)
        if tok.kind == "punct" and tok.text == ";" and level <= 0:
            ended = True
    if current and not all(tok.blank for tok in current):
        statements.append(current)
    return statements


def _join(tokens: Sequence[_Tok]) -> str:
    return "".join(tok.text for tok in tokens)


def _solid_after(tokens: Sequence[_Tok], start: int) -> Optional[int]:
    """Index of the first token from `start` on that is not whitespace (comments count, as in sqlparse)."""
    for i in range(start, len(tokens)):
        if not tokens[i].blank:
            return i
    return None


def _solid_before(tokens: Sequence[_Tok]) -> Optional[int]:
    for i in range(len(tokens) - 1, -1, -1):
        if not tokens[i].blank:
            return i
    return None


def _group_brackets(tokens: list[_Tok], opening: str, closing: str, kind: str) -> list[_Tok]:
    out: list[_Tok] = []
    opens: list[int] = []
    for tok in tokens:
        if tok.kind == "punct" and tok.text == closing and opens:
            start = opens.pop()
            out[start:] = [_Tok(kind, _join(out[start:]) + tok.text)]
            continue
        out.append(tok)
        if tok.kind == "punct" and tok.text == opening:
            opens.append(len(out) - 1)
            if len(opens) > _MAX_DEPTH:
                raise _ParseError()
    return out


def _group_functions(tokens: list[_Tok]) -> list[_Tok]:
    out = list(tokens)
    i = 0
    while i < len(out):
        if out[i].kind in ("name", "placeholder"):
            nxt = _solid_after(out, i + 1)
            if nxt is not None and out[nxt].kind == "paren":
                out[i:nxt + 1] = [_Tok("function", _join(out[i:nxt + 1]))]
        i += 1
    return out


_PERIOD_PREV = ("name", "symbol", "square", "identifier")
_PERIOD_NEXT = ("name", "symbol", "wildcard", "string", "square", "function")


def _group_identifiers(tokens: list[_Tok]) -> list[_Tok]:
    """`a.b`, `a . "b"`, ``a.`b c`.d``: one identifier each (group_period); then any lone name (group_identifier)."""
    out: list[_Tok] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev = _solid_before(out) if tok.kind == "punct" and tok.text == "." else None
        if prev is not None and out[prev].kind in _PERIOD_PREV:
            nxt = _solid_after(tokens, i + 1)
            end = nxt if nxt is not None and tokens[nxt].kind in _PERIOD_NEXT else i
            out[prev:] = [_Tok("identifier", _join(out[prev:]) + _join(tokens[i:end + 1]))]
            i = end + 1
            continue
        out.append(tok)
        i += 1
    return [_Tok("identifier", tok.text) if tok.kind in ("name", "symbol") else tok for tok in out]


def _group_order(tokens: list[_Tok]) -> list[_Tok]:
    out: list[_Tok] = []
    for tok in tokens:
        prev = _solid_before(out) if tok.kind == "order" else None
        if prev is not None and out[prev].kind in ("identifier", "int", "float", "hex"):
            out[prev:] = [_Tok("identifier", _join(out[prev:]) + tok.text)]
            continue
        out.append(tok)
    return out


_OPERANDS = ("square", "paren", "function", "identifier", "operation", "int", "float", "string", "placeholder")
_COMPARANDS = ("paren", "function", "identifier", "operation", "int", "float", "string", "placeholder")


def _group_infix(tokens: list[_Tok], is_operator: Callable[[_Tok], bool], valid: Callable[[_Tok], bool],
                 kind: str) -> list[_Tok]:
    """sqlparse's `_group` without `extend`: `<valid> <operator> <valid>` becomes one token of `kind`.

    As in sqlparse, a group just made chains on its right operand: `0 < x < 1` is `(0 < x) < 1`."""
    out: list[_Tok] = []
    made = -1  # index in `out` of the group this pass made last
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev, nxt = (_solid_before(out), _solid_after(tokens, i + 1)) if is_operator(tok) else (None, None)
        left = None if prev is None else out[prev].parts[-1] if prev == made else out[prev]
        if left is not None and nxt is not None and valid(left) and valid(tokens[nxt]):
            assert prev is not None
            parts = (out[prev], tok, tokens[nxt])
            out[prev:] = [_Tok(kind, _join(out[prev:]) + _join(tokens[i:nxt + 1]), parts)]
            made = prev
            i = nxt + 1
            continue
        out.append(tok)
        i += 1
    return out


def _group_aliases(tokens: list[_Tok]) -> list[_Tok]:
    """`<identifier, comparison, number...> <identifier>` is one identifier with an alias (group_aliased)."""
    aliasable = ("paren", "function", "identifier", "operation", "comparison_group", "int", "float", "hex")
    out: list[_Tok] = []
    aliased = -1  # where the last alias was taken: that identifier takes no second one
    for tok in tokens:
        prev = _solid_before(out) if tok.kind == "identifier" else None
        if prev is not None and prev != aliased and out[prev].kind in aliasable:
            out[prev:] = [_Tok("identifier", _join(out[prev:]) + tok.text)]
            aliased = prev
            continue
        out.append(tok)
    return out


def _group(tokens: list[_Tok]) -> list[_Tok]:
    if sum(len(tok.text) if tok.kind == "ws" else 1 for tok in tokens) > _MAX_TOKENS:  # sqlparse's count
        raise _ParseError()
    tokens = _group_brackets(tokens, "[", "]", "square")
    tokens = _group_brackets(tokens, "(", ")", "paren")
    tokens = _group_functions(tokens)
    tokens = _group_identifiers(tokens)
    tokens = _group_order(tokens)
    tokens = _group_infix(tokens, lambda t: t.kind in ("operator", "wildcard"), lambda t: t.kind in _OPERANDS,
                          "operation")
    tokens = _group_infix(tokens, lambda t: t.kind == "comparison",
                          lambda t: t.kind in _COMPARANDS or t.is_keyword("NULL"), "comparison_group")
    return _group_aliases(tokens)


def _join_in_comparisons(tokens: list[_Tok]) -> list[_Tok]:
    """MLflow's `_join_in_comparison_tokens`: sqlparse leaves `x IN (...)`, `x NOT IN (...)`, `x IS NULL` and
    `x IS NOT NULL` ungrouped, so MLflow joins them, reading the tokens in steps of three or four as it does."""
    solid = [tok for tok in tokens if not tok.blank]
    joined: list[_Tok] = []
    i = 0
    while i < len(solid):
        first = solid[i]
        if len(solid) - i < 3:
            joined.extend(solid[i:])
            break
        if first.kind != "identifier":
            joined.append(first)
            i += 1
            continue
        second, third = solid[i + 1], solid[i + 2]
        if second.is_keyword("IN") and third.kind == "paren":
            joined.append(_Tok("comparison_group", _join(solid[i:i + 3]), (first, second, third)))
            i += 3
            continue
        if second.is_keyword("IS") and third.is_keyword("NULL"):
            joined.append(_Tok("comparison_group", _join(solid[i:i + 3]), (first, _Tok("keyword", "IS NULL"))))
            i += 3
            continue
        if second.is_keyword("IS") and third.kind == "keyword" and third.text.upper() == "NOT NULL":
            joined.append(_Tok("comparison_group", _join(solid[i:i + 3]), (first, _Tok("keyword", "IS NOT NULL"))))
            i += 3
            continue
        if i + 3 >= len(solid):
            joined.extend(solid[i:i + 3])
            break
        fourth = solid[i + 3]
        if second.is_keyword("NOT") and third.is_keyword("IN") and fourth.kind == "paren":
            joined.append(_Tok("comparison_group", _join(solid[i:i + 4]),
                               (first, _Tok("keyword", "NOT IN"), fourth)))
        else:
            joined.extend(solid[i:i + 4])
        i += 4
    return joined


def _filter_clauses(text: str, quote_invalid: bool) -> list[_Tok]:
    """The comparisons of a filter (`SearchUtils.parse_search_filter` up to `_get_comparison`)."""
    statements = _statements(text)
    if not statements:
        raise InvalidInput(f"Invalid filter '{text}'. Could not be parsed.")
    if len(statements) > 1:
        raise InvalidInput(f"Search filter contained multiple expression {text!r}. Provide AND-ed expression list.")
    try:
        tokens = _join_in_comparisons(_group(statements[0]))
    except _ParseError:
        raise InvalidInput(f"Error on parsing filter '{text}'") from None
    invalid = [tok for tok in tokens if tok.kind != "comparison_group" and not tok.is_keyword("AND")]
    if invalid:
        shown = ", ".join(f"'{tok.text}'" if quote_invalid else tok.text for tok in invalid)
        raise InvalidInput(f"Invalid clause(s) in filter string: {shown}")
    return [tok for tok in tokens if tok.kind == "comparison_group"]


def _identifier_of(comparison: _Tok) -> str:
    """The left-hand side of a comparison, which must be an identifier (`SearchUtils._validate_comparison`)."""
    left = comparison.parts[0]
    if left.kind != "identifier":
        raise InvalidInput(f"Invalid comparison clause. Expected 'Identifier' found '{left.text}'")
    return left.text


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


def _run_identifier(text: str, valid_attributes: frozenset[str]) -> tuple[str, str]:
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


def _experiment_identifier(text: str) -> tuple[str, str]:
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


def _string_list(token: _Tok, list_key: str, key: str) -> tuple[str, ...]:
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


def _number(token: _Tok) -> int | float:
    return int(token.text) if token.kind == "int" else float(token.text)


def _value(entity: str, key: str, token: _Tok, numeric_keys: frozenset[str], list_key: str) -> Any:
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
        if self.comparator in _NULL_COMPARATORS:
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


def _check_comparator(comparator: str, valid: Sequence[str], shown: Sequence[str], close_quote: bool) -> None:
    """MLflow's `is_metric`, `is_tag`... checks; some of its messages leave the closing quote out."""
    if comparator not in valid:
        closing = "'" if close_quote else ""
        raise InvalidInput(f"Invalid comparator '{comparator}' not one of '{_set_repr(shown)}{closing}")


def _check_list_comparator(clause: Clause) -> None:
    """A list only goes with IN / NOT IN, and IN / NOT IN only with a list (MLflow's SQL store fails on others)."""
    if isinstance(clause.value, tuple) != (clause.comparator in _LIST_COMPARATORS):
        raise InvalidInput(f"Invalid comparator '{clause.comparator}' for a list of values: use IN or NOT IN "
                           "with a list, and a single quoted value otherwise.")


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


def _run_clause(comparison: _Tok) -> Clause:
    entity, key = _run_identifier(_identifier_of(comparison), _RUN_SEARCH_KEYS)
    if len(comparison.parts) == 2:
        if entity not in (TAG, PARAM):
            raise InvalidInput(f"IS NULL / IS NOT NULL is only supported for tags and params, "
                               f"not for '{entity}' '{key}'")
        return Clause(entity, key, comparison.parts[1].text, None)
    _, comparator, right = comparison.parts
    value = _value(entity, key, right, _RUN_NUMERIC_ATTRIBUTES, "run_id")
    return Clause(entity, _KEY_ALIASES.get(key, key), comparator.text.upper(), value)


def _check_run_clause(clause: Clause) -> None:
    """The SQL store's comparator checks (`_get_sqlalchemy_filter_clauses`), with MLflow's messages."""
    comparator = clause.comparator
    if clause.entity == ATTRIBUTE and clause.key in _RUN_NUMERIC_ATTRIBUTES:
        # sic: MLflow lists the string comparators here, and leaves the quote open
        _check_comparator(comparator, _NUMERIC_COMPARATORS, _STRING_ATTRIBUTE_COMPARATORS, False)
    elif clause.entity == ATTRIBUTE:
        _check_comparator(comparator, _STRING_ATTRIBUTE_COMPARATORS, _STRING_ATTRIBUTE_COMPARATORS, True)
    elif clause.entity == METRIC:
        _check_comparator(comparator, _NUMERIC_COMPARATORS, _NUMERIC_COMPARATORS, False)
    elif clause.entity == PARAM:
        _check_comparator(comparator, _PARAM_COMPARATORS, _PARAM_COMPARATORS, True)
    elif clause.entity == TAG:
        _check_comparator(comparator, _PARAM_COMPARATORS, _PARAM_COMPARATORS, False)
    else:
        _check_comparator(comparator, _STRING_ATTRIBUTE_COMPARATORS, _STRING_ATTRIBUTE_COMPARATORS, False)
    if clause.comparator not in _NULL_COMPARATORS:
        _check_list_comparator(clause)


def parse_run_filter(text: Optional[str]) -> RunFilter:
    """A `runs/search` filter_string, checked as MLflow checks it; None or "" matches every run.

    Raises InvalidInput with MLflow's message for anything MLflow refuses (OR, parentheses, unknown entity or
    attribute, wrong comparator or value type...)."""
    if not text:
        return RunFilter()
    clauses = [_run_clause(comparison) for comparison in _filter_clauses(text, quote_invalid=True)]
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
        statements = _statements(order_by)
        grouped = _group(statements[0]) if len(statements) == 1 else []
    except _ParseError:
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
    entity, key = _run_identifier(text, _RUN_ORDER_KEYS)
    if entity == DATASET:
        raise InvalidInput(f"Invalid identifier type '{entity}'")
    return entity, _KEY_ALIASES.get(key, key), ascending


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


def _experiment_clause(comparison: _Tok) -> Clause:
    entity, key = _experiment_identifier(_identifier_of(comparison))
    if len(comparison.parts) == 2:
        if entity != TAG:
            raise InvalidInput(f"IS NULL / IS NOT NULL is only supported for tags, not for attribute '{key}'")
        return Clause(entity, key, comparison.parts[1].text, None)
    _, comparator, right = comparison.parts
    value = _value(entity, key, right, _EXPERIMENT_NUMERIC_ATTRIBUTES, "experiment_id")
    # MLflow checks experiment comparators as written: `name like 'x'` is refused, `name LIKE 'x'` is not
    return Clause(entity, key, comparator.text, value)


def _check_experiment_clause(clause: Clause) -> None:
    """The SQL store's checks (`_get_search_experiments_filter_clauses`), with MLflow's messages."""
    comparator = clause.comparator
    if clause.entity == TAG:
        if comparator not in _NULL_COMPARATORS and comparator not in ("=", "!=", "LIKE", "ILIKE"):
            raise InvalidInput(f"Invalid comparator for tag: {comparator}")
    elif clause.key == "experiment_id":
        if comparator not in ("=", "!=", "IN", "NOT IN"):
            raise InvalidInput(f"Invalid comparator for experiment_id: {comparator}")
        # MLflow also refuses ids that are not integers; Agora's ids are not, so any string is compared
    elif clause.key in _EXPERIMENT_NUMERIC_ATTRIBUTES:
        _check_comparator(comparator, _NUMERIC_COMPARATORS, _STRING_ATTRIBUTE_COMPARATORS, False)  # sic
        if isinstance(clause.value, float):
            raise InvalidInput(f"Invalid value for numeric attribute '{clause.key}': {str(clause.value)!r}")
    else:
        _check_comparator(comparator, _STRING_ATTRIBUTE_COMPARATORS, _STRING_ATTRIBUTE_COMPARATORS, True)
        if comparator not in ("=", "!=", "LIKE", "ILIKE"):
            raise InvalidInput(f"Invalid comparator for string attribute: {comparator}")
    if comparator not in _NULL_COMPARATORS:
        _check_list_comparator(clause)


def parse_experiment_filter(text: Optional[str]) -> ExperimentFilter:
    """An `experiments/search` filter_string, checked as MLflow checks it; None or "" matches everything.

    Attributes `name`, `experiment_id`, `creation_time`, `last_update_time` (bare or `attribute.`), and tags
    (`tag.` / `tags.`). Raises InvalidInput with MLflow's message for anything MLflow refuses."""
    if not text:
        return ExperimentFilter()
    clauses = [_experiment_clause(comparison) for comparison in _filter_clauses(text, quote_invalid=False)]
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
        entity, key = _experiment_identifier(text)
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
