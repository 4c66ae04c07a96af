"""The house rules the linters do not state: module size, imports inside functions, type: ignore.

ruff, mypy and the import contracts run in ``make lint`` (part of ``make test``); these are the
rules of DEVELOPERS.md that no tool checks, measured over the whole tree.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [ROOT / d for d in ("gateway", "pki", "adapters")]
TREE = [*SHIPPED, *(ROOT / d for d in ("tests", "bench", "conformance"))]


def _files(dirs: list[Path]) -> list[Path]:
    return sorted(p for d in dirs for p in d.rglob("*.py"))


def _function_imports(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out += [n.lineno for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return sorted(set(out))


def test_no_shipped_module_is_over_500_lines():
    big = {str(p.relative_to(ROOT)): n for p in _files(SHIPPED)
           if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert big == {}


def test_at_most_15_imports_inside_functions_in_the_whole_tree_each_with_a_reason():
    found = {(p, line) for p in _files(TREE) for line in _function_imports(p)}
    assert len(found) <= 15, sorted(f"{p.relative_to(ROOT)}:{n}" for p, n in found)
    for path, line in found:
        lines = path.read_text(encoding="utf-8").splitlines()
        said = "".join(lines[max(0, line - 4):line])  # the import's line or the comment block above it
        assert "#" in said, f"{path.relative_to(ROOT)}:{line}: say why this import is inside a function"


def test_type_ignores_are_few_and_each_names_its_code_and_reason():
    ignores = [(p, n, line) for p in _files(TREE)
               for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1) if re.search(r"#\s*type:\s*ignore", line)]
    assert len(ignores) <= 10, [f"{p.relative_to(ROOT)}:{n}" for p, n, _ in ignores]
    for path, n, line in ignores:
        assert re.search(r"type: ignore\[[a-z-, ]+\]\s+#\s*\S", line), f"{path.relative_to(ROOT)}:{n}: {line.strip()}"


def test_the_configuration_hides_nothing():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    tool = config["tool"]
    assert all("ignore_imports" not in c for c in tool["importlinter"]["contracts"])
    assert all(not o.get("ignore_errors") for o in tool["mypy"].get("overrides", []))
    assert tool["mypy"]["disallow_untyped_defs"] is True and tool["ruff"]["line-length"] == 110
