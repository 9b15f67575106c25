"""The KServe v2 / Triton inference service of the real weft-server, driven
by Triton's own unmodified Python client (tritonclient, from PyPI) with
TensorRT-LLM's tensor names."""
import json
import queue

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

PROMPT = "The capital of France is"
MAX_TOKENS = 10


def tensor(name, value, datatype):
    t = grpcclient.InferInput(name, list(value.shape), datatype)
    t.set_data_from_numpy(value)
    return t


def greedy_inputs(prompt=PROMPT, max_tokens=MAX_TOKENS, stream=None):
    inputs = [tensor("text_input", np.array([[prompt]], dtype=object), "BYTES"),
              tensor("max_tokens", np.array([[max_tokens]], dtype=np.int32), "INT32"),
              tensor("temperature", np.array([[0.0]], dtype=np.float32), "FP32"),
              tensor("ignore_eos", np.array([[True]]), "BOOL")]
    if stream is not None:
        inputs.append(tensor("stream", np.array([[stream]]), "BOOL"))
    return inputs


def generate_text(pb, address, prompt=PROMPT, max_tokens=MAX_TOKENS):
    """The greedy text of weft's own Generate call, for comparison."""
    messages, services = pb
    request = messages.GenerateRequest(text=prompt)
    request.sampling.temperature = 0
    request.stopping.max_tokens = max_tokens
    request.stopping.ignore_eos = True
    text = ""
    with grpc.insecure_channel(address) as channel:
        for response in services.GenerationStub(channel).Generate(request, timeout=300):
            if response.HasField("delta"):
                text += response.delta.text
    return text


class Stream:
    """A tritonclient stream whose results land in a queue."""

    def __init__(self, client):
        self.client = client
        self.results = queue.Queue()
        client.start_stream(callback=lambda result, error: self.results.put((result, error)))

    def next(self):
        return self.results.get(timeout=300)

    def run(self, inputs, request_id, **kwargs):
        """Sends one request; returns its responses up to the final one."""
        self.client.async_stream_infer("ensemble", inputs, request_id=request_id, **kwargs)
        responses = []
        while True:
            result, error = self.next()
            assert error is None, error
            response = result.get_response()
            assert response.id == request_id
            responses.append(result)
            if response.parameters["triton_final_response"].bool_param:
                return responses


@pytest.fixture(scope="module")
def client(default_server):
    with grpcclient.InferenceServerClient(default_server.address) as c:
        yield c


def test_server_is_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata().name == "weft"


def test_served_name_and_tensorrt_llm_aliases_are_ready_and_described(client):
    for name in ("ensemble", "tensorrt_llm_bls", "SmolLM2-135M-Instruct.Q4_1.gguf"):
        assert client.is_model_ready(name), name
    assert not client.is_model_ready("gpt-4")
    metadata = client.get_model_metadata("ensemble")
    inputs = {t.name: t.datatype for t in metadata.inputs}
    assert inputs["text_input"] == "BYTES"
    assert inputs["max_tokens"] == "INT32"
    assert inputs["stream"] == "BOOL"
    assert inputs["temperature"] == "FP32"
    assert inputs["random_seed"] == "UINT64"
    assert [t.name for t in metadata.outputs][0] == "text_output"
    config = client.get_model_config("tensorrt_llm_bls").config
    assert config.model_transaction_policy.decoupled
    assert config.max_batch_size == 1
    with pytest.raises(InferenceServerException, match="not served here"):
        client.get_model_metadata("gpt-4")


def test_streamed_text_equals_generate_text(pb, default_server, client):
    expected = generate_text(pb, default_server.address)
    stream = Stream(client)
    try:
        responses = stream.run(greedy_inputs(stream=True), "s1")
    finally:
        client.stop_stream()
    assert len(responses) >= 2
    finals = [r.get_response().parameters["triton_final_response"].bool_param
              for r in responses]
    assert finals == [False] * (len(responses) - 1) + [True]
    text = b"".join(r.as_numpy("text_output")[0][0] for r in responses).decode()
    assert text == expected
    assert responses[0].as_numpy("text_output").shape == (1, 1)


def test_empty_final_response_when_the_client_asks_for_it(client):
    stream = Stream(client)
    try:
        responses = stream.run(greedy_inputs(max_tokens=3, stream=True), "e1",
                               enable_empty_final_response=True)
    finally:
        client.stop_stream()
    assert responses[-1].get_response().outputs == []
    assert responses[-1].as_numpy("text_output") is None


def test_unary_infer_returns_prompt_and_continuation(pb, default_server, client):
    expected = generate_text(pb, default_server.address)
    result = client.infer("ensemble", greedy_inputs(), request_id="u1")
    assert result.get_response().id == "u1"
    assert result.as_numpy("text_output")[0][0].decode() == PROMPT + expected
    without_prompt = greedy_inputs() + [
        tensor("exclude_input_in_output", np.array([[True]]), "BOOL")]
    result = client.infer("tensorrt_llm_bls", without_prompt)
    assert result.as_numpy("text_output")[0][0].decode() == expected


