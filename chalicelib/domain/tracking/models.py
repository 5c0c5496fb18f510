"""Request models of the tracking API (DESIGN.md section 4), validated with pydantic."""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.json_schema import WithJsonSchema

from chalicelib.domain import validation as rules

# What the validators check, also said in the JSON Schema (the OpenAPI document): MLflow's key rule as a pattern
KEY_SCHEMA = {"type": "string", "minLength": 1, "maxLength": rules.MAX_KEY_LENGTH, "pattern": rules.KEY_PATTERN}
# a name that is not blank: some character str.strip() keeps (Python's whitespace, spelled out)
NOT_BLANK_PATTERN = "[^\\t-\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
NON_FINITE_NAMES = tuple(rules.NON_FINITE)
METRIC_VALUE_SCHEMA = {"anyOf": [{"type": "number"}, {"type": "string", "enum": list(NON_FINITE_NAMES)}],
                       "description": 'a finite number, or "NaN", "Infinity" or "-Infinity"'}

Key = Annotated[StrictStr, AfterValidator(rules.check_key), WithJsonSchema(KEY_SCHEMA)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=255, json_schema_extra={"pattern": NOT_BLANK_PATTERN})]
Description = Annotated[StrictStr, Field(max_length=1_000)]
TagValue = Annotated[StrictStr, Field(max_length=rules.MAX_TAG_VALUE_LENGTH)]
ParamValue = Annotated[StrictStr, Field(max_length=rules.MAX_PARAM_VALUE_LENGTH)]
MetricValue = Annotated[Any, WithJsonSchema(METRIC_VALUE_SCHEMA)]  # checked by rules.metric_value
EpochMillis = Annotated[StrictInt, Field(ge=0, le=2**63 - 1), rules.INTEGRAL]
Step = Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1), rules.INTEGRAL]
EndStatus = Literal["FINISHED", "FAILED", "KILLED"]
# the scheme of every artifact_location: where in it a tenant may write is checked with the request (403)
LOCATION_PREFIX = "s3://"
Location = Annotated[StrictStr, Field(min_length=1, max_length=1_024,
                                          json_schema_extra={"pattern": f"^{LOCATION_PREFIX}"})]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_name(name: Optional[str]) -> Optional[str]:
    if name is not None and not name.strip():
        raise ValueError("name must not be blank")
    return name


class ExperimentCreate(_Request):
    name: Name
    description: Description = ""
    artifact_location: Optional[Location] = None
    tags: dict[Key, TagValue] = Field(default_factory=dict, max_length=rules.MAX_BATCH_TAGS)

    _name = field_validator("name")(_check_name)


