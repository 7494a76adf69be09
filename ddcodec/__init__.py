"""ddcodec: dataset distillation as data compression.

Turns a training set into a small file that still trains a good model, and measures both the
file's size (bits per class) and the accuracy of networks trained on what it decodes to.
"""

from ddcodec.version import __version__

API = ("distill", "experts", "measure", "encode", "decode", "info", "test", "test_split",
       "train_teacher", "label")
SETS = {"DistilledSet": "ddcodec.sets.setfile", "load_set": "ddcodec.sets.setfile",
        "save_set": "ddcodec.sets.setfile", "import_set": "ddcodec.sets.importers"}
READER = {"open": "open_ddz", "DDZ": "DDZ", "DDZDataset": "DDZDataset"}  # ddcodec.reader
__all__ = ["__version__", *API, *SETS, *READER]


def __getattr__(name: str):
    # The API pulls in torch; import it only when used, so `ddcodec --version` stays quick.
    if name in API:
        from ddcodec import api

        return getattr(api, name)
    if name in SETS:
        import importlib

        return getattr(importlib.import_module(SETS[name]), name)
    if name in READER:
        from ddcodec import reader

        return getattr(reader, READER[name])
    raise AttributeError(f"module 'ddcodec' has no attribute {name!r}")
