"""weft-server's OpenAI-compatible HTTP API end to end, driven by the
unmodified `openai` Python client (and the standard library's http.client
for what that client cannot send): completions and chat, streamed and not, n, stop strings,
log-probs; greedy text equal to gRPC Generate's; a closed stream freeing
its KV blocks; bad requests refused in OpenAI's error shape while a stream
flows; drain on SIGTERM."""
import hashlib
import http.client
import json
import os
import threading
import time

import grpc
import openai
import pytest

from conftest import DEFAULT_MODEL, REPO, Server

KEY = "sk-weft-e2e"


def client(server, api_key="unused"):
    return openai.OpenAI(base_url=server.http_url + "/v1", api_key=api_key,
                         max_retries=0, timeout=120)


def model_name(server):
    return client(server).models.list().data[0].id


def greedy(**extra):
    """Greedy sampling that runs to max_tokens (no early EOS)."""
    return dict(temperature=0, extra_body={"ignore_eos": True, **extra})


def raw_request(server, method, path, body=None, headers=None):
    """One plain HTTP request; returns (status, parsed JSON body or text)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        text = response.read().decode()
    finally:
        connection.close()
    try:
        return response.status, json.loads(text)
    except ValueError:
        return response.status, text


def load(pb, server):
    messages, services = pb
    with grpc.insecure_channel(server.address) as channel:
        return services.GenerationStub(channel).GetLoad(messages.GetLoadRequest(), timeout=10)


def test_models_lists_the_served_model(default_server):
    models = client(default_server).models.list()
    assert [m.id for m in models.data] == ["SmolLM2-135M-Instruct.Q4_1.gguf"]
    assert models.data[0].object == "model"


def test_greedy_completion_equals_grpc_generate(pb, default_server):
    messages, services = pb
    prompt = "The capital of France is"
    completion = client(default_server).completions.create(
        model=model_name(default_server), prompt=prompt, max_tokens=12, **greedy())
    assert completion.id.startswith("cmpl-")
    assert completion.object == "text_completion"
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 12
    # The same request over gRPC (completions add the tokenizer's special
    # tokens, as vLLM does).
    request = messages.GenerateRequest(text=prompt, add_special_tokens=True)
    request.sampling.temperature = 0
    request.stopping.max_tokens = 12
    request.stopping.ignore_eos = True
    with grpc.insecure_channel(default_server.address) as channel:
        text = "".join(r.delta.text for r in
                       services.GenerationStub(channel).Generate(request, timeout=120)
                       if r.HasField("delta"))
    assert completion.choices[0].text == text
    assert completion.usage.prompt_tokens > 0


def test_streamed_completion_equals_the_whole_one(default_server):
    c = client(default_server)
    args = dict(model=model_name(default_server), prompt="Once upon a time",
                max_tokens=10, **greedy())
    whole = c.completions.create(**args).choices[0].text
    chunks = list(c.completions.create(stream=True,
                                       stream_options={"include_usage": True}, **args))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == whole
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "length"
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 10
    assert len({ch.id for ch in chunks}) == 1


def test_chat_completion_answers_as_the_assistant(default_server):
    chat = client(default_server).chat.completions.create(
        model=model_name(default_server),
        messages=[{"role": "system", "content": "You are brief."},
                  {"role": "user", "content": "What is 2+2?"}],
        max_completion_tokens=8, temperature=0)
    assert chat.id.startswith("chatcmpl-")
    assert chat.object == "chat.completion"
    message = chat.choices[0].message
    assert message.role == "assistant"
    assert isinstance(message.content, str) and message.content
    assert chat.choices[0].finish_reason in ("stop", "length")
    assert chat.usage.completion_tokens <= 8
    assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens


def test_streamed_chat_equals_the_whole_one(default_server):
    c = client(default_server)
    args = dict(model=model_name(default_server),
                messages=[{"role": "user", "content": "Name a colour."}],
                max_tokens=8, temperature=0)
    whole = c.chat.completions.create(**args).choices[0].message.content
    chunks = list(c.chat.completions.create(stream=True, **args))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert all(ch.object == "chat.completion.chunk" for ch in chunks)
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == whole
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_n_2_gives_two_choices_streamed_and_not(default_server):
    c = client(default_server)
    name = model_name(default_server)
    completion = c.completions.create(model=name, prompt="Tell me a story:", n=2,
                                      max_tokens=6, seed=7, temperature=1.0)
    assert sorted(ch.index for ch in completion.choices) == [0, 1]
    assert completion.usage.completion_tokens <= 12
    texts = {0: "", 1: ""}
    finished = set()
    for chunk in c.chat.completions.create(
            model=name, messages=[{"role": "user", "content": "Say something."}],
            n=2, max_tokens=6, seed=7, stream=True, extra_body={"ignore_eos": True}):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if choice.finish_reason:
                finished.add(choice.index)
    assert finished == {0, 1}
    assert all(texts.values())


def test_a_stop_string_ends_the_text_before_it(default_server):
    c = client(default_server)
    args = dict(model=model_name(default_server), prompt="Count: one, two, three,",
                max_tokens=12, **greedy())
    full = c.completions.create(**args).choices[0].text
    stop = full[len(full) // 2:][:3]  # some text from the middle
    assert stop.strip(), full
    cut = c.completions.create(stop=[stop], **args).choices[0]
    assert cut.text == full[:full.index(stop)]
    assert cut.finish_reason == "stop"


def test_completion_logprobs_use_the_legacy_shape(default_server):
    choice = client(default_server).completions.create(
        model=model_name(default_server), prompt="The sky is", max_tokens=5,
        logprobs=2, **greedy()).choices[0]
    lp = choice.logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 5
    if not any(token.startswith("bytes:") for token in lp.tokens):  # whole characters
        assert "".join(lp.tokens) == choice.text
    assert lp.text_offset == sorted(lp.text_offset) and lp.text_offset[0] == 0
    # Offsets are code points into the returned text.
    for token, offset in zip(lp.tokens, lp.text_offset):
        if token.isascii() and not token.startswith("bytes:"):
            assert choice.text[offset:].startswith(token), (token, offset)
    for logprob, top in zip(lp.token_logprobs, lp.top_logprobs):
        assert len(top) == 2
        # Greedy: the chosen token is the most likely one.
        assert logprob == pytest.approx(max(top.values()), abs=1e-5)


GOLDEN = os.path.join(REPO, "tests", "fixtures", "golden", "smollm2_q4_1.json")


def test_echoed_prompt_logprobs_match_transformers(default_server):
    """lm-evaluation-harness's loglikelihood call (echo, logprobs, the
    prompt as token ids; max_tokens 0 as OpenAI's legacy scoring call, 1
    as lm-eval sends it): each golden prompt followed by its 32 greedy
    tokens, which transformers scored in float32 from the same GGUF
    (tools/make_golden.py). Every one of those positions' log-prob, and its
    top 5 by rank, within the golden test's 2e-2."""
    golden = json.load(open(GOLDEN))
    completions = client(default_server).completions
    name = model_name(default_server)
    worst = 0.0
    for case in golden["prompts"]:
        prompt = case["prompt_ids"] + [step["token"] for step in case["steps"]]
        scored = completions.create(model=name, prompt=prompt, echo=True, logprobs=5,
                                    max_tokens=0, temperature=0).choices[0]
        lp = scored.logprobs
        assert len(lp.tokens) == len(lp.token_logprobs) == len(prompt), case["name"]
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
        assert all(value is not None for value in lp.token_logprobs[1:])
        if not any(token.startswith("bytes:") for token in lp.tokens):
            assert "".join(lp.tokens) == scored.text, case["name"]
        assert scored.finish_reason in ("length", "stop")
        start = len(case["prompt_ids"])
        for i, step in enumerate(case["steps"]):
            want = dict((token, value) for token, value in step["top5"])
            got = lp.token_logprobs[start + i]
            assert got == pytest.approx(want[step["token"]], abs=2e-2), (case["name"], i)
            ranked = sorted(lp.top_logprobs[start + i].values(), reverse=True)[:5]
            for g, w in zip(ranked, sorted(want.values(), reverse=True)):
                assert g == pytest.approx(w, abs=2e-2), (case["name"], i)
                worst = max(worst, abs(g - w))
        # lm-eval's own call: max_tokens 1, the same prompt entries first.
        one = completions.create(model=name, prompt=prompt, echo=True, logprobs=5,
                                 max_tokens=1, temperature=0).choices[0]
        assert one.logprobs.token_logprobs[:len(prompt)] == lp.token_logprobs
        assert len(one.logprobs.tokens) == len(prompt) + 1
        assert one.text.startswith(scored.text)
    print(f"worst top-5 log-prob error against transformers: {worst:.2e}")


