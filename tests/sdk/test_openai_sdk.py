"""The official `openai` Python SDK against the gateway, through every
provider-backed demo alias (OpenAI pass-through, Anthropic and Gemini
translated).

Expected texts follow the mock reply rules (`crates/mock/src/reply.rs`).
"""

from __future__ import annotations

import json
import math
from typing import List

import openai
import pytest
from pydantic import BaseModel

from conftest import ALIASES, DEMO_KEY

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["c", "f"]},
            },
            "required": ["city"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a timezone",
        "parameters": {
            "type": "object",
            "properties": {"timezone": {"type": "string"}},
            "required": ["timezone"],
        },
    },
}
TOOLS = [WEATHER_TOOL, TIME_TOOL]
WEATHER_ARGS = {"city": "demo"}
TIME_ARGS = {"timezone": "demo"}

# A 1x1 transparent PNG.
PNG_B64 = (
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def said(alias: str, text: str) -> str:
    return f"[{alias}] You said: {text}"


def tool_returned(alias: str, name: str, content: str) -> str:
    # The Gemini dialect wraps a non-JSON tool result as {"output": "..."}
    # (functionResponse.response must be an object); the mock echoes it.
    if alias == "demo-gemini":
        content = json.dumps({"output": content}, separators=(",", ":"))
    return f"[{alias}] Tool {name} returned: {content}"


def user(text: str):
    return [{"role": "user", "content": text}]


def collect_stream(stream):
    """Drain a `create(stream=True)` stream: (text, finish_reason, tool calls
    assembled by index, the chunks)."""
    chunks = list(stream)
    text = ""
    finish = None
    calls: dict[int, dict] = {}
    for ch in chunks:
        for choice in ch.choices:
            d = choice.delta
            if d.content:
                text += d.content
            for tc in d.tool_calls or []:
                slot = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": "", "fragments": 0})
                if tc.id:
                    slot["id"] = tc.id
                if tc.function and tc.function.name:
                    slot["name"] += tc.function.name
                if tc.function and tc.function.arguments:
                    slot["arguments"] += tc.function.arguments
                    slot["fragments"] += 1
            if choice.finish_reason:
                finish = choice.finish_reason
    return text, finish, [calls[i] for i in sorted(calls)], chunks


# ---------------------------------------------------------------------------
# Plain chat: non-streaming and streaming.


def test_non_streaming(openai_client, alias):
    r = openai_client.chat.completions.create(model=alias, messages=user("Hello there"))
    assert r.object == "chat.completion"
    assert r.id
    assert len(r.choices) == 1
    c = r.choices[0]
    assert c.index == 0
    assert c.finish_reason == "stop"
    assert c.message.role == "assistant"
    assert c.message.content == said(alias, "Hello there")
    assert not c.message.tool_calls
    assert r.usage is not None
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_streaming_matches_non_streaming_without_usage(openai_client, alias):
    prompt = "Stream me a few words please, one piece at a time"
    full = openai_client.chat.completions.create(model=alias, messages=user(prompt))
    stream = openai_client.chat.completions.create(model=alias, messages=user(prompt), stream=True)
    text, finish, calls, chunks = collect_stream(stream)
    assert text == full.choices[0].message.content == said(alias, prompt)
    assert finish == "stop"
    assert not calls
    assert len(chunks) >= 3
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert len({ch.id for ch in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    # Usage was not asked for: no chunk carries it, every chunk has a choice.
    assert all(ch.usage is None for ch in chunks)
    assert all(len(ch.choices) == 1 for ch in chunks)


def test_streaming_with_include_usage(openai_client, alias):
    prompt = "Count my tokens"
    full = openai_client.chat.completions.create(model=alias, messages=user(prompt))
    stream = openai_client.chat.completions.create(
        model=alias, messages=user(prompt), stream=True, stream_options={"include_usage": True}
    )
    text, finish, _, chunks = collect_stream(stream)
    assert text == said(alias, prompt)
    assert finish == "stop"
    last = chunks[-1]
    # OpenAI: the final chunk has an empty choices list and the usage.
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.prompt_tokens == full.usage.prompt_tokens
    assert last.usage.completion_tokens == full.usage.completion_tokens
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    assert all(ch.usage is None for ch in chunks[:-1])


def test_stream_helper_text(openai_client, alias):
    prompt = "Use the helper"
    deltas = []
    with openai_client.chat.completions.stream(model=alias, messages=user(prompt)) as stream:
        for event in stream:
            if event.type == "content.delta":
                deltas.append(event.delta)
        final = stream.get_final_completion()
    assert "".join(deltas) == said(alias, prompt)
    assert final.choices[0].message.content == said(alias, prompt)
    assert final.choices[0].finish_reason == "stop"


def test_multi_turn_and_system(openai_client, alias):
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": [{"type": "text", "text": "second question"}]},
    ]
    r = openai_client.chat.completions.create(model=alias, messages=messages)
    assert r.choices[0].message.content == said(alias, "second question")
    bare = openai_client.chat.completions.create(model=alias, messages=user("second question"))
    # The system prompt and earlier turns count as input.
    assert r.usage.prompt_tokens > bare.usage.prompt_tokens


def test_developer_role(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": "hi dev"}],
    )
    assert r.choices[0].message.content == said(alias, "hi dev")


# ---------------------------------------------------------------------------
# Tools.


def assert_call(call, name, args):
    assert call.type == "function"
    assert call.id
    assert call.function.name == name
    assert json.loads(call.function.arguments) == args


@pytest.mark.parametrize("choice", ["auto", "required", None])
def test_tool_call(openai_client, alias, choice):
    kwargs = {} if choice is None else {"tool_choice": choice}
    r = openai_client.chat.completions.create(
        model=alias, messages=user("What's the weather in Paris?"), tools=TOOLS, **kwargs
    )
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    assert c.message.role == "assistant"
    assert not c.message.content  # None or ""
    assert len(c.message.tool_calls) == 1
    assert_call(c.message.tool_calls[0], "get_weather", WEATHER_ARGS)


def test_tool_choice_named(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias,
        messages=user("What time is it?"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    c = r.choices[0]
    # Real OpenAI answers a named tool_choice with finish_reason "stop" (the
    # OpenAI mock impersonates that and pass-through keeps it); translated
    # backends report the tool call.
    assert c.finish_reason == ("stop" if alias == "demo-openai" else "tool_calls")
    assert len(c.message.tool_calls) == 1
    assert_call(c.message.tool_calls[0], "get_time", TIME_ARGS)


def test_tool_choice_none(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias, messages=user("No tools please"), tools=TOOLS, tool_choice="none"
    )
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert not c.message.tool_calls
    assert c.message.content == said(alias, "No tools please")


def test_parallel_tool_calls(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias, messages=user("Weather and time in parallel please"), tools=TOOLS
    )
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    calls = c.message.tool_calls
    assert len(calls) == 2
    assert_call(calls[0], "get_weather", WEATHER_ARGS)
    assert_call(calls[1], "get_time", TIME_ARGS)
    assert calls[0].id != calls[1].id


@pytest.mark.parametrize(
    "alias",
    [
        "demo-openai",
        "demo-anthropic",
        "demo-gemini",
    ],
)
def test_parallel_tool_calls_disabled(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias,
        messages=user("Weather and time in parallel please"),
        tools=TOOLS,
        parallel_tool_calls=False,
    )
    calls = r.choices[0].message.tool_calls
    assert len(calls) == 1
    assert_call(calls[0], "get_weather", WEATHER_ARGS)


def test_streamed_tool_calls(openai_client, alias):
    stream = openai_client.chat.completions.create(
        model=alias,
        messages=user("Weather and time in parallel please"),
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    text, finish, calls, chunks = collect_stream(stream)
    assert finish == "tool_calls"
    assert text == ""
    assert [c["name"] for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == WEATHER_ARGS
    assert json.loads(calls[1]["arguments"]) == TIME_ARGS
    assert all(c["id"] for c in calls)
    assert calls[0]["id"] != calls[1]["id"]
    # Arguments arrive in fragments that concatenate to valid JSON.
    assert sum(c["fragments"] for c in calls) >= 2
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_stream_helper_tool_calls(openai_client, alias):
    done = []
    with openai_client.chat.completions.stream(
        model=alias, messages=user("Weather please"), tools=[WEATHER_TOOL], tool_choice="required"
    ) as stream:
        for event in stream:
            if event.type == "tool_calls.function.arguments.done":
                done.append((event.name, event.arguments))
        final = stream.get_final_completion()
    assert [(n, json.loads(a)) for n, a in done] == [("get_weather", WEATHER_ARGS)]
    c = final.choices[0]
    assert c.finish_reason == "tool_calls"
    assert len(c.message.tool_calls) == 1
    assert_call(c.message.tool_calls[0], "get_weather", WEATHER_ARGS)


def test_tool_result_round_trip(openai_client, alias):
    first = openai_client.chat.completions.create(
        model=alias, messages=user("What's the weather in Paris?"), tools=TOOLS
    )
    call = first.choices[0].message.tool_calls[0]
    messages = user("What's the weather in Paris?") + [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21C"},
    ]
    r = openai_client.chat.completions.create(model=alias, messages=messages, tools=TOOLS)
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert not c.message.tool_calls
    assert c.message.content == tool_returned(alias, "get_weather", "sunny, 21C")


@pytest.mark.parametrize(
    "alias",
    [
        "demo-openai",
        "demo-anthropic",
        "demo-gemini",
    ],
)
def test_tool_round_trip_appending_response_message(openai_client, alias):
    # The pattern from OpenAI's function-calling guide: append the returned
    # message object itself (the SDK serialises all its fields, including
    # `refusal: null` and `annotations: []`).
    messages = user("What's the weather in Paris?")
    first = openai_client.chat.completions.create(model=alias, messages=messages, tools=TOOLS)
    msg = first.choices[0].message
    messages = messages + [msg, {"role": "tool", "tool_call_id": msg.tool_calls[0].id, "content": "sunny"}]
    r = openai_client.chat.completions.create(model=alias, messages=messages, tools=TOOLS)
    assert r.choices[0].message.content == tool_returned(alias, "get_weather", "sunny")


def test_parallel_tool_results_streamed(openai_client, alias):
    first = openai_client.chat.completions.create(
        model=alias, messages=user("Weather and time in parallel please"), tools=TOOLS
    )
    calls = first.choices[0].message.tool_calls
    assert len(calls) == 2
    messages = user("Weather and time in parallel please") + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [c.model_dump() for c in calls],
        },
        {"role": "tool", "tool_call_id": calls[0].id, "content": "rainy"},
        {"role": "tool", "tool_call_id": calls[1].id, "content": [{"type": "text", "text": "noon"}]},
    ]
    stream = openai_client.chat.completions.create(model=alias, messages=messages, tools=TOOLS, stream=True)
    text, finish, tcalls, _ = collect_stream(stream)
    assert finish == "stop"
    assert not tcalls
    assert text == tool_returned(alias, "get_time", "noon")


# ---------------------------------------------------------------------------
# Images.


@pytest.mark.parametrize(
    "url",
    ["https://example.com/cat.png", f"data:image/png;base64,{PNG_B64}"],
    ids=["https", "data"],
)
def test_image_url(openai_client, alias, url):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            ],
        }
    ]
    r = openai_client.chat.completions.create(model=alias, messages=messages)
    assert r.choices[0].message.content == said(alias, "What is in this picture?") + " (1 image)"


def test_two_images(openai_client, alias):
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_B64}"}},
                {"type": "text", "text": "Compare"},
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.jpg"}},
            ],
        }
    ]
    r = openai_client.chat.completions.create(model=alias, messages=messages)
    assert r.choices[0].message.content == said(alias, "Compare") + " (2 images)"


