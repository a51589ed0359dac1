"""A synthetic population: households of residents with matching kanji/kana names (Faker ja_JP), real
municipality codes and a plausible age structure. Registered through the registry's services only."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta

from faker import Faker
from rich.console import Console
from rich.progress import Progress

from mynacard.cards import service as cards
from mynacard.context import Context
from mynacard.principal import Principal
from mynacard.registry import service as registry
from mynacard.registry.model import BasicFacts, Sex

__all__ = ["generate_residents", "seed_population"]

# Share of the population by age band (roughly Japan's 2020 census shape), and a weight within it.
_AGE_BANDS = [((0, 14), 12), ((15, 29), 14), ((30, 44), 17), ((45, 59), 20), ((60, 74), 20), ((75, 95), 17)]


def _birth_date(rng: random.Random, today: date, lo: int, hi: int) -> date:
    return today - timedelta(days=rng.randint(lo * 365 + 1, hi * 365 + 364))


def generate_residents(municipality: registry.Municipality, count: int, today: date,
                       seed: int) -> Iterator[registry.NewResident]:
    """``count`` residents in households; the same seed gives the same people."""
    rng = random.Random(f"{seed}:{municipality.code}")
    fake = Faker("ja_JP")
    fake.seed_instance(rng.randrange(2**32))
    made = 0
    household = 0
    while made < count:
        household += 1
        key = f"h{household}"
        family, family_kana, _ = fake.last_name_pair()
        address = (f"{municipality.prefecture}{municipality.name}{fake.town()}"
                   f"{rng.randint(1, 9)}丁目{rng.randint(1, 30)}番{rng.randint(1, 20)}号")
        (lo, hi), = rng.choices([b for b, _ in _AGE_BANDS[3:]], [w for _, w in _AGE_BANDS[3:]])
        head_birth = _birth_date(rng, today, max(lo, 25), hi)
        head_sex = rng.choice([Sex.MALE, Sex.FEMALE])
        members: list[tuple[date, Sex, str]] = [(head_birth, head_sex, "世帯主")]
        size = rng.choices([1, 2, 3, 4, 5], [35, 28, 18, 14, 5])[0]
        if size >= 2:
            spouse_sex = Sex.FEMALE if head_sex is Sex.MALE else Sex.MALE
            members.append((head_birth + timedelta(days=rng.randint(-1800, 1800)), spouse_sex,
                            "妻" if spouse_sex is Sex.FEMALE else "夫"))
        for _ in range(size - len(members)):
            earliest = head_birth + timedelta(days=20 * 365)
            latest = min(today - timedelta(days=30), head_birth + timedelta(days=42 * 365))
            if earliest >= latest:
                break
            members.append((earliest + timedelta(days=rng.randint(0, (latest - earliest).days)),
                            rng.choice([Sex.MALE, Sex.FEMALE]), "子"))
        for birth, sex, relation in members:
            if made >= count:
                break
            given, given_kana, _ = (fake.first_name_male_pair() if sex is Sex.MALE
                                    else fake.first_name_female_pair())
            facts = BasicFacts.parse(family, given, birth, sex, address)
            yield registry.NewResident(municipality.code, facts, family_kana, given_kana,
                                       household_key=key, relationship=relation)
            made += 1


def seed_population(ctx: Context, municipality_codes: Sequence[str], per_municipality: int, *, seed: int,
                    now: datetime, console: Console | None = None, batch: int = 5000) -> int:
    """Register residents in each municipality and issue each an application form; returns how many."""
    actor = Principal.system("sim")
    total = 0
    with Progress(console=console, transient=True, disable=console is None) as progress:
        task = progress.add_task("registering residents", total=per_municipality * len(municipality_codes))
        for code in municipality_codes:
            municipality = registry.get_municipality(ctx, code)
            chunk: list[registry.NewResident] = []
            for person in generate_residents(municipality, per_municipality, now.date(), seed):
                # Cut batches only between households, so that a household is registered in one call.
                if len(chunk) >= batch and person.household_key != chunk[-1].household_key:
                    total += _register(ctx, actor, chunk, now)
                    progress.advance(task, len(chunk))
                    chunk = []
                chunk.append(person)
            if chunk:
                total += _register(ctx, actor, chunk, now)
                progress.advance(task, len(chunk))
    return total


def _register(ctx: Context, actor: Principal, people: Sequence[registry.NewResident], now: datetime) -> int:
    ids = registry.register_residents(ctx, actor, people, now)
    cards.issue_application_forms(ctx, actor, ids, now)
    return len(ids)