def test_vllm_prompt_logprobs_agree_with_echo(default_server):
    """vLLM's prompt_logprobs (completions: per choice; chat: beside the
    choices) hold the same scores as echo's entries, keyed by token id,
    with ranks; not streamed."""
    ids = [504, 3458, 282, 4649, 314, 6462, 30]
    status, body = raw_request(default_server, "POST", "/v1/completions", json.dumps(
        {"prompt": ids, "echo": True, "logprobs": 3, "prompt_logprobs": 3, "max_tokens": 1}),
        {"Content-Type": "application/json"})
    assert status == 200, body
    choice = body["choices"][0]
    prompt_lp = choice["prompt_logprobs"]
    assert len(prompt_lp) == len(ids) and prompt_lp[0] is None
    for i, token in enumerate(ids[1:], start=1):
        position = prompt_lp[i]
        own = position[str(token)]
        assert own["logprob"] == choice["logprobs"]["token_logprobs"][i]
        # The 3 most likely ranked 1-3, the prompt's token with its own.
        assert {e["rank"] for e in position.values()} == {1, 2, 3, own["rank"]}
        by_rank = sorted(position.values(), key=lambda e: e["rank"])
        assert all(a["logprob"] >= b["logprob"] for a, b in zip(by_rank, by_rank[1:]))
        # The legacy object's alternatives are the same tokens and values.
        legacy = choice["logprobs"]["top_logprobs"][i]
        assert sorted(legacy.values()) == sorted(e["logprob"] for e in position.values())

    status, chat = raw_request(default_server, "POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Hi"}], "prompt_logprobs": 0,
         "max_tokens": 2}), {"Content-Type": "application/json"})
    assert status == 200, chat
    assert chat["prompt_logprobs"][0] is None
    assert len(chat["prompt_logprobs"]) == chat["usage"]["prompt_tokens"]
    assert all(len(position) == 1 for position in chat["prompt_logprobs"][1:])
    status, body = raw_request(default_server, "POST", "/v1/chat/completions", json.dumps(
        {"messages": [{"role": "user", "content": "Hi"}], "prompt_logprobs": 1,
         "stream": True}), {"Content-Type": "application/json"})
    assert status == 400 and body["error"]["param"] == "prompt_logprobs"


