"""Platform configs a fresh local stack starts with, so a simulation can be launched with no set-up."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from chalicelib.domain.principals import ADMIN as ADMIN_ROLE
from chalicelib.domain.principals import Principal
from chalicelib.domain.simulation.models import ConfigBody

if TYPE_CHECKING:
    from chalicelib.wiring import Services

DEFAULT_CITY = Path(__file__).resolve().parent.parent / "chalicelib" / "sim" / "data" / "default_city.json"
ADMIN = Principal(tenant_id="", role=ADMIN_ROLE)
LOCAL_CREDIT = Decimal("100")  # CNY each local tenant starts with, so a simulation can be launched at once


def seed_platform_configs(container: Services) -> dict[str, str]:
    """One platform config of each kind (tenant ""): kind -> id."""
    configs = container.configs
    map_path = container.sim_objects.save_map("", "default_city.json", DEFAULT_CITY.read_bytes())
    survey = configs.create(ADMIN, "survey", ConfigBody(name="Life satisfaction", data={
        "title": "Life satisfaction",
        "pages": [{"name": "page1", "elements": [
            {"name": "satisfaction", "title": "How satisfied are you with your life?", "type": "rating"},
            {"name": "commute", "title": "How do you get to work?", "type": "radiogroup",
             "choices": ["walk", "bus", "car", "bicycle"]}]}]}))
    bodies = {
        "llm": ConfigBody(name="Built-in rule-based mind", description="No network, deterministic",
                          config=[{"provider": "builtin", "model": "builtin", "api_key": ""}]),
        "agent": ConfigBody(name="50 citizens", description="Adults of a small town",
                            config={"citizens": [{"agent_class": "SocietyAgent", "number": 50, "memory_distributions": {
                                "age": {"dist_type": "uniform_int", "min_value": 18, "max_value": 70},
                                "gender": {"dist_type": "choice", "choices": ["female", "male"]}}}]}),
        "map": ConfigBody(name="Agora City", description="A small default city", config={"file_path": map_path}),
        "workflow": ConfigBody(name="One day", description="Simulate one day, then ask a question", config=[
            {"type": "run", "days": 1},
            {"type": "survey", "survey": survey.id, "target_agent": {"agent_class": ["SocietyAgent"]}},
            {"type": "interview", "interview_message": "How was your day?",
             "target_agent": {"agent_class": ["SocietyAgent"]}},
            {"type": "save_context", "key": "happiness", "save_as": "final_happiness",
             "target_agent": {"agent_class": ["SocietyAgent"]}}]),
    }
    ids = {"survey": survey.id}
    for kind, body in bodies.items():
        ids[kind] = configs.create(ADMIN, kind, body).id
    return ids


def credit_local_tenants(container: Services, tenants: Iterable[str], amount: Decimal = LOCAL_CREDIT) -> None:
    """Give each local tenant a starting balance; the idempotency key makes a repeated seed credit once."""
    for tenant in tenants:
        container.billing.recharge(tenant, amount, request_id="local-seed", description="local stack starting credit")
