"""Error types shared by the library and the CLI.

Every error a user can cause by bad input is a ``DatakitError`` whose message is one line that
says what is wrong and where; the CLI prints it and exits with code 2 instead of a traceback.
"""


class DatakitError(Exception):
    """Bad input or bad usage: one clear line, exit code 2 in the CLI."""

    exit_code = 2


class ManifestError(DatakitError):
    """A manifest that cannot be read or does not follow the schema."""


class CheckFailed(DatakitError):
    """A check the user asked for (``--strict``, ``--fail-on``) did not pass: exit code 1."""

    exit_code = 1