def test_echoed_prompt_logprobs_stream_as_the_whole_response(default_server):
    """Streamed, the first chunk holds the prompt's text and entries; the
    chunks add up to the whole response's logprobs object (n 2: both
    choices start with the prompt)."""
    completions = client(default_server).completions
    args = dict(model=model_name(default_server), prompt="Paris is the capital of",
                echo=True, logprobs=2, max_tokens=4, n=2, **greedy())
    whole = completions.create(**args)
    joined = {0: {"text": "", "tokens": [], "token_logprobs": [], "text_offset": []},
              1: {"text": "", "tokens": [], "token_logprobs": [], "text_offset": []}}
    for chunk in completions.create(stream=True, **args):
        for choice in chunk.choices:
            part = joined[choice.index]
            part["text"] += choice.text
            if choice.logprobs is not None:
                for key in ("tokens", "token_logprobs", "text_offset"):
                    part[key] += getattr(choice.logprobs, key)
    for choice in whole.choices:
        part = joined[choice.index]
        assert part["text"] == choice.text
        assert choice.text.startswith("Paris is the capital of")
        for key in ("tokens", "token_logprobs", "text_offset"):
            assert part[key] == getattr(choice.logprobs, key), key
        assert choice.logprobs.token_logprobs[0] is None


def test_several_prompts_answer_as_each_alone(pb, default_server):
    """An array of prompts (strings, or token-id arrays as lm-eval batches
    them): choice p·n + i is prompt p's sample i, equal to that prompt
    sent alone, streamed and not; usage adds up; nothing stays live."""
    completions = client(default_server).completions
    name = model_name(default_server)
    prompts = ["The capital of France is", "1, 2, 3,", "def add(a, b):"]
    alone = [completions.create(model=name, prompt=p, max_tokens=6, **greedy()) for p in prompts]
    whole = completions.create(model=name, prompt=prompts, max_tokens=6, n=2, **greedy())
    assert [c.index for c in whole.choices] == list(range(6))
    for p, single in enumerate(alone):
        for i in range(2):
            assert whole.choices[2 * p + i].text == single.choices[0].text, (p, i)
    assert whole.usage.prompt_tokens == sum(a.usage.prompt_tokens for a in alone)
    assert whole.usage.completion_tokens == 2 * sum(a.usage.completion_tokens for a in alone)

    texts = {}
    for chunk in completions.create(model=name, prompt=prompts, max_tokens=6, stream=True,
                                    stream_options={"include_usage": True}, **greedy()):
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + choice.text
        if chunk.usage is not None:
            assert chunk.usage.prompt_tokens == whole.usage.prompt_tokens
    assert texts == {p: a.choices[0].text for p, a in enumerate(alone)}

    # Token-id prompts with echo and logprobs: each choice scores its own.
    ids = [list(range(100, 110)), list(range(200, 204))]
    scored = completions.create(model=name, prompt=ids, echo=True, logprobs=1, max_tokens=0)
    for choice, prompt in zip(scored.choices, ids):
        assert len(choice.logprobs.tokens) == len(prompt)
        assert choice.logprobs.token_logprobs[0] is None
    deadline = time.time() + 5
    while load(pb, default_server).live_requests and time.time() < deadline:
        time.sleep(0.05)
    assert load(pb, default_server).live_requests == 0


