"""User-facing errors.

Every failure a user can cause (bad model id, bad upload, impossible threshold, corrupt cache)
is raised as a `CNLError` subclass whose message is a plain sentence, so the CLI and the
dashboard can show it without a traceback.
"""


class CNLError(Exception):
    """Base class: the message is meant to be shown to the user as is."""


class ModelLoadError(CNLError):
    """The model could not be found, is not a causal LM, or does not fit."""


class UnsupportedModelError(ModelLoadError):
    """The model's architecture has no entry in the neuron adapter table."""


class DatasetError(CNLError):
    """A dataset is unknown, unavailable, malformed, or too small for the request."""


class ParameterError(CNLError):
    """A threshold, size or other parameter is out of its valid range."""


class CacheError(CNLError):
    """A cache file is corrupt or the cache folder cannot be used."""


class OutputError(CNLError):
    """A result file or folder cannot be written (the earlier file, if any, is kept)."""


class ResultFileError(CNLError):
    """A result file (or a cached result) is not what it claims: a field missing or of the wrong type."""


class NeuronSetError(CNLError):
    """A neuron set names layers or indices that the model does not have."""


class Cancelled(CNLError):
    """The user cancelled a run; what was finished (cached score shards, earlier results) is kept."""


class HarnessError(CNLError):
    """lm-evaluation-harness is not installed, a task is unknown, or the harness could not run it."""
