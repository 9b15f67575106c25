"""deploy/nginx/weft.conf, run by the real nginx in front of two real
weft-server replicas: gRPC and HTTP calls reach both, streams (gRPC and
Server-Sent Events) pass through whole, a chunked HTTP body reaches weft
with a length, and when one replica drains and exits, calls go on to the
other. Only the upstream `server` lines, the `listen` ports and the
temporary paths of the committed file are rewritten for loopback."""
import contextlib
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import grpc
import pytest

from conftest import DEFAULT_MODEL, REPO, TINY_MODEL, Server
from test_grpc_server import generate, greedy

CONFIG = os.path.join(REPO, "deploy", "nginx", "weft.conf")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"nginx exited: {proc.stderr.read()}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def rewrite(config, replicas, grpc_port, http_port, tmp):
    """The committed config with loopback addresses; every rewrite must hit."""
    def sub(pattern, replacement, text, count):
        text, n = re.subn(pattern, replacement, text)
        assert n == count, f"{pattern!r} matched {n} times, expected {count}"
        return text
    for i, server in enumerate(replicas):
        config = sub(rf"server weft-{i}:50051 ", f"server {server.address} ", config, 1)
        config = sub(rf"server weft-{i}:8000 ", f"server 127.0.0.1:{server.http_port} ",
                     config, 1)
    config = sub(r"listen 50051 http2;", f"listen 127.0.0.1:{grpc_port} http2;", config, 1)
    config = sub(r"listen 8000;", f"listen 127.0.0.1:{http_port};", config, 1)
    return sub(r"/tmp/weft-nginx", f"{tmp}/nginx", config, 6)