def test_a_bad_prompt_in_a_batch_refuses_the_request(default_server):
    for prompt, why in (([[1, 2], "x"], "not both"), (["a", ""], "prompt 1 is empty"),
                        (["x"] * 257, "at most 256")):
        status, body = raw_request(default_server, "POST", "/v1/completions",
                                   json.dumps({"prompt": prompt}),
                                   {"Content-Type": "application/json"})
        assert status == 400, prompt
        assert body["error"]["param"] == "prompt"
        assert why in body["error"]["message"], body


@pytest.fixture(scope="module")
def hermes_server():
    if not os.path.exists(DEFAULT_MODEL):
        pytest.skip("default model absent (tools/fetch_model.sh)")
    server = Server(DEFAULT_MODEL, "--tool_call_parser", "hermes")
    yield server
    server.stop()


def few_shot_weather_chat():
    """A chat the default model answers with a hermes-style call: three
    worked examples, then a new city (greedy, it copies the pattern)."""
    system = ("You are a function-calling assistant. For each request, reply with a "
              "call in this format:\n<tool_call>\n{\"name\": <function-name>, "
              "\"arguments\": <args-json-object>}\n</tool_call>")
    messages = [{"role": "system", "content": system}]
    for city in ("Paris", "Tokyo", "Berlin"):
        messages += [{"role": "user", "content": f"What is the weather in {city}?"},
                     {"role": "assistant", "content": "<tool_call>\n{\"name\": \"get_weather\", "
                      f"\"arguments\": {{\"city\": \"{city}\"}}}}\n</tool_call>"}]
    messages.append({"role": "user", "content": "What is the weather in London?"})
    tools = [{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
    return messages, tools


def test_tool_calls_reach_the_openai_client(hermes_server, default_server):
    """--tool_call_parser hermes: the model's <tool_call> becomes
    message.tool_calls, streamed and not, as the openai client reads them;
    tool_choice "none", or a server whose template shows no format (the
    default model's, with --tool_call_parser auto), leaves the text."""
    messages, tools = few_shot_weather_chat()
    chat = client(hermes_server).chat.completions
    args = dict(model=model_name(hermes_server), messages=messages, tools=tools,
                temperature=0, max_tokens=60)
    choice = chat.create(**args).choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("chatcmpl-tool-")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "London"}

    calls, content, finish = {}, "", None
    for chunk in chat.create(stream=True, **args):
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for part in delta.tool_calls or []:
            calls.setdefault(part.index, {"name": "", "arguments": ""})
            calls[part.index]["name"] += part.function.name or ""
            calls[part.index]["arguments"] += part.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert finish == "tool_calls" and content == ""
    assert calls == {0: {"name": "get_weather", "arguments": call.function.arguments}}

    refused = chat.create(tool_choice="none", **args).choices[0]
    assert refused.message.tool_calls is None and refused.finish_reason == "stop"
    assert "<tool_call>" in refused.message.content
    plain = client(default_server).chat.completions.create(
        **{**args, "model": model_name(default_server)}).choices[0]
    assert plain.message.tool_calls is None
    assert plain.message.content == refused.message.content


def test_tokenize_counts_what_the_completions_see(default_server):
    """vLLM's /tokenize and /detokenize: a text's and a chat's counts equal
    the prompt_tokens the completions report; detokenize inverts it."""
    post = lambda path, body: raw_request(default_server, "POST", path, json.dumps(body),
                                          {"Content-Type": "application/json"})
    status, text = post("/tokenize", {"prompt": "The capital of France is"})
    assert status == 200, text
    completion = client(default_server).completions.create(
        model=model_name(default_server), prompt="The capital of France is", max_tokens=1)
    assert text["count"] == len(text["tokens"]) == completion.usage.prompt_tokens
    assert post("/detokenize", {"tokens": text["tokens"]}) == (
        200, {"prompt": "The capital of France is"})
    messages = [{"role": "user", "content": "Hi there"}]
    status, chat = post("/tokenize", {"messages": messages})
    assert status == 200, chat
    reply = client(default_server).chat.completions.create(
        model=model_name(default_server), messages=messages, max_tokens=1)
    assert chat["count"] == reply.usage.prompt_tokens
    assert chat["max_model_len"] > chat["count"]
    status, body = raw_request(default_server, "GET", "/tokenize")
    assert status == 405


def test_max_tokens_0_needs_echo(default_server):
    status, body = raw_request(default_server, "POST", "/v1/completions",
                               json.dumps({"prompt": "Hi", "max_tokens": 0}),
                               {"Content-Type": "application/json"})
    assert status == 400
    assert body["error"]["param"] == "max_tokens"


def test_chat_logprobs_use_the_content_shape(default_server):
    choice = client(default_server).chat.completions.create(
        model=model_name(default_server),
        messages=[{"role": "user", "content": "Hi!"}], max_tokens=4,
        temperature=0, logprobs=True, top_logprobs=3).choices[0]
    content = choice.logprobs.content
    assert 1 <= len(content) <= 4
    if not any(entry.token.startswith("bytes:") for entry in content):
        assert "".join(entry.token for entry in content).startswith(choice.message.content)
    for entry in content:
        if not entry.token.startswith("bytes:"):  # a whole character or more
            assert bytes(entry.bytes).decode("utf-8") == entry.token
        assert len(entry.top_logprobs) == 3
        assert entry.logprob == pytest.approx(entry.top_logprobs[0].logprob, abs=1e-5)


def test_closing_a_stream_frees_its_kv_blocks_within_a_second(pb, default_server):
    idle = load(pb, default_server)
    assert idle.running == 0
    stream = client(default_server).completions.create(
        model=model_name(default_server), prompt="Write a very long essay about rivers.",
        max_tokens=400, stream=True, **greedy())
    received = 0
    for chunk in stream:
        received += 1
        if received == 3:
            break
    busy = load(pb, default_server)
    assert busy.running == 1 and busy.kv_blocks_used > idle.kv_blocks_used
    stream.close()
    closed_at = time.monotonic()
    while True:
        now = load(pb, default_server)
        if now.running == 0 and now.kv_blocks_used == idle.kv_blocks_used:
            break
        assert time.monotonic() - closed_at < 1.0, now
        time.sleep(0.02)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory):
    """The default model behind an API key, with a 1 MB body limit."""
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"alice {hashlib.sha256(KEY.encode()).hexdigest()}\n")
    server = Server(DEFAULT_MODEL, "--api-key-file", str(keys),
                    "--http-max-body-bytes", "1000000")
    yield server
    assert server.stop() == 0


