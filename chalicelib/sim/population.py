"""Citizens' profiles, homes, jobs and daily rhythms, drawn from the spec's distributions (seeded)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from chalicelib.sim import catalog
from chalicelib.sim.records import AgentProfile
from chalicelib.sim.spec import PROFILE_ATTRIBUTES, CitizenGroup, Distribution, SimulationSpec

if TYPE_CHECKING:
    from chalicelib.sim.world import World


@dataclass(frozen=True)
class Job:
    place: Optional[str]  # AOI kind of the workplace; None: no place to be during the day
    start: float  # usual start hour
    hours: float
    weekends: bool  # also works on Saturday and Sunday
    income: int  # monthly, before education and luck
    labour: bool  # part of the labour force (counts for the employment rate)


GENERIC_JOB = Job("work", 9, 8, False, 5000, True)
OCCUPATIONS = {
    "worker": Job("work", 7, 8, False, 4500, True),
    "clerk": Job("work", 9, 8, False, 5200, True),
    "engineer": Job("work", 9, 9, False, 9000, True),
    "manager": Job("work", 9, 10, False, 11000, True),
    "teacher": Job("school", 8, 8, False, 6000, True),
    "doctor": Job("hospital", 8, 10, True, 12000, True),
    "nurse": Job("hospital", 7, 9, True, 6500, True),
    "shopkeeper": Job("shop", 10, 9, True, 5000, True),
    "waiter": Job("leisure", 11, 9, True, 4000, True),
    "student": Job("school", 8, 7, False, 600, False),
    "retired": Job(None, 0, 0, False, 3000, False),
    "unemployed": Job(None, 0, 0, False, 1200, True),
}
WORKING = ("worker", "clerk", "engineer", "manager", "teacher", "doctor", "nurse", "shopkeeper", "waiter")
WORKING_WEIGHTS = (22, 18, 10, 6, 8, 4, 6, 8, 6)
EDUCATION = ("Primary School", "High School", "Bachelor's Degree", "Master's Degree", "Doctoral Degree")
EDUCATION_WEIGHTS = (12, 40, 33, 12, 3)
# substring of the education text -> income factor (AgentSociety's own education labels also match)
EDUCATION_FACTORS = (("doctor", 1.8), ("phd", 1.8), ("master", 1.5), ("bachelor", 1.25), ("college", 1.15),
                     ("university", 1.25), ("junior", 0.9), ("middle", 0.9), ("primary", 0.8), ("illiterate", 0.7))
PERSONALITIES = ("outgoing", "reserved", "agreeable", "conscientious", "anxious", "curious")
# personality -> (sociability, sensitivity to news, thrift, mood offset); unknown words get the neutral row
TRAITS = {"outgoing": (1.6, 1.0, 0.8, 0.05), "reserved": (0.5, 0.9, 1.1, 0.0), "agreeable": (1.2, 1.0, 1.0, 0.03),
          "conscientious": (0.9, 0.8, 1.3, 0.02), "anxious": (0.8, 1.6, 1.1, -0.08), "curious": (1.3, 1.1, 0.9, 0.03)}
NEUTRAL_TRAITS = (1.0, 1.0, 1.0, 0.0)
FIRST = {"male": ("James", "Wei", "Lucas", "Omar", "Mateo", "Ivan", "Kenji", "David", "Arjun", "Leo", "Samuel", "Tom"),
         "female": ("Mia", "Li", "Sofia", "Amara", "Elena", "Yuki", "Grace", "Nora", "Priya", "Lena", "Chloe", "Ana")}
SURNAMES = ("Smith", "Wang", "Garcia", "Muller", "Rossi", "Tanaka", "Novak", "Silva", "Kim", "Haddad", "Brown", "Chen",
            "Lopez", "Weber", "Ivanova", "Sato", "Khan", "Dubois", "Jensen", "Costa")
INT_ATTRIBUTES = ("age", "income")
MAX_AGENT_ID = 100_000_000


@dataclass(frozen=True)
class Behaviour:
    """A group's class parameters and blocks (`chalicelib.sim.catalog`), as the rules use them."""

    mobile: bool = True
    social: bool = True
    economic: bool = True
    speed_kmh: float = 18.0
    search_limit: int = 3
    talk_chance: float = 0.015
    ubi: float = 0.0
    wage_factor: float = 1.0
    bedtime_thoughts: bool = True

    @classmethod
    def of(cls, group: CitizenGroup) -> Behaviour:
        blocks = group.blocks or {name: {} for name in catalog.BLOCKS}  # none named: every block, with defaults
        mobility = catalog.MobilityParams.model_validate(blocks.get("MobilityBlock") or {})
        social = catalog.SocialParams.model_validate(blocks.get("SocialBlock") or {})
        economy = catalog.EconomyParams.model_validate(blocks.get("EconomyBlock") or {})
        params = catalog.CitizenParams.model_validate(group.agent_params)
        return cls(mobile="MobilityBlock" in blocks, social="SocialBlock" in blocks,
                   economic="EconomyBlock" in blocks, speed_kmh=mobility.speed_kmh,
                   search_limit=mobility.search_limit, talk_chance=social.talk_chance, ubi=economy.UBI,
                   wage_factor=economy.wage_factor, bedtime_thoughts=params.bedtime_thoughts)


