"""The launcher's one error: it cannot go on, for the reason its message gives in one line."""

from __future__ import annotations


class LauncherError(Exception):
    """Stops `run` with one line (no traceback) after stopping whatever it had started."""
