"""Hostile inputs and file mutations that the fuzzer and the tests throw at the codec."""
