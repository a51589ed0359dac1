"""Property-based fuzzing of the app's whole OpenAPI document with schemathesis, in process (the ASGI app), as
every role that has routes — and the seeded data that lets it get past 404s.

:func:`fuzz` generates cases for each operation (schema-conforming and schema-violating ones), sends each case
as every caller and records every response that fails a check (above all ``not_a_server_error``: no input ever
answers 5xx). It does not stop at the first failure: the test reports them all at once, each with the caller,
the status and a ``curl`` line to replay it. Generation is seeded (:data:`SEED_ENV`), so a failure replays.
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyStrategyDefinition
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

SEED_ENV = "MYNACARD_FUZZ_SEED"
"""The seed of every operation's generation: a number replays a run; ``random`` draws a fresh one (printed)."""
EXAMPLES_ENV = "MYNACARD_FUZZ_EXAMPLES"
"""Examples per operation and generation mode (positive, negative); small by default to bound the time."""
ONLY_ENV = "MYNACARD_FUZZ_ONLY"
"""Fuzz only the operations whose label (``GET /api/cards/{card_id}``) contains this text: to replay one finding
quickly (each operation's cases depend on the seed alone, not on the operations before it)."""
DEFAULT_SEED = 20260406
DEFAULT_EXAMPLES = 8


def fuzz_seed() -> int:
    value = os.environ.get(SEED_ENV, "")
    if value == "random":
        return random.SystemRandom().randrange(2**32)
    return int(value) if value else DEFAULT_SEED


def fuzz_examples() -> int:
    return int(os.environ.get(EXAMPLES_ENV, "") or DEFAULT_EXAMPLES)


@dataclass(frozen=True)
class Caller:
    """Who sends a case: a role's name, with its credentials (an API key header or a session cookie)."""

    name: str
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Finding:
    operation: str
    caller: str
    status: int
    mode: str
    message: str
    curl: str

    def __str__(self) -> str:
        return f"{self.operation} as {self.caller} ({self.mode}): HTTP {self.status}\n  {self.message}\n  {self.curl}"


@dataclass
class Report:
    seed: int
    examples: int
    findings: list[Finding] = field(default_factory=list)
    calls: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    unsatisfiable: list[str] = field(default_factory=list)
    stateful: bool = False
    cut_short: list[str] = field(default_factory=list)
    """Stateful: the callers whose exploration ended early (see :func:`stateful`)."""

    def distinct(self) -> list[Finding]:
        """One finding per operation, caller and status (the first one seen)."""
        seen: dict[tuple[str, str, int], Finding] = {}
        for f in self.findings:
            seen.setdefault((f.operation, f.caller, f.status), f)
        return list(seen.values())

    def summary(self) -> str:
        codes = ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items()))
        if self.stateful:
            short = f"; ended early for {', '.join(self.cut_short)}" if self.cut_short else ""
            return (f"stateful: {self.calls} calls in {self.seconds:.0f} s, {self.examples} scenarios per caller "
                    f"(derandomized: a failure replays as it is); statuses {codes}{short}")
        return (f"fuzzing: {self.calls} calls in {self.seconds:.0f} s, seed {self.seed} (replay: {SEED_ENV}="
                f"{self.seed} [{ONLY_ENV}='GET /api/…'] pytest tests/web/test_fuzz.py), {self.examples} examples per "
                f"operation and mode; statuses {codes}")


def _conforms_when_ok(ctx: Any, response: Any, case: Any) -> Any:
    """The response matches its documented schema — for successful answers (a 4xx refusal has a body of its
    own: ``{"error", "detail"}``, not FastAPI's validation schema)."""
    if 200 <= response.status_code < 300:
        return response_schema_conformance(ctx, response, case)
    return None


CHECKS = [not_a_server_error]
"""The checks every response must pass. Schema conformance of 2xx answers is added where cheap: see
:func:`fuzz`'s ``conformance``."""


def seeded_parameters(values: Mapping[str, Sequence[Any]]) -> Callable[[Any, Any], Any]:
    """A ``before_generate_path_parameters``/``_query`` hook: each generated parameter whose name is in
    ``values`` is, half of the time, replaced by one of the seeded values, so that cases reach data that
    exists instead of stopping at 404."""

    def hook(context: Any, strategy: Any) -> Any:
        def swap(params: Any) -> Any:
            if not isinstance(params, dict):
                return st.just(params)
            return st.fixed_dictionaries({
                k: (st.sampled_from([v, *values[k]]) if values.get(k) else st.just(v)) for k, v in params.items()})

        return strategy.flatmap(swap)

    return hook


