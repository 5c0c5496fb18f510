"""The one-process local stack: moto's server, resources from infra/, the bridge, and `chalice local`.

`start()` does, in this order (the order matters):

1. start `ThreadedMotoServer` on 127.0.0.1 (port 0 picks a free one): what reaches moto over HTTP
   (browsers and curl with presigned S3 URLs, the AWS CLI, other processes) goes there;
2. point the process at moto *in-process* (`start_in_process`): `mock_aws().start(reset=False)`
   shares the server's backends, so the app's own calls (and Step Functions' Task clients) are
   answered in this process without HTTP (about 1 ms a call instead of 3). S3 clients keep the
   server as their endpoint (`AWS_ENDPOINT_URL_S3`), so presigned URLs point at it, and
   `MOTO_S3_CUSTOM_ENDPOINTS` lets moto answer those clients in-process too; every other service
   uses its AWS address, which moto intercepts (no `AWS_ENDPOINT_URL` in this process). Dummy
   credentials, region, `MOTO_PORT`, and a generated `AGORA_TOKEN_SECRET` if none is set. Both paths
   reach `DynamoHandler.call_action` and the `S3Backend` methods, so moto_hardening's lock and the
   persistence observers see every request;
3. switch on Step Functions execution, *before* any state machine exists (machines created while it
   is off are lost when it is switched on);
4. create the tables and the bucket from infra/template.json;
5. load the Chalice app the way `chalice local` does (stage `dev`, its environment variables applied),
   install the moto bridge, create the moto Lambda functions and EventBridge rules, then the state
   machines of the template (`create_state_machines`);
6. seed the local tenant keys (hashed, as in production);
7. serve the app with chalice's local server in a daemon thread.

The returned `LocalStack` carries the real ports and keys; `stop()` shuts both servers down and
restores the process environment (so that tests can run the stack in-process).
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from chalice.local import ThreadedHTTPServer

from devstack.resources import ROOT, load_template

logger = logging.getLogger(__name__)

HOST = "127.0.0.1"
LISTEN_BACKLOG = 128  # simultaneous connections waiting to be accepted (socketserver's default is 5)
STAGE = "dev"
REGION = "us-east-1"
ACCOUNT_ID = "123456789012"  # moto's default account
SFN_EXECUTION = {"stepfunctions": {"execute_state_machine": True}}
STATE_MACHINE_ROLE = "agora-local-states"


@dataclass
class LocalStack:
    """A running local stack; `stop()` is idempotent."""

    api_url: str
    api_port: int
    moto_url: str
    moto_port: int
    keys: Any  # devstack.tenants.LocalKeys
    functions: dict[str, str]  # handler name -> moto Lambda ARN
    state_machines: dict[str, str]  # logical id -> state machine ARN
    startup_seconds: float
    platform_configs: dict[str, str] = field(default_factory=dict)  # kind -> id of the seeded platform config
    data_dir: Optional[Path] = None
    restored: Any = None  # devstack.persistence.Restored when earlier data was restored
    resumed: list[str] = field(default_factory=list)  # simulations started again after a restart
    _stoppers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def stop(self) -> None:
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:
                logger.exception("error while stopping the local stack")


def start(api_port: int = 0, moto_port: int = 0, *, stage: str = STAGE,
          data_dir: Optional[Path] = None) -> LocalStack:
    """Start everything in this process; port 0 picks a free port (the handle has the real ones).

    `data_dir` keeps the data across restarts (default: `AGORA_DATA_DIR`, else `.agora/` in the checkout).
    """
    began = time.monotonic()
    stoppers: list[Callable[[], None]] = []
    try:
        return _start(api_port, moto_port, stage, stoppers, began, data_dir or default_data_dir())
    except BaseException:
        for stopper in reversed(stoppers):
            try:
                stopper()
            except Exception:
                logger.exception("error while cleaning up a failed start")
        raise


def default_data_dir() -> Path:
    from chalicelib import settings

    return Path(os.environ.get(settings.DATA_DIR, "").strip() or ROOT / ".agora").resolve()


def _start(api_port: int, moto_port: int, stage: str, stoppers: list[Callable[[], None]],
           began: float, data_dir: Path) -> LocalStack:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per moto request otherwise
    import werkzeug.serving
    from moto.server import ThreadedMotoServer

    from devstack import moto_hardening
    from devstack.persistence import Persistence

    moto_hardening.install()
    saved_environ = dict(os.environ)
    stoppers.append(lambda: _restore_environ(saved_environ))
    persistence = Persistence(data_dir, region=os.environ.get("AWS_DEFAULT_REGION") or REGION)
    had_data = persistence.open()
    stoppers.append(persistence.close)  # runs after the API stopped taking requests, before moto stops

    werkzeug.serving.ThreadedWSGIServer.request_queue_size = LISTEN_BACKLOG
    moto_server = ThreadedMotoServer(ip_address=HOST, port=moto_port, verbose=False)
    moto_server.start()
    stoppers.append(moto_server.stop)
    moto_port = moto_server.get_host_and_port()[1]
    moto_url = f"http://{HOST}:{moto_port}"

    _point_environ_at(moto_url, moto_port)
    stoppers.append(start_in_process())
    _switch_on_step_functions(stoppers)

    import boto3

    from chalicelib import wiring
    from chalicelib.domain.principals import new_api_key
    from devstack import moto_bridge
    from devstack.resources import create_resources
    from devstack.seed import credit_local_tenants, seed_platform_configs
    from devstack.tenants import open_tenant, seed_keys

    session = boto3.session.Session()
    os.environ.update(create_resources(session))
    restored = None
    if had_data and persistence.restore_kms():
        restored = persistence.restore()
    else:
        persistence.keep_kms()
    persistence.start()
    config = _chalice_config(stage)
    app = config.chalice_app  # imports app.py with the stage's environment variables applied
    wiring.reset()
    stoppers.append(wiring.reset)

    moto_bridge.install(app, stage)
    stoppers.append(moto_bridge.uninstall)
    functions = moto_bridge.register_functions(
        session, app, stage, timeout=int(config.lambda_timeout or 60),
        memory_size=int(config.lambda_memory_size or 128),
        environment={k: v for k, v in (config.environment_variables or {}).items()})
    state_machines, machine_env = create_state_machines(session, functions)
    os.environ.update(machine_env)

    open_key = new_api_key() if open_tenant() is not None else None
    api_server = _local_server(app, config, api_port, open_key)  # binds now: the real port is known from here on
    stoppers.append(api_server.server.server_close)
    api_port = api_server.server.server_address[1]
    api_url = f"http://{HOST}:{api_port}"
    for name, value in _local_defaults(api_url).items():
        if not os.environ.get(name, "").strip():
            os.environ[name] = value
    wiring.reset()

    keys = seed_keys(wiring.services().directory, open_key)
    platform_configs = {} if restored is not None else seed_platform_configs(wiring.services())
    credit_local_tenants(wiring.services(), [*keys.tenants, *([keys.open_tenant] if keys.open_tenant else [])])

    thread = threading.Thread(target=api_server.server.serve_forever, name="agora-api", daemon=True)
    thread.start()

    def stop_api() -> None:
        api_server.server.shutdown()
        thread.join(timeout=5)

    stoppers.append(stop_api)
    resumed = resume_simulations(wiring.services()) if restored is not None else []
    return LocalStack(api_url=api_url, api_port=api_port, moto_url=moto_url,
                      moto_port=moto_port, keys=keys, functions=functions, state_machines=state_machines,
                      platform_configs=platform_configs, data_dir=data_dir, restored=restored, resumed=resumed,
                      startup_seconds=time.monotonic() - began, _stoppers=stoppers)


def resume_simulations(container: Any) -> list[str]:
    """Start an execution again for every simulation that was under way when the stack stopped
    (Step Functions executions are not kept); a built-in run goes on from its checkpoint."""
    from moto.dynamodb.models import dynamodb_backends

    from chalicelib import settings
    from chalicelib.domain.simulation.records import SimStatus
    from devstack import moto_hardening

    table = dynamodb_backends[ACCOUNT_ID][os.environ.get("AWS_DEFAULT_REGION") or REGION].get_table(
        os.environ[settings.SIMULATIONS_TABLE])
    with moto_hardening.DYNAMODB_LOCK:
        active = [(item.attrs["tenant_id"].value, item.attrs["id"].value) for item in table.all_items()
                  if item.attrs.get("kind") is not None and item.attrs["kind"].value == "simulation"
                  and int(item.attrs["status"].value) in (SimStatus.NOT_STARTED, SimStatus.RUNNING)]
    resumed = []
    for tenant_id, experiment_id in active:
        exp = container.simulation_store.get_experiment(tenant_id, experiment_id)
        if exp is None or exp.status.ended:
            continue
        container.agent_data.append_log(tenant_id, experiment_id, ["the local stack restarted: the run goes on"])
        try:
            container.launcher.start(exp, "resumed after a restart")
            resumed.append(experiment_id)
        except Exception:  # the launcher has marked it ERROR with the reason
            logger.exception("could not resume simulation %s", experiment_id)
    return resumed


def _local_defaults(api_url: str) -> dict[str, str]:
    """Settings whose local value differs from the deployed default (each can be overridden by env)."""
    from chalicelib import settings

    return {
        # an external engine started by the local stack reports back to this API
        settings.PUBLIC_API_URL: api_url,
        # a visible pace between built-in engine steps, so a person can follow and stop a run
        settings.SIM_STEP_PAUSE_SECONDS: "1",
    }


def _restore_environ(saved: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(saved)


def _point_environ_at(moto_url: str, moto_port: int) -> None:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        os.environ.pop(name, None)
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:  # no service may leave this process
        os.environ.pop(name)
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or REGION
    os.environ.update({
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": region,
        "AWS_REGION": region,
        # S3 clients sign and presign for the server (URLs a browser can use) and are answered in-process
        "AWS_ENDPOINT_URL_S3": moto_url,
        "MOTO_S3_CUSTOM_ENDPOINTS": moto_url,
        "MOTO_PORT": str(moto_port),
        "POWERTOOLS_TRACE_DISABLED": os.environ.get("POWERTOOLS_TRACE_DISABLED", "1"),
        # EMF lines reach no CloudWatch here, and one process serves many requests at once: the metrics
        # of concurrent requests would mix (Powertools keeps one metric set per process, as Lambda has
        # one request at a time) and their prints would break the JSON log lines
        "POWERTOOLS_METRICS_DISABLED": os.environ.get("POWERTOOLS_METRICS_DISABLED", "1"),
    })
    from chalicelib import settings

    if not os.environ.get(settings.TOKEN_SECRET, "").strip():
        os.environ[settings.TOKEN_SECRET] = secrets.token_urlsafe(32)


def start_in_process() -> Callable[[], None]:
    """moto for this process's own clients, sharing the running server's backends; returns its stopper.

    `reset=False` keeps the backends (and so the server's data); the stopper never removes data
    either, so a server that should keep serving keeps what it holds. Credentials in the environment
    are moto's while it runs (the stack's own environment is restored on stop anyway).
    """
    from moto import mock_aws

    mock = mock_aws()
    mock.start(reset=False)
    return lambda: mock.stop(remove_data=False)


def _switch_on_step_functions(stoppers: list[Callable[[], None]]) -> None:
    """In-process equivalent of POST /moto-api/config; must precede every create_state_machine."""
    import copy

    from moto.core.config import default_user_config
    from moto.moto_api._internal.models import moto_api_backend

    previous = copy.deepcopy(default_user_config.get("stepfunctions"))
    moto_api_backend.set_config(SFN_EXECUTION)
    stoppers.append(lambda: moto_api_backend.set_config({"stepfunctions": previous}))


def _chalice_config(stage: str) -> Any:
    """The config `chalice local` builds; `environ=os.environ` so stage variables reach this process."""
    from chalice.cli.factory import CLIFactory

    return CLIFactory(project_dir=str(ROOT), environ=os.environ).create_config_obj(chalice_stage_name=stage)


class _BackloggedServer(ThreadedHTTPServer):
    """`chalice local`'s threaded server, with room for more than 5 connections waiting to be accepted."""

    request_queue_size = LISTEN_BACKLOG


