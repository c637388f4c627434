"""Agent runtime server: agents, streaming sessions with tools, and live event delivery."""

__version__ = "0.1.0"
