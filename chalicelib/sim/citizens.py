"""A citizen's changing state (place, needs, money, plans) and the rule-based day it follows."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from chalicelib.sim.population import GENERIC_JOB, Person, workplace_kind

if TYPE_CHECKING:
    import random

    from chalicelib.sim.world import World

# The checkpointed state of a citizen, in column order (the static Person is rebuilt from the spec).
FIELDS = ("aoi", "dest", "travel_left", "travel_total", "action", "activity", "until", "hunger", "energy",
          "health", "happiness", "money", "spent_today", "employed", "work", "social")
OUTINGS = ("shop", "leisure", "lunch")  # activities that cost money when they start
# weather word -> (appeal of going out, mood change); matched as a substring so "heavy rain" works
WEATHER = (("storm", 0.15, -0.08), ("snow", 0.4, -0.02), ("rain", 0.45, -0.04), ("hot", 0.7, -0.02),
           ("cold", 0.6, -0.02), ("cloud", 0.85, 0.0), ("sun", 1.0, 0.03), ("clear", 1.0, 0.02))
DAY_MIN = 9 * 60  # free-time outings happen between these minutes of the day
EVENING_MIN = 21 * 60 + 30
BASE_OUTING_CHANCE = 0.02  # per 5 simulated minutes of free time: about one outing in four hours


def _clip(x: float) -> float:
    return 0.0 if x < 0 else 1.0 if x > 1 else x


def weather_effect(weather: Any) -> tuple[float, float]:
    text = str(weather or "").lower()
    return next(((appeal, mood) for word, appeal, mood in WEATHER if word in text), (0.9, 0.0))


class TickContext:
    """What every citizen sees during one tick; built once per tick by the engine."""

    __slots__ = ("day", "t", "tick", "world", "mood", "spending", "prices", "weather", "now", "minute",
                 "workday", "dt", "appeal", "weather_mood", "outing_chance", "social_decay", "mood_weight",
                 "mood_rate")

    def __init__(self, day: int, t: int, tick: int, world: World, mood: float, spending: float,
                 prices: float, weather: Any):
        self.day, self.t, self.tick, self.world = day, t, tick, world
        self.mood, self.spending, self.prices, self.weather = mood, spending, prices, weather
        self.now = day * 86_400 + t
        self.minute = t // 60
        self.workday = day % 7 < 5  # day 0 is a Monday
        self.dt = tick / 3600
        self.appeal, self.weather_mood = weather_effect(weather)
        self.outing_chance = 1 - (1 - BASE_OUTING_CHANCE) ** (tick / 300)
        # the per-tick factors of Citizen.live, computed once
        self.social_decay = 1 - min(1.0, 0.1 * self.dt)
        self.mood_weight = 0.15 * mood  # times a citizen's sensitivity
        self.mood_rate = min(1.0, 0.15 * self.dt)


class Decision(NamedTuple):
    """Made for every citizen every tick: a named tuple, which is several times cheaper to build than a dataclass."""

    target: int  # the AOI to be at
    action: str  # AgentSociety's `action`: what the citizen intends
    activity: str  # sleep | work | school | home | meal | shop | leisure | lunch | hospital
    until: int = 0  # absolute second an outing lasts to (0: while the rule holds)


class Citizen:
    __slots__ = ("person", "tick_spent") + FIELDS
    # the checkpointed state (FIELDS), set from a column of values in __init__
    aoi: int
    dest: int
    travel_left: int
    travel_total: int
    action: str
    activity: str
    until: int
    hunger: float
    energy: float
    health: float
    happiness: float
    money: float
    spent_today: float
    employed: bool
    work: int
    social: float

    def __init__(self, person: Person, values: list[Any]):
        self.person = person
        self.tick_spent = 0.0  # money spent in the current tick only; never checkpointed
        for name, value in zip(FIELDS, values, strict=False):
            setattr(self, name, value)

    @classmethod
    def fresh(cls, person: Person, rng: random.Random) -> Citizen:
        p = person
        employed = p.job.labour and p.work is not None and p.occupation.lower() != "unemployed"
        return cls(p, [p.home, -1, 0, 0, "Planning", "home", 0, round(0.2 + 0.2 * rng.random(), 4),
                       round(0.75 + 0.2 * rng.random(), 4), round(0.85 + 0.15 * rng.random(), 4),
                       round(_clip(0.55 + p.mood_offset + 0.1 * rng.random()), 4),
                       round(p.income * (0.5 + rng.random()), 2), 0.0, employed,
                       p.work if p.work is not None else -1, 0.0])

    @property
    def travelling(self) -> bool:
        return self.dest >= 0

    @property
    def employment(self) -> str:
        return "employed" if self.employed else self.person.idle_employment

    # ---- movement -------------------------------------------------------------------------------
    def apply(self, d: Decision, ctx: TickContext, rng: random.Random) -> None:
        """Follow a decision: stay and start the activity, or set off towards the target."""
        starting = d.activity != self.activity
        self.action, self.activity, self.until = d.action, d.activity, d.until
        if d.target == self.aoi:
            if starting:
                self._begin(ctx, rng)
            return
        ticks = ctx.world.travel_ticks(self.aoi, d.target, ctx.tick, self.person.behaviour.speed_kmh)
        self.dest, self.travel_left, self.travel_total = d.target, ticks, ticks
        self.action = f"Heading to {ctx.world.by_id[d.target].name}"

    def travel(self, ctx: TickContext, rng: random.Random) -> None:
        self.travel_left -= 1
        if self.travel_left <= 0:
            self.aoi, self.dest, self.travel_left, self.travel_total = self.dest, -1, 0, 0
            self.action = ACTION_AT.get(self.activity, self.action)
            self._begin(ctx, rng)

    def _begin(self, ctx: TickContext, rng: random.Random) -> None:
        """The activity starts where the citizen now is: meals fill, outings cost money."""
        activity, income = self.activity, self.person.income
        if activity == "meal":
            self.hunger = round(max(0.0, self.hunger - 0.55), 4)
        if activity not in OUTINGS:
            return
        base = {"shop": 20 + income * 0.004, "leisure": 10 + income * 0.002, "lunch": 8 + income * 0.001}[activity]
        amount = base * ctx.prices * ctx.spending / self.person.thrift * (0.6 + 0.8 * rng.random())
        if not self.person.behaviour.economic:  # without the economy block nothing is bought or paid
            amount = 0.0
        amount = round(min(self.money, amount), 2)
        self.money = round(self.money - amount, 2)
        self.spent_today = round(self.spent_today + amount, 2)
        self.tick_spent += amount
        self.hunger = round(max(0.0, self.hunger - {"shop": 0.15, "leisure": 0.3, "lunch": 0.5}[activity]), 4)
        self.happiness = round(_clip(self.happiness + 0.02), 4)

    def place(self, world: World) -> tuple[float, float, Any]:
        """lng, lat and parent_id; between places the position is interpolated and parent_id is None."""
        if self.travelling:
            progress = (self.travel_total - self.travel_left) / self.travel_total
            lng, lat = world.position(self.aoi, self.dest, progress)
            return lng, lat, None
        a = world.by_id[self.aoi]
        return a.lng, a.lat, self.aoi

    # ---- needs ----------------------------------------------------------------------------------
    def live(self, ctx: TickContext, rng: random.Random) -> None:
        """One tick of needs, pay and mood; the rates are per simulated hour.

        Written with locals (it runs for every citizen every tick); every expression is evaluated as
        in the plain form, in the same order, so the floats come out bit for bit the same.
        """
        p, dt, activity = self.person, ctx.dt, self.activity
        here = self.dest < 0
        sleeping = here and activity == "sleep"
        working = here and activity == "work" and self.aoi == self.work
        hunger = self.hunger + (0.02 if sleeping else 0.065) * dt
        hunger = 0.0 if hunger < 0 else 1.0 if hunger > 1 else hunger
        energy = self.energy + (0.1 if sleeping else -(0.045 if working else 0.015 if activity == "leisure"
                                                        else 0.03)) * dt
        energy = 0.0 if energy < 0 else 1.0 if energy > 1 else energy
        health = _clip(self.health + (0.15 if here and activity == "hospital" else 0.01) * dt
                       - (0.02 * dt if hunger > 0.9 or energy < 0.1 else 0))
        if rng.random() < (0.01 + p.age / 2000) * dt / 24:  # falling ill: about one day in sixty for a 40-year-old
            health = _clip(health - 0.45)
        money = self.money
        if working and self.employed and p.behaviour.economic:
            money = self.money = round(money + p.hourly_wage * dt, 2)
        social = self.social * ctx.social_decay
        wealth = min(2.0, money / (p.income + 1)) / 2
        needs = 1 - max(0.0, hunger - 0.4) * 0.8 - max(0.0, 0.4 - energy) * 0.8 - (1 - health) * 0.5
        job = 0.1 if self.employed or not p.job.labour else -0.1
        target = (0.25 + 0.35 * needs + 0.15 * wealth + job + p.mood_offset + ctx.mood_weight * p.sensitivity
                  + ctx.weather_mood + social + (0.05 if activity == "leisure" else 0))
        target = 0.0 if target < 0 else 1.0 if target > 1 else target
        happiness = self.happiness
        happiness += (target - happiness) * ctx.mood_rate
        # rounding every tick keeps checkpoints small and makes restored runs identical to straight ones
        self.hunger, self.energy, self.health = round(hunger, 4), round(energy, 4), round(health, 4)
        self.happiness, self.social = round(happiness, 4), round(social, 4)

    def new_day(self, ctx: TickContext, rng: random.Random) -> None:
        """At midnight: allowances and pensions are paid, jobs are lost and found."""
        p = self.person
        self.spent_today = 0.0
        if p.behaviour.economic:
            benefit = p.income / 30 if not p.job.labour or not self.employed else 0.0  # pension, allowance
            self.money = round(self.money + benefit + p.behaviour.ubi, 2)
        if not p.job.labour:
            return
        if self.employed and rng.random() < 0.002 * (1 - ctx.mood):
            self.employed, self.work = False, -1
        elif not self.employed and rng.random() < 0.04 * (1 + ctx.mood):
            kind = workplace_kind(p.job if p.job.place else GENERIC_JOB, ctx.world)
            if kind:
                self.employed, self.work = True, rng.choice(ctx.world.ids(kind))

    def set_state(self, key: str, value: float) -> None:
        """A workflow's update_state (chalicelib.sim.catalog.SETTABLE_STATUS)."""
        setattr(self, key, round(float(value), 4 if key != "money" else 2))

    def go_home(self) -> None:
        """Back home and doing nothing in particular (a workflow's next_round or send_everyone_home)."""
        self.aoi, self.dest, self.travel_left, self.travel_total = self.person.home, -1, 0, 0
        self.action, self.activity, self.until = ACTION_AT["home"], "home", 0

    def status(self, world: World) -> dict[str, Any]:
        return {"happiness": self.happiness, "hunger": self.hunger, "energy": self.energy, "health": self.health,
                "money": self.money, "consumption": self.spent_today, "employment": self.employment,
                "place": "travelling" if self.travelling else world.by_id[self.aoi].name}