@dataclass(frozen=True)
class Person:
    """What never changes about a citizen during a run (rebuilt from the spec on restore, never stored)."""

    id: int
    agent_class: str
    behaviour: Behaviour
    name: str
    profile: dict[str, Any]
    home: int
    work: Optional[int]  # initial workplace (employment can change later)
    job: Job
    occupation: str
    age: int
    income: int
    sociability: float
    sensitivity: float
    thrift: float
    mood_offset: float
    start_min: int  # minutes after midnight when work or school starts
    end_min: int
    wake_min: int
    sleep_min: int
    idle_employment: str = "unemployed"  # the status's `employment` while not employed: student, retired, unemployed
    hourly_wage: float = 0.0  # what an hour of work pays (the economy block's wage factor included)

    def agent_profile(self) -> AgentProfile:
        return AgentProfile(id=self.id, name=self.name, profile=self.profile)

    @property
    def filter_view(self) -> dict[str, Any]:
        """What a workflow's filter_str reads as `${profile.<name>}`: the profile with the id and name."""
        return {"id": self.id, "name": self.name, **self.profile}


def draw(dist: Distribution, rng: random.Random) -> Any:
    # Distribution's validator guarantees the fields each kind needs
    if dist.dist == "choice" and dist.choices:
        return rng.choices(dist.choices, weights=dist.weights)[0]
    if dist.dist == "uniform_int" and dist.min is not None and dist.max is not None:
        return rng.randint(int(dist.min), int(dist.max))
    if dist.dist == "uniform_float" and dist.min is not None and dist.max is not None:
        return round(rng.uniform(dist.min, dist.max), 4)
    if dist.dist == "normal" and dist.mean is not None and dist.std is not None:
        value = rng.gauss(dist.mean, dist.std)
        if dist.min is not None:
            value = max(dist.min, value)
        if dist.max is not None:
            value = min(dist.max, value)
        return round(value, 4)
    return dist.value


