"""MLflow 3.17's run and experiment search languages (chalicelib/domain/tracking/mlflow_search.py).

Expected results and messages are MLflow's own, checked against `mlflow==3.17.2` with its SQL store (sqlite),
except where a comment says otherwise: data MLflow cannot hold (a run whose name differs from its mlflow.runName
tag, or has no such tag), experiment ids that are not integers, and inputs on which MLflow fails with a 500.
"""
from __future__ import annotations

import math
import re
from typing import Any, Optional

import pytest

from chalicelib.domain.errors import InvalidInput
from chalicelib.domain.tracking.mlflow_search import (
    Clause,
    Searchable,
    SearchableExperiment,
    experiment_sort_key,
    parse_experiment_filter,
    parse_run_filter,
    run_sort_key,
)

NAN = float("nan")


def run(run_id: str, *, metrics: Optional[dict[str, float]] = None, params: Optional[dict[str, str]] = None,
        tags: Optional[dict[str, str]] = None, **attributes: Any) -> Searchable:
    attrs: dict[str, Any] = {"run_id": run_id, "run_name": run_id, "status": "FINISHED", "start_time": 1000,
                             "end_time": 2000, "artifact_uri": f"mlflow-artifacts:/1/{run_id}/artifacts",
                             "user_id": "root", "lifecycle_stage": "active"}
    attrs.update(attributes)
    return Searchable(attributes=attrs, metrics=metrics or {}, params=params or {}, tags=tags or {})


RUNS = [
    run("r1", metrics={"loss": 0.1, "acc": 0.9, "my metric": 3.0}, params={"lr": "0.1", "a b": "x"},
        tags={"grp": "g0", "mlflow.runName": "r1"}, start_time=1001, status="FINISHED"),
    run("p1", metrics={"loss": 0.9}, params={"lr": "0.2"}, tags={"grp": "G0", "mlflow.runName": "p1"},
        start_time=1003, status="RUNNING", end_time=None, user_id="bob"),
    run("p2", metrics={"loss": 0.5, "acc": NAN}, params={"lr": "10"}, tags={"grp": "g1", "mlflow.runName": "p2"},
        start_time=1002, status="FAILED"),
    run("p3", metrics={"loss": 2.0}, params={"lr": "9", "alpha": "1"}, tags={"team": "a", "mlflow.runName": "P3"},
        start_time=1004),
    run("q9", start_time=1000),  # no metrics, params or tags
]


def ids(text: Optional[str], runs: list[Searchable] = RUNS) -> list[str]:
    """The ids of the runs the filter keeps, in the given order."""
    flt = parse_run_filter(text)
    return [r.attributes["run_id"] for r in runs if flt.matches(r)]


def ordered(order_by: Optional[list[str]], runs: list[Searchable] = RUNS) -> list[str]:
    return [r.attributes["run_id"] for r in sorted(runs, key=run_sort_key(order_by))]


