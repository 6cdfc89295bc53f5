"""The house rules that keep the code readable, checked: no module imports in a circle, and no function in
``src/`` longer than ~60 lines unless it says why."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "robopg"
MAX_LINES = 60
# Functions allowed to be longer, with the reason (a long argparse or table-writing listing reads better whole).
LONG_FUNCTIONS: dict[str, str] = {}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """robopg modules (and names in them) that ``path`` imports, at module level or inside functions: a
    deferred import still closes a circle, only later."""
    name = _module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            target = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else [])) \
                if node.level else (node.module or "")
            if target.startswith("robopg"):
                found |= {target} | {f"{target}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("robopg")}
    return found


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    return cycles


def test_the_cycle_finder_finds_cycles():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_in_a_circle():
    modules = {_module_name(p): p for p in SRC.rglob("*.py")}
    # A package's __init__ gathering its own submodules is not a circle: its submodules never import it.
    graph = {m: {t for t in _imports(p) if t in modules and t != m and not t.startswith(m + ".")}
             for m, p in modules.items()}
    cycles = find_cycles(graph)
    assert not cycles, "import circles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_envs_and_native_do_not_import_each_other_both_ways():
    native = set().union(*(_imports(p) for p in (SRC / "native").glob("*.py")))
    assert not any(t.startswith("robopg.envs") for t in native)


def test_functions_are_short():
    long = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                key = f"{_module_name(path)}.{node.name}"
                if lines > MAX_LINES and key not in LONG_FUNCTIONS:
                    long.append(f"{key} ({lines} lines)")
    assert not long, "functions over ~60 lines (split them, or say why in LONG_FUNCTIONS): " + ", ".join(long)