def _default(name: str, drawn: dict[str, Any], rng: random.Random) -> Any:
    """Sensible defaults for the attributes a config leaves out; occupation and income follow age and education."""
    if name == "age":
        return int(min(85, max(18, rng.gauss(40, 15))))
    if name == "gender":
        return rng.choice(("male", "female"))
    if name == "education":
        return rng.choices(EDUCATION, weights=EDUCATION_WEIGHTS)[0]
    if name == "occupation":
        age = _number(drawn.get("age"), 40)
        if age < 23 and rng.random() < 0.6:
            return "student"
        if age >= 65 and rng.random() < 0.85:
            return "retired"
        return "unemployed" if rng.random() < 0.06 else rng.choices(WORKING, weights=WORKING_WEIGHTS)[0]
    if name == "income":
        base = job_of(drawn.get("occupation")).income * education_factor(drawn.get("education"))
        return int(round(base * rng.lognormvariate(0, 0.25), -1))
    return rng.choice(PERSONALITIES)  # personality


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _number(value: Any, fallback: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return fallback
    return number if math.isfinite(number) else fallback


def job_of(occupation: Any) -> Job:
    return OCCUPATIONS.get(str(occupation).strip().lower(), GENERIC_JOB)


def education_factor(education: Any) -> float:
    text = str(education).lower()
    return next((f for key, f in EDUCATION_FACTORS if key in text), 1.0)


def _aoi_ref(value: Any, world: World, kinds: tuple[str, ...]) -> Optional[int]:
    """An explicit home/work: an AOI id, or AgentSociety's {"aoi_position": {"aoi_id": n}}."""
    if isinstance(value, dict):
        value = (value.get("aoi_position") or {}).get("aoi_id")
    if isinstance(value, str) and value.strip().isdigit():  # from a CSV profile file
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value in world.by_id:
        return value if value in {i for kind in kinds for i in world.ids(kind)} else None
    return None


def workplace_kind(job: Job, world: World) -> Optional[str]:
    if job.place is None:
        return None
    return job.place if world.has(job.place) else ("work" if job.labour else None)


def profile_id(record: dict[str, Any]) -> Optional[int]:
    """A profile record's agent id (AgentSociety: its `id`, an integer of 1 to 100,000,000), if it has one."""
    value = record.get("id")
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_AGENT_ID:
        return value
    return None


def build_population(spec: SimulationSpec, world: World) -> list[Person]:
    """Every citizen, in group order: a profile's own id where it has one, else the next free id from 1."""
    rng = random.Random(f"agora-population:{spec.seed}")  # apart from the run's rng: a pure function of the spec
    wanted = [(group, group.profiles[i] if i < len(group.profiles) else {})
              for group in spec.agents.citizens for i in range(group.size)]
    taken: set[int] = set()
    for _, record in wanted:
        pid = profile_id(record)
        if pid is not None:
            if pid in taken:
                raise ValueError(f"agent id {pid} appears in more than one profile")
            taken.add(pid)
    free = (i for i in range(1, MAX_AGENT_ID + 1) if i not in taken)
    behaviours: dict[int, Behaviour] = {}
    people = []
    for group, record in wanted:
        behaviour = behaviours.setdefault(id(group), Behaviour.of(group))
        pid = profile_id(record)
        people.append(_person(pid if pid is not None else next(free), group, behaviour, record, world, rng))
    return people


def _person(pid: int, group: CitizenGroup, behaviour: Behaviour, explicit: dict[str, Any], world: World,
            rng: random.Random) -> Person:
    drawn: dict[str, Any] = {}
    distributions = group.memory_distributions or {}
    for name in PROFILE_ATTRIBUTES:  # in this order: defaults depend on what came before (income on occupation)
        dist = distributions.get(name)
        value = draw(dist, rng) if dist else _default(name, drawn, rng)
        drawn[name] = explicit.get(name, value)  # drawn even when overridden: fewer shifts in the random stream
    for name in sorted(distributions):  # extra attributes a config adds (e.g. consumption)
        if name not in drawn:
            drawn[name] = draw(distributions[name], rng)
    drawn.update({k: v for k, v in explicit.items() if k not in ("id", "name", "home", "work")})  # extra keys too
    for name in INT_ATTRIBUTES:  # a CSV profile file gives every value as text
        value = drawn.get(name)
        if isinstance(value, str) and _is_number(value):
            value = float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            drawn[name] = int(round(value))
    gender = str(drawn["gender"]).lower()
    first = rng.choice(FIRST.get(gender, FIRST["male"] + FIRST["female"]))
    name = str(explicit.get("name") or f"{first} {rng.choice(SURNAMES)}")
    job = job_of(drawn["occupation"])
    home = _aoi_ref(explicit.get("home"), world, ("home",)) or rng.choice(world.ids("home"))
    kind = workplace_kind(job, world)
    work = None
    if kind:
        work = _aoi_ref(explicit.get("work"), world, (kind,)) or rng.choice(world.ids(kind))
    jitter = rng.randint(-4, 4) * 10  # minutes: not everybody leaves at the same moment
    hours = job if job.place else GENERIC_JOB  # the hours an unemployed citizen would keep once hired
    start = int(hours.start * 60) + jitter
    wake = (start - 60 - rng.randint(0, 4) * 10) if job.labour or job.place else (7 * 60 + rng.randint(0, 12) * 10)
    sleep = 22 * 60 + rng.randint(0, 12) * 10  # between 22:00 and 24:00
    social, sensitive, thrift, mood = TRAITS.get(str(drawn["personality"]).lower(), NEUTRAL_TRAITS)
    params = catalog.CitizenParams.model_validate(group.agent_params)
    social, sensitive, thrift = social * params.sociability, sensitive * params.news_sensitivity, \
        thrift * params.thrift
    profile = dict(drawn, home=home, work=work)
    occupation = str(drawn["occupation"])
    income = max(0, int(_number(drawn["income"], job.income)))
    end = start + int(hours.hours * 60)
    idle = occupation.lower()
    return Person(id=pid, agent_class=catalog.resolve_class(group.agent_class), behaviour=behaviour, name=name,
                  profile=profile, home=home, work=work, job=job,
                  occupation=occupation, age=int(_number(drawn["age"], 40)),
                  income=income, sociability=social,
                  sensitivity=sensitive, thrift=thrift, mood_offset=mood, start_min=start,
                  end_min=end, wake_min=max(4 * 60, wake), sleep_min=min(sleep, 24 * 60 - 10),
                  idle_employment=idle if idle in ("student", "retired") else "unemployed",
                  hourly_wage=income * behaviour.wage_factor / (21.7 * max(1.0, (end - start) / 60)))
