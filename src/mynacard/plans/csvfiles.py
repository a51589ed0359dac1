"""CSV files of issuance plans: the documented headers, parsing with line-numbered problems, and writing.

Three kinds of file, told apart by their header (columns in any order; UTF-8, with or without a BOM, or
Shift_JIS as spreadsheets save it):

``targets`` — ``municipality_code,application_month,target_month``
    One row per municipality and application month: the month (``YYYY-MM``) by which the notices for the
    cards applied for in that month will have been sent, or ``done`` when none are left. An application
    month missing for a municipality counts as ``done``. The report's last column gathers the month before
    the plan's day and every later month.

``monthly`` — ``municipality_code,month,notices_sent_cumulative,applications_cumulative``
    One row per municipality and month: notices sent and applications, cumulative, at the end of the month
    (actual for past months, planned for later ones). Each must not decrease from month to month, and notices
    never exceed applications.

``means`` — ``municipality_code,site,terminals,staff`` and optionally ``kind`` (main, branch, temporary),
    ``weekday_hours`` (``08:30-17:15``), ``after_hours_days`` (weekdays ``0``–``4`` separated by ``;``),
    ``after_hours_until`` (``19:00``), ``saturdays`` / ``sundays`` (``every``, ``none`` or weeks of the
    month such as ``2;4``), ``saturday_hours``, ``sunday_hours``, ``opens_on``, ``closes_on``
    (``YYYY-MM-DD``), ``terminal_minutes_per_card``, ``staff_minutes_per_card``.
    One row per site (本庁, 支所, 臨時窓口) of a municipality; together they are the plan's means.

A file with any bad row is refused whole: every problem is reported as ``file:line: message``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from mynacard.plans.model import Hours, Means, Month, Site, SiteKind, format_target, parse_target
from mynacard.registry.model import is_valid_municipality_code

__all__ = [
    "MEANS_OPTIONAL",
    "MEANS_REQUIRED",
    "MONTHLY_HEADER",
    "TARGETS_HEADER",
    "ParsedFiles",
    "decode",
    "parse_files",
    "site_from_fields",
    "write_csv",
]

TARGETS_HEADER = ("municipality_code", "application_month", "target_month")
MONTHLY_HEADER = ("municipality_code", "month", "notices_sent_cumulative", "applications_cumulative")
MEANS_REQUIRED = ("municipality_code", "site", "terminals", "staff")
MEANS_OPTIONAL = ("kind", "weekday_hours", "after_hours_days", "after_hours_until", "saturdays",
                  "saturday_hours", "sundays", "sunday_hours", "opens_on", "closes_on",
                  "terminal_minutes_per_card", "staff_minutes_per_card")
MEANS_HEADER = (*MEANS_REQUIRED, *MEANS_OPTIONAL)
_MAX_ROWS = 2_000_000


def decode(data: bytes) -> str:
    """UTF-8 (a BOM is dropped), else Shift_JIS (cp932) as Japanese spreadsheets save CSV."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp932")


@dataclass
class ParsedFiles:
    """What a set of files says, by municipality; ``problems`` empty means every row was good."""

    targets: dict[str, dict[Month, Month | None]] = field(default_factory=dict)
    monthly: dict[str, dict[Month, tuple[int, int]]] = field(default_factory=dict)
    means: dict[str, Means] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    rows: int = 0
    kinds: dict[str, str] = field(default_factory=dict)
    """File name → kind."""

    @property
    def municipalities(self) -> set[str]:
        return set(self.targets) | set(self.monthly) | set(self.means)


def _kind(header: list[str]) -> str | None:
    columns = set(header)
    if len(columns) != len(header):
        return None
    if columns == set(TARGETS_HEADER):
        return "targets"
    if columns == set(MONTHLY_HEADER):
        return "monthly"
    if set(MEANS_REQUIRED) <= columns <= set(MEANS_HEADER):
        return "means"
    return None


def _count(text: str, label: str) -> int:
    value = text.strip()
    if not value.isascii() or not value.isdigit():
        raise ValueError(f"{label} must be a whole number ≥ 0, not {text!r}")
    return int(value)