# ---------------------------------------------------------------------------
# Structured output.


def test_json_object(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias, messages=user("Reply in JSON"), response_format={"type": "json_object"}
    )
    content = r.choices[0].message.content
    if alias == "demo-anthropic":
        # Anthropic has no schema-less JSON mode: the gateway asks for a JSON
        # object in an extra system instruction, which the canned mock cannot
        # obey. Check the instruction went up (it counts as input).
        plain = openai_client.chat.completions.create(model=alias, messages=user("Reply in JSON"))
        assert content == said(alias, "Reply in JSON")
        assert r.usage.prompt_tokens > plain.usage.prompt_tokens
    else:
        assert json.loads(content) == {"reply": said(alias, "Reply in JSON")}


WEATHER_SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "temperature": {"type": "number"},
        "sunny": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "temperature", "sunny", "tags"],
    "additionalProperties": False,
}


def test_json_schema(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias,
        messages=user("Weather as JSON"),
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "weather", "schema": WEATHER_SCHEMA, "strict": True},
        },
    )
    assert json.loads(r.choices[0].message.content) == {
        "city": "demo",
        "temperature": 1,
        "sunny": True,
        "tags": [],
    }


class Weather(BaseModel):
    city: str
    temperature: int
    sunny: bool
    tags: List[str]


