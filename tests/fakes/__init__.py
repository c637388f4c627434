"""Test fakes for external services (the app under test itself is never mocked)."""

from .llm_server import Broken, Cut, Error, FakeLLM, Hang, Reply, Text, ToolCalls

__all__ = ["FakeLLM", "Text", "ToolCalls", "Error", "Hang", "Broken", "Cut", "Reply"]
