"""Networks and how one is trained and tested: the field's backbones and evaluation protocol."""
