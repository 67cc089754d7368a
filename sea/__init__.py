"""Shared foundation of the Self-Engineering Agent: settings and the data directory."""

from sea.settings import Settings, get_settings

__all__ = ["Settings", "get_settings"]
