"""/v1/capabilities and the built-in current_time tool."""

from __future__ import annotations

import datetime as dt

import pytest

from app.runtime.capabilities import REGISTRY, CurrentTimeArgs, ToolError, get_current_time


async def test_registry_listing(client):
    body = await (await client.get("/v1/capabilities")).get_json()
    by_id = {c["id"]: c for c in body["data"]}
    assert {"noop", "current_time"} <= set(by_id) and body["total"] == len(body["data"])
    tool = by_id["current_time"]["tools"][0]
    assert tool["name"] == "get_current_time"
    props = tool["parameters"]["properties"]
    assert set(props) == {"timezone", "format"}
    assert props["format"]["enum"] == ["iso8601", "unix", "human"]
    assert all({"id", "name", "description", "status", "tools"} <= set(c) for c in body["data"])


async def test_current_time_honours_timezone_and_format():
    tokyo = await get_current_time(CurrentTimeArgs(timezone="Asia/Tokyo"))
    assert dt.datetime.fromisoformat(tokyo["time"]).utcoffset() == dt.timedelta(hours=9)
    unix = await get_current_time(CurrentTimeArgs(format="unix"))
    assert abs(unix["time"] - dt.datetime.now(dt.UTC).timestamp()) < 5
    human = await get_current_time(CurrentTimeArgs(timezone="Europe/Paris", format="human"))
    assert str(dt.datetime.now(dt.UTC).year) in human["time"]
    with pytest.raises(ToolError, match="unknown timezone"):
        await get_current_time(CurrentTimeArgs(timezone="Mars/Olympus"))


def test_registry_ids_are_unique_and_tools_have_schemas():
    for cap in REGISTRY.values():
        for tool in cap.tools:
            assert tool.parameters["type"] == "object"
