"""A filter or order_by clause as sqlparse reads it, in plain Python: its lexer rules (the subset a filter can
meet) and the grouping steps that matter here (brackets, functions, dotted identifiers, arithmetic,
comparisons, aliases). MLflow's checks of the pieces are chalicelib.domain.tracking.mlflow_clauses'."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from chalicelib.domain.errors import InvalidInput

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


class ParseError(Exception):
    """sqlparse would have refused the text (too many tokens, brackets nested too deep)."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    parts: tuple[Token, ...] = ()  # a comparison's identifier, comparator and value (no whitespace)

    @property
    def blank(self) -> bool:
        return self.kind in ("ws", "newline")

    def is_keyword(self, *words: str) -> bool:
        return self.kind == "keyword" and self.text.upper() in words


def _lex(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    closer = -1  # where the next `*/` is; found once per comment, not once per `/*` (sqlparse's GHSA-prg7-hcfm-mfcr)
    while pos < len(text):
        if text.startswith("/*", pos) and closer != -2:
            if closer < pos + 2:
                closer = text.find("*/", pos + 2)
                closer = -2 if closer == -1 else closer
            if closer >= 0:
                tokens.append(Token("comment_multi", text[pos:closer + 2]))
                pos = closer + 2
                continue
        m = _LEXER.match(text, pos)
        if m is None or m.end() == pos:
            tokens.append(Token("error", text[pos]))
            pos += 1
            continue
        assert m.lastgroup is not None
        kind = _RULES[int(m.lastgroup[1:])][1]
        if kind == "word":
            kind = "keyword" if m.group().upper() in _KEYWORDS else "name"
        tokens.append(Token(kind, m.group()))
        pos = m.end()
    return tokens


def split_statements(text: str) -> list[list[Token]]:
    """sqlparse's StatementSplitter: a `;` outside brackets ends a statement, which keeps the blanks and `--`
    comments of its line; a statement of nothing but whitespace is dropped."""
    statements: list[list[Token]] = []
    current: list[Token] = []
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


def _join(tokens: Sequence[Token]) -> str:
    return "".join(tok.text for tok in tokens)


def _solid_after(tokens: Sequence[Token], start: int) -> Optional[int]:
    """Index of the first token from `start` on that is not whitespace (comments count, as in sqlparse)."""
    for i in range(start, len(tokens)):
        if not tokens[i].blank:
            return i
    return None


def _solid_before(tokens: Sequence[Token]) -> Optional[int]:
    for i in range(len(tokens) - 1, -1, -1):
        if not tokens[i].blank:
            return i
    return None


def _group_brackets(tokens: list[Token], opening: str, closing: str, kind: str) -> list[Token]:
    out: list[Token] = []
    opens: list[int] = []
    for tok in tokens:
        if tok.kind == "punct" and tok.text == closing and opens:
            start = opens.pop()
            out[start:] = [Token(kind, _join(out[start:]) + tok.text)]
            continue
        out.append(tok)
        if tok.kind == "punct" and tok.text == opening:
            opens.append(len(out) - 1)
            if len(opens) > _MAX_DEPTH:
                raise ParseError()
    return out


def _group_functions(tokens: list[Token]) -> list[Token]:
    out = list(tokens)
    i = 0
    while i < len(out):
        if out[i].kind in ("name", "placeholder"):
            nxt = _solid_after(out, i + 1)
            if nxt is not None and out[nxt].kind == "paren":
                out[i:nxt + 1] = [Token("function", _join(out[i:nxt + 1]))]
        i += 1
    return out


_PERIOD_PREV = ("name", "symbol", "square", "identifier")
_PERIOD_NEXT = ("name", "symbol", "wildcard", "string", "square", "function")


def _group_identifiers(tokens: list[Token]) -> list[Token]:
    """`a.b`, `a . "b"`, ``a.`b c`.d``: one identifier each (group_period); then any lone name (group_identifier)."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev = _solid_before(out) if tok.kind == "punct" and tok.text == "." else None
        if prev is not None and out[prev].kind in _PERIOD_PREV:
            nxt = _solid_after(tokens, i + 1)
            end = nxt if nxt is not None and tokens[nxt].kind in _PERIOD_NEXT else i
            out[prev:] = [Token("identifier", _join(out[prev:]) + _join(tokens[i:end + 1]))]
            i = end + 1
            continue
        out.append(tok)
        i += 1
    return [Token("identifier", tok.text) if tok.kind in ("name", "symbol") else tok for tok in out]


def _group_order(tokens: list[Token]) -> list[Token]:
    out: list[Token] = []
    for tok in tokens:
        prev = _solid_before(out) if tok.kind == "order" else None
        if prev is not None and out[prev].kind in ("identifier", "int", "float", "hex"):
            out[prev:] = [Token("identifier", _join(out[prev:]) + tok.text)]
            continue
        out.append(tok)
    return out


_OPERANDS = ("square", "paren", "function", "identifier", "operation", "int", "float", "string", "placeholder")
_COMPARANDS = ("paren", "function", "identifier", "operation", "int", "float", "string", "placeholder")


def _group_infix(tokens: list[Token], is_operator: Callable[[Token], bool], valid: Callable[[Token], bool],
                 kind: str) -> list[Token]:
    """sqlparse's `group` without `extend`: `<valid> <operator> <valid>` becomes one token of `kind`.

    As in sqlparse, a group just made chains on its right operand: `0 < x < 1` is `(0 < x) < 1`."""
    out: list[Token] = []
    made = -1  # index in `out` of the group this pass made last
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        prev, nxt = (_solid_before(out), _solid_after(tokens, i + 1)) if is_operator(tok) else (None, None)
        left = None if prev is None else out[prev].parts[-1] if prev == made else out[prev]
        if left is not None and nxt is not None and valid(left) and valid(tokens[nxt]):
            assert prev is not None
            parts = (out[prev], tok, tokens[nxt])
            out[prev:] = [Token(kind, _join(out[prev:]) + _join(tokens[i:nxt + 1]), parts)]
            made = prev
            i = nxt + 1
            continue
        out.append(tok)
        i += 1
    return out


def _group_aliases(tokens: list[Token]) -> list[Token]:
    """`<identifier, comparison, number...> <identifier>` is one identifier with an alias (group_aliased)."""
    aliasable = ("paren", "function", "identifier", "operation", "comparison_group", "int", "float", "hex")
    out: list[Token] = []
    aliased = -1  # where the last alias was taken: that identifier takes no second one
    for tok in tokens:
        prev = _solid_before(out) if tok.kind == "identifier" else None
        if prev is not None and prev != aliased and out[prev].kind in aliasable:
            out[prev:] = [Token("identifier", _join(out[prev:]) + tok.text)]
            aliased = prev
            continue
        out.append(tok)
    return out


def group(tokens: list[Token]) -> list[Token]:
    if sum(len(tok.text) if tok.kind == "ws" else 1 for tok in tokens) > _MAX_TOKENS:  # sqlparse's count
        raise ParseError()
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


def _join_in_comparisons(tokens: list[Token]) -> list[Token]:
    """MLflow's `_join_in_comparison_tokens`: sqlparse leaves `x IN (...)`, `x NOT IN (...)`, `x IS NULL` and
    `x IS NOT NULL` ungrouped, so MLflow joins them, reading the tokens in steps of three or four as it does."""
    solid = [tok for tok in tokens if not tok.blank]
    joined: list[Token] = []
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
            joined.append(Token("comparison_group", _join(solid[i:i + 3]), (first, second, third)))
            i += 3
            continue
        if second.is_keyword("IS") and third.is_keyword("NULL"):
            joined.append(Token("comparison_group", _join(solid[i:i + 3]), (first, Token("keyword", "IS NULL"))))
            i += 3
            continue
        if second.is_keyword("IS") and third.kind == "keyword" and third.text.upper() == "NOT NULL":
            joined.append(Token("comparison_group", _join(solid[i:i + 3]), (first, Token("keyword", "IS NOT NULL"))))
            i += 3
            continue
        if i + 3 >= len(solid):
            joined.extend(solid[i:i + 3])
            break
        fourth = solid[i + 3]
        if second.is_keyword("NOT") and third.is_keyword("IN") and fourth.kind == "paren":
            joined.append(Token("comparison_group", _join(solid[i:i + 4]),
                               (first, Token("keyword", "NOT IN"), fourth)))
        else:
            joined.extend(solid[i:i + 4])
        i += 4
    return joined


def filter_clauses(text: str, quote_invalid: bool) -> list[Token]:
    """The comparisons of a filter (`SearchUtils.parse_search_filter` up to `_get_comparison`)."""
    statements = split_statements(text)
    if not statements:
        raise InvalidInput(f"Invalid filter '{text}'. Could not be parsed.")
    if len(statements) > 1:
        raise InvalidInput(f"Search filter contained multiple expression {text!r}. Provide AND-ed expression list.")
    try:
        tokens = _join_in_comparisons(group(statements[0]))
    except ParseError:
        raise InvalidInput(f"Error on parsing filter '{text}'") from None
    invalid = [tok for tok in tokens if tok.kind != "comparison_group" and not tok.is_keyword("AND")]
    if invalid:
        shown = ", ".join(f"'{tok.text}'" if quote_invalid else tok.text for tok in invalid)
        raise InvalidInput(f"Invalid clause(s) in filter string: {shown}")
    return [tok for tok in tokens if tok.kind == "comparison_group"]


def identifier_of(comparison: Token) -> str:
    """The left-hand side of a comparison, which must be an identifier (`SearchUtils._validate_comparison`)."""
    left = comparison.parts[0]
    if left.kind != "identifier":
        raise InvalidInput(f"Invalid comparison clause. Expected 'Identifier' found '{left.text}'")
    return left.text

