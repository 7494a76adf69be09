"""One exception type for every error a user can cause or fix.

The CLI turns it into one line on stderr and exit status 1; anything else is a bug and keeps its
traceback.
"""


class DDCodecError(Exception):
    """An input, data or runtime problem that the user can act on."""


class Interrupted(DDCodecError):
    """The user stopped a run (Ctrl-C); what could be saved was saved. Exit status 130."""


class LimitError(DDCodecError):
    """A value outside what the .ddz format holds (ddcodec.limits): the encoder
    refuses it before writing, the decoder reads it as a corrupt file."""


class ImageReadError(DDCodecError):
    """An image file that cannot be decoded: truncated, without pixels, not an image, or
    announcing more pixels than any set needs (a decompression bomb)."""
