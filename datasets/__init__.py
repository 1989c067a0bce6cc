"""Data: named and user datasets, validation, splits, and in-model preprocessing."""