ACTION_AT = {"work": "Working", "school": "Studying", "home": "Relaxing at home", "sleep": "Sleeping",
             "meal": "Having a meal", "shop": "Shopping", "leisure": "Enjoying free time", "lunch": "Having lunch",
             "hospital": "Seeing a doctor"}


def decide_by_rules(c: Citizen, ctx: TickContext, rng: random.Random) -> Decision:
    """Where to be this tick: sleep, hospital, work or school, meals, outings, home - first that applies."""
    p, world, m = c.person, ctx.world, ctx.minute
    if m >= p.sleep_min or m < p.wake_min:
        return Decision(p.home, "Sleeping", "sleep")
    if not p.behaviour.mobile:  # without the mobility block a citizen stays where it is
        return Decision(c.aoi, ACTION_AT["home"], "home")
    # decide() is never asked while travelling, so c.aoi is where the citizen is
    if c.activity == "hospital" and c.health < 0.7:
        return Decision(c.aoi, "Seeing a doctor", "hospital")
    if c.health < 0.35 and world.has("hospital"):
        return Decision(world.nearest(c.aoi, "hospital", p.behaviour.search_limit)[0], "Seeing a doctor",
                        "hospital")
    if c.activity in OUTINGS and ctx.now < c.until:
        return Decision(c.aoi, c.action, c.activity, c.until)
    has_place = c.work >= 0 and (c.employed or p.occupation.lower() == "student")
    if (has_place and (ctx.workday or p.job.weekends) and p.start_min <= m < p.end_min and c.health >= 0.5
            and c.energy > 0.05):
        if c.hunger > 0.6 and c.aoi == c.work and world.has("shop") and c.money > 0:
            shop = rng.choice(world.nearest(c.work, "shop", p.behaviour.search_limit))
            return Decision(shop, "Having lunch", "lunch", ctx.now + 1800 + 300 * rng.randint(0, 3))
        school = p.occupation.lower() == "student"
        return Decision(c.work, "Studying" if school else "Working", "school" if school else "work")
    if c.hunger > 0.7:
        return Decision(p.home, "Having a meal", "meal", ctx.now + 1800) if c.aoi == p.home or c.money <= 0 else \
            Decision(rng.choice(world.nearest(c.aoi, "leisure", p.behaviour.search_limit) or [p.home]),
                     "Eating out", "leisure",
                     ctx.now + 3600)
    if c.activity == "meal" and ctx.now < c.until:
        return Decision(p.home, c.action, "meal", c.until)
    if DAY_MIN <= m < EVENING_MIN and c.energy > 0.25 and rng.random() < ctx.outing_chance:
        return _outing(c, ctx, rng)
    return Decision(p.home, ACTION_AT["home"], "home")


