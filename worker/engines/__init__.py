"""Engines behind one small Protocol, registered by name."""
