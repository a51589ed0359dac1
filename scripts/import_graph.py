"""The dependency graph of mynacard's parts, read from the code, and the layer contract it must keep.

``python scripts/import_graph.py`` prints the graph as the Mermaid block that docs/ARCHITECTURE.md carries;
``--write`` puts it there; ``--check`` fails (exit 1) when the block in docs/ARCHITECTURE.md differs from the
code or the code breaks the contract below. The test suite runs the same check (tests/test_architecture.py),
so neither can drift.

The contract:
- a part imports only parts in lower layers (or in its own layer when the pair is listed as a peer);
- a part's HTTP room (``api.py``, ``*_pages.py``, ``*_app.py``) may also import the web kit (``webkit``: deps,
  i18n, params, errors, csrf), which imports only the foundation and accounts — never the app (``web``) or
  another part; no other room imports the kit, and only the composition imports ``web``;
- composition rooms (a part's ``cli.py``, ``demo.py``, ``testing.py``, and the top-level wiring: the CLI, the
  bootstrap of reactions, the schema, the migrations) may import any part: they sit above all of them;
- a part never imports another part's ``tables`` (its data is reached through that part's services);
- nothing imports a private name (``_x``) from a module of another part;
- a transaction is opened raw (``….db.begin()``, ``….engine.begin()``) only by ``db``, ``bus``, ``context`` and
  the migrations runner: everything else opens a unit of work with ``ctx.transaction()``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mynacard"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
BEGIN, END = "<!-- import-graph:begin -->", "<!-- import-graph:end -->"

FOUNDATION = "foundation"
"""The top-level modules (db, bus, context, clock, calendar, config, errors, principal …) form one part."""

LAYERS: tuple[tuple[str, ...], ...] = (
    (FOUNDATION,),
    ("registry",),
    ("accounts", "cards"),
    ("chip", "jpki", "webkit"),
    ("office", "kiosk", "exchange"),
    ("window", "portal"),
    ("mykey", "plans"),
    ("jobs",),
    ("sim",),
    ("web",),
    ("app",),
)
"""Lowest first. ``app`` is the composition: the CLI, the bootstrap of reactions and the migrations."""

APP_MODULES = {"cli", "bootstrap", "migrate", "schema"}
"""Top-level modules that wire every part together (they sit above everything)."""

PEERS: frozenset[tuple[str, str]] = frozenset()
"""Same-layer imports that are allowed (importer, imported); none today."""

WEB_KIT = "webkit"
"""The web helpers a part's HTTP room imports (a package that imports only the foundation and accounts)."""

COMPOSITION_ROOMS = frozenset({"cli", "demo", "testing"})


def room_of(module: str) -> str:
    """``composition``, ``http`` or ``core`` for a part's module (see the contract above)."""
    last = module.rsplit(".", 1)[-1]
    if part_of(module) == "app" or last in COMPOSITION_ROOMS:
        return "composition"
    if last == "api" or last.endswith(("_pages", "_api", "_app")):
        return "http"
    return "core"


@dataclass(frozen=True)
class Import:
    importer: str
    """Dotted module name of the importing file."""
    imported: str
    """Dotted module name imported (for ``from m import n``: ``m``, and ``m.n`` when that is a module)."""
    names: tuple[str, ...]
    line: int


def part_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "mynacard":
        return ""
    top = parts[1]
    if (PACKAGE / top).is_dir():
        return "app" if top == "migrations" else top
    return "app" if top in APP_MODULES else FOUNDATION


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    names = list(rel.parts)
    if names[-1] == "__init__":
        names.pop()
    return ".".join(names)


def imports_of(source: str, module: str) -> Iterator[Import]:
    """Every import of a mynacard module in one file (also those inside functions and TYPE_CHECKING)."""
    package = module if module.endswith("__init__") else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("mynacard."):
                    yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base == "mynacard" or base.startswith("mynacard."):
                yield Import(module, base, tuple(a.name for a in node.names), node.lineno)


def all_imports(package: Path = PACKAGE) -> list[Import]:
    out: list[Import] = []
    for path in sorted(package.rglob("*.py")):
        out.extend(imports_of(path.read_text(encoding="utf-8"), module_name(path)))
    return out


def _is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _layer(part: str) -> int:
    for i, layer in enumerate(LAYERS):
        if part in layer:
            return i
    raise KeyError(f"part {part!r} is in no layer of scripts/import_graph.py")


