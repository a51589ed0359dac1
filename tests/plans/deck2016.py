"""Per-municipality plan rows that encode the situation of the 2016 deck (p.10, as of 2016-06-17).

The deck publishes only national figures: how many municipalities expect to have sent the notices of each
application month by each target month, and the cumulative notices sent against applications per month.
This builds what the 1,741 municipalities would have filed to produce them — one target per municipality
and application month, one monthly row per municipality — as CSV files for the importer:

- each municipality gets a size (special wards and designated cities large, villages small) and a place in
  the order of lateness (larger ones tend to be later, as Sendai and five other cities were in 2016);
  within each application month the targets are handed out in that order, so a municipality's targets never
  go backwards from an older application month to a newer one;
- applications are shared out by size month by month; notices are shared out month by month among the
  cards still waiting in each town, towns due to be cleared that month first, never more than waiting.

The national figures below are the deck's; the tests check that the report, which knows nothing of them,
adds the filed rows back up to exactly these figures.
"""

from __future__ import annotations

import csv
import io
import math
import random
from datetime import date
from functools import lru_cache
from importlib.resources import files

from mynacard.plans.model import Month

AS_OF = date(2016, 6, 17)
COLUMNS = [Month(2015, 10), Month(2015, 11), Month(2015, 12), Month(2016, 1), Month(2016, 2), Month(2016, 3),
           Month(2016, 4), Month(2016, 5)]
"""Application months; the last stands for "May 2016 and later"."""
TABLE: dict[Month | None, list[int]] = {
    None: [1737, 1723, 1649, 1487, 1368, 1215, 990, 240],
    Month(2016, 6): [3, 17, 69, 173, 223, 265, 384, 853],
    Month(2016, 7): [0, 0, 16, 53, 95, 166, 218, 401],
    Month(2016, 8): [1, 1, 7, 22, 41, 61, 93, 171],
    Month(2016, 9): [0, 0, 0, 5, 10, 24, 37, 48],
    Month(2016, 10): [0, 0, 0, 1, 3, 8, 17, 16],
    Month(2016, 11): [0, 0, 0, 0, 1, 2, 2, 12],
}
CLEARED = {Month(2016, 5): (240, None), Month(2016, 6): (1093, "62.8%"), Month(2016, 7): (1494, "85.8%"),
           Month(2016, 8): (1665, "95.6%"), Month(2016, 9): (1713, "98.4%"), Month(2016, 10): (1729, "99.3%"),
           Month(2016, 11): (1741, "100.0%")}
PROGRESS = {
    Month(2016, 5): (7_358_866, 10_431_793, "70.5%"),
    Month(2016, 6): (9_240_660, 11_492_040, "80.4%"),
    Month(2016, 7): (10_565_390, 11_881_986, "88.9%"),
    Month(2016, 8): (11_602_625, 12_272_124, "94.5%"),
    Month(2016, 9): (12_317_775, 12_660_937, "97.3%"),
    Month(2016, 10): (12_881_189, 13_050_621, "98.7%"),
    Month(2016, 11): (13_370_140, 13_370_140, "100.0%"),
}
"""Cumulative notices sent, applications and their ratio at the end of each month (May actual)."""


def municipalities() -> list[tuple[str, str]]:
    text = (files("mynacard.registry") / "data" / "municipalities.csv").read_text(encoding="utf-8")
    return [(r["code"], r["name"]) for r in csv.DictReader(text.splitlines())]


def _size(code: str, name: str) -> float:
    rng = random.Random(f"size:{code}")
    if code[2:5] == "100":  # designated city (政令指定都市): xx100c
        base = 900_000.0
    elif name.endswith("区"):
        base = 300_000.0
    elif name.endswith("市"):
        base = 70_000.0
    elif name.endswith("町"):
        base = 12_000.0
    else:
        base = 3_000.0
    return base * math.exp(rng.gauss(0, 0.5))


