"""ddcodec: dataset distillation as data compression.

Turns a training set into a small file that still trains a good model, and measures both the
file's size (bits per class) and the accuracy of networks trained on what it decodes to.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "distill", "experts", "measure", "encode", "decode", "info", "test"]


def __getattr__(name: str):
    # The API pulls in torch; import it only when used, so `ddcodec --version` stays quick.
    if name in ("distill", "experts", "measure", "encode", "decode", "info", "test"):
        from ddcodec import api

        return getattr(api, name)
    raise AttributeError(f"module 'ddcodec' has no attribute {name!r}")