def _local_server(app: Any, config: Any, port: int, open_key: Optional[str]) -> Any:
    """`chalice local`'s server with Agora's front (devstack.gateway): the deployed gateway's errors, open mode."""
    from chalice.local import CustomLocalChalice, LocalChalice, LocalDevServer

    from devstack.gateway import handler_class

    if not isinstance(app, CustomLocalChalice):  # what chalice's create_local_server does, once per process
        CustomLocalChalice.__bases__ = (LocalChalice, app.__class__)
        app.__class__ = CustomLocalChalice
    return LocalDevServer(app, config, HOST, port, handler_cls=handler_class(open_key), server_cls=_BackloggedServer)


# ---------------------------------------------------------------------------------------------
# State machines from infra/template.json

_SUB = re.compile(r"\$\{([^}]*)\}")


class _References:
    """Resolves CloudFormation `Ref` / `Fn::GetAtt` / pseudo parameters to local values.

    Functions are known by the logical id `chalice package` gives them: the CamelCase of the
    function name (`register_artifact_upload` -> `RegisterArtifactUpload`).
    """

    def __init__(self, session: Any, functions: dict[str, str], template: dict[str, Any]) -> None:
        from chalice.utils import to_cfn_resource_name

        region = session.region_name or REGION
        self.refs: dict[str, str] = {"AWS::Region": region, "AWS::AccountId": ACCOUNT_ID, "AWS::Partition": "aws",
                                     "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "agora-local"}
        self.arns: dict[str, str] = {}
        for name, arn in functions.items():
            logical = to_cfn_resource_name(name)
            self.refs[logical] = arn.rsplit(":", 1)[-1]
            self.arns[logical] = arn
        for logical, res in template.get("Resources", {}).items():
            local_name = res.get("Metadata", {}).get("agora:local-name")
            if not local_name:
                continue
            self.refs[logical] = local_name
            if res["Type"] == "AWS::DynamoDB::Table":
                self.arns[logical] = f"arn:aws:dynamodb:{region}:{ACCOUNT_ID}:table/{local_name}"
            elif res["Type"] == "AWS::S3::Bucket":
                self.arns[logical] = f"arn:aws:s3:::{local_name}"

    def ref(self, name: str) -> str:
        if name not in self.refs:
            raise ValueError(f"state machine definition refers to {name!r}, which the local stack does not know")
        return self.refs[name]

    def get_att(self, logical: str, attribute: str) -> str:
        if attribute != "Arn" or logical not in self.arns:
            raise ValueError(f"state machine definition needs {logical}.{attribute}, which the local stack "
                             "does not know (functions are CamelCase of the Chalice function name)")
        return self.arns[logical]

    def resolve(self, value: Any) -> str:
        """A CloudFormation string value: plain, Ref, Fn::GetAtt, Fn::Sub, Fn::Join."""
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and len(value) == 1:
            (fn, arg), = value.items()
            if fn == "Ref":
                return self.ref(arg)
            if fn == "Fn::GetAtt":
                logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
                return self.get_att(logical, attribute)
            if fn == "Fn::Join":
                separator, parts = arg
                return separator.join(self.resolve(p) for p in parts)
            if fn == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else arg
                return self.substitute(text, {k: self.resolve(v) for k, v in variables.items()})
        raise ValueError(f"unsupported CloudFormation value in a state machine: {value!r}")

    def substitute(self, text: str, variables: dict[str, str]) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1).strip()
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return variables[name]
            if "." in name:
                return self.get_att(*name.split(".", 1))
            return self.ref(name)

        return _SUB.sub(one, text)


