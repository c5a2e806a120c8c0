"""Fakes for the fast tier (``pytest -m "not integration"``): in addition to the real parts, never instead."""
