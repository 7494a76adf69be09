"""Measuring a set: accuracy under the field's protocol, and DD-Ranking's score."""
