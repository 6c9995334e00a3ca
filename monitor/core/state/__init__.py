"""Mergeable, serialisable state: class counts, the request join, windows, per-deployment state."""
