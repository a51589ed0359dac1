"""CSV files of plans: documented headers, every bad row reported with its line number, encodings."""

from __future__ import annotations

from datetime import date, time

from mynacard.plans import csvfiles
from mynacard.plans.model import EVERY_WEEK, Hours, Means, Month, Site, SiteKind

KNOWN = {"131016", "011002", "271004"}
AS_OF = date(2016, 6, 17)


def _parse(*files: tuple[str, str | bytes]) -> csvfiles.ParsedFiles:
    return csvfiles.parse_files([(n, d.encode() if isinstance(d, str) else d) for n, d in files],
                                known_codes=KNOWN, as_of=AS_OF)


def test_good_files_of_each_kind() -> None:
    parsed = _parse(
        ("t.csv", "municipality_code,application_month,target_month\n131016,2016-04,2016-07\n"
                  "131016,2016-05,done\n011002,2016-05,2016-06\n"),
        ("m.csv", "month,municipality_code,applications_cumulative,notices_sent_cumulative\n"  # any order
                  "2016-05,131016,1000,700\n2016-06,131016,1100,900\n"),
        ("s.csv", "municipality_code,site,terminals,staff,saturdays,after_hours_days,kind,opens_on,"
                  "closes_on\n"
                  "131016,本庁,2,3,every,1;3,main,,\n131016,臨時窓口,1,2,none,,temporary,2016-07-01,2016-08-31\n"))
    assert parsed.problems == []
    assert parsed.kinds == {"t.csv": "targets", "m.csv": "monthly", "s.csv": "means"}
    assert parsed.targets == {"131016": {Month(2016, 4): Month(2016, 7), Month(2016, 5): None},
                              "011002": {Month(2016, 5): Month(2016, 6)}}
    assert parsed.monthly == {"131016": {Month(2016, 5): (700, 1000), Month(2016, 6): (900, 1100)}}
    sites = parsed.means["131016"].sites
    assert sites[0] == Site("本庁", terminals=2, staff=3, saturdays=EVERY_WEEK,
                            after_hours_days=frozenset({1, 3}))
    assert sites[1].kind is SiteKind.TEMPORARY and sites[1].closes_on == date(2016, 8, 31)
    assert parsed.rows == 7 and parsed.municipalities == {"131016", "011002"}


def test_every_bad_row_is_reported_with_its_line() -> None:
    parsed = _parse(
        ("t.csv", "municipality_code,application_month,target_month\n"
                  "131016,2016-04,2016-07\n"       # 2: fine
                  "131017,2016-04,2016-07\n"       # 3: wrong check digit
                  "131024,2016-04,2016-07\n"       # 4: valid code, not a known municipality
                  "011002,2016-4,2016-07\n"        # 5: not a month
                  "011002,2016-05,2016-04\n"       # 6: target before the application
                  "011002,2016-03,2016-05\n"       # 7: already over on the plan's day
                  "131016,2016-04,done\n"          # 8: duplicate of line 2
                  "131016,2016-05\n"               # 9: a field missing
                  "271004,2016-05,soon\n"),        # 10: not a target
        ("m.csv", "municipality_code,month,notices_sent_cumulative,applications_cumulative\n"
                  "131016,2016-05,800,700\n"       # 2: more notices than applications
                  "131016,2016-06,600,900\n"       # 3: fine on its own
                  "131016,2016-07,500,1000\n"      # 4: notices fall
                  "011002,2016-05,1.5,10\n"        # 5: not a whole number
                  "011002,2016-05,-1,10\n"),       # 6: negative
        ("s.csv", "municipality_code,site,terminals,staff,kind,weekday_hours,after_hours_days\n"
                  "131016,本庁,1,2,main,08:30-17:15,\n"
                  "131016,本庁,1,2,main,08:30-17:15,\n"  # 3: duplicate site
                  "131016,北,1,2,annex,08:30-17:15,\n"   # 4: unknown kind
                  "131016,南,1,2,branch,17:00-08:30,\n"  # 5: closes before it opens
                  "131016,東,1,2,branch,08:30-17:15,6\n"),  # 6: Sunday is not a weekday
        ("x.csv", "code,month\n131016,2016-05\n"),
        ("e.csv", ""),
        ("h.csv", "municipality_code,application_month,target_month\n"))
    lines = sorted(p.split(": ", 1)[0] for p in parsed.problems)
    assert lines == sorted([
        "t.csv:3", "t.csv:4", "t.csv:5", "t.csv:6", "t.csv:7", "t.csv:8", "t.csv:9", "t.csv:10",
        "m.csv:2", "m.csv:4", "m.csv:5", "m.csv:6",
        "s.csv:3", "s.csv:4", "s.csv:5", "s.csv:6",
        "x.csv:1", "e.csv", "h.csv"]), parsed.problems
    text = "\n".join(parsed.problems)
    for words in ("not a local government code", "unknown municipality 131024", "not a month",
                  "before the application month", "already over", "appears twice (also t.csv:2)",
                  "the header has 3", "not a month (YYYY-MM): 'soon'",
                  "800 notices sent but only 700 applications",
                  "fall from 2016-06 to 2016-07", "whole number", "kind must be", "unknown header",
                  "empty file", "no rows after the header"):
        assert words in text, words


def test_spreadsheet_encodings() -> None:
    body = "municipality_code,site,terminals,staff\n131016,本庁舎,3,4\n"
    for data in (body.encode("cp932"), b"\xef\xbb\xbf" + body.encode()):
        parsed = _parse(("s.csv", data))
        assert parsed.problems == [] and parsed.means["131016"].sites[0].name == "本庁舎"


def test_means_survive_export_and_import() -> None:
    means = Means((Site("本庁", terminals=3, staff=5, weekday_hours=Hours(time(8, 30), time(17, 15)),
                        after_hours_days=frozenset({0, 4}), after_hours_until=time(20, 0),
                        saturdays=frozenset({2, 4}), sundays=EVERY_WEEK, terminal_minutes_per_card=12.5),
                   Site("臨時", SiteKind.TEMPORARY, 1, 1, opens_on=date(2016, 7, 1),
                        closes_on=date(2016, 7, 31))))
    text = csvfiles.write_csv(csvfiles.MEANS_HEADER, csvfiles.means_rows("131016", means))
    parsed = _parse(("means.csv", text))
    assert parsed.problems == [] and parsed.means["131016"] == means