def test_parse_pydantic(openai_client, alias):
    r = openai_client.chat.completions.parse(
        model=alias, messages=user("Weather as JSON"), response_format=Weather
    )
    parsed = r.choices[0].message.parsed
    assert parsed == Weather(city="demo", temperature=1, sunny=True, tags=[])


def test_stream_helper_pydantic(openai_client, alias):
    with openai_client.chat.completions.stream(
        model=alias, messages=user("Weather as JSON"), response_format=Weather
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.parsed == Weather(city="demo", temperature=1, sunny=True, tags=[])


def test_parse_strict_tool(openai_client, alias):
    class GetWeather(BaseModel):
        city: str

    r = openai_client.chat.completions.parse(
        model=alias,
        messages=user("Weather in Paris?"),
        tools=[openai.pydantic_function_tool(GetWeather)],
    )
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "GetWeather"
    assert call.function.parsed_arguments == GetWeather(city="demo")


# ---------------------------------------------------------------------------
# Sampling and limits.


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_token_limit(openai_client, alias, param):
    prompt = "Tell me a long story about dragons and castles"
    r = openai_client.chat.completions.create(model=alias, messages=user(prompt), **{param: 3})
    c = r.choices[0]
    assert c.finish_reason == "length"
    assert c.message.content == said(alias, prompt)[:12]
    assert r.usage.completion_tokens == 3


def test_token_limit_streamed(openai_client, alias):
    prompt = "Tell me a long story about dragons and castles"
    stream = openai_client.chat.completions.create(
        model=alias, messages=user(prompt), max_completion_tokens=5, stream=True
    )
    text, finish, _, _ = collect_stream(stream)
    assert finish == "length"
    assert text == said(alias, prompt)[:20]


@pytest.mark.parametrize("stop", ["said", ["zzz", "said"]], ids=["string", "list"])
def test_stop(openai_client, alias, stop):
    r = openai_client.chat.completions.create(model=alias, messages=user("Hello"), stop=stop)
    c = r.choices[0]
    assert c.finish_reason == "stop"
    assert c.message.content == f"[{alias}] You "


def test_stop_streamed(openai_client, alias):
    stream = openai_client.chat.completions.create(model=alias, messages=user("Hello"), stop=["said"], stream=True)
    text, finish, _, _ = collect_stream(stream)
    assert finish == "stop"
    assert text == f"[{alias}] You "


def test_sampling_parameters(openai_client, alias):
    r = openai_client.chat.completions.create(
        model=alias,
        messages=user("Sampling knobs"),
        temperature=0.2,
        top_p=0.9,
        seed=42,
        user="user-1234",
    )
    assert r.choices[0].message.content == said(alias, "Sampling knobs")
    assert r.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("alias", ["demo-openai", "demo-gemini"])
def test_n_choices(openai_client, alias):
    r = openai_client.chat.completions.create(model=alias, messages=user("Two answers"), n=2)
    assert [c.index for c in r.choices] == [0, 1]
    for c in r.choices:
        assert c.message.content == said(alias, "Two answers")
        assert c.finish_reason == "stop"


@pytest.mark.parametrize("alias", ["demo-openai", "demo-gemini"])
def test_n_choices_streamed(openai_client, alias):
    stream = openai_client.chat.completions.create(model=alias, messages=user("Two answers"), n=2, stream=True)
    texts = {0: "", 1: ""}
    finishes = {}
    for ch in stream:
        for c in ch.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert texts == {0: said(alias, "Two answers"), 1: said(alias, "Two answers")}
    assert finishes == {0: "stop", 1: "stop"}


def test_n_choices_anthropic_rejected(openai_client):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model="demo-anthropic", messages=user("Two answers"), n=2)
    assert exc.value.status_code == 400
    assert "n" in str(exc.value.message)


