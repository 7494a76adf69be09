"""Entropy-coding primitives every section shares: the byte reader and writer, the range
coder's models, and groups of quantised weights under a zero-mean Laplace."""