def _weeks(text: str, label: str) -> frozenset[int]:
    value = text.strip().lower()
    if value in ("", "none"):
        return frozenset()
    if value == "every":
        return frozenset({1, 2, 3, 4, 5})
    try:
        weeks = frozenset(int(w) for w in value.replace(",", ";").split(";") if w.strip())
    except ValueError:
        raise ValueError(f"{label}: 'every', 'none' or weeks of the month like '2;4', not {text!r}") from None
    if not weeks <= {1, 2, 3, 4, 5}:
        raise ValueError(f"{label}: weeks of the month are 1–5")
    return weeks


def _weekdays(text: str) -> frozenset[int]:
    value = text.strip()
    if not value:
        return frozenset()
    try:
        days = frozenset(int(w) for w in value.replace(",", ";").split(";") if w.strip())
    except ValueError:
        raise ValueError(f"after_hours_days: weekdays 0 (Monday) to 4 (Friday) like '1;3', "
                         f"not {text!r}") from None
    if not days <= {0, 1, 2, 3, 4}:
        raise ValueError("after_hours_days: weekdays are 0 (Monday) to 4 (Friday)")
    return days


def site_from_fields(row: dict[str, str]) -> Site:
    """A site from text fields named as the means CSV columns (``site``, ``terminals``, ``staff``, …)."""
    def opt(name: str) -> str:
        return (row.get(name) or "").strip()

    base = Site(row["site"].strip() or "?")
    try:
        kind = SiteKind(opt("kind") or "main")
    except ValueError:
        raise ValueError(f"kind must be main, branch or temporary, not {opt('kind')!r}") from None
    return Site(
        name=row["site"].strip(),
        kind=kind,
        terminals=_count(row["terminals"], "terminals"),
        staff=_count(row["staff"], "staff"),
        weekday_hours=Hours.parse(opt("weekday_hours")) if opt("weekday_hours") else base.weekday_hours,
        after_hours_days=_weekdays(opt("after_hours_days")),
        after_hours_until=time.fromisoformat(opt("after_hours_until")) if opt("after_hours_until")
        else base.after_hours_until,
        saturdays=_weeks(opt("saturdays"), "saturdays"),
        saturday_hours=Hours.parse(opt("saturday_hours")) if opt("saturday_hours") else base.saturday_hours,
        sundays=_weeks(opt("sundays"), "sundays"),
        sunday_hours=Hours.parse(opt("sunday_hours")) if opt("sunday_hours") else base.sunday_hours,
        opens_on=date.fromisoformat(opt("opens_on")) if opt("opens_on") else None,
        closes_on=date.fromisoformat(opt("closes_on")) if opt("closes_on") else None,
        terminal_minutes_per_card=float(opt("terminal_minutes_per_card") or base.terminal_minutes_per_card),
        staff_minutes_per_card=float(opt("staff_minutes_per_card") or base.staff_minutes_per_card),
    )