def violations(imports: Iterable[Import]) -> list[str]:
    """What breaks the contract, one line each (file:line: why)."""
    out: list[str] = []
    for imp in imports:
        a, b = part_of(imp.importer), part_of(imp.imported)
        where = f"{imp.importer}:{imp.line}"
        if a == WEB_KIT and b not in (FOUNDATION, "accounts", WEB_KIT):
            out.append(f"{where}: the web kit imports {imp.imported} (it may import only the foundation, "
                       "accounts and itself, so that a part's pages never pull in the app)")
        if not a or not b or a == b:
            continue
        targets = [imp.imported] + [f"{imp.imported}.{n}" for n in imp.names if _is_module(f"{imp.imported}.{n}")]
        if a != "app" and b != FOUNDATION and any(t.split(".")[-1] == "tables" for t in targets):
            out.append(f"{where}: {a} imports {b}'s tables ({imp.imported})")
        private = [n for n in imp.names if n.startswith("_") and not n.startswith("__")]
        if private:
            out.append(f"{where}: {a} imports private {', '.join(private)} from {imp.imported}")
        room = room_of(imp.importer)
        if room == "composition":
            continue
        if b == WEB_KIT:
            if room != "http" and a != "web":  # the app mounts every part and uses the kit itself
                out.append(f"{where}: {a}'s {imp.importer.rsplit('.', 1)[-1]} imports the web kit: only HTTP rooms do")
            continue
        la, lb = _layer(a), _layer(b)
        if lb > la or (lb == la and (a, b) not in PEERS):
            out.append(f"{where}: {a} (layer {la}) imports {b} (layer {lb}): {imp.imported}")
    return out


RAW_TRANSACTIONS_ALLOWED = frozenset({"mynacard.db", "mynacard.bus", "mynacard.context", "mynacard.migrate"})


def raw_transactions(source: str, module: str) -> list[str]:
    """Where a module opens a transaction past the unit of work (``x.db.begin()`` or ``x.engine.begin()``)."""
    if module in RAW_TRANSACTIONS_ALLOWED:
        return []
    out = []
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "begin"
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr in ("db", "engine")):
            out.append(f"{module}:{node.lineno}: a raw transaction; open one with ctx.transaction()")
    return out


def all_raw_transactions(package: Path = PACKAGE) -> list[str]:
    out: list[str] = []
    for path in sorted(package.rglob("*.py")):
        out.extend(raw_transactions(path.read_text(encoding="utf-8"), module_name(path)))
    return out


def graph(imports: Iterable[Import]) -> dict[str, set[str]]:
    """Which part uses which, as the layer rule sees it: composition rooms, the web app above all parts and
    the web kit that every HTTP room imports are left out (they would connect everything to everything)."""
    edges: dict[str, set[str]] = {}
    for imp in imports:
        a, b = part_of(imp.importer), part_of(imp.imported)
        if (not a or not b or a == b or a in ("app", "web", WEB_KIT) or b in ("web", WEB_KIT)
                or room_of(imp.importer) == "composition"):
            continue
        edges.setdefault(a, set()).add(b)
    return edges


def mermaid(edges: dict[str, set[str]]) -> str:
    """The graph as Mermaid, parts top-down by layer; edges into the foundation are left out (every part
    has one) and so are edges that a longer path already implies, to keep the picture readable."""
    def reach(start: str, skip: tuple[str, str]) -> set[str]:
        seen: set[str] = set()
        todo = [start]
        while todo:
            node = todo.pop()
            for nxt in edges.get(node, ()):
                if (node, nxt) != skip and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    lines = ["```mermaid", "graph TD"]
    for a in sorted(edges, key=lambda p: (_layer(p), p)):
        for b in sorted(edges[a], key=lambda p: (_layer(p), p)):
            if b == FOUNDATION or b in reach(a, (a, b)):
                continue
            lines.append(f"  {a} --> {b}")
    lines.append("```")
    return "\n".join(lines)


def documented(doc: Path = DOC) -> str:
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        return ""
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def main(argv: list[str]) -> int:
    imports = all_imports()
    drawn = mermaid(graph(imports))
    if "--write" in argv:
        text = DOC.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        DOC.write_text(f"{head}{BEGIN}\n{drawn}\n{END}{rest.split(END, 1)[1]}", encoding="utf-8")
        return 0
    if "--check" not in argv:
        print(drawn)
        return 0
    problems = violations(imports) + all_raw_transactions()
    if documented() != drawn:
        problems.append(f"docs/ARCHITECTURE.md's graph differs from the code: run scripts/import_graph.py and "
                        f"paste its output between {BEGIN} and {END}")
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