def test_n_one_anthropic_ok(openai_client):
    r = openai_client.chat.completions.create(model="demo-anthropic", messages=user("One answer"), n=1)
    assert r.choices[0].message.content == said("demo-anthropic", "One answer")


# ---------------------------------------------------------------------------
# Embeddings and models.


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def test_embeddings_default_base64(openai_client):
    # The SDK asks for base64 by default and decodes it to floats.
    r = openai_client.embeddings.create(model="demo-embed", input="hello world")
    assert r.object == "list"
    assert len(r.data) == 1
    e = r.data[0]
    assert e.object == "embedding" and e.index == 0
    assert isinstance(e.embedding, list) and len(e.embedding) > 0
    assert all(isinstance(x, float) for x in e.embedding)
    assert abs(norm(e.embedding) - 1.0) < 1e-3
    assert r.usage.prompt_tokens > 0


def test_embeddings_float_matches_base64(openai_client):
    b64 = openai_client.embeddings.create(model="demo-embed", input=["alpha", "beta"])
    flt = openai_client.embeddings.create(model="demo-embed", input=["alpha", "beta"], encoding_format="float")
    assert [d.index for d in flt.data] == [0, 1]
    for a, b in zip(b64.data, flt.data):
        assert len(a.embedding) == len(b.embedding)
        assert all(abs(x - y) < 1e-6 for x, y in zip(a.embedding, b.embedding))
    assert flt.data[0].embedding != flt.data[1].embedding


