"""Soft labels: the teacher, and the rungs of the compression ladder (float16, top-k, VQ, VQAE)."""
