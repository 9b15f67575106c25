"""/metrics of the real weft-server after a known workload from two tenants
over both gRPC APIs, read with prometheus-client's own text-format parser:
the token counters equal the usage the clients received."""
import hashlib
import os
import queue
import urllib.request

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from prometheus_client.parser import text_string_to_metric_families

from conftest import DEFAULT_MODEL, Server

KEYS = {"alice": "key-of-alice", "bob": "key-of-bob"}
MODEL = os.path.basename(DEFAULT_MODEL)


def auth(tenant):
    return [("authorization", f"Bearer {KEYS[tenant]}")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not os.path.exists(DEFAULT_MODEL):
        pytest.skip("default model absent (tools/fetch_model.sh)")
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text("".join(f"{tenant} {hashlib.sha256(key.encode()).hexdigest()}\n"
                            for tenant, key in KEYS.items()))
    server = Server(DEFAULT_MODEL, "--api-key-file", str(keys))
    yield server
    assert server.stop() == 0


def generate(pb, address, tenant, prompt, max_tokens, top_p=None):
    """One greedy Generate call; returns (status code, Final)."""
    messages, services = pb
    request = messages.GenerateRequest(text=prompt)
    request.sampling.temperature = 0
    if top_p is not None:
        request.sampling.top_p = top_p
    request.stopping.max_tokens = max_tokens
    request.stopping.ignore_eos = True
    final = None
    with grpc.insecure_channel(address) as channel:
        try:
            for response in services.GenerationStub(channel).Generate(
                    request, metadata=auth(tenant) if tenant else None, timeout=300):
                if response.HasField("final"):
                    final = response.final
        except grpc.RpcError as error:
            return error.code(), None
    return grpc.StatusCode.OK, final


def kserve_inputs(prompt, max_tokens, stream):
    def tensor(name, value, datatype):
        t = grpcclient.InferInput(name, list(value.shape), datatype)
        t.set_data_from_numpy(value)
        return t
    return [tensor("text_input", np.array([[prompt]], dtype=object), "BYTES"),
            tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
            tensor("temperature", np.array([[0.0]], dtype=np.float32), "FP32"),
            tensor("ignore_eos", np.array([[True]]), "BOOL"),
            tensor("stream", np.array([[stream]]), "BOOL")]


def scrape(server):
    """Every sample as {(name, frozenset of labels): value}, and the families."""
    with urllib.request.urlopen(server.http_url + "/metrics", timeout=30) as response:
        assert response.status == 200
        text = response.read().decode()
    families = list(text_string_to_metric_families(text))
    samples = {}
    for family in families:
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, {f.name: f for f in families}


def value(samples, name, **labels):
    return samples.get((name, frozenset({"model_name": MODEL, **labels}.items())))


def test_counters_equal_the_usage_clients_received(pb, server):
    # alice: two Generate calls and one refused; bob: KServe unary + stream;
    # someone without a key.
    usage = {"alice": [0, 0], "bob": [0, 0]}
    for max_tokens in (5, 7):
        code, final = generate(pb, server.address, "alice", "Hello there", max_tokens)
        assert code == grpc.StatusCode.OK
        usage["alice"][0] += final.usage.prompt_tokens
        usage["alice"][1] += final.usage.completion_tokens
    code, _ = generate(pb, server.address, "alice", "Hello", 4, top_p=2.0)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = generate(pb, server.address, None, "Hello", 4)
    assert code == grpc.StatusCode.UNAUTHENTICATED

    prompt = "Paris is the capital of"
    messages, services = pb
    with grpc.insecure_channel(server.address) as channel:
        prompt_tokens = len(services.GenerationStub(channel).Tokenize(
            messages.TokenizeRequest(text=prompt), metadata=auth("bob"),
            timeout=60).token_ids)
    headers = {"authorization": f"Bearer {KEYS['bob']}"}
    with grpcclient.InferenceServerClient(server.address) as client:
        client.infer("ensemble", kserve_inputs(prompt, 4, False), headers=headers)
        results = queue.Queue()
        client.start_stream(callback=lambda result, error: results.put((result, error)),
                            headers=headers)
        client.async_stream_infer("ensemble", kserve_inputs(prompt, 3, True))
        while True:
            result, error = results.get(timeout=300)
            assert error is None, error
            if result.get_response().parameters["triton_final_response"].bool_param:
                break
        client.stop_stream()
    # ignore_eos: each KServe request generated exactly max_tokens.
    usage["bob"] = [2 * prompt_tokens, 4 + 3]

    samples, families = scrape(server)
    for tenant, (prompt_sum, generated_sum) in usage.items():
        assert value(samples, "weft:prompt_tokens_total", tenant=tenant) == prompt_sum
        assert value(samples, "weft:generation_tokens_total", tenant=tenant) == generated_sum
        assert value(samples, "weft:request_success_total", tenant=tenant,
                     finished_reason="length") == 2
        assert value(samples, "weft:request_success_total", tenant=tenant,
                     finished_reason="abort") == 0
        assert value(samples, "weft:requests_total", tenant=tenant, code="OK") == 2
        assert value(samples, "weft:e2e_request_latency_seconds_count", tenant=tenant) == 2
    assert value(samples, "weft:requests_total", tenant="alice",
                 code="INVALID_ARGUMENT") == 1
    assert value(samples, "weft:requests_total", tenant="",
                 code="UNAUTHENTICATED") == 1
    # Inter-token gaps: every token after the first of each request.
    assert value(samples, "weft:inter_token_latency_seconds_count",
                 tenant="alice") == (5 - 1) + (7 - 1)
    assert value(samples, "weft:request_generation_tokens_sum", tenant="bob") == 7

    # Engine gauges and counters; the workload is over.
    assert value(samples, "weft:num_requests_running") == 0
    assert value(samples, "weft:num_requests_waiting") == 0
    assert 0 <= value(samples, "weft:kv_cache_usage_perc") <= 1
    queries = value(samples, "weft:prefix_cache_queries_total")
    assert queries >= sum(u[0] for u in usage.values())
    assert 0 <= value(samples, "weft:prefix_cache_hits_total") <= queries
    assert families["weft:num_requests_running"].type == "gauge"
    assert families["weft:prompt_tokens"].type == "counter"


def test_histogram_buckets_are_cumulative_and_end_at_the_count(pb, server):
    code, _ = generate(pb, server.address, "alice", "Hi", 3)
    assert code == grpc.StatusCode.OK
    _, families = scrape(server)
    for name in ("weft:time_to_first_token_seconds", "weft:inter_token_latency_seconds",
                 "weft:e2e_request_latency_seconds", "weft:request_queue_time_seconds"):
        family = families[name]
        assert family.type == "histogram"
        by_tenant = {}
        for s in family.samples:
            by_tenant.setdefault(s.labels["tenant"], []).append(s)
        assert "alice" in by_tenant, name
        for tenant, series in by_tenant.items():
            buckets = [(float(s.labels["le"]), s.value) for s in series
                       if s.name.endswith("_bucket")]
            count = next(s.value for s in series if s.name.endswith("_count"))
            assert [le for le, _ in buckets] == sorted(le for le, _ in buckets)
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), (name, tenant)
            assert buckets[-1] == (float("inf"), count)
    ttft_bounds = [float(s.labels["le"]) for s in
                   families["weft:time_to_first_token_seconds"].samples
                   if s.name.endswith("_bucket") and s.labels["tenant"] == "alice"]
    # vLLM's 22 bounds, then +Inf.
    assert ttft_bounds[:3] == [0.001, 0.005, 0.01] and len(ttft_bounds) == 23


