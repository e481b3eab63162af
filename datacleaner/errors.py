"""The one error type the library raises for problems a user can fix."""


class DataCleanerError(Exception):
    """A problem with the user's data, config or run directory.

    The message is one line that names the offending file, key or value and says
    what to do. The CLI prints it and exits with code 1; it never shows a traceback.
    """