def metric(server, name, label=""):
    """The sum of `name`'s samples (those with `label`) from /metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=10)
    connection.request("GET", "/metrics")
    text = connection.getresponse().read().decode()
    connection.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)


def ok_requests(server):
    """weft:requests_total with code OK, summed over tenants."""
    return metric(server, "weft:requests_total", 'code="OK"')


def post(port, path, body, chunked=False):
    """POST through nginx; returns (status, body text)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = json.dumps(body).encode()
    if chunked:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        for piece in (data[:7], data[7:]):
            connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        connection.send(b"0\r\n\r\n")
    else:
        connection.request("POST", path, body=data,
                           headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    text = response.read().decode()
    connection.close()
    return response.status, text


@contextlib.contextmanager
def behind_nginx(model):
    """Two replicas of `model` behind nginx; yields (replicas, grpc port, http port)."""
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    assert nginx, "nginx is not installed (tools/test.sh installs nginx-light)"
    replicas = [Server(model), Server(model)]
    tmp = tempfile.mkdtemp(prefix="weft_nginx_")
    grpc_port, http_port = free_port(), free_port()
    with open(CONFIG) as f:
        config = rewrite(f.read(), replicas, grpc_port, http_port, tmp)
    path = os.path.join(tmp, "weft.conf")
    with open(path, "w") as f:
        f.write(config)
    proc = subprocess.Popen([nginx, "-c", path, "-p", tmp, "-g", "daemon off;"],
                            stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(grpc_port, proc)
        wait_for_port(http_port, proc)
        yield replicas, grpc_port, http_port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for server in replicas:
            if server.proc.poll() is None:
                server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def balanced():
    with behind_nginx(TINY_MODEL) as setup:
        yield setup


def test_grpc_streams_spread_over_both_replicas(pb, balanced):
    replicas, grpc_port, _ = balanced
    before = [ok_requests(s) for s in replicas]
    # One client connection, eight concurrent streams: nginx balances the
    # calls, not the connection.
    results = [None] * 8
    with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
        stub = pb[1].GenerationStub(channel)

        def run(i):
            tokens = []
            for response in stub.Generate(greedy(pb, [3, 4, 5, 6 + i], 48), timeout=120):
                if response.HasField("delta"):
                    tokens.extend(response.delta.token_ids)
            results[i] = tokens
        threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert all(r is not None and len(r) == 48 for r in results)
    served = [ok_requests(s) - b for s, b in zip(replicas, before)]
    assert sum(served) == 8 and min(served) >= 1, served
    # Each stream equals the same request sent to a replica directly.
    for i in (0, 7):
        code, direct, _, _ = generate(pb, replicas[i % 2].address,
                                      greedy(pb, [3, 4, 5, 6 + i], 48))
        assert code == grpc.StatusCode.OK and direct == results[i]


def test_http_streams_and_chunked_bodies_pass_through(balanced):
    replicas, _, http_port = balanced
    before = [ok_requests(s) for s in replicas]
    body = {"prompt": [3, 4, 5], "max_tokens": 16, "temperature": 0,
            "ignore_eos": True}
    for _ in range(4):
        status, text = post(http_port, "/v1/completions", body)
        assert status == 200, text
        assert json.loads(text)["usage"]["completion_tokens"] == 16
    # weft answers 411 to a chunked body; nginx buffers it and sends a length.
    status, text = post(http_port, "/v1/completions", body, chunked=True)
    assert status == 200, text
    # Server-Sent Events, unbuffered, each chunk in order, then [DONE].
    status, text = post(http_port, "/v1/completions", {**body, "stream": True})
    assert status == 200, text
    events = [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert sum(1 for c in chunks for choice in c["choices"] if choice["text"]) >= 1
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    served = [ok_requests(s) - b for s, b in zip(replicas, before)]
    assert sum(served) == 6 and min(served) >= 1, served


def test_calls_go_on_when_a_replica_drains_and_exits(pb, balanced):
    replicas, grpc_port, http_port = balanced
    assert replicas[0].stop() == 0
    body = {"prompt": [3, 4, 5], "max_tokens": 8, "temperature": 0,
            "ignore_eos": True}
    for _ in range(4):
        code, tokens, _, _ = generate(pb, f"127.0.0.1:{grpc_port}", greedy(pb, [3, 4, 5], 8))
        assert code == grpc.StatusCode.OK and len(tokens) == 8
        status, text = post(http_port, "/v1/completions", body)
        assert status == 200, text


def test_a_draining_replica_gets_no_new_calls(pb):
    """A rolling update: replica 0 drains with a long request in flight; new
    calls through nginx all reach replica 1 (the drain closed replica 0's
    ports and sent GOAWAY), and the long request still finishes."""
    if not os.path.exists(DEFAULT_MODEL):
        pytest.skip("default model absent (tools/fetch_model.sh)")
    with behind_nginx(DEFAULT_MODEL) as (replicas, grpc_port, http_port):
        body = {"prompt": "Hi", "max_tokens": 4, "temperature": 0, "ignore_eos": True}
        # nginx holds connections to both replicas before the drain.
        for _ in range(4):
            code, _, _, _ = generate(pb, f"127.0.0.1:{grpc_port}", greedy(pb, [3, 4, 5], 4))
            assert code == grpc.StatusCode.OK
            assert post(http_port, "/v1/completions", body)[0] == 200
        long_result = {}

        def long_request():
            long_result["status"], long_result["text"] = post(
                replicas[0].http_port, "/v1/completions",
                {**body, "max_tokens": 400})
        thread = threading.Thread(target=long_request)
        thread.start()
        deadline = time.time() + 30
        while metric(replicas[0], "weft:num_requests_running") == 0 and time.time() < deadline:
            time.sleep(0.02)
        before = ok_requests(replicas[1])
        replicas[0].proc.send_signal(15)
        time.sleep(0.3)
        assert replicas[0].proc.poll() is None  # still draining
        for _ in range(4):
            code, tokens, _, _ = generate(pb, f"127.0.0.1:{grpc_port}",
                                          greedy(pb, [3, 4, 5], 4))
            assert code == grpc.StatusCode.OK and len(tokens) == 4
            status, text = post(http_port, "/v1/completions", body)
            assert status == 200, text
        assert ok_requests(replicas[1]) - before == 8
        thread.join(timeout=60)
        assert long_result["status"] == 200, long_result
        assert json.loads(long_result["text"])["choices"][0]["finish_reason"] == "length"
        assert replicas[0].proc.wait(timeout=30) == 0
