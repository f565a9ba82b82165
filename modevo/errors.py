"""Errors a user can act on. The CLI prints each as one line (no traceback) and exits with 2."""


class ModevoError(Exception):
    """Base class: the message is the whole story, phrased for the user."""


class ConfigError(ModevoError):
    """A config file or override names an unknown key, has a wrong type or an invalid value."""


class InputError(ModevoError):
    """An input path or file cannot be used (missing, unreadable, empty after filtering)."""


class MissingToolError(ModevoError):
    """An external program (espeak-ng, mbrola) or local weights folder is absent."""
