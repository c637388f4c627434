"""Tortoise models: the one data model all three API dialects read and write."""

from app.models.agent import Agent
from app.models.auth import ApiKey, OAuthState, RefreshToken, User
from app.models.event import Event
from app.models.llm import LlmModel, LlmProvider
from app.models.mcp import McpServer
from app.models.message import Message
from app.models.pipeline import Pipeline, PipelineRun
from app.models.session import Session
from app.models.tool_call import ToolCallWait

__all__ = ["Agent", "ApiKey", "Event", "LlmModel", "LlmProvider", "McpServer", "Message", "OAuthState", "Pipeline", "PipelineRun", "RefreshToken",
           "Session", "ToolCallWait", "User"]
