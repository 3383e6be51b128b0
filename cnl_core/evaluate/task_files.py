"""lm-eval task folders and YAML files, checked before the harness reads them.

Why: the harness walks an include path for `**/*.yaml` and, where a file says `!function x.fn`,
imports x.py from beside it when the task loads. So `--include-path /` walked the whole disk inside
the dashboard's shared queue, a malformed YAML was skipped and then reported as "unknown task", and
on a shared dashboard an uploaded YAML could name uploaded Python. Here a folder is walked with a
bound (fields.TASK_FOLDER_ENTRIES), every YAML is parsed without constructing anything (unknown tags
read as text) and a malformed one is named with its line; in strict mode (shared dashboards,
uploaded files) any YAML tag, a Jinja template reaching for `__` attributes, remote code, and data
or includes outside the folder (or the operator's allowed folders) are refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import fields as F
from ..errors import HarnessError
from ..paths import cache_root

TASK_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet")
_SKIP = {"__pycache__", ".ipynb_checkpoints", ".git"}


def uploads_root() -> Path:
    """Where visitors' checked task files go, a folder per session (cache/tasks/<session>/)."""
    return cache_root() / "tasks"


class _Refused(yaml.MarkedYAMLError):
    """Something a strict read does not accept (a tag, an alias), at a place in the file."""


class _Tagged(str):
    """A tagged scalar read as its text (lenient mode): e.g. `!function utils.fn` stays the string."""


