"""The package's shape: no import cycles, the core never imports an interface, the auth
adapters know only the token-source protocol, no module over 450 lines (imports under
TYPE_CHECKING aside; imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parent.parent / "src"
INTERFACES = {"integrations", "local", "cli", "testing", "__main__"}
# The httpx and requests adapters sit between the token sources and the interfaces: the
# broker's httpx_auth()/requests_auth() hand them out, so they may know no more than this.
ADAPTER_IMPORTS = {"freshtoken._token"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "freshtoken").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for stmt in node.orelse:
                visit(stmt)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return {m for m in found if m in known and m not in (name, "freshtoken")}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _is_interface(module: str) -> bool:
    parts = module.split(".")
    return len(parts) > 1 and parts[1] in INTERFACES


def test_no_import_cycles() -> None:
    graph = _graph()
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*trail, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
    assert not cycles, cycles[:5]


def test_the_core_imports_no_interface() -> None:
    upward = [
        f"{a} -> {b}"
        for a, targets in _graph().items()
        if not _is_interface(a)
        for b in targets
        if _is_interface(b)
    ]
    assert not upward, upward


def test_the_auth_adapters_know_only_the_token_source_protocol() -> None:
    wider = {
        name: sorted(m for m in targets if m not in ADAPTER_IMPORTS and ".auth." not in m)
        for name, targets in _graph().items()
        if name.startswith("freshtoken.auth.")
    }
    assert not any(wider.values()), wider


def test_no_module_is_over_450_lines() -> None:
    long = {
        name: n
        for name, path in _modules().items()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 450
    }
    assert not long, long


# Provider knowledge lives in the presets (provider/) and the provider's SDK integration; these
# are the only other modules that name one: the public names kept for the library's users, and
# the test server's imitation of it (its knobs and `--genesys`).
NAMES_A_PROVIDER = {
    "freshtoken",
    "freshtoken.testing._command",
    "freshtoken.testing._faults",
    "freshtoken.testing._model",
    "freshtoken.testing._server",
}


def test_the_core_names_no_provider() -> None:
    naming = {
        name
        for name, path in _modules().items()
        if not name.startswith(("freshtoken.provider", "freshtoken.integrations"))
        and "genesys" in path.read_text(encoding="utf-8").lower()
    }
    assert naming <= NAMES_A_PROVIDER, sorted(naming - NAMES_A_PROVIDER)
