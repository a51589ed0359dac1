"""The layer contract and the documented dependency graph (scripts/import_graph.py) hold for the code."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "import_graph.py"
_spec = importlib.util.spec_from_file_location("import_graph", _SCRIPT)
assert _spec is not None and _spec.loader is not None
graph = importlib.util.module_from_spec(_spec)
sys.modules["import_graph"] = graph
_spec.loader.exec_module(graph)


def _violations_of(module: str, source: str) -> list[str]:
    return graph.violations(list(graph.imports_of(source, module)))


def test_the_code_keeps_the_layer_contract() -> None:
    assert graph.violations(graph.all_imports()) == []


def test_work_goes_through_the_unit_of_work() -> None:
    assert graph.all_raw_transactions() == []
    caught = graph.raw_transactions("def f(ctx):\n    with ctx.db.begin() as conn:\n        pass\n",
                                    "mynacard.office.booking")
    assert caught == ["mynacard.office.booking:2: a raw transaction; open one with ctx.transaction()"]
    allowed = "def f(self):\n    with self.engine.begin() as c:\n        pass\n"
    assert graph.raw_transactions(allowed, "mynacard.db") == []


def test_architecture_md_shows_the_graph_the_code_has() -> None:
    assert graph.documented() == graph.mermaid(graph.graph(graph.all_imports())), (
        "docs/ARCHITECTURE.md's graph is stale: paste the output of scripts/import_graph.py into it")


@pytest.mark.parametrize(("module", "source", "why"), [
    ("mynacard.registry.service", "from mynacard.jpki import service\n", "registry (layer 1) imports jpki"),
    ("mynacard.cards.model", "def f():\n    from mynacard.window.service import x\n", "cards (layer 2) imports window"),
    ("mynacard.kiosk.service", "from mynacard.cards.tables import cards\n", "kiosk imports cards's tables"),
    ("mynacard.kiosk.service", "from mynacard.cards import tables\n", "kiosk imports cards's tables"),
    ("mynacard.portal.service", "from mynacard.jpki.certificates import _may_see\n", "imports private _may_see"),
    ("mynacard.office.service", "from mynacard.webkit.deps import render\n", "office's service imports the web kit"),
    ("mynacard.office.api", "from mynacard.web.app import create_app\n", "office (layer 4) imports web"),
    ("mynacard.webkit.deps", "from mynacard.web.app import create_app\n", "the web kit imports mynacard.web.app"),
    ("mynacard.webkit.deps", "from mynacard.cards import service\n", "the web kit imports mynacard.cards"),
])
def test_a_forbidden_import_is_caught(module: str, source: str, why: str) -> None:
    found = _violations_of(module, source)
    assert any(why in v for v in found), found


@pytest.mark.parametrize(("module", "source"), [
    ("mynacard.office.api", "from mynacard.webkit.deps import render\nfrom mynacard.webkit.params import IdPath\n"),
    ("mynacard.window.service", "from mynacard.office import service as office\n"),
    ("mynacard.office.cli", "from mynacard.bootstrap import wire\nfrom mynacard.plans.model import Means\n"),
    ("mynacard.schema", "from mynacard.cards import tables\n"),
    ("mynacard.jpki.issuance", "from mynacard.jpki.authorities import _seal_context\n"),
])
def test_what_the_contract_allows(module: str, source: str) -> None:
    assert _violations_of(module, source) == []