def load_schema(app: Any, path: str, *, seeds: Mapping[str, Sequence[Any]] | None = None,
                document: dict[str, Any] | None = None, protect: Mapping[str, tuple[Sequence[Any], Any]] | None = None,
                ) -> Any:
    """The app's OpenAPI document (``path``, or ``document`` when given) as a schemathesis schema; the ASGI
    app answers the calls, in process. ``protect`` maps a path parameter to values no case may name and the one
    to use instead (the callers' own accounts: a case that disables or re-keys one would leave every later case
    of that caller at 401)."""
    if document is None:
        schema = schemathesis.openapi.from_asgi(path, app)
    else:
        schema = schemathesis.openapi.from_dict(document)
        schema.app = app
        schema.location = path
    if protect:
        def spare(context: Any, params: Any) -> Any:
            if isinstance(params, dict):
                for name, (kept, instead) in protect.items():
                    if params.get(name) in kept:
                        params[name] = instead
            return params

        schema.hook("map_path_parameters")(spare)
    if seeds:
        schema.hook("before_generate_path_parameters")(seeded_parameters(seeds))
        schema.hook("before_generate_query")(seeded_parameters(seeds))
    return schema


def pages_document(app: Any) -> dict[str, Any]:
    """An OpenAPI document of the routes the app's own document leaves out (``include_in_schema=False``: the
    pages and their forms), so that they are fuzzed as the API is."""
    import copy
    import importlib

    from fastapi.openapi.utils import get_openapi
    from fastapi.routing import APIRoute

    from mynacard.web.app import PART_ROUTERS

    routes = [*app.routes, *(r for m in PART_ROUTERS for r in importlib.import_module(m).router.routes)]
    hidden = []
    for route in routes:
        if isinstance(route, APIRoute) and not route.include_in_schema:
            shown = copy.copy(route)
            shown.include_in_schema = True
            hidden.append(shown)
    document: dict[str, Any] = get_openapi(title="mynacard pages", version="0", routes=hidden)
    return document


def _label(operation: Any) -> str:
    return f"{operation.method.upper()} {operation.path}"


def fuzz(schema: Any, callers: Sequence[Caller], *, seed: int, examples: int,
         include: Callable[[str], bool] = lambda label: True, conformance: bool = True,
         modes: Iterable[str] = ("positive", "negative")) -> Report:
    """Send ``examples`` generated cases per operation and mode as every caller; record every failed check."""
    report = Report(seed, examples)
    started = time.monotonic()
    checks = [*CHECKS, *([_conforms_when_ok] if conformance else [])]
    for result in schema.get_all_operations():
        operation = result.ok()
        label = _label(operation)
        if not include(label) or os.environ.get(ONLY_ENV, "") not in label:
            continue
        for mode in modes:
            _run_operation(operation, label, mode, callers, checks, report)
    report.seconds = time.monotonic() - started
    return report


def _run_operation(operation: Any, label: str, mode: str, callers: Sequence[Caller], checks: list[Any],
                   report: Report) -> None:
    strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))

    edged: list[bool] = []

    @hypothesis.seed(report.seed)
    @settings(max_examples=report.examples, database=None, deadline=None, derandomize=False,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck), print_blob=False)
    @hypothesis.given(case=strategy)
    def run(case: Any) -> None:
        cases = [case]
        if mode == "positive" and not edged:  # the first valid case, pushed over each edge once
            edged.append(True)
            cases += list(edges(operation, case))
        for each in cases:
            _send(each, label, mode, callers, checks, report)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        report.unsatisfiable.append(f"{label} ({mode})")  # e.g. nothing to violate in a route without inputs


def _send(case: Any, label: str, mode: str, callers: Sequence[Caller], checks: list[Any], report: Report) -> None:
    for caller in callers:
        headers = dict(caller.headers)
        try:
            response = case.call(headers=headers, cookies=dict(caller.cookies), allow_redirects=False)
        except Exception as exc:  # the app itself raised: without the safety net, a 500
            report.findings.append(Finding(label, caller.name, 500, mode, f"the app raised {type(exc).__name__}",
                                           _curl(case, headers, caller.cookies)))
            continue
        report.calls += 1
        report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except FailureGroup as exc:
            message = "; ".join(sorted({f.title for f in exc.exceptions}))
            report.findings.append(Finding(label, caller.name, response.status_code, mode, message,
                                           _curl(case, headers, caller.cookies)))


BIG = 2**64
"""Beyond every integer column (signed 64-bit)."""
LONG = "x" * 5000
"""Longer than every text column."""


