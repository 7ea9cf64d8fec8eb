"""Interop tests against ChainSafe's TypeScript discv5 (see ``chainsafe.py``)."""