class _DataLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python objects) that reads unknown tags as text instead of failing."""


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with every non-standard tag refused (`!function` imports Python), and aliases too
    (a few nested aliases make a structure that takes forever to walk)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _Refused(None, None, "YAML aliases (*name) are not read here", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _as_text(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    return _Tagged(node.value) if isinstance(node, yaml.ScalarNode) else None


def _refuse(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    raise _Refused(None, None, f"the tag {node.tag} could run code (a task file here is read as data only)",
                   node.start_mark)


_DataLoader.add_multi_constructor("!", _as_text)
_DataLoader.add_multi_constructor("tag:", _as_text)
_StrictLoader.add_multi_constructor("!", _refuse)
_StrictLoader.add_multi_constructor("tag:", _refuse)


def read_task_file(path: Path, strict: bool, shown: str | None = None) -> dict:
    """One task YAML as data, or HarnessError naming the file, the line and the problem."""
    shown = shown or str(path)
    size = path.stat().st_size
    if size > F.TASK_FILE_BYTES:
        raise HarnessError(f"The task file {shown} is {size / 2**10:.0f} KiB; a task file is a few kilobytes (the "
                           f"limit is {F.TASK_FILE_BYTES // 2**10} KiB).")
    try:
        data = yaml.load(path.read_bytes(), Loader=_StrictLoader if strict else _DataLoader)  # noqa: S506 (safe)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}" if mark is not None else ""
        what = "is refused" if isinstance(exc, _Refused) else "is not valid YAML"
        raise HarnessError(f"The task file {shown} {what}{where}: {exc.problem or exc.context}.") from None
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        raise HarnessError(f"The task file {shown} is not valid YAML: {str(exc).splitlines()[0][:200]}.") from None
    if not isinstance(data, dict):
        raise HarnessError(f"The task file {shown} must hold a YAML mapping (task: ..., dataset_path: ...), "
                           f"not {type(data).__name__}.")
    return data


def task_yaml_files(folder: Path, strict: bool = False) -> list[Path]:
    """Every YAML file under the folder (as the harness looks for them), walked with a bound on entries.
    Strict mode refuses symbolic links (the harness's walk would follow them out of the folder)."""
    found, seen, stack = [], 0, [folder]
    while stack:
        current = stack.pop()
        try:
            entries = sorted(os.scandir(current), key=lambda e: e.name)
        except OSError as exc:
            raise HarnessError(f"The task folder {current} cannot be read: {exc.strerror or exc}.") from None
        for entry in entries:
            seen += 1
            if strict and entry.is_symlink():
                raise HarnessError(f"The task folder {folder} holds a symbolic link ({entry.name[:80]}); it is not "
                                   "followed here.")
            if seen > F.TASK_FOLDER_ENTRIES:
                raise HarnessError(f"The task folder {folder} holds more than {F.TASK_FOLDER_ENTRIES:,} files and "
                                   "folders; point it at the folder of your task YAMLs.")
            if entry.is_dir(follow_symlinks=False) and entry.name not in _SKIP:
                stack.append(Path(entry.path))
            elif entry.name.endswith(TASK_SUFFIXES) and entry.is_file():
                found.append(Path(entry.path))
    return found


def check_task_folder(folder: Path, strict: bool, allowed: Callable[[Path], bool] = lambda p: False) -> list[str]:
    """Read every task YAML of a folder as data; returns the task names found. Strict mode also refuses what
    could run code or read server files (see `check_task_data`); `allowed(path)` says which outside paths
    a task may still read (the operator's allowed folders)."""
    names = []
    for path in task_yaml_files(folder, strict):
        shown = str(path.relative_to(folder)) if path != folder else path.name
        data = read_task_file(path, strict, shown)
        if strict:
            check_task_data(data, folder, shown, allowed)
        task = data.get("task")
        names += [task] if isinstance(task, str) else [t for t in task if isinstance(t, str)] \
            if isinstance(task, list) else []
    return names


def _inside(path: Path, folder: Path) -> bool:
    real, root = Path(os.path.realpath(path)), Path(os.path.realpath(folder))
    return real == root or root in real.parents


def _local(value: str) -> bool:
    return "://" not in value and not value.startswith("hf:")


def check_task_data(data: Any, folder: Path, shown: str, allowed: Callable[[Path], bool], key: str = "") -> None:
    """Refuse, in a task's YAML data: remote code, templates reaching for `__` attributes, includes outside the
    folder, and local data paths outside the folder and the allowed folders."""
    def refuse(why: str) -> None:
        raise HarnessError(f"The task file {shown} is refused here: {why}.")

    if isinstance(data, dict):
        for k, v in data.items():
            k = str(k)
            if k == "trust_remote_code" and v:
                refuse("trust_remote_code would run a dataset's own code")
            if k == "include":
                for inc in v if isinstance(v, list) else [v]:
                    if not isinstance(inc, str) or os.path.isabs(inc) or ".." in Path(inc).parts or \
                            not _inside(folder / inc, folder):
                        refuse(f"include: {str(inc)[:80]!r} must name a file of its own folder")
            if k in ("dataset_path", "data_files", "data_dir"):
                for value in _strings(v):
                    if _local(value) and (value.startswith(("/", ".", "~")) or os.sep in value) and not (
                            os.path.isabs(value) and (_inside(Path(value), folder) or allowed(Path(value)))):
                        refuse(f"{k}: {value[:80]!r} is a path outside the task's folder")
                    if k != "dataset_path" and _local(value) and not os.path.isabs(value):
                        refuse(f"{k}: {value[:80]!r} is a relative path (read from the server's working folder); "
                               "give it as an absolute path inside the task's folder, or upload it with the YAML")
            check_task_data(v, folder, shown, allowed, k)
    elif isinstance(data, list):
        for item in data:
            check_task_data(item, folder, shown, allowed, key)
    elif isinstance(data, str) and ("{{" in data or "{%" in data) and "__" in data:
        refuse(f"the template in {key or 'a field'} reaches for a '__' attribute")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def save_task_files(files: list[Path], folder: Path, allowed: Callable[[Path], bool] = lambda p: False,
                    home: Path | None = None) -> list[str]:
    """Put uploaded task YAMLs (and the data files they name) into `folder`, each checked strictly first;
    a data file named by its bare file name in `data_files` is pointed at its copy in `home` (where the folder
    will be moved; default: the folder itself). Returns the task names."""
    home = home or folder
    folder.mkdir(parents=True, exist_ok=True)
    uploads = {Path(f).name: Path(f) for f in files}
    for name in uploads:
        if not name.endswith(TASK_SUFFIXES + DATA_SUFFIXES) or name.startswith("."):
            raise HarnessError(f"{name[:80]!r} is neither a task YAML nor a data file "
                               f"({', '.join(TASK_SUFFIXES + DATA_SUFFIXES)}); only data is uploaded.")
    names = []
    for name, path in uploads.items():
        if not name.endswith(TASK_SUFFIXES):
            (folder / name).write_bytes(path.read_bytes())
            continue
        data = read_task_file(path, strict=True, shown=name)
        data = _point_data_files(data, home, set(uploads))
        check_task_data(data, home, name, allowed)
        (folder / name).write_text(yaml.safe_dump(data, sort_keys=False))
        task = data.get("task")
        names += [task] if isinstance(task, str) else []
    return names


def _point_data_files(data: dict, folder: Path, uploaded: set[str]) -> dict:
    kwargs = data.get("dataset_kwargs")
    files = kwargs.get("data_files") if isinstance(kwargs, dict) else None
    if files is None:
        return data

    def point(value):
        if isinstance(value, str) and value in uploaded:
            return str(folder / value)
        if isinstance(value, list):
            return [point(v) for v in value]
        if isinstance(value, dict):
            return {k: point(v) for k, v in value.items()}
        return value

    return {**data, "dataset_kwargs": {**kwargs, "data_files": point(files)}}