def parse_files(files: Iterable[tuple[str, bytes]], *, known_codes: Collection[str],
                as_of: date) -> ParsedFiles:
    """Parse and check every row of every file; nothing is half-accepted.

    One function on purpose (longer than ~80 lines): the three files are checked against each other (a code's
    targets, its monthly figures and its means must agree), so one pass keeps every problem with its file and
    line in one list."""
    out = ParsedFiles()
    first_month = Month.of(as_of)
    seen: dict[tuple[str, str, Any], str] = {}
    monthly_lines: dict[str, dict[Month, str]] = {}
    sites: dict[str, list[Site]] = {}
    for name, data in files:
        try:
            text = decode(data)
        except UnicodeDecodeError:
            out.problems.append(f"{name}: not UTF-8 or Shift_JIS text")
            continue
        reader = csv.reader(io.StringIO(text, newline=""))
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            out.problems.append(f"{name}: empty file")
            continue
        except csv.Error as exc:
            out.problems.append(f"{name}:1: {exc}")
            continue
        kind = _kind(header)
        if kind is None:
            out.problems.append(
                f"{name}:1: unknown header {','.join(header)!r}; expected {','.join(TARGETS_HEADER)} or "
                f"{','.join(MONTHLY_HEADER)} or {','.join(MEANS_REQUIRED)}[,…]")
            continue
        out.kinds[name] = kind
        rows_here = 0
        while True:
            try:
                raw = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                out.problems.append(f"{name}:{reader.line_num}: {exc}")
                break
            line = reader.line_num
            where = f"{name}:{line}"
            if not raw or all(not v.strip() for v in raw):
                continue
            rows_here += 1
            out.rows += 1
            if out.rows > _MAX_ROWS:
                out.problems.append(f"{where}: more than {_MAX_ROWS:,} rows in one import")
                return out
            if len(raw) != len(header):
                out.problems.append(f"{where}: {len(raw)} fields, the header has {len(header)}")
                continue
            row = dict(zip(header, raw, strict=True))
            code = row["municipality_code"].strip()
            if not is_valid_municipality_code(code):
                out.problems.append(f"{where}: {code!r} is not a local government code "
                                    "(6 digits, check digit last)")
                continue
            if code not in known_codes:
                out.problems.append(f"{where}: unknown municipality {code}")
                continue
            try:
                if kind == "targets":
                    applied = Month.parse(row["application_month"])
                    target = parse_target(row["target_month"])
                    key: tuple[str, str, Any] = ("targets", code, applied)
                    if key in seen:
                        raise ValueError(f"{code} {applied} appears twice (also {seen[key]})")
                    if target is not None and target < applied:
                        raise ValueError(f"target {target} is before the application month {applied}")
                    if target is not None and target < first_month:
                        raise ValueError(f"target {target} is already over on {as_of}; use 'done' or a "
                                         f"month from {first_month} on")
                    seen[key] = where
                    out.targets.setdefault(code, {})[applied] = target
                elif kind == "monthly":
                    month = Month.parse(row["month"])
                    notices = _count(row["notices_sent_cumulative"], "notices_sent_cumulative")
                    applications = _count(row["applications_cumulative"], "applications_cumulative")
                    key = ("monthly", code, month)
                    if key in seen:
                        raise ValueError(f"{code} {month} appears twice (also {seen[key]})")
                    if notices > applications:
                        raise ValueError(f"{notices:,} notices sent but only {applications:,} applications")
                    seen[key] = where
                    out.monthly.setdefault(code, {})[month] = (notices, applications)
                    monthly_lines.setdefault(code, {})[month] = where
                else:
                    site = site_from_fields(row)
                    key = ("means", code, site.name)
                    if key in seen:
                        raise ValueError(f"site {site.name!r} of {code} appears twice (also {seen[key]})")
                    if problems := site.problems():
                        raise ValueError("; ".join(problems))
                    seen[key] = where
                    sites.setdefault(code, []).append(site)
            except (ValueError, KeyError) as exc:
                out.problems.append(f"{where}: {exc}")
        if rows_here == 0:
            out.problems.append(f"{name}: no rows after the header")
    for code, months in out.monthly.items():
        previous: tuple[Month, int, int] | None = None
        for month in sorted(months):
            notices, applications = months[month]
            if previous is not None and (notices < previous[1] or applications < previous[2]):
                out.problems.append(f"{monthly_lines[code][month]}: cumulative figures of {code} fall from "
                                    f"{previous[0]} to {month}")
            previous = (month, notices, applications)
    out.means = {code: Means(tuple(s)) for code, s in sites.items()}
    return out


def write_csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(list(header))
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buf.getvalue()


def targets_rows(code: str, targets: dict[Month, Month | None]) -> list[list[str]]:
    return [[code, str(m), format_target(t)] for m, t in sorted(targets.items())]


def means_rows(code: str, means: Means) -> list[list[Any]]:
    rows = []
    for s in means.sites:
        rows.append([
            code, s.name, s.terminals, s.staff, s.kind.value, str(s.weekday_hours),
            ";".join(str(d) for d in sorted(s.after_hours_days)), f"{s.after_hours_until:%H:%M}",
            _weeks_text(s.saturdays), str(s.saturday_hours), _weeks_text(s.sundays), str(s.sunday_hours),
            s.opens_on.isoformat() if s.opens_on else "", s.closes_on.isoformat() if s.closes_on else "",
            _number(s.terminal_minutes_per_card), _number(s.staff_minutes_per_card)])
    return rows


def _weeks_text(weeks: frozenset[int]) -> str:
    if not weeks:
        return "none"
    if weeks == {1, 2, 3, 4, 5}:
        return "every"
    return ";".join(str(w) for w in sorted(weeks))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
