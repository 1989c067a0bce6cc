"""Neutral ground every package may import: errors, problem types, compatibility shims."""