def test_the_openai_client_raises_its_own_error_classes(keyed_server):
    good = client(keyed_server, KEY)
    name = model_name_with_key(keyed_server)
    with pytest.raises(openai.AuthenticationError):
        client(keyed_server, "wrong").models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        good.completions.create(model="gpt-4", prompt="x", max_tokens=1)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        good.completions.create(model=name, prompt="x", max_tokens=1, temperature=5)
    assert bad.value.param == "temperature"


def model_name_with_key(server):
    return client(server, KEY).models.list().data[0].id


def bad_requests(name, max_model_len):
    """(what, method, path, body, headers, status, param)."""
    auth = {"Authorization": f"Bearer {KEY}"}
    def completion(**fields):
        return json.dumps({"model": name, "prompt": "Hello", "max_tokens": 2, **fields})
    def chat(**fields):
        return json.dumps({"model": name, "max_tokens": 2, **fields})
    user = [{"role": "user", "content": "Hi"}]
    return [
        ("malformed JSON", "POST", "/v1/completions", '{"prompt": ', auth, 400, None),
        ("body is an array", "POST", "/v1/completions", "[1]", auth, 400, None),
        ("temperature string", "POST", "/v1/completions", completion(temperature="hot"), auth, 400, "temperature"),
        ("temperature 2.5", "POST", "/v1/completions", completion(temperature=2.5), auth, 400, "temperature"),
        ("top_p 0", "POST", "/v1/completions", completion(top_p=0), auth, 400, "top_p"),
        ("top_p 1.5", "POST", "/v1/chat/completions", chat(messages=user, top_p=1.5), auth, 400, "top_p"),
        ("n 0", "POST", "/v1/completions", completion(n=0), auth, 400, "n"),
        ("n 17", "POST", "/v1/completions", completion(n=17), auth, 400, "n"),
        ("max_tokens 0", "POST", "/v1/completions", completion(max_tokens=0), auth, 400, "max_tokens"),
        ("max_tokens past the context", "POST", "/v1/completions", completion(max_tokens=10**7), auth, 400, "max_tokens"),
        ("prompt too long", "POST", "/v1/completions",
         completion(prompt=[1] * (max_model_len + 5)), auth, 400, "prompt"),
        ("logprobs 30", "POST", "/v1/completions", completion(logprobs=30), auth, 400, "logprobs"),
        ("stop number", "POST", "/v1/completions", completion(stop=5), auth, 400, "stop"),
        ("stream_options without stream", "POST", "/v1/completions",
         completion(stream_options={"include_usage": True}), auth, 400, "stream_options"),
        ("unknown model", "POST", "/v1/completions", completion(model="gpt-4"), auth, 404, "model"),
        ("missing messages", "POST", "/v1/chat/completions", chat(), auth, 400, "messages"),
        ("bad role", "POST", "/v1/chat/completions",
         chat(messages=[{"role": "wizard", "content": "x"}]), auth, 400, "messages[0].role"),
        ("image content", "POST", "/v1/chat/completions",
         chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
         auth, 400, "messages[0].content[0].type"),
        ("top_logprobs without logprobs", "POST", "/v1/chat/completions",
         chat(messages=user, top_logprobs=2), auth, 400, "top_logprobs"),
        ("no API key", "POST", "/v1/completions", completion(), {}, 401, None),
        ("wrong API key", "POST", "/v1/completions", completion(), {"Authorization": "Bearer nope"}, 401, None),
        ("wrong method", "GET", "/v1/completions", None, auth, 405, None),
        ("unknown path", "GET", "/v1/engines", None, auth, 404, None),
        ("too-large body", "POST", "/v1/completions", completion(prompt="a" * 1500000), auth, 413, None),
    ]


