"""Structured output on weft-server's OpenAI API, end to end on the default
model: the unmodified `openai` client's `parse` helper fills a pydantic
model from a json_schema response_format; sampled and streamed choices
validate against their schema with the `jsonschema` package; vLLM's
guided_choice, guided_regex and structured_outputs grammar hold; a schema
that does not compile is a 400 naming its field; tool_choice "required" and
a named function give calls of the offered tools; gRPC Generate's
structured_output gives the same text as the HTTP API."""
import json
import re

import grpc
import jsonschema
import openai
import pydantic
import pytest

from test_openai_http import client, model_name


class City(pydantic.BaseModel):
    name: str
    country: str
    population: int


def test_the_openai_parse_helper_fills_a_pydantic_model(default_server):
    c = client(default_server)
    completion = c.chat.completions.parse(
        model=model_name(default_server),
        messages=[{"role": "user",
                   "content": "Give the name, country and population of Paris as JSON."}],
        response_format=City, temperature=0, max_tokens=120)
    choice = completion.choices[0]
    assert choice.finish_reason == "stop", choice.message.content
    assert isinstance(choice.message.parsed, City)


RECIPE = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1, "maxLength": 40},
        "difficulty": {"enum": ["easy", "medium", "hard"]},
        "ingredients": {"type": "array", "items": {"type": "string", "maxLength": 30},
                        "minItems": 1, "maxItems": 4},
        "minutes": {"type": "integer", "minimum": 1, "maximum": 600},
    },
    "required": ["title", "difficulty", "ingredients", "minutes"],
    "additionalProperties": False,
}


def test_sampled_streamed_choices_match_their_schema(default_server):
    stream = client(default_server).chat.completions.create(
        model=model_name(default_server),
        messages=[{"role": "user", "content": "Write a short recipe as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "recipe", "schema": RECIPE}},
        n=3, temperature=1.0, seed=11, max_tokens=200, stream=True)
    texts, finish = ["", "", ""], [None, None, None]
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            finish[choice.index] = choice.finish_reason or finish[choice.index]
    finished = [t for t, f in zip(texts, finish) if f == "stop"]
    assert finished, (texts, finish)  # not every sample may fit in 200 tokens
    for text in finished:
        jsonschema.validate(json.loads(text), RECIPE)


def test_vllm_guided_choice_and_regex(default_server):
    c = client(default_server)
    name = model_name(default_server)
    choice = c.completions.create(
        model=name, prompt="Q: Is the sun a star?\nA:", max_tokens=5, temperature=0,
        extra_body={"guided_choice": ["yes", "no", "unknown"]})
    assert choice.choices[0].text in ("yes", "no", "unknown")
    assert choice.choices[0].finish_reason == "stop"
    date = c.completions.create(
        model=name, prompt="The first moon landing was on", max_tokens=20,
        temperature=0, extra_body={"guided_regex": r" \d{4}-\d{2}-\d{2}"})
    assert re.fullmatch(r" \d{4}-\d{2}-\d{2}", date.choices[0].text), date.choices[0].text


def test_structured_outputs_grammar_on_chat(default_server):
    grammar = 'root ::= "SELECT " col (", " col)* " FROM " tbl\ncol ::= [a-z_]+\ntbl ::= [a-z_]+'
    chat = client(default_server).chat.completions.create(
        model=model_name(default_server),
        messages=[{"role": "user", "content": "SQL to list user names and emails."}],
        temperature=0, max_tokens=40,
        extra_body={"structured_outputs": {"grammar": grammar}})
    text = chat.choices[0].message.content
    assert re.fullmatch(r"SELECT [a-z_]+(, [a-z_]+)* FROM [a-z_]+", text), text


def test_a_schema_that_does_not_compile_is_a_400(default_server):
    with pytest.raises(openai.BadRequestError) as raised:
        client(default_server).chat.completions.create(
            model=model_name(default_server),
            messages=[{"role": "user", "content": "hi"}], max_tokens=5,
            response_format={"type": "json_schema",
                             "json_schema": {"name": "x", "schema": {"type": "tuple"}}})
    assert raised.value.body["param"] == "response_format.json_schema.schema"


WEATHER = {"type": "object",
           "properties": {"city": {"type": "string", "maxLength": 30},
                          "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"]}
TIME = {"type": "object", "properties": {"zone": {"type": "string", "maxLength": 30}},
        "required": ["zone"]}
TOOLS = [{"type": "function",
          "function": {"name": "get_weather", "description": "Weather in a city",
                       "parameters": WEATHER}},
         {"type": "function",
          "function": {"name": "get_time", "description": "Time in a zone",
                       "parameters": TIME}}]
PARAMETERS = {"get_weather": WEATHER, "get_time": TIME}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def test_tool_choice_required_makes_calls_of_the_offered_tools(default_server):
    c = client(default_server)
    args = dict(model=model_name(default_server), messages=ASK, tools=TOOLS,
                tool_choice="required", temperature=0, max_tokens=150)
    whole = c.chat.completions.create(**args).choices[0]
    assert whole.finish_reason == "tool_calls", whole.message
    assert whole.message.content is None
    assert whole.message.tool_calls
    for call in whole.message.tool_calls:
        assert call.type == "function" and call.id
        jsonschema.validate(json.loads(call.function.arguments),
                            PARAMETERS[call.function.name])
    # Streamed: the same calls, in tool_calls deltas.
    streamed, finish = {}, None
    for chunk in c.chat.completions.create(stream=True, **args):
        for delta_call in chunk.choices[0].delta.tool_calls or []:
            entry = streamed.setdefault(delta_call.index, {"name": "", "arguments": ""})
            entry["name"] += delta_call.function.name or ""
            entry["arguments"] += delta_call.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls"
    assert [streamed[i] for i in sorted(streamed)] == [
        {"name": call.function.name, "arguments": call.function.arguments}
        for call in whole.message.tool_calls]


def test_a_named_tool_choice_calls_that_tool(default_server):
    chat = client(default_server).chat.completions.create(
        model=model_name(default_server), messages=ASK, tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        temperature=0, max_tokens=100)
    choice = chat.choices[0]
    assert choice.finish_reason == "stop"  # OpenAI's for a named function
    [call] = choice.message.tool_calls
    assert call.function.name == "get_time"
    jsonschema.validate(json.loads(call.function.arguments), TIME)


def test_grpc_structured_output_equals_the_http_api(pb, default_server):
    messages, services = pb
    prompt = "<|im_start|>user\nDescribe Paris as JSON.<|im_end|>\n<|im_start|>assistant\n"
    completion = client(default_server).completions.create(
        model=model_name(default_server), prompt=prompt, max_tokens=150, temperature=0,
        extra_body={"guided_json": RECIPE, "add_special_tokens": False})
    request = messages.GenerateRequest(text=prompt)
    request.sampling.temperature = 0
    request.stopping.max_tokens = 150
    request.structured_output.json_schema = json.dumps(RECIPE)
    with grpc.insecure_channel(default_server.address) as channel:
        stub = services.GenerationStub(channel)
        text = "".join(r.delta.text for r in stub.Generate(request, timeout=120)
                       if r.HasField("delta"))
        assert text == completion.choices[0].text
        jsonschema.validate(json.loads(text), RECIPE)
        bad = messages.GenerateRequest(text=prompt)
        bad.structured_output.regex = "(ab"
        with pytest.raises(grpc.RpcError) as error:
            list(stub.Generate(bad, timeout=30))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error.value.details().startswith("structured_output")
