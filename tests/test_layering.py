"""The layering is a checked contract: toolkit at the bottom, viewer and trainer above it, and the
stick package below both commands that use it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    """Every module a file imports (module level and inside functions), resolved to dotted names."""
    tree = ast.parse(path.read_text("utf-8"))
    pkg = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def _files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_toolkit_imports_neither_viewer_nor_trainer():
    for f in _files("toolkit"):
        bad = {m for m in _imports(f) if m.split(".")[0] in ("viewer", "trainer")}
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_stick_package_imports_neither_correct_nor_validate():
    for f in _files("toolkit/stick"):
        bad = {
            m for m in _imports(f)
            if m.startswith(("toolkit.correct", "toolkit.validate", "toolkit.report"))
        }  # fmt: skip
        assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def test_validate_uses_the_stick_package_not_corrects_helpers():
    for name in ("validate.py", "report.py"):
        mods = _imports(ROOT / "toolkit" / name)
        assert not any(m.startswith("toolkit.correct") for m in mods), name


def test_one_weapon_side_rule():
    """Only toolkit/geometry.py decides which hand holds the stick; any other ``weapon_side``
    is a thin adapter that calls it (no second rule, e.g. a nearest-to-tip fallback).
    """
    own = []
    for pkg in ("toolkit", "trainer", "viewer"):
        for f in _files(pkg):
            src = f.read_text("utf-8")
            for n in ast.walk(ast.parse(src)):
                if not isinstance(n, ast.FunctionDef) or "weapon_side" not in n.name:
                    continue
                if f.relative_to(ROOT).as_posix() == "toolkit/geometry.py":
                    continue
                calls = {
                    (
                        c.func.attr
                        if isinstance(c.func, ast.Attribute)
                        else getattr(c.func, "id", "")
                    )
                    for c in ast.walk(n)
                    if isinstance(c, ast.Call)
                }
                body = ast.get_source_segment(src, n) or ""
                delegates = "weapon_side" in calls or "rule" in calls
                if not (delegates and "toolkit.geometry" in body or "geometry.weapon_side" in body):
                    own.append(f"{f.relative_to(ROOT)}:{n.name}")
    assert not own, own


def test_viewer_and_trainer_do_not_import_each_other():
    for pkg, other in (("viewer", "trainer"), ("trainer", "viewer")):
        for f in _files(pkg):
            bad = {m for m in _imports(f) if m.split(".")[0] == other}
            assert not bad, f"{f.relative_to(ROOT)} imports {sorted(bad)}"


def _module_graph() -> dict[str, set[str]]:
    """Our modules -> the modules of ours each imports (anywhere in the file)."""
    files = {}
    for pkg in ("toolkit", "viewer", "trainer"):
        for f in _files(pkg):
            parts = f.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            files[name] = f
    graph = {}
    for name, f in files.items():
        deps = set()
        for m in _imports(f):
            # ``from toolkit import geometry`` names the module toolkit.geometry.
            while m and m not in files:
                m = m.rpartition(".")[0]
            if m and m != name and not name.startswith(m + "."):
                deps.add(m)
        graph[name] = deps
    return graph


def test_no_import_circles_between_our_modules():
    """Every import counts, also those inside functions: a deferred import hides a circle from
    Python's import machinery, not from a reader. Packages' ``__init__`` re-exports are edges too.
    """
    graph = _module_graph()
    cycles, state, stack = [], {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycles.append(stack[stack.index(m) :] + [m])
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
