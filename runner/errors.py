"""Exceptions of the runner, each named for one purpose, and how a library's exception is put in one line."""


class ModelLoadError(Exception):
    """The model named by MODEL could not be found, fetched or loaded; one line that names what to fix."""


class DiagnosticError(Exception):
    """The start-up generation failed, so the runner must not take jobs."""


class PromptTooLongError(ValueError):
    """Even the system prompt and an empty message do not fit the context window left after max_new_tokens."""


def one_line(exc: BaseException) -> str:
    """The exception's type and the first line of its message (200 characters at most), for one-line errors."""
    lines = str(exc).strip().splitlines()
    text = lines[0][:200] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