def _at_least_one_field(schema: dict[str, Any]) -> None:
    """ExperimentPatch's JSON Schema: one of its fields at least, and not null (_not_empty)."""
    schema["minProperties"] = 1
    schema["anyOf"] = [{"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                       for name in schema["properties"]]


class ExperimentPatch(_Request):
    """Partial update; a tag whose value is null is removed."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_at_least_one_field)

    name: Optional[Name] = None
    description: Optional[Description] = None
    tags: Optional[dict[Key, Optional[TagValue]]] = Field(default=None, max_length=rules.MAX_BATCH_TAGS)

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _not_empty(self) -> ExperimentPatch:
        if self.name is None and self.description is None and self.tags is None:
            raise ValueError("give at least one of name, description, tags")
        return self


class RunCreate(_Request):
    experiment_id: Annotated[StrictStr, Field(min_length=1, max_length=64)]
    name: Optional[Name] = None
    description: Description = ""
    tags: dict[Key, TagValue] = Field(default_factory=dict, max_length=rules.MAX_BATCH_TAGS)

    _name = field_validator("name")(_check_name)


class MetricIn(_Request):
    key: Key
    value: MetricValue
    step: Step = 0
    timestamp: Optional[EpochMillis] = None

    @field_validator("value")
    @classmethod
    def _value(cls, raw: Any) -> float:
        return rules.metric_value(raw)


class KeyValue(_Request):
    key: Key
    value: StrictStr


class LogMetrics(_Request):
    """The reference's log-metrics: `{name: value}` logged at one `step` (default 0) and `timestamp` (default now)."""

    metrics: dict[Key, MetricValue] = Field(max_length=rules.MAX_BATCH_METRICS)
    step: Step = 0
    timestamp: Optional[EpochMillis] = None

    @field_validator("metrics")
    @classmethod
    def _values(cls, metrics: dict[str, Any]) -> dict[str, float]:
        return {key: rules.metric_value(value) for key, value in metrics.items()}

    def points(self) -> list[MetricIn]:
        # every field was validated above: build the points without checking them a second time
        return [MetricIn.model_construct(key=key, value=value, step=self.step, timestamp=self.timestamp)
                for key, value in self.metrics.items()]


class LogParams(_Request):
    params: dict[Key, ParamValue] = Field(max_length=rules.MAX_BATCH_PARAMS)


class ParamIn(KeyValue):
    """A param of a batch; its value's length is checked with the batch (LogBatch._limits)."""

    value: Annotated[StrictStr, WithJsonSchema({"type": "string", "maxLength": rules.MAX_PARAM_VALUE_LENGTH})]


class TagIn(KeyValue):
    """A tag of a batch; its value's length is checked with the batch (LogBatch._limits)."""

    value: Annotated[StrictStr, WithJsonSchema({"type": "string", "maxLength": rules.MAX_TAG_VALUE_LENGTH})]


class LogBatch(_Request):
    metrics: list[MetricIn] = Field(default_factory=list, max_length=rules.MAX_BATCH_METRICS)
    # a param is written once: the same one twice is refused (uniqueItems says so of identical entries)
    params: list[ParamIn] = Field(default_factory=list, max_length=rules.MAX_BATCH_PARAMS,
                                  json_schema_extra={"uniqueItems": True})
    tags: list[TagIn] = Field(default_factory=list, max_length=rules.MAX_BATCH_TAGS)

    @model_validator(mode="after")
    def _limits(self) -> LogBatch:
        total = len(self.metrics) + len(self.params) + len(self.tags)
        if total > rules.MAX_BATCH_ENTITIES:
            raise ValueError(f"a batch holds at most {rules.MAX_BATCH_ENTITIES} metrics, params and tags in all; "
                             f"got {total}")
        seen: set[str] = set()
        for param in self.params:
            if param.key in seen:
                raise ValueError(f"param {param.key!r} appears more than once in the batch")
            seen.add(param.key)
            if len(param.value) > rules.MAX_PARAM_VALUE_LENGTH:
                raise ValueError(f"param {param.key!r} value is longer than {rules.MAX_PARAM_VALUE_LENGTH} characters")
        for tag in self.tags:
            if len(tag.value) > rules.MAX_TAG_VALUE_LENGTH:
                raise ValueError(f"tag {tag.key!r} value is longer than {rules.MAX_TAG_VALUE_LENGTH} characters")
        return self


class RunEnd(_Request):
    status: EndStatus = "FINISHED"


class CompareRuns(_Request):
    run_ids: list[Annotated[StrictStr, Field(min_length=1, max_length=64)]] = Field(
        min_length=2, max_length=10, json_schema_extra={"uniqueItems": True})
    metrics: Optional[list[Key]] = Field(default=None, max_length=100)  # every key of the runs when left out

    @field_validator("run_ids")
    @classmethod
    def _distinct(cls, run_ids: list[str]) -> list[str]:
        if len(set(run_ids)) != len(run_ids):
            raise ValueError("run_ids must be distinct")
        return run_ids


class ArtifactUploadRequest(_Request):
    path: Annotated[StrictStr, Field(min_length=1, max_length=1_024,
                                     json_schema_extra={"pattern": rules.RELATIVE_PATH_PATTERN})]
    content_type: Annotated[StrictStr, Field(min_length=1, max_length=255,
                                             json_schema_extra={"pattern": rules.MEDIA_TYPE_PATTERN})] = \
        "application/octet-stream"

    @field_validator("path")
    @classmethod
    def _path(cls, path: str) -> str:
        return rules.check_relative_path(path, "path")

    @field_validator("content_type")
    @classmethod
    def _content_type(cls, content_type: str) -> str:
        return rules.check_media_type(content_type)