def test_embeddings_dimensions(openai_client):
    r = openai_client.embeddings.create(model="demo-embed", input="shorter", dimensions=64, encoding_format="float")
    assert len(r.data[0].embedding) == 64


def test_models_list(openai_client):
    ids = [m.id for m in openai_client.models.list()]
    for a in ALIASES + ["demo-embed", "demo"]:
        assert a in ids
    m = next(m for m in openai_client.models.list() if m.id == "demo-openai")
    assert m.object == "model"


# ---------------------------------------------------------------------------
# Errors and headers.


def test_unknown_model(openai_client):
    with pytest.raises(openai.NotFoundError) as exc:
        openai_client.chat.completions.create(model="no-such-model", messages=user("hi"))
    assert exc.value.status_code == 404
    assert exc.value.code == "model_not_found"
    assert exc.value.response.headers.get("x-request-id")


def test_unknown_model_streaming(openai_client):
    with pytest.raises(openai.NotFoundError) as exc:
        openai_client.chat.completions.create(model="no-such-model", messages=user("hi"), stream=True)
    assert exc.value.code == "model_not_found"


def test_unknown_embedding_model(openai_client):
    with pytest.raises(openai.NotFoundError) as exc:
        openai_client.embeddings.create(model="no-such-model", input="hi")
    assert exc.value.code == "model_not_found"