def test_typed_contents_give_the_same_text_as_raw_contents(default_server, client):
    """tritonclient sends raw_input_contents; other clients send typed
    contents. Both decode to the same request."""
    raw = client.infer("ensemble", greedy_inputs(max_tokens=6))
    request = service_pb2.ModelInferRequest(model_name="ensemble")
    for name, datatype, field, value in [
            ("text_input", "BYTES", "bytes_contents", [PROMPT.encode()]),
            ("max_tokens", "INT32", "int_contents", [6]),
            ("temperature", "FP32", "fp32_contents", [0.0]),
            ("ignore_eos", "BOOL", "bool_contents", [True])]:
        t = request.inputs.add(name=name, datatype=datatype, shape=[1, 1])
        getattr(t.contents, field).extend(value)
    with grpc.insecure_channel(default_server.address) as channel:
        typed = service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
            request, timeout=300)
    assert typed.raw_output_contents[0][4:] == raw.as_numpy("text_output")[0][0]


@pytest.mark.parametrize("inputs, message", [
    ([tensor("text_input", np.array([[PROMPT]], dtype=object), "BYTES"),
      tensor("max_tokens", np.array([[4.0]], dtype=np.float32), "FP32")],
     "max_tokens: datatype FP32 is not accepted; send INT32"),
    ([tensor("text_input", np.array([["a"], ["b"]], dtype=object), "BYTES")],
     "text_input: shape [2, 1] holds 2 prompts"),
    ([tensor("text_input", np.array([[PROMPT]], dtype=object), "BYTES"),
      tensor("temperature", np.array([[0.1, 0.2]], dtype=np.float32), "FP32")],
     "temperature: shape [1, 2] holds 2 values"),
    ([tensor("max_tokens", np.array([[4]], dtype=np.int32), "INT32")],
     "text_input: missing"),
    ([tensor("text_input", np.array([[PROMPT]], dtype=object), "BYTES"),
      tensor("top_p", np.array([[1.5]], dtype=np.float32), "FP32")],
     "top_p must be in (0, 1], got 1.5"),
])
def test_bad_tensors_are_invalid_argument_naming_the_tensor(client, inputs, message):
    with pytest.raises(InferenceServerException) as raised:
        client.infer("ensemble", inputs)
    assert raised.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in raised.value.message()


def test_bad_request_on_a_stream_is_an_error_and_the_stream_goes_on(client):
    stream = Stream(client)
    try:
        bad = [tensor("text_input", np.array([[PROMPT]], dtype=object), "BYTES"),
               tensor("max_tokens", np.array([[4]], dtype=np.float64), "FP64")]
        client.async_stream_infer("ensemble", bad, request_id="bad")
        result, error = stream.next()
        assert result is None
        assert "INVALID_ARGUMENT: max_tokens: datatype FP64 is not accepted" in str(error)
        responses = stream.run(greedy_inputs(max_tokens=3, stream=True), "good")
        assert responses[-1].get_response().parameters["triton_final_response"].bool_param
    finally:
        client.stop_stream()


def test_guided_decoding_tensors_constrain_the_text(client):
    """TensorRT-LLM's guided_decoding_guide_type / guided_decoding_guide."""
    schema = {"type": "object", "properties": {"year": {"type": "integer"}},
              "required": ["year"]}
    inputs = [tensor("text_input", np.array([["What is the year after 2024? Answer:"]],
                                            dtype=object), "BYTES"),
              tensor("max_tokens", np.array([[30]], dtype=np.int32), "INT32"),
              tensor("temperature", np.array([[0.0]], dtype=np.float32), "FP32"),
              tensor("exclude_input_in_output", np.array([[True]]), "BOOL"),
              tensor("guided_decoding_guide_type", np.array([["json_schema"]], dtype=object),
                     "BYTES"),
              tensor("guided_decoding_guide", np.array([[json.dumps(schema)]], dtype=object),
                     "BYTES")]
    text = client.infer("ensemble", inputs).as_numpy("text_output")[0][0].decode()
    assert isinstance(json.loads(text)["year"], int), text
    inputs[-2] = tensor("guided_decoding_guide_type", np.array([["regex"]], dtype=object),
                        "BYTES")
    inputs[-1] = tensor("guided_decoding_guide", np.array([[r" \d{4}"]], dtype=object),
                        "BYTES")
    text = client.infer("ensemble", inputs).as_numpy("text_output")[0][0].decode()
    assert len(text) == 5 and text[0] == " " and text[1:].isdigit(), text
