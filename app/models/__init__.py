"""Tortoise models: the one data model all three API dialects read and write."""

from app.models.agent import Agent
from app.models.auth import ApiKey, OAuthState, RefreshToken, User
from app.models.event import Event
from app.models.llm import LlmModel, LlmProvider
from app.models.message import Message
from app.models.pipeline import Pipeline, PipelineRun
from app.models.session import Session

__all__ = ["Agent", "ApiKey", "Event", "LlmModel", "LlmProvider", "Message", "OAuthState", "Pipeline", "PipelineRun", "RefreshToken",
           "Session", "User"]
