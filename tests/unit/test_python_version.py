"""The Python we promise is the Python the code needs.

pyproject's requires-python, the README's "Needs Python X+" and the Space's python_version agree, and no module
uses syntax or standard-library names newer than that floor. Why 3.11 and not 3.10: transformers >= 5.24
(requirements.txt; generation.py's cache API) is published for Python 3.11 and later only (the newest
transformers PyPI offers 3.10 is 5.20), and the CLI reads TOML configs with tomllib (3.11).
"""

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOOR = tuple(
    int(x)
    for x in re.fullmatch(
        r">=\s*(\d+)\.(\d+)",
        tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["requires-python"].strip(),
    ).groups()
)

# Standard-library names added after 3.10 (module, name; None: the module): the version that added them.
NEWER = {
    ("tomllib", None): (3, 11),
    ("typing", "Self"): (3, 11),
    ("typing", "Never"): (3, 11),
    ("typing", "LiteralString"): (3, 11),
    ("typing", "assert_never"): (3, 11),
    ("typing", "NotRequired"): (3, 11),
    ("enum", "StrEnum"): (3, 11),
    ("datetime", "UTC"): (3, 11),
    ("asyncio", "TaskGroup"): (3, 11),
    ("asyncio", "timeout"): (3, 11),
    ("contextlib", "chdir"): (3, 11),
    ("hashlib", "file_digest"): (3, 11),
    ("itertools", "batched"): (3, 12),
    ("typing", "override"): (3, 12),
    ("typing", "TypeAliasType"): (3, 12),
    ("math", "sumprod"): (3, 12),
    ("types", "get_original_bases"): (3, 12),
    ("calendar", "Month"): (3, 12),
    ("warnings", "deprecated"): (3, 13),
    ("copy", "replace"): (3, 13),
    ("typing", "TypeIs"): (3, 13),
    ("typing", "ReadOnly"): (3, 13),
    ("os", "process_cpu_count"): (3, 13),
    ("sys", "_is_gil_enabled"): (3, 13),
    ("annotationlib", None): (3, 14),
    ("string", "templatelib"): (3, 14),
}
KEYWORDS = {"onexc": (3, 12)}  # shutil.rmtree(onexc=...)
BUILTINS = {"ExceptionGroup": (3, 11), "BaseExceptionGroup": (3, 11)}


def newer_than(source: str, floor: tuple[int, int]) -> list[str]:
    """What in this source needs a Python newer than `floor`: syntax (parsed as that version) or names."""
    try:
        tree = ast.parse(source, feature_version=floor)
    except SyntaxError as exc:
        return [f"syntax of a later Python: {exc.msg} (line {exc.lineno})"]
    found = []
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.ImportFrom) and node.module:
            pairs = [(node.module, a.name) for a in node.names] + [(node.module, None)]
        elif isinstance(node, ast.Import):
            pairs = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            pairs = [(node.value.id, node.attr)]
        elif isinstance(node, ast.Name) and BUILTINS.get(node.id, (0, 0)) > floor:
            found.append(f"{node.id} (Python {'.'.join(map(str, BUILTINS[node.id]))})")
        elif isinstance(node, ast.Call):
            found += [
                f"keyword {k.arg}= (Python {'.'.join(map(str, KEYWORDS[k.arg]))})"
                for k in node.keywords
                if k.arg in KEYWORDS and KEYWORDS[k.arg] > floor
            ]
        found += [
            f"{m if n is None else f'{m}.{n}'} (Python {'.'.join(map(str, NEWER[m, n]))})"
            for m, n in pairs
            if (m, n) in NEWER and NEWER[m, n] > floor
        ]
    return found


def test_the_checker_finds_what_a_floor_lacks():
    assert newer_than("import tomllib\nfrom itertools import batched\n", (3, 11)) == ["itertools.batched (Python 3.12)"]
    assert newer_than("import tomllib\n", (3, 10)) == ["tomllib (Python 3.11)"]
    assert newer_than("raise ExceptionGroup('x', [])\n", (3, 10))
    assert newer_than("try:\n    pass\nexcept* ValueError:\n    pass\n", (3, 10))  # exception groups: 3.11
    assert newer_than("import shutil\nshutil.rmtree('x', onexc=print)\n", (3, 11))
    assert not newer_than("try:\n    pass\nexcept* ValueError:\n    pass\n", (3, 11))


def test_no_module_needs_a_python_newer_than_the_one_promised():
    files = [
        p
        for d in ("cnl_core", "ui", "tests", "scripts", "bench")
        for p in (ROOT / d).rglob("*.py")
        if ".env" not in p.parts
    ]
    found = {
        str(p.relative_to(ROOT)): got
        for p in [*files, ROOT / "dashboard.py"]
        if (got := newer_than(p.read_text(encoding="utf-8"), FLOOR))
    }
    assert len(files) > 100 and not found, found


def test_every_place_states_the_same_python():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    stated = re.search(r"Needs Python (\d+)\.(\d+)\+", readme)
    space = re.search(r'^python_version: "(\d+)\.(\d+)"', readme, re.M)
    assert stated and tuple(map(int, stated.groups())) == FLOOR
    assert space and tuple(map(int, space.groups())) >= FLOOR  # the Hugging Face Space runs a supported one
    assert sys.version_info[:2] >= FLOOR
