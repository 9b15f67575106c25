"""API keys, TLS, mTLS and the SIGTERM drain of the real weft-server, with
Python grpcio clients and certificates made by openssl for the test."""
import hashlib
import os
import subprocess
import threading

import grpc
import pytest

from conftest import Server, TINY_MODEL


def load(pb, channel, metadata=None):
    messages, services = pb
    return services.GenerationStub(channel).GetLoad(
        messages.GetLoadRequest(), metadata=metadata, timeout=10)


def test_api_keys(pb, tmp_path):
    keys = tmp_path / "keys"
    keys.write_text("acme " + hashlib.sha256(b"s3cret").hexdigest() + "\n")
    server = Server(TINY_MODEL, "--api-key-file", str(keys))
    try:
        with grpc.insecure_channel(server.address) as channel:
            for metadata in (None, [("authorization", "Bearer wrong")]):
                with pytest.raises(grpc.RpcError) as error:
                    load(pb, channel, metadata)
                assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert load(pb, channel, [("authorization", "Bearer s3cret")]) is not None
    finally:
        assert server.stop() == 0


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    script = f"""set -e; cd '{d}'
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=weft-test-ca
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1' > san.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj /CN=client
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem -days 2
"""
    subprocess.run(["bash", "-c", script], check=True, capture_output=True)
    return d


def secure_channel(address, certs, client_cert):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=(certs / "ca.pem").read_bytes(),
        private_key=(certs / "client.key").read_bytes() if client_cert else None,
        certificate_chain=(certs / "client.pem").read_bytes() if client_cert else None)
    return grpc.secure_channel(address, credentials,
                               options=[("grpc.ssl_target_name_override", "localhost")])


def test_tls_and_mtls(pb, certs):
    tls = ["--tls-cert", str(certs / "server.pem"), "--tls-key", str(certs / "server.key")]
    server = Server(TINY_MODEL, *tls)
    try:
        with secure_channel(server.address, certs, client_cert=False) as channel:
            assert load(pb, channel) is not None
        with grpc.insecure_channel(server.address) as channel:
            with pytest.raises(grpc.RpcError):
                load(pb, channel)
    finally:
        assert server.stop() == 0
    server = Server(TINY_MODEL, *tls, "--tls-client-ca", str(certs / "ca.pem"))
    try:
        with secure_channel(server.address, certs, client_cert=False) as channel:
            with pytest.raises(grpc.RpcError):
                load(pb, channel)
        with secure_channel(server.address, certs, client_cert=True) as channel:
            assert load(pb, channel) is not None
    finally:
        assert server.stop() == 0


def test_sigterm_with_eight_streams_drains_and_exits_zero(pb):
    messages, services = pb
    server = Server(TINY_MODEL)
    outcomes = [None] * 8
    started = threading.Barrier(9)
    def stream(i):
        request = messages.GenerateRequest()
        request.token_ids.ids.extend([3 + i, 4, 5])
        request.stopping.max_tokens = 240
        request.stopping.ignore_eos = True
        with grpc.insecure_channel(server.address) as channel:
            call = services.GenerationStub(channel).Generate(request, timeout=60)
            try:
                next(call)
                started.wait()
                for _ in call:
                    pass
                outcomes[i] = grpc.StatusCode.OK
            except grpc.RpcError as error:
                outcomes[i] = error.code()
    threads = [threading.Thread(target=stream, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    started.wait()
    assert server.stop(timeout=20) == 0  # within the 10 s drain + margin
    for t in threads:
        t.join(timeout=20)
        assert not t.is_alive()
    assert all(o in (grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE) for o in outcomes), outcomes