STATE_MACHINE_TYPES = ("AWS::StepFunctions::StateMachine", "AWS::Serverless::StateMachine")


def create_state_machines(session: Any, functions: dict[str, str],
                          template: Optional[dict[str, Any]] = None) -> tuple[dict[str, str], dict[str, str]]:
    """Create every state machine of the template in moto (CloudFormation's or SAM's type).

    The definition comes from `Definition` (an object), `DefinitionString` (CloudFormation) or
    `DefinitionUri` (SAM; a path relative to the project root or to infra/). `${SomeFunction.Arn}`
    (in `Fn::Sub`), `Fn::GetAtt`, `Ref` and `DefinitionSubstitutions` are resolved to the moto Lambda
    functions registered by the bridge (logical id = CamelCase of the Chalice function name, as
    `chalice package` names them) and to the local tables and bucket. The machine is named after its
    `agora:local-name` metadata (else its name property, else the logical id); its ARN goes into the
    environment variable named by `agora:env`. Returns (logical id -> ARN, env).
    Step Functions execution must already be switched on (see `_switch_on_step_functions`).
    """
    import json

    template = template if template is not None else load_template()
    machines = {k: r for k, r in template.get("Resources", {}).items() if r.get("Type") in STATE_MACHINE_TYPES}
    if not machines:
        return {}, {}
    refs = _References(session, functions, template)
    sfn = session.client("stepfunctions")
    role = _state_machine_role(session)
    arns: dict[str, str] = {}
    env: dict[str, str] = {}
    for logical, resource in machines.items():
        props = resource.get("Properties", {})
        meta = resource.get("Metadata", {})
        definition = _definition(logical, props, refs)
        for key, value in (props.get("DefinitionSubstitutions") or {}).items():
            definition = definition.replace("${" + key + "}", refs.resolve(value))
        leftover = sorted(set(_SUB.findall(definition)))
        if leftover:
            raise ValueError(f"state machine {logical}: unresolved substitutions {leftover}")
        json.loads(definition)  # a broken definition fails here, not at the first execution
        name = meta.get("agora:local-name") or props.get("StateMachineName") or props.get("Name") or logical
        kind = props.get("StateMachineType") or props.get("Type") or "STANDARD"
        arn = sfn.create_state_machine(name=name, definition=definition, roleArn=role, type=kind)["stateMachineArn"]
        arns[logical] = arn
        refs.refs[logical] = arn
        if "agora:env" in meta:
            env[meta["agora:env"]] = arn
    return arns, env


