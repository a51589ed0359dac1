"""Regenerate ``src/mynacard/registry/data/municipalities.csv`` from the ``japancode`` package (MIT).

Run with ``pip install japancode==0.1.0 && python scripts/generate_municipalities.py``. The 175 wards of the
designated cities (政令指定都市の行政区) are dropped: they are not municipalities, so 1,741 rows remain
(792 cities, 743 towns, 183 villages, 23 special wards). The 6th digit of each code is checked against the
local government code check digit before the file is written.
"""

from __future__ import annotations

import csv
import json
import sys
from importlib.resources import files
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "src/mynacard/registry/data/municipalities.csv"


def check_digit(first5: str) -> int:
    total = sum(int(d) * w for d, w in zip(first5, (6, 5, 4, 3, 2), strict=True))
    return (11 - total % 11) % 10


def main() -> int:
    rows = json.loads((files("japancode") / "data" / "municipalities.json").read_text(encoding="utf-8"))
    out = []
    for row in rows:
        if " " in row["city"]:  # a ward of a designated city
            continue
        code = row["lgcode"].zfill(6)
        if check_digit(code[:5]) != int(code[5]):
            raise SystemExit(f"bad check digit in {code} {row['city']}")
        out.append((code, code[:2], row["pref"], row["city"], row["citykana"], row["lat"], row["lng"]))
    if len(out) != 1741:
        raise SystemExit(f"expected 1,741 municipalities, got {len(out)}")
    out.sort()
    with OUT.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["code", "prefecture_code", "prefecture", "name", "kana", "lat", "lng"])
        w.writerows(out)
    print(f"wrote {len(out)} municipalities to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
