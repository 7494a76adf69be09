"""The .ddz bitstream: a single file holding a distilled set, range-coded, decodable bit-exactly
on any machine. See docs/FORMAT.md for the layout."""
