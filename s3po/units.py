"""Sizes, written once."""

__all__ = ["GiB", "IN_MEMORY_MAX", "MiB", "TiB"]

MiB = 1024 * 1024
GiB = 1024 * MiB
TiB = 1024 * GiB

# Bodies and spools up to this size stay in memory; larger ones go to a temporary file.
IN_MEMORY_MAX = 8 * MiB