def test_bad_key(gateway_url):
    bad = openai.OpenAI(base_url=gateway_url + "/v1", api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.chat.completions.create(model="demo-openai", messages=user("hi"))
    assert exc.value.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()
    with pytest.raises(openai.AuthenticationError):
        bad.embeddings.create(model="demo-embed", input="hi")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"messages": "not a list"},
        {"messages": [{"content": "no role"}]},
        {"messages": [{"role": "wizard", "content": "hi"}]},
        {"messages": user("hi"), "temperature": "hot"},
        {"messages": user("hi"), "tools": [{"type": "function"}]},
    ],
    ids=["messages-not-list", "missing-role", "bad-role", "temperature-type", "tool-missing-function"],
)
def test_malformed_input(openai_client, alias, kwargs):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model=alias, **kwargs)
    assert exc.value.status_code == 400
    assert exc.value.message


def test_raw_response_headers(openai_client, alias):
    raw = openai_client.chat.completions.with_raw_response.create(model=alias, messages=user("headers"))
    assert raw.headers.get("x-request-id")
    assert raw.headers.get("x-switchyard-provider") == alias
    expected_path = "passthrough" if alias == "demo-openai" else "translated"
    assert raw.headers.get("x-switchyard-path") == expected_path
    r = raw.parse()
    assert r.choices[0].message.content == said(alias, "headers")


def test_raw_response_headers_streaming(openai_client, alias):
    with openai_client.chat.completions.with_streaming_response.create(
        model=alias, messages=user("headers"), stream=True
    ) as resp:
        assert resp.headers.get("x-request-id")
        assert resp.headers.get("x-switchyard-provider") == alias
        text, _, _, _ = collect_stream(resp.parse())
    assert text == said(alias, "headers")


def test_request_ids_unique(openai_client):
    a = openai_client.chat.completions.with_raw_response.create(model="demo-openai", messages=user("a"))
    b = openai_client.chat.completions.with_raw_response.create(model="demo-openai", messages=user("b"))
    assert a.headers["x-request-id"] != b.headers["x-request-id"]


def test_demo_alias_routes_somewhere(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(model="demo", messages=user("anyone"))
    provider = raw.headers.get("x-switchyard-provider")
    assert provider in ALIASES
    assert raw.parse().choices[0].message.content == said(provider, "anyone")


def test_api_key_header_variants(gateway_url):
    # The gateway also accepts `api-key` (Azure style) with no bearer token.
    client = openai.OpenAI(
        base_url=gateway_url + "/v1",
        api_key="unused",
        max_retries=0,
        default_headers={"Authorization": "", "api-key": DEMO_KEY},
    )
    r = client.chat.completions.create(model="demo-openai", messages=user("azure style"))
    assert r.choices[0].message.content == said("demo-openai", "azure style")


# ---------------------------------------------------------------------------
# More translation corners.


def test_unicode_streamed(openai_client, alias):
    prompt = "héllo 世界 🎉 ünïcödé"
    stream = openai_client.chat.completions.create(model=alias, messages=user(prompt), stream=True)
    text, _, _, _ = collect_stream(stream)
    assert text == said(alias, prompt)


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "function", "function": {"name": "get_status"}},
        {"type": "function", "function": {"name": "get_status", "parameters": {"type": "object", "properties": {}}}},
    ],
    ids=["no-parameters", "empty-properties"],
)
def test_parameterless_tool(openai_client, alias, tool):
    r = openai_client.chat.completions.create(model=alias, messages=user("status?"), tools=[tool])
    call = r.choices[0].message.tool_calls[0]
    assert call.function.name == "get_status"
    assert json.loads(call.function.arguments) == {}
    stream = openai_client.chat.completions.create(model=alias, messages=user("status?"), tools=[tool], stream=True)
    _, finish, calls, _ = collect_stream(stream)
    assert finish == "tool_calls"
    assert [(c["name"], json.loads(c["arguments"])) for c in calls] == [("get_status", {})]


def test_strict_tool_with_rich_schema(openai_client, alias):
    tool = {
        "type": "function",
        "function": {
            "name": "query",
            "strict": True,
            "parameters": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "u": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    "n": {"type": ["integer", "null"]},
                    "o": {
                        "type": "object",
                        "properties": {"x": {"type": "string"}},
                        "required": ["x"],
                        "additionalProperties": False,
                    },
                },
                "required": ["u", "n", "o"],
                "additionalProperties": False,
            },
        },
    }
    r = openai_client.chat.completions.create(model=alias, messages=user("query"), tools=[tool])
    assert json.loads(r.choices[0].message.tool_calls[0].function.arguments) == {"u": "demo", "n": 1, "o": {"x": "demo"}}