def run_error(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_run_filter(text)
    return str(info.value)


def order_error(order_by: list[str]) -> str:
    with pytest.raises(InvalidInput) as info:
        run_sort_key(order_by)
    return str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# Run filters: what matches


def test_no_filter_matches_every_run():
    assert ids(None) == ids("") == ["r1", "p1", "p2", "p3", "q9"]


def test_metric_comparators():
    assert ids("metrics.loss < 1") == ["r1", "p1", "p2"]
    assert ids("metrics.loss <= 0.5") == ["r1", "p2"]
    assert ids("metrics.loss > 0.5") == ["p1", "p3"]
    assert ids("metrics.loss >= 0.9") == ["p1", "p3"]
    assert ids("metrics.loss = 2") == ["p3"]
    assert ids("metrics.loss != 0.5") == ["r1", "p1", "p3"]


def test_metric_number_literals():
    assert ids("metrics.loss > 1e0") == ["p3"]
    assert ids("metrics.loss < .5") == ["r1"]
    assert ids("metrics.loss > -0.5 AND metrics.loss < 1.") == ["r1", "p1", "p2"]
    assert ids("metrics.loss>-1") == ["r1", "p1", "p2", "p3"]
    assert ids("metrics.loss = 0002") == ["p3"]


def test_run_without_the_metric_never_matches_not_even_not_equal():
    assert "q9" not in ids("metrics.loss != 123")
    assert ids("metrics.acc > 0") == ["r1"]


def test_nan_metric_only_matches_not_equal():
    assert ids("metrics.acc != 0.9") == ["p2"]
    assert ids("metrics.acc < 100") == ["r1"]
    assert ids("metrics.acc = 0") == []


def test_param_equality_is_exact_and_inner_join():
    assert ids("params.lr = '0.2'") == ["p1"]
    assert ids("params.lr != '0.1'") == ["p1", "p2", "p3"]  # q9 has no lr: excluded
    assert ids("params.lr = '0.20'") == []


def test_param_and_tag_like_ilike():
    assert ids("params.lr LIKE '0.%'") == ["r1", "p1"]
    assert ids("params.lr LIKE '_'") == ["p3"]
    assert ids("tags.grp LIKE 'G0'") == ["p1"]
    assert ids("tags.grp ILIKE 'G0'") == ["r1", "p1"]
    assert ids("tags.grp like 'g%'") == ["r1", "p2"]  # comparators are case-insensitive for runs
    assert ids("tags.grp ilike '%1'") == ["p2"]


def test_is_null_and_is_not_null_on_tags_and_params():
    assert ids("tags.team IS NULL") == ["r1", "p1", "p2", "q9"]
    assert ids("tags.team IS NOT NULL") == ["p3"]
    assert ids("params.alpha is not null") == ["p3"]
    assert ids("params.alpha IS NULL AND tags.grp IS NOT NULL") == ["r1", "p1", "p2"]


def test_quoted_values_single_or_double():
    assert ids("params.lr = \"0.2\"") == ids("params.lr = '0.2'") == ["p1"]
    assert ids('attributes.status = "FAILED"') == ["p2"]


def test_quoted_and_backquoted_keys():
    assert ids("metrics.`my metric` > 1") == ["r1"]
    assert ids('metrics."my metric" > 1') == ["r1"]
    assert ids("params.`a b` = 'x'") == ids('params."a b" = \'x\'') == ids("params.'a b' = 'x'") == ["r1"]
    assert ids("tags.`mlflow.runName` = 'r1'") == ["r1"]
    assert ids('tags."mlflow.runName" LIKE \'p%\'') == ["p1", "p2"]
    assert ids("tags.mlflow.runName = 'p2'") == ["p2"]  # the key is everything after the first dot


def test_entity_aliases():
    for entity in ("metric", "metrics", "`metrics`"):
        assert ids(f"{entity}.loss < 0.2") == ["r1"]
    for entity in ("param", "params", "parameter", "parameters", "`params`"):
        assert ids(f"{entity}.lr = '10'") == ["p2"]
    for entity in ("tag", "tags"):
        assert ids(f"{entity}.team = 'a'") == ["p3"]
    for entity in ("attribute", "attributes", "attr", "run", "`attributes`"):
        assert ids(f"{entity}.status = 'RUNNING'") == ["p1"]


def test_bare_names_are_attributes():
    assert ids("status != 'FINISHED'") == ["p1", "p2"]
    assert ids("user_id = 'bob'") == ["p1"]
    assert ids("artifact_uri LIKE 'mlflow-artifacts:/1/p%'") == ["p1", "p2", "p3"]
    assert ids("run_id = 'p3'") == ["p3"]


def test_run_id_in_and_not_in():
    assert ids("run_id IN ('p1', 'p3', 'nope')") == ["p1", "p3"]
    assert ids('attributes.run_id in ("r1")') == ["r1"]
    assert ids("run_id NOT IN ('r1', 'p1')") == ["p2", "p3", "q9"]
    assert ids("run_id IN ('r1',)") == ["r1"]
    assert parse_run_filter("run_id NOT IN ('a')").clauses == (Clause("attribute", "run_id", "NOT IN", ("a",)),)


def test_numeric_attributes():
    assert ids("attributes.start_time > 1002") == ["p1", "p3"]
    assert ids("start_time >= 1002 and start_time <= 1003") == ["p1", "p2"]
    assert ids("attr.start_time = 1000") == ["q9"]
    assert ids("start_time > 1002.5") == ["p1", "p3"]
    assert ids("created < 1001") == ["q9"]
    assert ids("Created = 1001") == ["r1"]
    assert parse_run_filter("created > 5").clauses == (Clause("attribute", "start_time", ">", 5),)


def test_null_end_time_never_matches():
    assert "p1" not in ids("end_time != 5")
    assert ids("end_time > 0") == ["r1", "p2", "p3", "q9"]


def test_run_name_reads_the_run_name_tag():
    assert ids("attributes.run_name = 'P3'") == ["p3"]  # the tag, not the run_name attribute "p3"
    assert ids("run_name ILIKE 'p%'") == ["p1", "p2", "p3"]
    assert ids("run.run_name LIKE '%1'") == ["r1", "p1"]
    assert ids("`Run name` = 'r1'") == ids("`run name` = 'r1'") == ids("`Run Name` = 'r1'") == ["r1"]
    assert ids("run_name = 'q9'") == ["q9"]  # no tag: the attribute


def test_and_is_the_only_connective_and_may_be_left_out():
    assert ids("metrics.loss < 1 AND params.lr = '0.1'") == ["r1"]
    assert ids("metrics.loss < 1 and params.lr = '0.1' AnD tags.grp = 'g0'") == ["r1"]
    assert ids("metrics.loss < 1 AND") == ["r1", "p1", "p2"]  # a dangling AND is tolerated
    assert ids("AND metrics.loss < 1 AND AND params.lr = '0.2'") == ["p1"]
    assert ids("metrics.loss < 1 params.lr = '0.2'") == ["p1"]  # as MLflow: AND is optional
    assert ids("params.lr='0.1'and tags.grp='g0'") == ["r1"]
    assert ids("metrics.loss\t<\n1") == ["r1", "p1", "p2"]


def test_like_wildcards_and_literal_characters():
    runs = [run(name, params={"p": name}) for name in ("a_b", "axb", "a%b", "ab", "a.b", "A_B", "a\nb", "a\\b")]
    assert ids("params.p LIKE 'a_b'", runs) == ["a_b", "axb", "a%b", "a.b", "a\nb", "a\\b"]
    assert ids("params.p LIKE 'a%b'", runs) == ["a_b", "axb", "a%b", "ab", "a.b", "a\nb", "a\\b"]
    assert ids("params.p LIKE 'a.b'", runs) == ["a.b"]  # regex characters are literal
    assert ids("params.p LIKE 'a\\_b'", runs) == []  # no escape character: `\` is itself
    assert ids("params.p LIKE 'a\\%'", runs) == ["a\\b"]
    assert ids("params.p ILIKE 'a_b'", runs) == ["a_b", "axb", "a%b", "a.b", "A_B", "a\nb", "a\\b"]
    assert ids("params.p LIKE '%'", runs) == [r.attributes["run_id"] for r in runs]
    assert ids("params.p LIKE ''", runs) == []


def test_like_agrees_with_a_regex_and_stays_fast():
    values = ["", "a", "ab", "ba", "aab", "abab", "a_b", "A", "b%a", "aXbYa"]
    patterns = ["", "%", "%%", "_", "a", "a%", "%a", "%a%", "a_b", "_%_", "%b_", "a%b%a", "%_%", "A%", "b\\%a"]
    for value in values:
        for pattern in patterns:
            for op, flags in (("LIKE", re.DOTALL), ("ILIKE", re.DOTALL | re.IGNORECASE)):
                regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
                expected = re.fullmatch(regex, value, flags) is not None
                quoted = pattern.replace("'", "''")
                assert ids(f"params.p {op} '{quoted}'", [run("x", params={"p": value})]) == (["x"] if expected else [])
    many = run("x", params={"p": "a" * 5000})
    assert ids("params.p LIKE '" + "%a" * 40 + "%b'", [many]) == []


def test_string_values_keep_sql_doubled_quotes():
    # MLflow strips the outer quotes only
    assert parse_run_filter("params.x = 'it''s'").clauses == (Clause("parameter", "x", "=", "it''s"),)


def test_dataset_clauses_parse_but_match_no_run():
    assert ids("datasets.name = 'toy'") == []
    assert ids("dataset.context != 'train'") == []
    assert ids("datasets.digest IN ('a5357541')") == []


# ---------------------------------------------------------------------------------------------------------------
# Run filters: what MLflow refuses, with its messages


def test_or_parentheses_and_other_clauses_are_refused():
    assert run_error("metrics.a > 1 OR metrics.b < 2") == "Invalid clause(s) in filter string: 'OR'"
    assert run_error("(metrics.a > 1)") == "Invalid clause(s) in filter string: '(metrics.a > 1)'"
    assert run_error("metrics.a > 1 AND (metrics.b > 2)") == "Invalid clause(s) in filter string: '(metrics.b > 2)'"
    assert run_error("NOT metrics.a > 1") == "Invalid clause(s) in filter string: 'NOT'"
    assert run_error("metrics.loss") == "Invalid clause(s) in filter string: 'metrics.loss'"
    assert run_error("metrics.a > 1 -- hi") == "Invalid clause(s) in filter string: '-- hi'"
    assert (run_error("metrics.a>1 AND params.c = 'x' OR tags.d = 'y' OR (x)")
            == "Invalid clause(s) in filter string: 'OR', 'OR', '(x)'")
    assert run_error("tags.x IS") == "Invalid clause(s) in filter string: 'tags.x', 'IS'"
    assert (run_error("params.x IS NOT 'a'")
            == "Invalid clause(s) in filter string: 'params.x', 'IS', 'NOT', ''a''")


def test_semicolons_and_blank_filters():
    assert run_error("metrics.a > 1;") == "Invalid clause(s) in filter string: ';'"
    assert run_error("metrics.a > 1; ") == "Invalid clause(s) in filter string: ';'"
    assert run_error("metrics.a > 1; -- c") == "Invalid clause(s) in filter string: ';', '-- c'"
    assert (run_error("metrics.a > 1; metrics.b < 2") == "Search filter contained multiple expression "
            "'metrics.a > 1; metrics.b < 2'. Provide AND-ed expression list.")
    assert run_error("   ") == "Invalid filter '   '. Could not be parsed."
    assert ids("params.a = 'x;y'", [run("x", params={"a": "x;y"})]) == ["x"]


def test_unknown_entities_and_keys():
    assert (run_error("foo.x = 'a'")
            == "Invalid entity type 'foo'. Valid values are ['metric', 'parameter', 'tag', 'attribute', 'dataset']")
    assert run_error('"tags".k = \'a\'').startswith("Invalid entity type '\"tags\"'.")
    assert run_error("lifecycle_stage = 'active'") == (
        "Invalid attribute key 'lifecycle_stage' specified. Valid keys are '{'Created', 'Run Name', 'Run name', "
        "'artifact_uri', 'created', 'end_time', 'run name', 'run_id', 'run_name', 'start_time', 'status', "
        "'user_id'}'")
    assert run_error("experiment_id = '1'").startswith("Invalid attribute key 'experiment_id' specified.")
    assert (run_error("datasets.foo = 'a'")
            == "Invalid dataset key 'foo' specified. Valid keys are '{'name', 'digest', 'context'}'")


def test_value_types():
    assert run_error("metrics.loss > '1'") == "Expected numeric value type for metric. Found '1'"
    assert run_error("metrics.loss > nan") == "Expected numeric value type for metric. Found nan"
    assert run_error("metrics.loss > 1e") == "Expected numeric value type for metric. Found 1e"
    assert run_error("params.x = 0.2") == (
        "Expected a quoted string value for parameter (e.g. 'my-value'). Got value 0.2")
    assert run_error("tags.x = 1") == "Expected a quoted string value for tag (e.g. 'my-value'). Got value 1"
    assert run_error("params.x = NULL") == (
        "Expected a quoted string value for parameter (e.g. 'my-value'). Got value NULL")
    assert run_error("params.x = abc") == ("Parameter value is either not quoted or unidentified quote types used "
                                           "for string value abc. Use either single or double quotes.")
    assert run_error("params.x = `a`").startswith("Parameter value is either not quoted")
    assert run_error("start_time > '1'") == "Expected numeric value type for numeric attribute: start_time. Found '1'"
    assert run_error("status = 1") == "Expected a quoted string value for attributes. Got value 1"


def test_comparators_per_type():
    assert run_error("metrics.loss == 1") == "Invalid comparator '==' not one of '{'>', '>=', '!=', '=', '<', '<='}"
    assert run_error("metrics.loss LIKE 1").startswith("Invalid comparator 'LIKE' not one of")
    assert run_error("params.x > 'a'") == (
        "Invalid comparator '>' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}'")
    assert run_error("tags.x RLIKE 'a'") == (
        "Invalid comparator 'RLIKE' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IS NULL', 'IS NOT NULL'}")
    assert run_error("params.x not like 'a'").startswith("Invalid comparator 'NOT LIKE' not one of")
    assert run_error("status > 'a'") == (
        "Invalid comparator '>' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'")
    assert run_error("start_time LIKE 1").startswith("Invalid comparator 'LIKE' not one of")
    assert run_error("datasets.name > 'a'").startswith("Invalid comparator '>' not one of")


def test_in_lists():
    assert run_error("status IN ('a')") == (
        "Only ['run_id'] attributes support comparison with a list of quoted string values.")
    assert run_error("params.x IN ('a')") == (
        "Expected a quoted string value for parameter (e.g. 'my-value'). Got value ('a')")
    assert run_error("run_id IN ()") == (
        "While parsing a list in the query, expected a non-empty list of string values, but got empty list")
    assert run_error("run_id IN (1, 2)") == ("While parsing a list in the query, expected string value, "
                                             "punctuation, or whitespace, but got different type in list: (1, 2)")
    assert run_error("run_id IN ('a',,'b')").endswith("but got ill-formed list.")
    assert run_error("run_id IN (abc)").endswith("but got ill-formed list.")  # MLflow: a 500
    assert run_error("run_id IN ['a']") == "Invalid clause(s) in filter string: 'run_id', 'IN', '['a']'"
    assert run_error("run_id = ('a', 'b')").startswith("Invalid comparator '=' for a list of values")  # MLflow: 500


def test_is_null_only_for_tags_and_params():
    assert run_error("metrics.x IS NULL") == (
        "IS NULL / IS NOT NULL is only supported for tags and params, not for 'metric' 'x'")
    assert run_error("end_time IS NOT NULL") == (
        "IS NULL / IS NOT NULL is only supported for tags and params, not for 'attribute' 'end_time'")


def test_comparison_needs_an_identifier_on_the_left():
    assert run_error("'a' = params.x") == "Invalid comparison clause. Expected 'Identifier' found ''a''"
    assert run_error("1 = 1") == "Invalid comparison clause. Expected 'Identifier' found '1'"
    assert run_error("metrics.my-metric > 1") == (
        "Invalid comparison clause. Expected 'Identifier' found 'metrics.my-metric'")
    assert run_error("0 < metrics.loss < 1") == (
        "Invalid comparison clause. Expected 'Identifier' found '0 < metrics.loss'")


def test_checks_run_in_mlflow_order():
    # every clause is parsed (keys, values) before any comparator is checked
    assert run_error("params.x > 'a' AND metrics.y > 'b'") == "Expected numeric value type for metric. Found 'b'"


def test_huge_filters_are_refused_like_sqlparse():
    assert run_error("metrics.a > 1" + " " * 10_000).startswith("Error on parsing filter 'metrics.a > 1 ")
    assert run_error("(" * 101 + ")" * 101).startswith("Error on parsing filter")
    assert len(parse_run_filter(" AND ".join(f"metrics.m{i} > {i}" for i in range(500))).clauses) == 500
    # an unclosed comment opener, many times: linear, not quadratic
    assert run_error("/*" * 20_000).startswith("Error on parsing filter")


# ---------------------------------------------------------------------------------------------------------------
# Run ordering


def test_default_order_is_start_time_desc_then_run_id():
    runs = [run("b", start_time=5), run("a", start_time=5), run("c", start_time=9), run("d", start_time=1)]
    assert ordered(None, runs) == ordered([], runs) == ["c", "a", "b", "d"]


def test_metric_order_missing_last_and_nan_between():
    assert ordered(["metrics.loss ASC"]) == ["r1", "p2", "p1", "p3", "q9"]
    assert ordered(["metrics.loss"]) == ["r1", "p2", "p1", "p3", "q9"]
    assert ordered(["metrics.loss DESC"]) == ["p3", "p1", "p2", "r1", "q9"]
    # acc: r1 = 0.9, p2 = NaN, others missing (then start_time DESC)
    assert ordered(["metrics.acc"]) == ["r1", "p2", "p3", "p1", "q9"]
    assert ordered(["metrics.acc desc"]) == ["r1", "p2", "p3", "p1", "q9"]


def test_params_and_tags_sort_as_strings_missing_last():
    assert ordered(["params.lr"]) == ["r1", "p1", "p2", "p3", "q9"]  # "0.1" < "0.2" < "10" < "9"
    assert ordered(["params.lr DESC"]) == ["p3", "p2", "p1", "r1", "q9"]
    assert ordered(["tags.grp"]) == ["p1", "r1", "p2", "p3", "q9"]  # "G0" < "g0" < "g1"
    assert ordered(["tags.`mlflow.runName` DESC"]) == ["r1", "p2", "p1", "p3", "q9"]
    assert ordered(['tags."mlflow.runName"']) == ["p3", "p1", "p2", "r1", "q9"]


def test_attribute_order():
    assert ordered(["attributes.run_name"]) == ["p1", "p2", "p3", "q9", "r1"]  # the attribute, not the tag
    assert ordered(["status", "run_id DESC"]) == ["p2", "r1", "q9", "p3", "p1"]
    assert ordered(["end_time DESC"]) == ["p3", "p2", "r1", "q9", "p1"]  # p1's end_time is None: last
    assert ordered(["end_time"]) == ["p3", "p2", "r1", "q9", "p1"]
    assert ordered(["start_time"]) == ordered(["created ASC"]) == ["q9", "r1", "p2", "p1", "p3"]
    assert ordered(["attribute.start_time DESC"]) == ["p3", "p1", "p2", "r1", "q9"]


def test_mixed_directions_and_tie_breakers():
    runs = [run("a", params={"k": "1"}, metrics={"m": 1.0}, start_time=1),
            run("b", params={"k": "1"}, metrics={"m": 2.0}, start_time=2),
            run("c", params={"k": "2"}, metrics={"m": 1.0}, start_time=3),
            run("d", params={"k": "1"}, metrics={"m": 2.0}, start_time=2)]
    assert ordered(["params.k", "metrics.m DESC"], runs) == ["b", "d", "a", "c"]
    assert ordered(["params.k DESC", "metrics.m"], runs) == ["c", "a", "b", "d"]
    assert ordered(["metrics.m", "start_time ASC"], runs) == ["a", "c", "b", "d"]


def test_backquoted_and_quoted_order_keys():
    assert ordered(["metrics.`my metric` DESC"]) == ["r1", "p3", "p1", "p2", "q9"]
    assert ordered(['metrics."my metric"']) == ["r1", "p3", "p1", "p2", "q9"]
    assert ordered(["params.`a b`  desc"]) == ["r1", "p3", "p1", "p2", "q9"]


def test_bad_order_by():
    assert order_error(["metrics.loss UP"]) == "Invalid ordering key in order_by clause 'metrics.loss UP'."
    assert order_error(["metrics.loss DESC NULLS LAST"]) == (
        "Invalid order_by clause 'metrics.loss DESC NULLS LAST'. Could not be parsed.")
    assert order_error([""]) == "Invalid order_by clause ''. Could not be parsed."
    assert order_error([" metrics.loss"]) == "Invalid order_by clause ' metrics.loss'. Could not be parsed."
    assert order_error(["metrics.a, metrics.b"]) == (
        "Invalid order_by clause 'metrics.a, metrics.b'. Could not be parsed.")
    assert order_error(["lifecycle_stage"]) == (
        "Invalid attribute key 'lifecycle_stage' specified. Valid keys are '{'Created', 'artifact_uri', 'created', "
        "'end_time', 'run_id', 'run_name', 'start_time', 'status', 'user_id'}'")
    assert order_error(["`Run name`"]).startswith("Invalid attribute key 'Run name' specified.")
    assert order_error(["datasets.name"]) == "Invalid identifier type 'dataset'"
    assert order_error(["foo.x"]).startswith("Invalid entity type 'foo'.")


def test_duplicate_order_fields():
    assert order_error(["metrics.loss", "metrics.loss DESC"]) == (
        "`order_by` contains duplicate fields: ['metrics.loss', 'metrics.loss DESC']")
    assert order_error(["created", "start_time DESC"]).startswith("`order_by` contains duplicate fields")


def test_sort_key_works_with_sorted_on_large_mixed_input():
    runs = [run(f"r{i:03}", metrics={"m": float(i % 7)} if i % 3 else {"m": math.nan} if i % 2 else {},
                start_time=i % 5) for i in range(200)]
    result = sorted(runs, key=run_sort_key(["metrics.m DESC"]))
    values = [r.metrics.get("m") for r in result]
    real = [v for v in values if v is not None and not math.isnan(v)]
    assert real == sorted(real, reverse=True)
    ranks = [0 if v is not None and not math.isnan(v) else 1 if v is not None else 2 for v in values]
    assert ranks == sorted(ranks)


# ---------------------------------------------------------------------------------------------------------------
# Experiments


def exp(experiment_id: str, name: str, creation_time: Optional[int], tags: Optional[dict[str, str]] = None,
        last_update_time: Optional[int] = None) -> SearchableExperiment:
    return SearchableExperiment(attributes={"experiment_id": experiment_id, "name": name,
                                            "creation_time": creation_time,
                                            "last_update_time": last_update_time or creation_time,
                                            "lifecycle_stage": "active"}, tags=tags or {})


EXPERIMENTS = [
    exp("0", "Default", 100),
    exp("1", "exp1", 200, {"k": "v"}),
    exp("2", "Exp2", 300, {"k": "V", "my.key": "x"}, last_update_time=900),
    exp("3", "demo", 300, {"k": "w"}),
    exp("10", "e_1", 150),
]


def exp_ids(text: Optional[str]) -> list[str]:
    flt = parse_experiment_filter(text)
    return [e.attributes["experiment_id"] for e in EXPERIMENTS if flt.matches(e)]


def exp_ordered(order_by: Optional[list[str]], experiments: list[SearchableExperiment] = EXPERIMENTS) -> list[str]:
    return [e.attributes["experiment_id"] for e in sorted(experiments, key=experiment_sort_key(order_by))]


def exp_error(text: str) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_experiment_filter(text)
    return str(info.value)


def test_experiment_name_filters():
    assert exp_ids(None) == exp_ids("") == ["0", "1", "2", "3", "10"]
    assert exp_ids("name LIKE 'exp%'") == ["1"]
    assert exp_ids("name ILIKE 'EXP%'") == ["1", "2"]
    assert exp_ids('name = "demo"') == ["3"]
    assert exp_ids("attribute.name != 'demo'") == ["0", "1", "2", "10"]
    assert exp_ids("name LIKE 'e_1'") == ["10"]


def test_experiment_tag_filters():
    assert exp_ids("tags.k = 'v'") == exp_ids("tag.k = 'v'") == ["1"]
    assert exp_ids("tags.k != 'v'") == ["2", "3"]  # experiments without the tag are left out
    assert exp_ids("tags.k ILIKE 'v'") == ["1", "2"]
    assert exp_ids("tags.k IS NULL") == ["0", "10"]
    assert exp_ids("tags.k is not null") == ["1", "2", "3"]
    assert exp_ids("tags.`my.key` = 'x'") == exp_ids('tags."my.key" = \'x\'') == ["2"]


def test_experiment_time_and_id_filters():
    assert exp_ids("creation_time > 150") == ["1", "2", "3"]
    assert exp_ids("creation_time >= 150 AND creation_time < 300") == ["1", "10"]
    assert exp_ids("last_update_time >= 300 and name != 'demo'") == ["2"]
    assert exp_ids("experiment_id IN ('1','2')") == ["1", "2"]
    assert exp_ids("experiment_id NOT IN ('1', '2')") == ["0", "3", "10"]
    assert exp_ids("experiment_id = '3'") == ["3"]
    assert exp_ids("experiment_id != '3'") == ["0", "1", "2", "10"]
    assert exp_ids("experiment_id = ' 10'") == ["10"]  # compared as integers when both are
    assert exp_ids("experiment_id = 'abc'") == []  # Agora's ids need not be integers: no error, no match


def test_experiment_ids_that_are_not_integers():
    ulids = [exp("01hx0000000000000000000002", "a", 1), exp("01hx0000000000000000000001", "b", 1)]
    flt = parse_experiment_filter("experiment_id IN ('01hx0000000000000000000001')")
    assert [e.attributes["name"] for e in ulids if flt.matches(e)] == ["b"]
    assert exp_ordered(["experiment_id"], ulids) == ["01hx0000000000000000000001", "01hx0000000000000000000002"]


def test_experiment_filters_mlflow_refuses():
    assert exp_error("name like 'exp%'") == (  # sic: MLflow checks experiment comparators as written
        "Invalid comparator 'like' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'")
    assert exp_error("tags.k like 'v'") == "Invalid comparator for tag: like"
    assert exp_error("experiment_id in ('1')") == "Invalid comparator for experiment_id: in"
    assert exp_error("experiment_id > '1'") == "Invalid comparator for experiment_id: >"
    assert exp_error("experiment_id = 1") == "Expected a quoted string value for attributes. Got value 1"
    assert exp_error("creation_time > 1.5") == "Invalid value for numeric attribute 'creation_time': '1.5'"
    assert exp_error("creation_time > '1'") == (
        "Expected numeric value type for numeric attribute: creation_time. Found '1'")
    assert exp_error("name IN ('a')") == (
        "Only ['experiment_id'] attributes support comparison with a list of quoted string values.")
    assert exp_error("name > 'a'") == "Invalid comparator '>' not one of '{'!=', '=', 'LIKE', 'ILIKE', 'IN', 'NOT IN'}'"
    assert exp_error("name IS NULL") == "IS NULL / IS NOT NULL is only supported for tags, not for attribute 'name'"
    assert exp_error("tags.k RLIKE 'x'") == "Invalid comparator for tag: RLIKE"
    assert exp_error("tags.k = v").startswith("Parameter value is either not quoted")


def test_experiment_entities():
    message = "Valid entity types are ('attribute', 'tag', 'tags')"
    assert exp_error("metrics.x > 1") == f"Invalid entity type 'metrics'. {message}"
    assert exp_error("attributes.name = 'x'") == f"Invalid entity type 'attributes'. {message}"
    assert exp_error("`tags`.k = 'v'") == f"Invalid entity type '`tags`'. {message}"
    assert exp_error("foo = 'x'") == ("Invalid attribute key 'foo' specified. Valid keys are "
                                      "'{'creation_time', 'experiment_id', 'last_update_time', 'name'}'")


def test_experiment_invalid_clauses_are_listed_unquoted():
    assert exp_error("name = 'a' OR name = 'b'") == "Invalid clause(s) in filter string: OR"
    assert exp_error("(name = 'a')") == "Invalid clause(s) in filter string: (name = 'a')"


def test_experiment_default_order():
    assert exp_ordered(None) == exp_ordered([]) == ["2", "3", "1", "10", "0"]  # creation_time DESC, id ASC


def test_experiment_orders():
    assert exp_ordered(["name"]) == ["0", "2", "3", "10", "1"]
    assert exp_ordered(["name DESC"]) == ["1", "10", "3", "2", "0"]
    assert exp_ordered(["experiment_id"]) == ["0", "1", "2", "3", "10"]  # as integers
    assert exp_ordered(["experiment_id DESC"]) == ["10", "3", "2", "1", "0"]
    assert exp_ordered(["creation_time"]) == ["0", "10", "1", "3", "2"]  # tie broken by experiment_id DESC
    assert exp_ordered(["creation_time", "experiment_id"]) == ["0", "10", "1", "2", "3"]
    assert exp_ordered(["last_update_time DESC"]) == ["2", "3", "1", "10", "0"]
    assert exp_ordered(["attribute.name"]) == exp_ordered(["name ASC"])


def test_experiment_order_missing_values_last():
    experiments = [exp("1", "a", None), exp("2", "b", 5), exp("3", "c", 9)]
    assert exp_ordered(["creation_time"], experiments) == ["2", "3", "1"]
    assert exp_ordered(["creation_time DESC"], experiments) == ["3", "2", "1"]


def test_experiment_bad_order_by():
    for order_by, message in ((["tags.k"], "Invalid order_by entity: tag"),
                              (["name UP"], "Invalid ordering key in order_by clause 'name UP'."),
                              (["name DESC NULLS LAST"], "Invalid order_by clause 'name DESC NULLS LAST'. "
                                                         "Could not be parsed."),
                              (["attributes.name"], "Invalid entity type 'attributes'. Valid entity types are "
                                                    "('attribute', 'tag', 'tags')")):
        with pytest.raises(InvalidInput) as info:
            experiment_sort_key(order_by)
        assert str(info.value) == message
