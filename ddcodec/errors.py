"""One exception type for every error a user can cause or fix.

The CLI turns it into one line on stderr and exit status 1; anything else is a bug and keeps its
traceback.
"""


class DDCodecError(Exception):
    """An input, data or runtime problem that the user can act on."""


class Interrupted(DDCodecError):
    """The user stopped a run (Ctrl-C); what could be saved was saved. Exit status 130."""