def test_two_tool_rounds_with_assistant_text(openai_client, alias):
    tools = [WEATHER_TOOL]
    messages = user("Weather?")
    r = openai_client.chat.completions.create(model=alias, tools=tools, messages=messages)
    tc = r.choices[0].message.tool_calls[0]
    messages += [
        {"role": "assistant", "content": "Let me check.", "tool_calls": [tc.model_dump()]},
        {"role": "tool", "tool_call_id": tc.id, "content": "one"},
        {"role": "assistant", "content": "It is one."},
        {"role": "user", "content": "And again?"},
    ]
    r = openai_client.chat.completions.create(model=alias, tools=tools, messages=messages)
    tc2 = r.choices[0].message.tool_calls[0]
    assert tc2.id != tc.id
    messages += [
        {"role": "assistant", "content": None, "tool_calls": [tc2.model_dump()]},
        {"role": "tool", "tool_call_id": tc2.id, "content": "two"},
    ]
    r = openai_client.chat.completions.create(model=alias, tools=tools, messages=messages)
    assert r.choices[0].message.content == tool_returned(alias, "get_weather", "two")


def test_reasoning_effort_accepted(openai_client, alias):
    r = openai_client.chat.completions.create(model=alias, messages=user("think"), reasoning_effort="low")
    assert r.choices[0].message.content == said(alias, "think")


@pytest.mark.parametrize("alias", ["demo-openai", "demo-gemini"])
def test_upstream_validation_error_carried(openai_client, alias):
    # temperature 5 is outside OpenAI's and Gemini's 0-2: the provider's 400
    # comes back as a 400 with its message.
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model=alias, messages=user("hot"), temperature=5)
    assert "temperature" in exc.value.message


def test_embeddings_via_gemini(openai_client):
    # OpenAI embeddings request translated to Gemini batchEmbedContents.
    flt = openai_client.embeddings.create(model="demo-gemini", input=["alpha", "beta"], encoding_format="float")
    b64 = openai_client.embeddings.create(model="demo-gemini", input=["alpha", "beta"])
    assert [d.index for d in flt.data] == [0, 1]
    for a, b in zip(flt.data, b64.data):
        assert len(a.embedding) > 0
        assert abs(norm(a.embedding) - 1.0) < 1e-3
        assert all(abs(x - y) < 1e-6 for x, y in zip(a.embedding, b.embedding))


def test_embeddings_via_anthropic_rejected(openai_client):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.embeddings.create(model="demo-anthropic", input="hi")
    assert "embeddings" in exc.value.message


def test_models_retrieve(openai_client, alias):
    m = openai_client.models.retrieve(alias)
    assert m.id == alias and m.object == "model"
    with pytest.raises(openai.NotFoundError):
        openai_client.models.retrieve("no-such-model")


def test_n_choices_anthropic_rejected_streaming(openai_client):
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model="demo-anthropic", messages=user("two"), n=2, stream=True)
    assert exc.value.param == "n"


@pytest.mark.parametrize("alias", ["demo-openai", "demo-gemini"])
def test_upstream_error_before_stream_is_an_http_error(openai_client, alias):
    # The provider refuses the request before any byte is streamed: the SDK
    # gets a plain 400, not a broken stream.
    with pytest.raises(openai.BadRequestError) as exc:
        openai_client.chat.completions.create(model=alias, messages=user("hot"), temperature=5, stream=True)
    assert "temperature" in exc.value.message


def test_provider_slash_model(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="demo-gemini/gemini-2.5-pro", messages=user("direct")
    )
    assert raw.headers.get("x-switchyard-upstream-model") == "gemini-2.5-pro"
    assert raw.parse().choices[0].message.content == said("demo-gemini", "direct")
