"""Locating capability neurons: per-sample scores (cached on disk) -> selection -> located sets."""
