"""The official `anthropic` Python SDK against the gateway's `/v1/messages`,
through every provider-backed demo alias (Anthropic pass-through, OpenAI and
Gemini translated).

Expected texts follow the mock reply rules (`crates/mock/src/reply.rs`).
"""

from __future__ import annotations

import json

import anthropic
import pytest

from conftest import ALIASES, DEMO_KEY

PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "enum": ["c", "f"]},
        },
        "required": ["city"],
    },
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Current time in a timezone",
    "input_schema": {
        "type": "object",
        "properties": {"timezone": {"type": "string"}},
        "required": ["timezone"],
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]


def said(alias: str, text: str) -> str:
    return f"[{alias}] You said: {text}"


def tool_returned(alias: str, name: str, content: str) -> str:
    # The Gemini dialect wraps a non-JSON tool result as {"output": "..."}.
    if alias == "demo-gemini":
        content = json.dumps({"output": content}, separators=(",", ":"))
    return f"[{alias}] Tool {name} returned: {content}"


def user(text):
    return [{"role": "user", "content": text}]


def texts(message) -> str:
    return "".join(b.text for b in message.content if b.type == "text")


# ---------------------------------------------------------------------------
# Plain messages.


def test_create(anthropic_client, alias):
    m = anthropic_client.messages.create(model=alias, max_tokens=200, messages=user("Hello Claude"))
    assert m.type == "message"
    assert m.role == "assistant"
    assert m.id
    assert m.stop_reason == "end_turn"
    assert m.stop_sequence is None
    assert [b.type for b in m.content] == ["text"]
    assert m.content[0].text == said(alias, "Hello Claude")
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


def test_stream_helper(anthropic_client, alias):
    prompt = "Stream me a handful of words please"
    with anthropic_client.messages.stream(model=alias, max_tokens=200, messages=user(prompt)) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
    assert len(pieces) >= 2
    assert "".join(pieces) == said(alias, prompt)
    assert texts(final) == said(alias, prompt)
    assert [b.type for b in final.content] == ["text"]
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0
    full = anthropic_client.messages.create(model=alias, max_tokens=200, messages=user(prompt))
    assert final.usage.input_tokens == full.usage.input_tokens
    assert final.usage.output_tokens == full.usage.output_tokens


def test_stream_raw_events(anthropic_client, alias):
    events = list(
        anthropic_client.messages.create(model=alias, max_tokens=200, messages=user("raw events"), stream=True)
    )
    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-1] == "message_stop"
    assert types[-2] == "message_delta"
    assert types[1] == "content_block_start"
    assert "content_block_stop" in types
    start = events[0].message
    assert start.role == "assistant" and start.content == []
    assert events[1].content_block.type == "text"
    assert events[1].index == 0
    text = "".join(
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    )
    assert text == said(alias, "raw events")
    delta = events[-2]
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens > 0
    # Blocks are opened and closed in order, each index once.
    opened = [e.index for e in events if e.type == "content_block_start"]
    closed = [e.index for e in events if e.type == "content_block_stop"]
    assert opened == closed == list(range(len(opened)))


def test_multi_turn(anthropic_client, alias):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": [{"type": "text", "text": "first answer"}]},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    m = anthropic_client.messages.create(model=alias, max_tokens=100, messages=messages)
    assert texts(m) == said(alias, "second")


@pytest.mark.parametrize(
    "system",
    [
        "You are a terse assistant that answers in one line.",
        [
            {"type": "text", "text": "You are a terse assistant."},
            {"type": "text", "text": "Answer in one line.", "cache_control": {"type": "ephemeral"}},
        ],
    ],
    ids=["string", "blocks"],
)
def test_system_prompt(anthropic_client, alias, system):
    with_system = anthropic_client.messages.create(
        model=alias, max_tokens=100, system=system, messages=user("hello system")
    )
    bare = anthropic_client.messages.create(model=alias, max_tokens=100, messages=user("hello system"))
    assert texts(with_system) == said(alias, "hello system")
    # The system prompt reached the provider (it counts as input).
    assert with_system.usage.input_tokens > bare.usage.input_tokens


# ---------------------------------------------------------------------------
# Tools.


def test_tool_use(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias, max_tokens=200, tools=TOOLS, messages=user("What's the weather in Paris?")
    )
    assert m.stop_reason == "tool_use"
    # No empty text block before the tool_use.
    assert all(not (b.type == "text" and b.text == "") for b in m.content)
    tool_uses = [b for b in m.content if b.type == "tool_use"]
    assert len(tool_uses) == 1
    assert m.content[-1].type == "tool_use"
    tu = tool_uses[0]
    assert tu.id
    assert tu.name == "get_weather"
    assert tu.input == {"city": "demo"}