def _outing(c: Citizen, ctx: TickContext, rng: random.Random) -> Decision:
    """Shopping or leisure: spending mood, prices, thrift and weather decide which, if either."""
    p, world = c.person, ctx.world
    shop_wish = ctx.spending / (p.thrift * ctx.prices ** 0.5) * (0.5 if c.spent_today > 0 else 1.0)
    leisure_wish = ctx.appeal * p.sociability * (0.5 + c.energy)
    if c.money <= 0 or rng.random() * (shop_wish + leisure_wish + 0.5) < 0.5:  # sometimes staying in wins
        return Decision(p.home, ACTION_AT["home"], "home")
    kind = "shop" if rng.random() * (shop_wish + leisure_wish) < shop_wish else "leisure"
    places = world.nearest(p.home, kind, p.behaviour.search_limit)
    if not places:
        return Decision(p.home, ACTION_AT["home"], "home")
    minutes = rng.randint(2, 6) * 10 if kind == "shop" else rng.randint(6, 15) * 10
    return Decision(rng.choice(places), ACTION_AT[kind], kind, ctx.now + 60 * minutes)


def prices_of(env: dict[str, Any]) -> float:
    """The `prices` environment variable as one factor (1 is normal); per-category prices count by their mean."""
    value = env.get("prices", 1.0)
    if isinstance(value, dict):
        numbers = [float(v) for v in value.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
        value = sum(numbers) / len(numbers) if numbers else 1.0
    try:
        return max(0.1, float(value))
    except (TypeError, ValueError):
        return 1.0


def metrics_of(citizens: list[Citizen], dialogs: int) -> dict[str, float]:
    """One tick's environment metrics (AgentSociety's metric rows): means, rates and this tick's totals.

    One pass; each sum adds the same values in the same order as `sum()` over the citizens would.
    """
    n = max(1, len(citizens))
    happiness = spent = hunger = energy = health = money = 0.0
    labour = employed = travelling = working = 0
    for c in citizens:
        happiness += c.happiness
        spent += c.tick_spent
        hunger += c.hunger
        energy += c.energy
        health += c.health
        money += c.money
        if c.person.job.labour:
            labour += 1
            employed += c.employed
        if c.dest >= 0:
            travelling += 1
        elif c.activity == "work":
            working += 1
    return {"mean_happiness": round(happiness / n, 4),
            "employment_rate": round(employed / labour, 4) if labour else 0.0,
            "consumption": round(spent, 2),
            "dialog_count": float(dialogs),
            "mean_hunger": round(hunger / n, 4),
            "mean_energy": round(energy / n, 4),
            "mean_health": round(health / n, 4),
            "mean_money": round(money / n, 2),
            "travelling": float(travelling),
            "working": float(working)}