def apportion(total: int, weights: list[float], caps: list[int]) -> list[int]:
    """Whole numbers proportional to ``weights``, none above its cap, adding up to ``total`` exactly."""
    if total < 0 or total > sum(caps):
        raise ValueError("cannot apportion")
    if total == sum(caps):
        return list(caps)
    weights = [w if c > 0 else 0.0 for w, c in zip(weights, caps, strict=True)]
    if sum(weights) <= 0:
        weights = [float(c) for c in caps]
    lo, hi = 0.0, 1.0
    while sum(min(c, w * hi) for w, c in zip(weights, caps, strict=True)) < total:
        hi *= 2
    for _ in range(80):
        mid = (lo + hi) / 2
        if sum(min(c, w * mid) for w, c in zip(weights, caps, strict=True)) < total:
            lo = mid
        else:
            hi = mid
    shares = [min(c, w * hi) for w, c in zip(weights, caps, strict=True)]
    out = [min(c, math.floor(s)) for s, c in zip(shares, caps, strict=True)]
    left = total - sum(out)
    order = sorted(range(len(out)), key=lambda i: (-(shares[i] - out[i]), i))
    for i in order:
        if left == 0:
            break
        if out[i] < caps[i]:
            out[i] += 1
            left -= 1
    if left:
        for i in range(len(out)):
            take = min(left, caps[i] - out[i])
            out[i] += take
            left -= take
    assert sum(out) == total and all(0 <= o <= c for o, c in zip(out, caps, strict=True))
    return out


@lru_cache(maxsize=1)
def build() -> tuple[bytes, bytes]:
    """The targets file and the monthly file, as the 1,741 municipalities would have filed them."""
    munis = municipalities()
    sizes = [_size(code, name) for code, name in munis]
    noise = [random.Random(f"late:{code}").gauss(0, 1.2) for code, _ in munis]
    order = sorted(range(len(munis)), key=lambda i: (math.log(sizes[i]) + noise[i], munis[i][0]))
    rank = {i: r for r, i in enumerate(order)}

    columns: list[list[Month | None]] = []
    for c in range(len(COLUMNS)):
        values: list[Month | None] = []
        for row, counts in TABLE.items():
            values.extend([row] * counts[c])
        columns.append(values)  # TABLE lists "done" first, then months in order: ascending already
    targets = {i: [columns[c][rank[i]] for c in range(len(COLUMNS))] for i in range(len(munis))}
    clearance = {i: max((t for t in targets[i] if t is not None), default=None) for i in targets}

    months = list(PROGRESS)
    applications = {i: 0 for i in range(len(munis))}
    notices = {i: 0 for i in range(len(munis))}
    monthly: dict[int, list[tuple[Month, int, int]]] = {i: [] for i in range(len(munis))}
    ratio = {None: 0.97, Month(2016, 6): 0.78, Month(2016, 7): 0.66, Month(2016, 8): 0.55,
             Month(2016, 9): 0.45, Month(2016, 10): 0.4, Month(2016, 11): 0.35}
    previous_a = previous_n = 0
    idx = list(range(len(munis)))
    for t, month in enumerate(months):
        total_n, total_a, _ = PROGRESS[month]
        grow = apportion(total_a - previous_a, [sizes[i] for i in idx], [10**9] * len(idx))
        for i, g in zip(idx, grow, strict=True):
            applications[i] += g
        caps = [applications[i] - notices[i] for i in idx]
        if t == 0:
            weights = [applications[i] * ratio[clearance[i]] for i in idx]
        else:
            weights = [(applications[i] - notices[i]) * (4.0 if clearance[i] is None or clearance[i] <= month
                                                          else 1.0) for i in idx]
        sent = apportion(total_n - previous_n, weights, caps)
        for i, s in zip(idx, sent, strict=True):
            notices[i] += s
            monthly[i].append((month, notices[i], applications[i]))
        previous_a, previous_n = total_a, total_n

    t_buf, m_buf = io.StringIO(), io.StringIO()
    tw, mw = csv.writer(t_buf, lineterminator="\n"), csv.writer(m_buf, lineterminator="\n")
    tw.writerow(["municipality_code", "application_month", "target_month"])
    mw.writerow(["municipality_code", "month", "notices_sent_cumulative", "applications_cumulative"])
    for i, (code, _) in enumerate(munis):
        for month, target in zip(COLUMNS, targets[i], strict=True):
            tw.writerow([code, str(month), "done" if target is None else str(target)])
        for month, n, a in monthly[i]:
            mw.writerow([code, str(month), n, a])
    return t_buf.getvalue().encode(), m_buf.getvalue().encode()


if __name__ == "__main__":  # write the two files, e.g. to try `mynacard plans import` by hand
    import sys
    from pathlib import Path

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    targets_csv, monthly_csv = build()
    (folder / "plans-2016-06-17-targets.csv").write_bytes(targets_csv)
    (folder / "plans-2016-06-17-monthly.csv").write_bytes(monthly_csv)