@pytest.mark.parametrize(
    "choice,expected",
    [
        ({"type": "auto"}, ["get_weather"]),
        ({"type": "any"}, ["get_weather"]),
        ({"type": "tool", "name": "get_time"}, ["get_time"]),
        ({"type": "none"}, []),
    ],
    ids=["auto", "any", "named", "none"],
)
def test_tool_choice(anthropic_client, alias, choice, expected):
    m = anthropic_client.messages.create(
        model=alias, max_tokens=200, tools=TOOLS, tool_choice=choice, messages=user("Use a tool maybe")
    )
    names = [b.name for b in m.content if b.type == "tool_use"]
    assert names == expected
    if expected:
        assert m.stop_reason == "tool_use"
    else:
        assert m.stop_reason == "end_turn"
        assert texts(m) == said(alias, "Use a tool maybe")


def test_parallel_tool_use(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias, max_tokens=200, tools=TOOLS, messages=user("Weather and time in parallel please")
    )
    assert m.stop_reason == "tool_use"
    uses = [b for b in m.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "demo"}), ("get_time", {"timezone": "demo"})]
    assert uses[0].id != uses[1].id
    assert all(not (b.type == "text" and b.text == "") for b in m.content)


def test_tool_use_streamed(anthropic_client, alias):
    with anthropic_client.messages.stream(
        model=alias, max_tokens=200, tools=TOOLS, messages=user("Weather and time in parallel please")
    ) as stream:
        events = list(stream)
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    uses = [b for b in final.content if b.type == "tool_use"]
    assert [(u.name, u.input) for u in uses] == [("get_weather", {"city": "demo"}), ("get_time", {"timezone": "demo"})]
    assert all(not (b.type == "text" and b.text == "") for b in final.content)
    starts = [e for e in events if e.type == "content_block_start"]
    assert all(e.content_block.type == "tool_use" for e in starts)
    json_deltas = [e for e in events if e.type == "content_block_delta" and e.delta.type == "input_json_delta"]
    assert len(json_deltas) >= 2


def test_tool_result_round_trip(anthropic_client, alias):
    first = anthropic_client.messages.create(
        model=alias, max_tokens=200, tools=TOOLS, messages=user("What's the weather in Paris?")
    )
    tu = next(b for b in first.content if b.type == "tool_use")
    messages = user("What's the weather in Paris?") + [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": tu.id, "content": "sunny, 21C"}],
        },
    ]
    m = anthropic_client.messages.create(model=alias, max_tokens=200, tools=TOOLS, messages=messages)
    assert m.stop_reason == "end_turn"
    assert texts(m) == tool_returned(alias, "get_weather", "sunny, 21C")


def test_tool_result_blocks_streamed(anthropic_client, alias):
    first = anthropic_client.messages.create(
        model=alias, max_tokens=200, tools=TOOLS, messages=user("Weather and time in parallel please")
    )
    uses = [b for b in first.content if b.type == "tool_use"]
    messages = user("Weather and time in parallel please") + [
        {"role": "assistant", "content": first.content},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": uses[0].id, "content": "rainy"},
                {"type": "tool_result", "tool_use_id": uses[1].id, "content": [{"type": "text", "text": "noon"}]},
            ],
        },
    ]
    with anthropic_client.messages.stream(model=alias, max_tokens=200, tools=TOOLS, messages=messages) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == tool_returned(alias, "get_time", "noon")
    assert final.stop_reason == "end_turn"


# ---------------------------------------------------------------------------
# Images.


@pytest.mark.parametrize(
    "source",
    [
        {"type": "base64", "media_type": "image/png", "data": PNG_B64},
        {"type": "url", "url": "https://example.com/cat.png"},
    ],
    ids=["base64", "url"],
)
def test_image(anthropic_client, alias, source):
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=200,
        messages=[
            {
                "role": "user",
                "content": [{"type": "image", "source": source}, {"type": "text", "text": "Describe this"}],
            }
        ],
    )
    assert texts(m) == said(alias, "Describe this") + " (1 image)"


# ---------------------------------------------------------------------------
# Limits.


def test_stop_sequences(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias, max_tokens=200, stop_sequences=["zzz", "said"], messages=user("Hello")
    )
    assert texts(m) == f"[{alias}] You "
    if alias == "demo-anthropic":
        assert m.stop_reason == "stop_sequence"
        assert m.stop_sequence == "said"
    else:
        # OpenAI and Gemini do not say which sequence matched; the gateway
        # may recover it from the text or report a plain end of turn.
        assert m.stop_reason in ("stop_sequence", "end_turn")
        if m.stop_reason == "stop_sequence":
            assert m.stop_sequence == "said"


