"""The folder layout is the data path: each part of cnl_core imports only from the parts before it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2] / "cnl_core"
ORDER = ["", "model", "data", "locate", "compare", "inspect", "evaluate", "experiments", "report", "cli"]  # "" = top-level modules


def _part(module: str) -> str:
    """'cnl_core.model.hooks' -> 'model'; top-level modules ('cnl_core.errors') -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else ""


def _imports(path: Path) -> list[str]:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    package = ".".join(parts[:-1])  # the package a relative import starts from (also for __init__.py)
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
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


def test_no_part_imports_a_later_part():
    wrong = []
    for path in ROOT.rglob("*.py"):
        if path.parent == ROOT:
            continue  # the package root (public API) and the shared base modules
        own = _part(".".join(path.relative_to(ROOT.parent).with_suffix("").parts))
        for target in _imports(path):
            if target.startswith("cnl_core.") and _part(target) in ORDER and \
                    ORDER.index(_part(target)) > ORDER.index(own):
                wrong.append(f"{path.relative_to(ROOT)} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_base_modules_import_no_part_and_the_library_never_imports_gradio():
    for path in ROOT.glob("*.py"):
        if path.name in ("__init__.py", "__main__.py"):
            continue
        assert all(_part(t) == "" for t in _imports(path) if t.startswith("cnl_core.")), path.name
    for path in ROOT.rglob("*.py"):
        assert not any(t.split(".")[0] == "gradio" for t in _imports(path)), path


def test_no_file_is_over_about_400_lines():
    files = [*ROOT.rglob("*.py"), *(ROOT.parent / "ui").rglob("*.py"), ROOT.parent / "dashboard.py"]
    long = {str(f.relative_to(ROOT.parent)): n for f in files if (n := len(f.read_text().splitlines())) > 420}
    assert not long, long
