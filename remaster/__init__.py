"""remaster: remaster old anime with the Real-CUGAN models."""

__version__ = "0.1.0"