def test_dashboard_queries_name_only_exported_series(pb, server):
    """deploy/dashboards/weft.json charts what /metrics exports: every
    weft: series an expression names is a sample name after one request,
    and every label it groups or filters by is on that series."""
    import json
    import re
    from conftest import REPO
    code, _ = generate(pb, server.address, "alice", "Hi", 3)
    assert code == grpc.StatusCode.OK
    samples, _ = scrape(server)
    labels_of = {}
    for name, labels in samples:
        labels_of.setdefault(name, set()).update(k for k, _ in labels)
    with open(os.path.join(REPO, "deploy", "dashboards", "weft.json")) as f:
        dashboard = json.load(f)
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    exprs.append(dashboard["templating"]["list"][1]["query"]["query"])
    assert len(exprs) > 10
    for expr in exprs:
        names = re.findall(r"weft:[a-z0-9_]+", expr)
        assert names, expr
        for name in names:
            assert name in labels_of, (name, expr)
            used = set(re.findall(r"by \(([a-z_]+)\)", expr)) - {"le", "instance"}
            used |= set(re.findall(r"\{([a-z_]+)=~", expr))
            used |= set(re.findall(r", ([a-z_]+)\)$", expr))
            assert used <= labels_of[name], (name, used - labels_of[name], expr)
