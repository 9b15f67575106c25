"""weft-server end to end, driven by clients nobody here wrote: Python
grpcio, grpcio-health-checking and grpcio-reflection."""
import json
import os
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import REPO

GOLDEN = os.path.join(REPO, "tests", "fixtures", "golden", "smollm2_q4_1.json")


def generate(pb, address, request, metadata=None):
    """Runs one Generate call; returns (status code, token ids, text, final)."""
    messages, services = pb
    with grpc.insecure_channel(address) as channel:
        stub = services.GenerationStub(channel)
        tokens, text, final = [], "", None
        try:
            for response in stub.Generate(request, metadata=metadata, timeout=300):
                if response.HasField("delta"):
                    tokens.extend(response.delta.token_ids)
                    text += response.delta.text
                else:
                    final = response.final
        except grpc.RpcError as error:
            return error.code(), tokens, text, final
        return grpc.StatusCode.OK, tokens, text, final


def greedy(pb, ids, max_tokens):
    messages, _ = pb
    request = messages.GenerateRequest()
    request.token_ids.ids.extend(ids)
    request.sampling.temperature = 0
    request.stopping.max_tokens = max_tokens
    request.stopping.ignore_eos = True
    return request


def test_health_reports_serving(default_server):
    with grpc.insecure_channel(default_server.address) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_generation_service(default_server):
    with grpc.insecure_channel(default_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        names = [s.name for r in responses for s in r.list_services_response.service]
    assert "weft.v1.Generation" in names


def test_greedy_stream_matches_transformers_reference(pb, default_server):
    """Greedy continuations equal the reference (the same tokens the
    in-process engine produces, tests/model/golden_test.cc) for the golden
    prompts without a near-tie in their 32 steps."""
    golden = json.load(open(GOLDEN))
    compared = 0
    for prompt in golden["prompts"]:
        if prompt["min_top2_gap"] < 0.05:
            continue
        want = [step["token"] for step in prompt["steps"]]
        code, tokens, _, final = generate(
            pb, default_server.address, greedy(pb, prompt["prompt_ids"], len(want)))
        assert code == grpc.StatusCode.OK
        assert tokens == want, prompt["name"]
        assert final.usage.completion_tokens == len(want)
        compared += 1
    assert compared >= 5


def test_sixteen_concurrent_streams_equal_their_solo_runs(pb, default_server):
    messages, _ = pb
    prompts = [f"Question {i}: what is {i} plus {i * 3}? Answer:" for i in range(16)]
    def request(i):
        r = messages.GenerateRequest(text=prompts[i])
        r.sampling.temperature = 0
        r.stopping.max_tokens = 6 + i % 4
        r.stopping.ignore_eos = True
        return r
    solo = [generate(pb, default_server.address, request(i)) for i in range(16)]
    together = [None] * 16
    def run(i):
        together[i] = generate(pb, default_server.address, request(i))
    threads = [threading.Thread(target=run, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(16):
        assert together[i][0] == grpc.StatusCode.OK
        assert together[i][1] == solo[i][1], i
        assert together[i][2] == solo[i][2], i


BAD = [
    ("no prompt", lambda r: r.ClearField("text"), "prompt"),
    ("empty text", lambda r: setattr(r, "text", ""), "prompt.text"),
    ("negative id", lambda r: r.token_ids.ids.append(-1), "prompt.token_ids[0]"),
    ("id past vocab", lambda r: r.token_ids.ids.extend([1, 10**6]), "prompt.token_ids[1]"),
    ("other model", lambda r: setattr(r, "model", "gpt-4"), "model"),
    ("long request id", lambda r: setattr(r, "request_id", "x" * 300), "request_id"),
    ("negative temperature", lambda r: setattr(r.sampling, "temperature", -1), "sampling.temperature"),
    ("nan temperature", lambda r: setattr(r.sampling, "temperature", float("nan")), "sampling.temperature"),
    ("top_p 0", lambda r: setattr(r.sampling, "top_p", 0), "sampling.top_p"),
    ("top_p 2", lambda r: setattr(r.sampling, "top_p", 2), "sampling.top_p"),
    ("top_k -1", lambda r: setattr(r.sampling, "top_k", -1), "sampling.top_k"),
    ("min_p 2", lambda r: setattr(r.sampling, "min_p", 2), "sampling.min_p"),
    ("repetition_penalty 0", lambda r: setattr(r.sampling, "repetition_penalty", 0), "sampling.repetition_penalty"),
    ("presence_penalty 3", lambda r: setattr(r.sampling, "presence_penalty", 3), "sampling.presence_penalty"),
    ("frequency_penalty -3", lambda r: setattr(r.sampling, "frequency_penalty", -3), "sampling.frequency_penalty"),
    ("logit_bias token", lambda r: r.sampling.logit_bias.__setitem__(10**7, 1.0), "sampling.logit_bias"),
    ("logit_bias value", lambda r: r.sampling.logit_bias.__setitem__(5, 500.0), "sampling.logit_bias"),
    ("logprobs 21", lambda r: setattr(r.sampling, "logprobs", 21), "sampling.logprobs"),
    ("prompt_logprobs 50", lambda r: setattr(r.sampling, "prompt_logprobs", 50), "sampling.prompt_logprobs"),
    ("n 0", lambda r: setattr(r.sampling, "n", 0), "sampling.n"),
    ("n 17", lambda r: setattr(r.sampling, "n", 17), "sampling.n"),
    ("max_tokens 0", lambda r: setattr(r.stopping, "max_tokens", 0), "stopping.max_tokens"),
    ("min over max", lambda r: (setattr(r.stopping, "max_tokens", 3), setattr(r.stopping, "min_tokens", 4)), "stopping.min_tokens"),
    ("17 stop strings", lambda r: r.stopping.stop.extend(["s"] * 17), "stopping.stop"),
    ("long stop string", lambda r: r.stopping.stop.append("a" * 300), "stopping.stop"),
    ("empty stop string", lambda r: r.stopping.stop.append(""), "stopping.stop"),
    ("negative stop token", lambda r: r.stopping.stop_token_ids.append(-2), "stopping.stop_token_ids"),
    ("stop token past vocab", lambda r: r.stopping.stop_token_ids.append(10**7), "stopping.stop_token_ids[0]"),
    ("past the context", lambda r: setattr(r.stopping, "max_tokens", 10**6), "stopping.max_tokens"),
]


def test_bad_requests_fail_with_their_field_while_a_stream_flows(pb, tiny_server):
    messages, services = pb
    assert len(BAD) >= 25
    flowing = {}
    def long_stream():
        flowing["result"] = generate(pb, tiny_server.address, greedy(pb, [3, 4, 5], 200))
    thread = threading.Thread(target=long_stream)
    thread.start()
    with grpc.insecure_channel(tiny_server.address) as channel:
        stub = services.GenerationStub(channel)
        for name, mutate, field in BAD:
            request = messages.GenerateRequest(text="Hello world")
            mutate(request)
            with pytest.raises(grpc.RpcError) as error:
                list(stub.Generate(request, timeout=30))
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT, name
            assert field in error.value.details(), (name, error.value.details())
    thread.join()
    code, tokens, _, final = flowing["result"]
    assert code == grpc.StatusCode.OK and len(tokens) == 200 and final is not None


def test_cancel_frees_the_request_within_a_second(pb, tiny_server):
    messages, services = pb
    with grpc.insecure_channel(tiny_server.address) as channel:
        stub = services.GenerationStub(channel)
        # The server is shared with earlier tests: take the baseline once
        # their requests have ended, not while one still holds blocks.
        settle = time.time() + 10.0
        while stub.GetLoad(messages.GetLoadRequest()).live_requests != 0 \
                and time.time() < settle:
            time.sleep(0.01)
        start_blocks = stub.GetLoad(messages.GetLoadRequest()).kv_blocks_used
        for _ in range(200):
            call = stub.Generate(greedy(pb, [3, 4, 5, 6], 240), timeout=30)
            next(call)  # it is running
            call.cancel()
        deadline = time.time() + 1.0
        while True:
            load = stub.GetLoad(messages.GetLoadRequest())
            if (load.live_requests == 0 and load.kv_blocks_used == start_blocks) \
                    or time.time() > deadline:
                break
            time.sleep(0.01)
    assert load.live_requests == 0
    assert load.kv_blocks_used == start_blocks
