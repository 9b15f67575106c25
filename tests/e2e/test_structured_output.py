"""Structured output on weft-server's OpenAI API, end to end on the default
model: the unmodified `openai` client's `parse` helper fills a pydantic
model from a json_schema response_format; sampled and streamed choices
validate against their schema with the `jsonschema` package; vLLM's
guided_choice, guided_regex and structured_outputs grammar hold; a schema
that does not compile is a 400 naming its field."""
import json
import re

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
