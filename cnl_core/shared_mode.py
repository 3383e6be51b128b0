"""Shared mode: what a visitor of a shared dashboard may name, decided in one place.

A dashboard on Hugging Face Spaces, behind `--share` or bound to a public address is used by
strangers. Locally, the user owns the machine and may name any folder, model or task file. Shared,
nothing a visitor sends may become code or a server path: model folders, dataset files and lm-eval
task folders must lie under a folder the operator allowed; `trust_remote_code` stays off; Hub model
ids may be limited to an operator list; task YAMLs a visitor names or uploads are read as data
(no `!function`, no YAML tag that runs code; `evaluate/task_files.py`).

The policy is built once from the environment (and the dashboard's flags) and read by the library
where a name becomes a path or code (model loading, dataset files, task folders), so no UI path can
go around it. The CLI reads the same environment variables:

    CNL_SHARED=1|0          force shared mode on or off (default: on with SPACE_ID, --share or a public --host)
    CNL_ALLOWED_PATHS=a:b   folders whose models, dataset files and task YAMLs visitors may name
    CNL_ALLOWED_MODELS=x,y  Hub model ids visitors may load (default: any; the built-in model always)
    CNL_ALLOW_PICKLE=1      let model folders without safetensors load their pickled weights (never by default)
    CNL_HARNESS_HUB=1       let visitors' lm-eval runs (in their child process) fetch catalogue tasks' data from
                            the Hub (off by default: a shared lab's harness runs offline, on uploaded tasks)
    CNL_JOB_LIMIT_S=600     the longest expected run a visitor may start (0: no limit; options.JOBS)
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelLoadError, ParameterError
from .options import DEFAULT_MODEL, JOBS

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _flag(value: str | None) -> bool | None:
    text = (value or "").strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _resolved(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(path))))


@dataclass(frozen=True)
class Policy:
    """What visitors may name. `shared=False` is local use: everything the user types is theirs to use."""

    shared: bool = False
    why: str = "local use"
    allowed_paths: tuple[Path, ...] = ()
    allowed_models: tuple[str, ...] = ()  # empty: any Hub id
    allow_pickle: bool = False
    harness_hub: bool = False  # visitors' harness runs may reach the Hub (catalogue tasks' data)

    @staticmethod
    def from_env(
        env: Mapping[str, str] | None = None,
        *,
        share: bool = False,
        host: str | None = None,
        shared: bool | None = None,
        allowed_paths: tuple[str, ...] = (),
        allowed_models: tuple[str, ...] = (),
        allow_pickle: bool = False,
        harness_hub: bool = False,
    ) -> Policy:
        """The policy of this process: flags (the dashboard's) first, then the environment.

        Shared mode is on on a Space (SPACE_ID), with --share and with a --host other than this machine,
        unless `shared` (--no-shared) or CNL_SHARED=0 turns it off explicitly; CNL_SHARED=1 turns it on anywhere.
        """
        env = os.environ if env is None else env
        explicit = shared if shared is not None else _flag(env.get("CNL_SHARED"))
        reasons = [
            why
            for on, why in (
                (bool(env.get("SPACE_ID")), "running on a Space (SPACE_ID)"),
                (share, "--share"),
                (host is not None and host not in LOCAL_HOSTS, f"--host {host}"),
            )
            if on
        ]
        if explicit is not None:
            on, why = explicit, ("turned on" if explicit else "turned off") + " (--shared / CNL_SHARED)"
        else:
            on, why = bool(reasons), ", ".join(reasons) or "local use"
        paths = [*allowed_paths, *(p for p in env.get("CNL_ALLOWED_PATHS", "").split(os.pathsep) if p.strip())]
        models = [*allowed_models, *(m for m in env.get("CNL_ALLOWED_MODELS", "").split(",") if m.strip())]
        return Policy(
            shared=on,
            why=why,
            allowed_paths=tuple(dict.fromkeys(_resolved(p.strip()) for p in paths)),
            allowed_models=tuple(dict.fromkeys(m.strip() for m in models)),
            allow_pickle=allow_pickle or bool(_flag(env.get("CNL_ALLOW_PICKLE"))),
            harness_hub=harness_hub or bool(_flag(env.get("CNL_HARNESS_HUB"))),
        )

    def describe(self) -> str:
        """One line for the startup log and the page: on or off, why, and what the operator allowed."""
        if not self.shared:
            return f"Shared mode is off ({self.why}): any folder, model and task file may be named."
        folders = ", ".join(map(str, self.allowed_paths)) or "none"
        models = ", ".join(self.allowed_models) or "any Hub id"
        return (
            f"Shared mode is on ({self.why}): visitors upload data files only; folders they may name: {folders}; "
            f"models: the built-in one and {models}; trust_remote_code stays off."
        )

    def for_visitors(self) -> str:
        """What a visitor of a shared dashboard may do and should expect, in their words (the page's banner)."""
        models = ", ".join(self.allowed_models) if self.allowed_models else "Hub models with safetensors weights"
        folders = f"; folders on this server: {', '.join(map(str, self.allowed_paths))}" if self.allowed_paths else ""
        return (
            "**This lab is shared with other visitors.** Your uploads and results are yours alone. Each visitor "
            "runs one job at a time, and jobs wait in line for the model: you see your place and the time left; "
            "work another visitor already did is served at once. You may upload CSV/JSONL data (read as data, "
            f"never run) and load the built-in model or {models}{folders}; trust_remote_code stays off."
        )

    def allows_path(self, path: str | os.PathLike) -> bool:
        """Local use: any path. Shared: only paths under an allowed folder (symbolic links resolved first)."""
        if not self.shared:
            return True
        real = _resolved(path)
        return any(real == root or root in real.parents for root in self.allowed_paths)

    def check_path(self, path: str | os.PathLike, what: str) -> Path:
        """The path, or ParameterError saying that this shared dashboard does not open it."""
        if not self.allows_path(path):
            raise ParameterError(
                f"This dashboard is shared: it does not open the {what} {str(path)[:200]!r}. {self._paths_hint()}"
            )
        return Path(path)

    def check_model(self, name: str, trust_remote_code: bool) -> None:
        """ModelLoadError when a shared dashboard must not load this model (or not with remote code)."""
        if not self.shared:
            return
        if trust_remote_code:
            raise ModelLoadError(
                "This dashboard is shared: trust_remote_code stays off (a model's own code would "
                "run on the server). Run the dashboard locally to use such a model."
            )
        if name == DEFAULT_MODEL:
            return
        if looks_like_path(name):
            if not self.allows_path(name):
                raise ModelLoadError(
                    f"This dashboard is shared: it does not open the model folder {name[:200]!r}. {self._paths_hint()}"
                )
            return
        if self.allowed_models and name not in self.allowed_models:
            raise ModelLoadError(
                f"This dashboard is shared and loads only the built-in model '{DEFAULT_MODEL}' and "
                f"{', '.join(self.allowed_models)}; '{name[:100]}' is not among them "
                "(its operator lists them in CNL_ALLOWED_MODELS)."
            )

    def _paths_hint(self) -> str:
        if not self.allowed_paths:
            return "Upload your data instead; its operator allows no server folder (CNL_ALLOWED_PATHS)."
        return f"Upload your data, or use a folder under {', '.join(map(str, self.allowed_paths))}."


_PATH = re.compile(r"(?<![\w:/.\\])(?:[A-Za-z]:)?(?:[\\/][^\s\\/'\"`:;,()\[\]{}<>|*?]+){2,}[\\/]?")


def opaque(text: str) -> str:
    """A message for a visitor with every server path cut to its last name ('/srv/cache/visitors/ab12/x.csv' reads
    '…/x.csv'): whatever a message says, no folder of this server reaches a shared dashboard's visitor."""
    return _PATH.sub(lambda m: "…/" + m.group(0).rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1], text)


def looks_like_path(name: str) -> bool:
    """A model name that names something on this machine: an existing path, or one written as a path."""
    return name.startswith(("/", "~", ".")) or "\\" in name or os.path.exists(name) or name.count("/") > 1


_CURRENT = Policy.from_env()


def current() -> Policy:
    """The policy of this process (from the environment unless the dashboard set it at start)."""
    return _CURRENT


def configure(policy: Policy) -> Policy:
    """Set the process's policy (the dashboard, from its flags, before it serves anyone); returns it."""
    global _CURRENT
    _CURRENT = policy
    return policy


def job_limit_s(policy: Policy | None = None, env: Mapping[str, str] | None = None) -> float | None:
    """The longest expected run a visitor may start, in seconds: None locally (the user owns the machine) or where
    the operator set CNL_JOB_LIMIT_S=0; else CNL_JOB_LIMIT_S, or options.JOBS.shared_limit_s."""
    policy = current() if policy is None else policy
    if not policy.shared:
        return None
    text = (os.environ if env is None else env).get(JOBS.env, "").strip()
    try:
        limit = float(text) if text else JOBS.shared_limit_s
    except ValueError:
        limit = JOBS.shared_limit_s  # a typo in the operator's setting keeps the default, never no limit
    return limit if limit > 0 else None