def _definition(logical: str, props: dict[str, Any], refs: _References) -> str:
    import json

    if "Definition" in props:
        return refs.substitute(json.dumps(props["Definition"]), {})
    if "DefinitionString" in props:
        return refs.resolve(props["DefinitionString"])
    uri = props.get("DefinitionUri")
    if isinstance(uri, str):
        for base in (ROOT, ROOT / "infra"):
            if (base / uri).is_file():
                return (base / uri).read_text()
        raise ValueError(f"state machine {logical}: DefinitionUri {uri!r} not found under {ROOT}")
    raise ValueError(f"state machine {logical}: only Definition, DefinitionString or a local DefinitionUri "
                     "work locally")


def _state_machine_role(session: Any) -> str:
    iam = session.client("iam")
    policy = ('{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
              '"Principal": {"Service": "states.amazonaws.com"}, "Action": "sts:AssumeRole"}]}')
    try:
        return iam.create_role(RoleName=STATE_MACHINE_ROLE, AssumeRolePolicyDocument=policy)["Role"]["Arn"]
    except iam.exceptions.EntityAlreadyExistsException:
        return iam.get_role(RoleName=STATE_MACHINE_ROLE)["Role"]["Arn"]


# ---------------------------------------------------------------------------------------------
# Banner


def banner(stack: LocalStack) -> str:
    from chalicelib import settings

    keys = stack.keys
    lines = [f"Agora local stack ready in {stack.startup_seconds:.1f} s",
             f"  API        {stack.api_url}  (paths under /api/...)",
             f"  moto       {stack.moto_url}  (AWS_ENDPOINT_URL for the AWS CLI / boto3)"]
    if keys.tenants_generated:
        lines += [f"  tenant     {tenant}  key {key}" for tenant, key in keys.tenants.items()]
        example_key = next(iter(keys.tenants.values()))
    else:
        lines.append(f"  tenants    {', '.join(keys.tenants)}  (keys from {settings.LOCAL_TENANTS})")
        example_key = "<key>"
    if keys.admin_generated:
        lines.append(f"  admin key  {keys.admin_key}")
    else:
        lines.append(f"  admin key  from {settings.ADMIN_KEY}")
    if keys.open_tenant:
        lines.append(f"  open mode  requests without a key act as tenant {keys.open_tenant!r} "
                     f"({settings.OPEN_TENANT})")
    if stack.platform_configs:
        lines.append(f"  configs    platform {', '.join(sorted(stack.platform_configs))} (tenant \"\")")
    if stack.data_dir is not None:
        kept = ("restored " + f"{stack.restored.items} items and {stack.restored.objects} objects "
                f"in {stack.restored.seconds:.1f} s" if stack.restored is not None else "new")
        lines.append(f"  data       {stack.data_dir}  ({kept}; `make reset` empties it)")
    if stack.resumed:
        lines.append(f"  resumed    {len(stack.resumed)} simulation(s) that were running")
    lines.append(f"  try        curl -H 'Authorization: Bearer {example_key}' {stack.api_url}/api/v1/experiments")
    lines.append(f"  mlflow     MLFLOW_TRACKING_URI={stack.api_url} MLFLOW_TRACKING_TOKEN={example_key}; its web UI at "
                 f"{stack.api_url}/ (the key as the password)")
    lines.append("Ctrl-C stops.")
    return "\n".join(lines)
