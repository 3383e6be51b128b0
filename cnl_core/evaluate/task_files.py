"""lm-eval task folders and YAML files, checked before the harness reads them.

Why: the harness walks an include path for `**/*.yaml` and, where a file says `!function x.fn`,
imports x.py from beside it when the task loads. So `--include-path /` walked the whole disk inside
the dashboard's shared queue, a malformed YAML was skipped and then reported as "unknown task", and
on a shared dashboard an uploaded YAML could name uploaded Python. Here a folder is walked with a
bound (fields.TASK_FOLDER_ENTRIES), every YAML is parsed without constructing anything (unknown tags
read as text) and a malformed one is named with its line. A shared dashboard's task files (uploads, an
operator's folder) are read strictly (no tag, no alias) and then against task_allowlist.py's allowlist, and
only the child process of harness_sandbox.py hands them to the harness.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .. import fields as F
from ..errors import HarnessError

TASK_SUFFIXES = (".yaml", ".yml")
DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".txt", ".parquet")
_SKIP = {"__pycache__", ".ipynb_checkpoints", ".git"}


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
    raise _Refused(
        None, None, f"the tag {node.tag} could run code (a task file here is read as data only)", node.start_mark
    )


_DataLoader.add_multi_constructor("!", _as_text)
_DataLoader.add_multi_constructor("tag:", _as_text)
_StrictLoader.add_multi_constructor("!", _refuse)
_StrictLoader.add_multi_constructor("tag:", _refuse)


def read_task_file(path: Path, strict: bool, shown: str | None = None) -> dict:
    """One task YAML as data, or HarnessError naming the file, the line and the problem."""
    shown = shown or str(path)
    size = path.stat().st_size
    if size > F.TASK_FILE_BYTES:
        raise HarnessError(
            f"The task file {shown} is {size / 2**10:.0f} KiB; a task file is a few kilobytes (the "
            f"limit is {F.TASK_FILE_BYTES // 2**10} KiB)."
        )
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
        raise HarnessError(
            f"The task file {shown} must hold a YAML mapping (task: ..., dataset_path: ...), not {type(data).__name__}."
        )
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
                raise HarnessError(
                    f"The task folder {folder} holds a symbolic link ({entry.name[:80]}); it is not followed here."
                )
            if seen > F.TASK_FOLDER_ENTRIES:
                raise HarnessError(
                    f"The task folder {folder} holds more than {F.TASK_FOLDER_ENTRIES:,} files and "
                    "folders; point it at the folder of your task YAMLs."
                )
            if entry.is_dir(follow_symlinks=False) and entry.name not in _SKIP:
                stack.append(Path(entry.path))
            elif entry.name.endswith(TASK_SUFFIXES) and entry.is_file():
                found.append(Path(entry.path))
    return found


def check_task_folder(folder: Path) -> list[str]:
    """Read every task YAML of a folder as data (the CLI's or a local dashboard's own folder, which the harness
    then reads in this process); returns the task names found, or names the file that is not valid YAML."""
    names = []
    for path in task_yaml_files(folder):
        shown = str(path.relative_to(folder)) if path != folder else path.name
        task = read_task_file(path, strict=False, shown=shown).get("task")
        names += (
            [task]
            if isinstance(task, str)
            else [t for t in task if isinstance(t, str)]
            if isinstance(task, list)
            else []
        )
    return names


def save_task_files(files: list[Path], folder: Path) -> list[str]:
    """Put uploaded task YAMLs and the data files they name into `folder`, each YAML read against the allowlist
    first (task_allowlist.py: data files by their bare names, among the files uploaded with it). Returns the task
    names. The harness reads them only in its child process (harness_sandbox.py), which reads them again."""
    from .task_allowlist import read_allowed_task

    folder.mkdir(parents=True, exist_ok=True)
    uploads = {Path(f).name: Path(f) for f in files}
    for name in uploads:
        if not name.endswith(TASK_SUFFIXES + DATA_SUFFIXES) or name.startswith("."):
            raise HarnessError(
                f"{name[:80]!r} is neither a task YAML nor a data file "
                f"({', '.join(TASK_SUFFIXES + DATA_SUFFIXES)}); only data is uploaded."
            )
    data_names = {n for n in uploads if n.endswith(DATA_SUFFIXES)}
    names = []
    for name, path in uploads.items():
        if name.endswith(TASK_SUFFIXES):
            names.append(read_allowed_task(path, name, data_names)["task"])
        (folder / name).write_bytes(path.read_bytes())
    return names