def test_bad_requests_get_their_status_and_openai_error_while_a_stream_flows(keyed_server):
    good = client(keyed_server, KEY)
    name = good.models.list().data[0].id
    max_model_len = raw_request(keyed_server, "GET", "/v1/models",
                         headers={"Authorization": f"Bearer {KEY}"})[1]["data"][0]["max_model_len"]
    flowing = {}
    def long_stream():
        chunks = list(good.completions.create(model=name, prompt="A long story:",
                                              max_tokens=48, stream=True, **greedy()))
        flowing["text"] = "".join(ch.choices[0].text for ch in chunks)
        flowing["finish"] = chunks[-1].choices[0].finish_reason
    thread = threading.Thread(target=long_stream)
    thread.start()
    table = bad_requests(name, max_model_len)
    assert len(table) >= 15
    for what, method, path, body, headers, status, param in table:
        code, response = raw_request(keyed_server, method, path, body,
                              {"Content-Type": "application/json", **headers})
        assert code == status, (what, response)
        error = response["error"]
        assert set(error) == {"message", "type", "param", "code"}, what
        assert isinstance(error["message"], str) and error["message"], what
        assert error["param"] == param, (what, error)
    assert thread.is_alive(), "the stream should still be flowing"
    thread.join(timeout=120)
    assert flowing["finish"] == "length"
    whole = good.completions.create(model=name, prompt="A long story:",
                                    max_tokens=48, **greedy()).choices[0].text
    assert flowing["text"] == whole


