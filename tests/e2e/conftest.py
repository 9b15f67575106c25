"""Fixtures for the end-to-end tests: Python stubs generated from weft's
proto with grpcio-tools, and the real weft-server binary on a loopback port.

Environment: WEFT_BUILD_DIR (default: build) locates the binaries."""
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("WEFT_BUILD_DIR", os.path.join(REPO, "build"))
DEFAULT_MODEL = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TINY_MODEL = os.path.join(REPO, "tests", "fixtures", "tiny_llama")


@pytest.fixture(scope="session")
def pb():
    """weft.v1 messages and stubs, generated from proto/ for this run."""
    from grpc_tools import protoc
    out = tempfile.mkdtemp(prefix="weft_pb_")
    proto_dir = os.path.join(REPO, "proto")
    rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}",
                      f"--grpc_python_out={out}",
                      os.path.join(proto_dir, "weft", "v1", "generation.proto")])
    assert rc == 0
    sys.path.insert(0, out)
    from weft.v1 import generation_pb2, generation_pb2_grpc
    return generation_pb2, generation_pb2_grpc


class Server:
    def __init__(self, model, *flags):
        binary = os.path.join(BUILD, "server", "weft-server")
        self.proc = subprocess.Popen(
            [binary, "--model", model, "--host", "127.0.0.1", "--port", "0",
             "--http-port", "0",
             "--kv-cache-memory", "400000000", "--drain-timeout", "10", *flags],
            stderr=subprocess.PIPE, text=True)
        self.port = None
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            match = re.search(r" on 127\.0\.0\.1:(\d+)$", line.strip())
            if match:
                self.port = int(match.group(1))
                break
            if self.proc.poll() is not None:
                break
        assert self.port, f"weft-server did not start: {line}"
        self.address = f"127.0.0.1:{self.port}"
        # The OpenAI-compatible HTTP API is announced on the next lines.
        self.http_port = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            match = re.search(r"HTTP at http://127\.0\.0\.1:(\d+)$", line.strip())
            if match:
                self.http_port = int(match.group(1))
                break
            if self.proc.poll() is not None or not line:
                break
        assert self.http_port, f"weft-server did not start HTTP: {line}"
        self.http_url = f"http://127.0.0.1:{self.http_port}"

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code (the drain must end in time)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)


@pytest.fixture(scope="module")
def default_server():
    if not os.path.exists(DEFAULT_MODEL):
        pytest.skip("default model absent (tools/fetch_model.sh)")
    server = Server(DEFAULT_MODEL)
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def tiny_server():
    server = Server(TINY_MODEL)
    yield server
    assert server.stop() == 0