def test_stop_sequences_streamed(anthropic_client, alias):
    with anthropic_client.messages.stream(
        model=alias, max_tokens=200, stop_sequences=["said"], messages=user("Hello")
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"[{alias}] You "
    assert final.stop_reason in (("stop_sequence",) if alias == "demo-anthropic" else ("stop_sequence", "end_turn"))


def test_max_tokens(anthropic_client, alias):
    prompt = "Tell me a long story about dragons and castles"
    m = anthropic_client.messages.create(model=alias, max_tokens=3, messages=user(prompt))
    assert m.stop_reason == "max_tokens"
    assert texts(m) == said(alias, prompt)[:12]
    assert m.usage.output_tokens == 3


def test_max_tokens_streamed(anthropic_client, alias):
    prompt = "Tell me a long story about dragons and castles"
    with anthropic_client.messages.stream(model=alias, max_tokens=5, messages=user(prompt)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert text == said(alias, prompt)[:20]


def test_sampling_and_metadata(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=100,
        metadata={"user_id": "user-1234"},
        # This SDK version has no temperature/top_k keywords; send them raw.
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 40},
        messages=user("knobs"),
    )
    assert texts(m) == said(alias, "knobs")


def test_structured_output(anthropic_client, alias):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temperature": {"type": "number"}},
        "required": ["city", "temperature"],
        "additionalProperties": False,
    }
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=200,
        output_config={"format": {"type": "json_schema", "schema": schema}},
        messages=user("Weather as JSON"),
    )
    assert json.loads(texts(m)) == {"city": "demo", "temperature": 1}


# ---------------------------------------------------------------------------
# Auth, models, errors.


def test_auth_token_bearer(gateway_url, alias):
    client = anthropic.Anthropic(base_url=gateway_url, auth_token=DEMO_KEY, max_retries=0)
    m = client.messages.create(model=alias, max_tokens=100, messages=user("bearer"))
    assert texts(m) == said(alias, "bearer")


def test_models_list(anthropic_client):
    page = anthropic_client.models.list()
    ids = [m.id for m in page.data]
    for a in ALIASES + ["demo-embed", "demo"]:
        assert a in ids
    assert all(m.type == "model" for m in page.data)


def test_unknown_model(anthropic_client):
    with pytest.raises(anthropic.NotFoundError) as exc:
        anthropic_client.messages.create(model="no-such-model", max_tokens=10, messages=user("hi"))
    assert exc.value.status_code == 404
    assert exc.value.body["type"] == "error"
    assert exc.value.body["error"]["type"] == "not_found_error"
    assert exc.value.response.headers.get("x-request-id")


def test_unknown_model_streaming(anthropic_client):
    with pytest.raises(anthropic.NotFoundError):
        with anthropic_client.messages.stream(model="no-such-model", max_tokens=10, messages=user("hi")) as s:
            s.get_final_message()


@pytest.mark.parametrize("how", ["api_key", "auth_token"])
def test_bad_key(gateway_url, how):
    client = anthropic.Anthropic(base_url=gateway_url, max_retries=0, **{how: "sk-wrong"})
    with pytest.raises(anthropic.AuthenticationError) as exc:
        client.messages.create(model="demo-anthropic", max_tokens=10, messages=user("hi"))
    assert exc.value.status_code == 401
    assert exc.value.body["error"]["type"] == "authentication_error"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_tokens": 10, "messages": [{"role": "user", "content": 42}]},
        {"max_tokens": 10, "messages": [{"role": "wizard", "content": "hi"}]},
        {"max_tokens": "ten", "messages": user("hi")},
        {"max_tokens": 10, "messages": user("hi"), "tools": [{"description": "no name"}]},
    ],
    ids=["content-type", "bad-role", "max-tokens-type", "tool-missing-name"],
)
def test_malformed_input(anthropic_client, alias, kwargs):
    with pytest.raises(anthropic.BadRequestError) as exc:
        anthropic_client.messages.create(model=alias, **kwargs)
    assert exc.value.status_code == 400
    assert exc.value.body["error"]["type"] == "invalid_request_error"


def test_missing_max_tokens(anthropic_client, alias):
    # max_tokens is required by the Messages API.
    with pytest.raises(anthropic.BadRequestError):
        anthropic_client.messages.create(model=alias, messages=user("hi"), max_tokens=anthropic.omit)