def test_sigterm_drains_http_streams_and_refuses_new_requests():
    server = Server(DEFAULT_MODEL)
    c = client(server)
    name = model_name(server)
    results = []
    started = [threading.Event(), threading.Event()]
    def stream(i):
        chunks = []
        for chunk in c.completions.create(model=name, prompt="Tell me about the sea.",
                                          max_tokens=64, stream=True, **greedy()):
            chunks.append(chunk)
            started[i].set()
        results.append(chunks[-1].choices[0].finish_reason)
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for event in started:
        assert event.wait(timeout=60)
    # Connections open before the drain get 503 for their next request.
    open_before = [http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=60)
                   for _ in range(2)]
    for connection in open_before:
        connection.connect()
    time.sleep(0.2)
    server.proc.send_signal(15)
    time.sleep(0.1)  # the streams have about 60 tokens to go
    # New connections are refused (a load balancer tries another replica).
    with pytest.raises(ConnectionRefusedError):
        raw_request(server, "GET", "/health")
    open_before[0].request("GET", "/health")
    assert open_before[0].getresponse().status == 503
    open_before[1].request("POST", "/v1/completions",
                           json.dumps({"model": name, "prompt": "x", "max_tokens": 1}),
                           {"Content-Type": "application/json"})
    response = open_before[1].getresponse()
    assert response.status == 503
    assert json.loads(response.read())["error"]["type"] == "server_error"
    for t in threads:
        t.join(timeout=60)
    assert results == ["length", "length"]
    assert server.proc.wait(timeout=30) == 0
