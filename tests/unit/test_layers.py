"""The folder layout is the data path: each part of cnl_core imports only from itself and the parts before it, in
the order docs/architecture.md lists them. The order is read from that page, so the rule and its
documentation cannot drift apart, and every module is checked: a new folder must take its place in that list."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "cnl_core"
ARCHITECTURE = ROOT.parent / "docs" / "architecture.md"
PUBLIC_API = ("__init__.py", "__main__.py")  # the package root: the public API imports from every part


def listed_order() -> list[str]:
    """The parts as docs/architecture.md lists them: "" (cnl_core/*.py, the shared base), "model", ..."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    block = text[text.index("# Architecture") :]
    block = block[block.index("```") + 3 :]
    block = block[: block.index("```")]
    order = []
    for line in block.splitlines():
        m = re.match(r"cnl_core/(\*\.py|\w+/|\w+\.py)\s", line)
        if m:
            order.append("" if m.group(1) == "*.py" else m.group(1).rstrip("/"))
    return order


ORDER = listed_order()
PARTS = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}


def _part(module: str) -> str:
    """'cnl_core.model.hooks' or 'cnl_core.model' -> 'model'; top-level modules ('cnl_core.errors') -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PARTS else ""


def _imports(path: Path) -> list[str]:
    """Every module the file imports, at the top or inside a function (relative imports made absolute)."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    package = ".".join(parts[:-1])  # the package a relative import starts from (also for __init__.py)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                out += [target] if node.module else [f"{target}.{a.name}" for a in node.names]
            elif node.module:
                out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return out


def _modules() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if not (p.parent == ROOT and p.name in PUBLIC_API)]


def test_the_architecture_page_lists_every_part_once_after_the_shared_base():
    assert ORDER[0] == "" and len(ORDER) == len(set(ORDER)), ORDER
    assert set(ORDER[1:]) == PARTS, f"docs/architecture.md lists {sorted(ORDER[1:])}; cnl_core has {sorted(PARTS)}"


def test_no_module_imports_a_later_part():
    """Every module but the public API, the shared base included (it imports no part at all)."""
    checked, wrong = 0, []
    for path in _modules():
        own = _part(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        checked += 1
        for target in _imports(path):
            if target.split(".")[0] == "cnl_core" and ORDER.index(_part(target)) > ORDER.index(own):
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert checked > 60
    assert not wrong, "\n".join(wrong)


def test_the_library_never_imports_the_dashboard_or_gradio():
    for path in ROOT.rglob("*.py"):
        assert not any(t.split(".")[0] in ("gradio", "ui", "dashboard") for t in _imports(path)), path


def test_no_module_imports_another_module_private_names():
    """A helper two modules share is public (named without a leading underscore) where it is defined."""
    wrong = []
    for path in [*ROOT.rglob("*.py"), *(ROOT.parent / "ui").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")]
                if private:
                    wrong.append(f"{path.relative_to(ROOT.parent)}: {node.module} {private}")
    assert not wrong, "\n".join(wrong)


def test_no_file_is_over_about_400_lines():
    files = [*ROOT.rglob("*.py"), *(ROOT.parent / "ui").rglob("*.py"), ROOT.parent / "dashboard.py"]
    long = {str(f.relative_to(ROOT.parent)): n for f in files if (n := len(f.read_text().splitlines())) > 420}
    assert not long, long