def test_raw_response_headers(anthropic_client, alias):
    raw = anthropic_client.messages.with_raw_response.create(model=alias, max_tokens=50, messages=user("headers"))
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-switchyard-provider") == alias
    expected_path = "passthrough" if alias == "demo-anthropic" else "translated"
    assert raw.headers.get("x-switchyard-path") == expected_path
    assert texts(raw.parse()) == said(alias, "headers")


# ---------------------------------------------------------------------------
# More translation corners.


def test_unicode_streamed(anthropic_client, alias):
    prompt = "héllo 世界 🎉 ünïcödé"
    with anthropic_client.messages.stream(model=alias, max_tokens=200, messages=user(prompt)) as stream:
        text = "".join(stream.text_stream)
    assert text == said(alias, prompt)


@pytest.mark.parametrize(
    "alias",
    [
        "demo-openai",
        "demo-anthropic",
        "demo-gemini",
    ],
)
def test_disable_parallel_tool_use(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=200,
        tools=TOOLS,
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        messages=user("Weather and time in parallel please"),
    )
    assert [b.name for b in m.content if b.type == "tool_use"] == ["get_weather"]


def test_tool_result_is_error(anthropic_client, alias):
    first = anthropic_client.messages.create(
        model=alias, max_tokens=200, tools=[WEATHER_TOOL], messages=user("Weather?")
    )
    tu = first.content[-1]
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=200,
        tools=[WEATHER_TOOL],
        messages=user("Weather?")
        + [
            {"role": "assistant", "content": first.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tu.id, "is_error": True, "content": "boom"}]},
        ],
    )
    expected = {
        "demo-openai": "boom",
        "demo-anthropic": "boom",
        # Gemini: an error result is sent as {"error": ...}.
        "demo-gemini": '{"error":"boom"}',
    }[alias]
    assert texts(m) == f"[{alias}] Tool get_weather returned: {expected}"


def test_parameterless_tool(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=100,
        tools=[{"name": "get_status", "input_schema": {"type": "object"}}],
        messages=user("status?"),
    )
    assert [(b.name, b.input) for b in m.content if b.type == "tool_use"] == [("get_status", {})]


def test_parse_output_format(anthropic_client, alias):
    from pydantic import BaseModel

    class Weather(BaseModel):
        city: str
        temperature: int

    m = anthropic_client.messages.parse(
        model=alias, max_tokens=200, output_format=Weather, messages=user("Weather as JSON")
    )
    assert m.parsed_output == Weather(city="demo", temperature=1)


def test_thinking_accepted(anthropic_client, alias):
    m = anthropic_client.messages.create(
        model=alias,
        max_tokens=3000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=user("think"),
    )
    assert texts(m) == said(alias, "think")


def test_upstream_validation_error_carried(anthropic_client):
    # Anthropic rejects a thinking budget under 1024; the 400 comes back in
    # Anthropic's error shape with the provider's message.
    with pytest.raises(anthropic.BadRequestError) as exc:
        anthropic_client.messages.create(
            model="demo-anthropic",
            max_tokens=2000,
            thinking={"type": "enabled", "budget_tokens": 500},
            messages=user("think"),
        )
    assert "budget_tokens" in exc.value.body["error"]["message"]


def test_message_start_carries_input_tokens(anthropic_client, alias):
    # Anthropic reports the input tokens in `message_start`. Anthropic and
    # Gemini upstreams know them from their first chunk; OpenAI reports usage
    # only at the end, so there the count arrives in `message_delta`.
    events = list(
        anthropic_client.messages.create(model=alias, max_tokens=200, messages=user("count me"), stream=True)
    )
    full = anthropic_client.messages.create(model=alias, max_tokens=200, messages=user("count me"))
    start_usage = events[0].message.usage
    if alias == "demo-openai":
        assert start_usage.input_tokens == 0
        assert events[-2].usage.input_tokens == full.usage.input_tokens
    else:
        assert start_usage.input_tokens == full.usage.input_tokens


@pytest.mark.parametrize(
    "alias,kwargs",
    [
        ("demo-anthropic", {"max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 500}}),
        ("demo-gemini", {"max_tokens": 0}),
    ],
)
def test_upstream_error_before_stream_is_an_http_error(anthropic_client, alias, kwargs):
    with pytest.raises(anthropic.BadRequestError) as exc:
        with anthropic_client.messages.stream(model=alias, messages=user("x"), **kwargs) as stream:
            stream.get_final_message()
    assert exc.value.body["error"]["type"] == "invalid_request_error"


def test_demo_alias(anthropic_client):
    raw = anthropic_client.messages.with_raw_response.create(model="demo", max_tokens=100, messages=user("anyone"))
    provider = raw.headers.get("x-switchyard-provider")
    assert provider in ALIASES
    assert texts(raw.parse()) == said(provider, "anyone")
