"""The one exception type for the user's mistakes: the CLI and the web app turn it into one clear line."""

from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input, settings, files or machine that deserves one clear line, never a
    traceback: a bad file, an unknown setting, a missing checkpoint, no GPU where one was asked for."""
