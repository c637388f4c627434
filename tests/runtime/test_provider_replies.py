"""Provider replies that break after the answer began, through each adapter and its real
SDK (app/runtime/providers/): each ends in a ProviderError whose code says what happened,
never in an SDK's or a transport library's own exception (which a turn reports as
`internal_error`, a bug of ours), and never in a quiet success with a cut answer.

Reported with a real server: on Anthropic a hang past LLM_TIMEOUT_SECONDS and a dropped
connection ended the turn as internal_error (OpenAI: provider_timeout and
provider_unreachable); on both, a stream that stopped before its end, or a 200 web page
instead of a stream, ended as `session.completed` with the cut text; malformed stream
data was internal_error on OpenAI and ignored on Anthropic."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from app.config import Settings
from app.errors import ProviderError
from app.models import LlmProvider
from app.runtime.providers import build_adapter
from app.runtime.providers.base import ChatMessage, Finished, TextDelta
from tests.fakes import Cut, Error, Hang, Text
from tests.helpers import FAKE_KEY

KINDS = ["openai", "anthropic"]


async def _answer(fake_llm, kind: str, timeout: float = 10, retries: int = 0) -> tuple[str, Finished | None]:
    provider = LlmProvider(id=uuid.uuid4(), name="fake", provider_type=kind,
                           base_url=fake_llm.anthropic_base_url if kind == "anthropic" else fake_llm.openai_base_url)
    adapter = build_adapter(provider, FAKE_KEY, Settings(llm_timeout_seconds=timeout, llm_max_retries=retries))
    text, finished = "", None
    try:
        async for item in adapter.stream("fake-model", "", [ChatMessage("user", "hi")], []):
            if isinstance(item, TextDelta):
                text += item.text
            else:
                finished = item
    finally:
        await adapter.close()
    return text, finished


@pytest.mark.parametrize("kind", KINDS)
async def test_a_whole_reply_still_finishes(fake_llm, kind):
    fake_llm.script(Text(["Hel", "lo"]))
    text, finished = await _answer(fake_llm, kind)
    assert text == "Hello" and finished is not None and finished.finish_reason in ("stop", "end_turn")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("how", "code", "says"), [
    ("end", "provider_bad_response", "ended its answer before the end"),
    ("html", "provider_bad_response", "ended its answer before the end"),
    ("garbage", "provider_bad_response", "sent a malformed reply"),
    ("drop", "provider_unreachable", "lost the connection"),
])
async def test_a_reply_cut_short_or_malformed_is_a_provider_error(fake_llm, kind, how, code, says):
    fake_llm.script(Cut(how))
    with pytest.raises(ProviderError) as raised:
        await _answer(fake_llm, kind)
    assert raised.value.code == code, raised.value.message
    assert says in raised.value.message and "provider 'fake'" in raised.value.message.lower()


@pytest.mark.parametrize("kind", KINDS)
async def test_silence_past_the_timeout_mid_answer_is_provider_timeout(fake_llm, kind):
    fake_llm.script(Hang(["Partial "], seconds=5))
    with pytest.raises(ProviderError) as raised:
        await _answer(fake_llm, kind, timeout=0.5)
    assert raised.value.code == "provider_timeout", raised.value.message


@pytest.mark.parametrize("kind", KINDS)
async def test_a_retry_after_over_two_minutes_ends_the_retries(fake_llm, kind):
    """Reported: the anthropic SDK waited out any Retry-After (300 s here, with two
    retries: 10 minutes of a `running` session); §5.4 says a wait over 2 minutes ends
    the retries, as the openai SDK does."""
    fake_llm.script(Error(429, "slow down", retry_after=300), Text(["late"]))
    started = time.monotonic()
    with pytest.raises(ProviderError) as raised:
        await asyncio.wait_for(_answer(fake_llm, kind, retries=2), 20)
    assert raised.value.code == "provider_rate_limited" and time.monotonic() - started < 5
    assert len(fake_llm.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_a_short_retry_after_is_still_waited_for(fake_llm, kind):
    fake_llm.script(Error(429, "slow down", retry_after=0.05), Text(["ok"]))
    text, _ = await _answer(fake_llm, kind, retries=2)
    assert text == "ok" and len(fake_llm.requests) == 2
