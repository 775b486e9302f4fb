"""Exceptions for mistakes a person can fix. Each carries a message that says what to do."""


class StudioError(Exception):
    """Base class: the UI shows the message, the CLI prints it and exits non-zero."""


class DatasetError(StudioError):
    """The data folder or images cannot be used for training."""


class ConfigError(StudioError):
    """A setting is out of range or inconsistent."""


class CheckpointError(StudioError):
    """A run folder or model file cannot be loaded or written."""


def os_error_text(e: OSError) -> str:
    """What went wrong with a file and where, in words: "No space left on device (runs/a/stats.jsonl)"."""
    where = f" ({e.filename})" if e.filename else ""
    return f"{e.strerror or e}{where}"