def _resolve(raw: Mapping[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        found: Any = raw
        for part in node["$ref"].lstrip("#/").split("/"):
            found = found.get(part, {}) if isinstance(found, dict) else {}
        node = found
    return node


def _kind(raw: Mapping[str, Any], schema: Any) -> str | None:
    """``integer``, ``string`` or None, seeing through ``anyOf`` with null (an optional value)."""
    schema = _resolve(raw, schema)
    if not isinstance(schema, dict):
        return None
    for option in schema.get("anyOf", [schema]):
        option = _resolve(raw, option)
        if isinstance(option, dict) and option.get("type") in ("integer", "string"):
            return str(option["type"])
    return None


def edges(operation: Any, case: Any) -> Iterator[Any]:
    """Copies of a valid ``case`` pushed over one edge each: every integer parameter or body property far
    beyond 64 bits and below zero, every text one very long, and bodies of the wrong shape (an object where
    a list is due and the reverse, an empty object, a bare string)."""
    raw = operation.schema.raw_schema

    def copy(**changes: Any) -> Any:
        values = {"path_parameters": dict(case.path_parameters or {}), "query": dict(case.query or {}),
                  "headers": dict(case.headers or {}), "body": case.body, "media_type": case.media_type}
        values.update(changes)
        if values["body"] is NOT_SET or values["media_type"] is None:
            values.pop("body")
            values.pop("media_type")
        return operation.Case(**values)

    declared = raw["paths"][operation.path][operation.method.lower()]
    for where, location in (("path_parameters", "path"), ("query", "query")):
        for p in declared.get("parameters", []):
            if p.get("in") != location:
                continue
            kind = _kind(raw, p.get("schema"))
            values = [BIG, -BIG] if kind == "integer" else [LONG] if kind == "string" else []
            for value in values:
                yield copy(**{where: {**(getattr(case, where, None) or {}), p["name"]: value}})
    if case.media_type != "application/json" or case.body is NOT_SET:
        return
    for wrong in ({}, [], "x", {"unexpected": [BIG]}):
        yield copy(body=wrong)
    body = case.body
    target = body[0] if isinstance(body, list) and body and isinstance(body[0], dict) else body
    if not isinstance(target, dict):
        return
    content = declared.get("requestBody", {}).get("content", {})
    schema = _resolve(raw, content.get("application/json", {}).get("schema", {}))
    if schema.get("type") == "array":
        schema = _resolve(raw, schema.get("items", {}))
    for name, prop in (schema.get("properties") or {}).items():
        kind = _kind(raw, prop)
        for value in ([BIG, -BIG] if kind == "integer" else [LONG] if kind == "string" else []):
            changed = {**target, name: value}
            yield copy(body=[changed, *body[1:]] if isinstance(body, list) else changed)


def _curl(case: Any, headers: Mapping[str, str], cookies: Mapping[str, str]) -> str:
    all_headers = dict(headers)
    if cookies:
        all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    try:
        line: str = case.as_curl_command(headers=all_headers)
    except Exception as exc:  # a curl line is a convenience: never lose the finding over it
        line = f"(no curl line: {type(exc).__name__})"
    return re.sub(r"\s+", " ", line)


# --- stateful: create, then use what was created --------------------------------------------------------------

Link = tuple[tuple[str, str, str], tuple[str, str], dict[str, str]]
"""(method, path, status) of a creating operation, (method, path) of one that uses what it made, and the
link's parameters, e.g. ``{"path.site_id": "$response.body#/site_id"}``."""


def add_links(document: dict[str, Any], links: Sequence[Link]) -> dict[str, Any]:
    """OpenAPI links from each creating operation's answer to the operations that use what it created (FastAPI
    writes none), so that schemathesis' state machine follows them: create a site, then give it shifts."""
    paths = document["paths"]
    for (method, path, status), (to_method, to_path), parameters in links:
        target = paths[to_path][to_method.lower()]["operationId"]
        response = paths[path][method.lower()]["responses"].setdefault(status, {"description": "created"})
        response.setdefault("links", {})[f"{to_method.lower()}-{target}"] = {
            "operationId": target, "parameters": parameters}
    return document


def stateful(schema: Any, callers: Sequence[Caller], *, scenarios: int, steps: int) -> Report:
    """Schemathesis' state machine over the linked operations, as each caller: each scenario creates things
    and follows the links to use them; every response must pass :data:`CHECKS`. Derandomized: a failure
    replays as it is."""
    report = Report(0, scenarios, stateful=True)
    started = time.monotonic()
    for caller in callers:
        base = schema.as_state_machine()

        class Machine(base):  # type: ignore[misc, valid-type]
            def get_call_kwargs(self, case: Any, caller: Caller = caller) -> dict[str, Any]:
                return {"headers": dict(caller.headers), "cookies": dict(caller.cookies), "allow_redirects": False}

            def validate_response(self, response: Any, case: Any, additional_checks: Any = None,
                                  caller: Caller = caller, **kwargs: Any) -> None:
                report.calls += 1
                report.statuses[response.status_code] = report.statuses.get(response.status_code, 0) + 1
                try:
                    case.validate_response(response, checks=CHECKS, headers=dict(caller.headers))
                except FailureGroup as exc:
                    report.findings.append(Finding(
                        _label(case.operation), caller.name, response.status_code, "stateful",
                        "; ".join(sorted({f.title for f in exc.exceptions})),
                        _curl(case, caller.headers, caller.cookies)))

        try:
            Machine.run(settings=settings(max_examples=scenarios, stateful_step_count=steps, derandomize=True,
                                          database=None, deadline=None, suppress_health_check=list(HealthCheck),
                                          phases=[Phase.generate], print_blob=False))
        except FlakyStrategyDefinition:
            # The server's data outlives a scenario (a name taken by an earlier one answers 409, so a link has
            # nothing to follow), which Hypothesis' replay bookkeeping reads as flaky generation: the exploration
            # for this caller ends there; what the calls so far found is kept and checked.
            report.cut_short.append(caller.name)
    report.seconds = time.monotonic() - started
    return report
