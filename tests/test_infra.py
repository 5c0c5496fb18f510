"""The deploy template, offline: what `make package` builds (chalice package merged with infra/template.json).

cfn-lint (`make lint-infra`) checks the template's syntax and types; these tests check what it
cannot: that every function gets every resource name, that nothing depends on itself, that every
role is the function's own and names its resources, and the operator CLI that creates the keys.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from chalicelib import settings, wiring
from chalicelib.domain.principals import Principal, hash_api_key
from chalicelib.settings import BILLING_RATES
from chalicelib.store import keys
from tools import admin

ROOT = Path(__file__).resolve().parent.parent
FRAGMENT = json.loads((ROOT / "infra" / "template.json").read_text())
BASELINE_POLICY = json.loads((ROOT / ".chalice" / "policy.json").read_text())
CHALICE_CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())

# what every deployed function reads from its environment (names defined once, in settings)
RESOURCE_ENV = (settings.EXPERIMENTS_TABLE, settings.RUNS_TABLE, settings.METRICS_TABLE, settings.DIRECTORY_TABLE,
                settings.SIMULATIONS_TABLE, settings.AGENT_DATA_TABLE, settings.BUCKET, settings.CONFIG_KEY_ID,
                settings.STATE_MACHINE_ARN, settings.TOKEN_SECRET, settings.PUBLIC_API_URL)
# actions without resource-level permissions: AWS accepts only "*" for them
STAR_ONLY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
MAX_STACK_NAME = 40  # README: function names are "<stack>-<suffix>" and Lambda allows 64 characters
API_ERRORS = ("UNAUTHORIZED", "ACCESS_DENIED", "MISSING_AUTHENTICATION_TOKEN", "DEFAULT_4XX", "DEFAULT_5XX")


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`make package` into a temporary directory: exactly what the README deploys (~3 s once cached)."""
    out = tmp_path_factory.mktemp("package") / "build"
    done = subprocess.run(["make", "--no-print-directory", "package", f"BUILD={out}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.fixture(scope="module")
def template(build: Path) -> dict[str, Any]:
    return json.loads((build / "sam.json").read_text())


# --- helpers ------------------------------------------------------------------------------------

def of_type(template: dict[str, Any], *types: str) -> dict[str, dict[str, Any]]:
    return {k: r for k, r in template["Resources"].items() if r.get("Type") in types}


def functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return of_type(template, "AWS::Serverless::Function")


def environment(template: dict[str, Any], function: dict[str, Any]) -> dict[str, Any]:
    """The function's variables after SAM merges Globals in (the function's own win)."""
    shared = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    own = function["Properties"].get("Environment", {}).get("Variables", {})
    return {**shared, **own}


def sub_text(value: Any) -> str | None:
    if isinstance(value, dict) and "Fn::Sub" in value:
        arg = value["Fn::Sub"]
        return arg if isinstance(arg, str) else arg[0]
    return None


def references(value: Any) -> set[str]:
    """Logical ids and parameters a CloudFormation value refers to (Ref, Fn::GetAtt, Fn::Sub)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return {value["Ref"]}
        if set(value) == {"Fn::GetAtt"}:
            target = value["Fn::GetAtt"]
            return {target[0] if isinstance(target, list) else target.split(".")[0]}
        if set(value) == {"Fn::Sub"}:
            arg = value["Fn::Sub"]
            text, variables = (arg, {}) if isinstance(arg, str) else arg
            names = {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", text)}
            found |= names - set(variables)
            for inner in variables.values():
                found |= references(inner)
            return found
        for inner in value.values():
            found |= references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= references(inner)
    return found


def role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement a role can hold; a conditional one (Fn::If) counts with its granting branch."""
    statements = [s for p in role["Properties"].get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    return [s["Fn::If"][1] if "Fn::If" in s else s for s in statements]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_of(function: dict[str, Any]) -> str:
    return function["Properties"]["Role"]["Fn::GetAtt"][0]


# --- environment --------------------------------------------------------------------------------

def test_every_function_reads_every_resource_name_from_the_template(template):
    assert functions(template), "chalice package produced no functions"
    local = {meta["agora:env"]: logical for logical, r in FRAGMENT["Resources"].items()
             if "agora:env" in (meta := r.get("Metadata", {}))}
    assert set(local) <= set(RESOURCE_ENV), "a resource of infra/ names a variable settings does not list"
    machine = FRAGMENT["Resources"][local[settings.STATE_MACHINE_ARN]]["Properties"]
    for name, function in functions(template).items():
        env = environment(template, function)
        missing = [v for v in RESOURCE_ENV if v not in env]
        assert not missing, f"{name} lacks {missing}"
        for variable, logical in local.items():
            value = env[variable]
            if variable == settings.STATE_MACHINE_ARN:  # built from the machine's name: a Ref would be a cycle
                assert sub_text(value).endswith(":stateMachine:" + sub_text(machine["Name"])), (name, value)
            else:
                assert references(value) == {logical}, f"{name}: {variable} should come from {logical}, is {value}"
        secret = references(env[settings.TOKEN_SECRET])
        assert secret and all(template["Resources"][s]["Type"] == "AWS::SecretsManager::Secret" for s in secret)
        assert "PublicApiUrl" in references(env[settings.PUBLIC_API_URL])
        # the operator's knobs are stack parameters, not values baked into the package
        assert env[settings.RETENTION_DAYS] == {"Ref": "RetentionDays"}, name
        assert env[BILLING_RATES] == {"Ref": "BillingRates"}, name


def test_external_engines_get_the_api_url_of_the_stage_chalice_deploys(template):
    stage = CHALICE_CONFIG["stages"]["prod"]["api_gateway_stage"]
    shared = template["Globals"]["Function"]["Environment"]["Variables"][settings.PUBLIC_API_URL]
    _, custom, default = shared["Fn::If"]
    assert custom == {"Ref": "PublicApiUrl"}
    assert sub_text(default) == "https://${RestAPI}.execute-api.${AWS::Region}.${AWS::URLSuffix}/" + stage


def test_no_resource_depends_on_itself(template):
    """The trap: the API needs the state machine's ARN and the API's URL, which need the functions."""
    resources = template["Resources"]
    edges: dict[str, set[str]] = {}
    for logical, resource in resources.items():
        body = dict(resource)
        if resource["Type"] == "AWS::Serverless::Function":  # Globals land in every function
            body = {**resource, "Environment": environment(template, resource)}
        edges[logical] = (references(body) | set(as_list(resource.get("DependsOn", [])))) & set(resources)

    state: dict[str, str] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                pytest.fail("dependency cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for logical in sorted(edges):
        if logical not in state:
            visit(logical, [logical])


# --- IAM ----------------------------------------------------------------------------------------

def test_every_function_has_a_role_of_its_own_writing_only_to_its_own_log_group(template):
    resources = template["Resources"]
    baseline = BASELINE_POLICY["Statement"]
    for name, function in functions(template).items():
        role = resources[role_of(function)]
        statements = role_statements(role)
        assert statements != baseline, (
            f"{name} still runs with the baseline .chalice/policy.json: give its role {role_of(function)} a "
            "least-privilege policy in infra/template.json (docs/decisions.md, Deployment)")
        function_name = sub_text(function["Properties"].get("FunctionName"))
        assert function_name and function_name.startswith("${AWS::StackName}-"), f"{name} needs a FunctionName"
        assert len(function_name) - len("${AWS::StackName}") + MAX_STACK_NAME <= 64, f"{name}: name too long"
        log_targets = [references(s["Resource"]) for s in statements
                       if any(a.startswith("logs:") for a in as_list(s["Action"]))]
        assert len(log_targets) == 1 and len(log_targets[0]) == 1, f"{name}: one statement for its own log group"
        (group,) = log_targets[0]
        assert sub_text(resources[group]["Properties"]["LogGroupName"]) == "/aws/lambda/" + function_name


def iam_statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for logical, r in of_type(template, "AWS::IAM::Role").items():
        for statement in role_statements(r):
            yield logical, statement
    for logical, r in of_type(template, "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy").items():
        for statement in r["Properties"]["PolicyDocument"]["Statement"]:
            yield logical, statement


def test_roles_grant_named_resources_only_and_star_only_where_aws_has_nothing_narrower(template):
    seen = 0
    for owner, statement in iam_statements(template):
        seen += 1
        actions = set(as_list(statement["Action"]))
        assert not any(a == "*" or a.endswith(":*") for a in actions), f"{owner}: wildcard action {actions}"
        if statement["Effect"] != "Allow":
            continue
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                assert actions <= STAR_ONLY_ACTIONS, f"{owner}: {sorted(actions - STAR_ONLY_ACTIONS)} on '*'"
            else:
                assert references(resource), f"{owner}: {resource!r} is a name pattern, not a template reference"
    assert seen


def test_the_state_machine_may_invoke_its_own_task_functions_only(template):
    machine = template["Resources"]["SimulationStateMachine"]["Properties"]
    targets = {value["Fn::GetAtt"][0] for value in machine["DefinitionSubstitutions"].values()}
    invokable = set()
    for policy in machine["Policies"]:
        assert set(policy) == {"LambdaInvokePolicy"}, f"state machine policy {policy} is not a scoped SAM template"
        invokable |= references(policy["LambdaInvokePolicy"]["FunctionName"])
    assert invokable == targets


def test_the_api_starts_and_reads_only_the_simulation_state_machine(template):
    machine_name = sub_text(template["Resources"]["SimulationStateMachine"]["Properties"]["Name"])
    api_role = template["Resources"][role_of(template["Resources"]["APIHandler"])]
    states = [s for s in role_statements(api_role) if any(a.startswith("states:") for a in as_list(s["Action"]))]
    assert states
    for statement in states:
        arn = sub_text(statement["Resource"])
        assert re.search(r":(stateMachine|execution):" + re.escape(machine_name) + r"(:\*)?$", arn), arn


# --- state machine ------------------------------------------------------------------------------

def test_state_machine_substitutions_are_the_chalice_task_functions(build, template):
    machine = template["Resources"]["SimulationStateMachine"]["Properties"]
    definition = build / machine["DefinitionUri"]
    placeholders = set(re.findall(r"\$\{(\w+)\}", definition.read_text()))
    assert placeholders == set(machine["DefinitionSubstitutions"])
    for key, value in machine["DefinitionSubstitutions"].items():
        (target,) = references(value)
        assert value == {"Fn::GetAtt": [target, "Arn"]} and target in functions(template), (key, value)
    assert definition.read_text() == (ROOT / "infra" / "simulation.asl.json").read_text()


def test_the_packaged_files_sit_where_the_template_says(build, template):
    paths = [r["Properties"].get(p) for r in template["Resources"].values()
             for p in ("CodeUri", "ContentUri", "DefinitionUri") if isinstance(r.get("Properties", {}).get(p), str)]
    assert paths
    for path in paths:
        assert (build / path).is_file(), f"{path} is not next to sam.json: `aws cloudformation package` would fail"


# --- data ---------------------------------------------------------------------------------------

def test_tables_are_on_demand_recoverable_and_outlive_the_stack(template):
    tables = of_type(template, "AWS::DynamoDB::Table")
    assert len(tables) == 6
    for name, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, name
        assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", name
        ttl = props.get("TimeToLiveSpecification")
        assert ttl is None or (ttl["Enabled"] and ttl["AttributeName"]), name
    key = of_type(template, "AWS::KMS::Key")["ConfigKey"]
    assert key["DeletionPolicy"] == "Retain" and key["Properties"]["EnableKeyRotation"]


def test_bucket_is_private_tls_only_reports_to_eventbridge_and_expires_exports(template):
    bucket = template["Resources"]["ArtifactsBucket"]
    props = bucket["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["NotificationConfiguration"]["EventBridgeConfiguration"]["EventBridgeEnabled"] is True
    exports_root = keys.export_prefix("t", "e").split("/")[0] + "/"
    expiring = [r for r in props["LifecycleConfiguration"]["Rules"]
                if r["Status"] == "Enabled" and r.get("Prefix") == exports_root and "ExpirationInDays" in r]
    assert expiring, f"no lifecycle rule expires {exports_root}"
    (policy,) = [r for r in of_type(template, "AWS::S3::BucketPolicy").values()
                 if r["Properties"]["Bucket"] == {"Ref": "ArtifactsBucket"}]
    (deny,) = [s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert deny["Action"] == "s3:*" and deny["Principal"] == "*"
    assert {sub_text(r) or json.dumps(r) for r in deny["Resource"]} == {
        "${ArtifactsBucket.Arn}/*", json.dumps({"Fn::GetAtt": ["ArtifactsBucket", "Arn"]})}


def test_s3_event_rules_match_only_artifact_keys_of_this_stacks_bucket(template):
    rules = [(name, e["Properties"]["Pattern"]) for name, f in functions(template).items()
             for e in f["Properties"].get("Events", {}).values()
             if e["Type"] in ("CloudWatchEvent", "EventBridgeRule")
             and "aws.s3" in e["Properties"]["Pattern"].get("source", [])]
    assert rules, "no function handles S3 object events"
    for name, pattern in rules:
        detail = pattern.get("detail", {})
        assert detail.get("bucket", {}).get("name") == [{"Ref": "ArtifactsBucket"}], f"{name}: any bucket's events"
        assert detail.get("object", {}).get("key") == [{"prefix": keys.ARTIFACT_UPLOAD_PREFIX}], name


# --- API ----------------------------------------------------------------------------------------

def test_api_gateway_own_errors_answer_json_detail_and_unknown_routes_404(template):
    body = template["Resources"]["RestAPI"]["Properties"]["DefinitionBody"]
    responses = body["x-amazon-apigateway-gateway-responses"]
    assert set(API_ERRORS) <= set(responses)
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["statusCode"] == "404"
    assert responses["UNAUTHORIZED"]["statusCode"] == "401"
    for kind in API_ERRORS:
        text = responses[kind]["responseTemplates"]["application/json"]
        rendered = json.loads(text.replace("$context.error.messageString", '"Some message"'))
        # a missing key is also said in MLflow's words, for its client, with the header a browser asks with
        extra = {"error_code", "message"} if kind == "UNAUTHORIZED" else set()
        assert set(rendered) == {"detail"} | extra and rendered["detail"], kind
    assert responses["UNAUTHORIZED"]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"].startswith(
        "'Basic")


# --- operator CLI -------------------------------------------------------------------------------

def new_key(argv: list[str], capsys: pytest.CaptureFixture[str], session: Any) -> str:
    assert admin.main(argv, session=session) == 0
    out, err = capsys.readouterr()
    assert "shown once" in err
    return out.strip()


def test_create_key_stores_only_the_hash_and_the_key_authenticates(client, aws, capsys):
    table = os.environ[settings.DIRECTORY_TABLE]
    key = new_key(["create-key", "--table", table, "--tenant", "acme"], capsys, aws)
    assert wiring.services().directory.principal_for(hash_api_key(key)) == Principal("acme", "tenant")
    items = aws.client("dynamodb").scan(TableName=table)["Items"]
    assert key not in json.dumps(items)
    response = client.http.get("/api/v1/experiments", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.body


def test_create_key_reads_the_directory_table_from_the_stack_and_makes_admins(aws, capsys):
    table = os.environ[settings.DIRECTORY_TABLE]
    aws.client("cloudformation").create_stack(StackName="agora", TemplateBody=json.dumps({
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {admin.DIRECTORY_OUTPUT: {"Value": table}}}))
    key = new_key(["create-key", "--stack", "agora", "--admin"], capsys, aws)
    assert wiring.services().directory.principal_for(hash_api_key(key)) == Principal("", "admin")
    assert admin.DIRECTORY_OUTPUT in FRAGMENT["Outputs"]


def test_create_key_refuses_a_malformed_tenant_id(aws, capsys):
    assert admin.main(["create-key", "--table", "any", "--tenant", "Not A Tenant"], session=aws) == 2
    assert "tenant id" in capsys.readouterr().err


def test_open_mode_is_refused_by_make_package_and_by_a_deployed_function(tmp_path, monkeypatch):
    env = {**os.environ, "AGORA_OPEN_TENANT": "default"}
    done = subprocess.run(["make", "--no-print-directory", "package", f"BUILD={tmp_path / 'build'}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode != 0 and "AGORA_OPEN_TENANT is for the local stack only" in done.stderr
    assert not (tmp_path / "build").exists()

    from chalicelib import settings

    monkeypatch.setenv(settings.OPEN_TENANT, "default")
    monkeypatch.setenv(settings.LAMBDA_FUNCTION_NAME, "agora-prod-api")
    with pytest.raises(settings.SettingsError, match="local stack only"):
        settings.Settings.from_environ()


def test_revoke_key_stops_the_key_and_keeps_a_record(client, aws, capsys):
    table = os.environ[settings.DIRECTORY_TABLE]
    key = new_key(["create-key", "--table", table, "--tenant", "acme"], capsys, aws)
    assert admin.main(["revoke-key", "--table", table, "--key", key], session=aws) == 0
    response = client.http.get("/api/v1/experiments", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 401
    item = aws.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": f"KEY#{hash_api_key(key)}"},
                                                                  "sk": {"S": "KEY"}}).get("Item")
    assert item is None or item["revoked"]["BOOL"] is True
    assert admin.main(["revoke-key", "--table", table, "--key-hash", "0" * 64], session=aws) == 2
    assert "no API key" in capsys.readouterr().err
