"""Ethereum Node Discovery v5.1 on trio, with a sans-IO protocol core."""

__all__: list[str] = []
