"""Tortoise models: the one data model all three API dialects read and write."""

from app.models.agent import Agent
from app.models.event import Event
from app.models.llm import LlmModel, LlmProvider
from app.models.message import Message
from app.models.session import Session

__all__ = ["Agent", "Event", "LlmModel", "LlmProvider", "Message", "Session"]
