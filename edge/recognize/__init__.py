"""Frames -> plate reads: detection, rectification, recognition, grammar, vote."""
