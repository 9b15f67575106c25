// inference.GRPCInferenceService over loopback gRPC on the tiny model:
// streamed text equals the in-process engine's, several requests share a
// stream, a bad request's error does not end the stream, cancelling a
// stream or a call frees its requests, a full engine, a client that does
// not read, draining refuses new work, API keys, metrics. Tests that must
// see a request while it runs drive the engine's steps themselves.
#include "server/kserve_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "server/kserve_conversion.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;
using test::EngineHarness;
using test::GreedyRequest;

constexpr char kTiny[] = "tiny_llama";

ModelPlan Plan() {
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 64;
  plan.num_kv_blocks = 64;
  plan.block_size = 4;
  return plan;
}

EngineConfig Config() {
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = 256;
  config.scheduler.max_num_seqs = 32;
  config.scheduler.max_num_logit_rows = 64;
  return config;
}

std::string RawInt32(int32_t v) { return std::string(reinterpret_cast<char*>(&v), 4); }
std::string RawFloat(float v) { return std::string(reinterpret_cast<char*>(&v), 4); }

// A greedy TensorRT-LLM-style request, raw contents as tritonclient sends.
ModelInferRequest Greedy(const std::string& id, const std::string& prompt,
                         int max_tokens, bool stream) {
  ModelInferRequest r;
  r.set_model_name("ensemble");
  r.set_id(id);
  auto add = [&r](const char* name, const char* datatype, std::string raw) {
    auto* input = r.add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    input->add_shape(1);
    input->add_shape(1);
    r.add_raw_input_contents(std::move(raw));
  };
  add("text_input", "BYTES", kserve::SerializeBytes({prompt}));
  add("max_tokens", "INT32", RawInt32(max_tokens));
  add("temperature", "FP32", RawFloat(0.0f));
  add("ignore_eos", "BOOL", std::string("\x01", 1));
  add("stream", "BOOL", std::string(stream ? "\x01" : "\x00", 1));
  return r;
}

// text_output's single element, from raw_output_contents.
std::string TextOutput(const ModelInferResponse& response) {
  for (int i = 0; i < response.outputs_size(); ++i) {
    if (response.outputs(i).name() != "text_output") continue;
    const std::string& raw = response.raw_output_contents(i);
    uint32_t length;
    std::memcpy(&length, raw.data(), 4);
    return raw.substr(4, length);
  }
  ADD_FAILURE() << "no text_output in the response";
  return "";
}

bool IsFinal(const ModelInferResponse& response) {
  auto it = response.parameters().find("triton_final_response");
  return it != response.parameters().end() && it->second.bool_param();
}

class KServeServiceTest : public ::testing::Test {
 protected:
  void SetUp() override { Start(ApiKeys()); }

  // `run_engine` false: the test calls Step() (StepSlowlyUntil).
  void Start(ApiKeys keys, EngineConfig config = Config(), bool run_engine = true) {
    keys_ = std::move(keys);
    harness_ = std::make_unique<EngineHarness>(test::TinyModelPath(kTiny), Plan(),
                                               config);
    ASSERT_TRUE(harness_->ok());
    if (run_engine) harness_->engine().Start();
    model_.name = "tiny";
    model_.architecture = "llama";
    model_.tokenizer = &harness_->tokenizer();
    model_.vocab_size = harness_->tokenizer().vocab_size();
    model_.max_model_len = harness_->engine().max_model_len();
    metrics_ = std::make_unique<ServerMetrics>("tiny", model_.max_model_len);
    service_ = std::make_unique<KServeService>(&harness_->engine(), model_, &keys_,
                                               metrics_.get());
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    stub_ = inference::GRPCInferenceService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }

  void TearDown() override {
    if (server_) server_->Shutdown(std::chrono::system_clock::now());
    if (harness_ && harness_->ok()) harness_->engine().Stop();
  }

  // Steps the engine (not started) until `done`, one step per 4 ms, so that
  // a request of 200 tokens runs for at least 0.8 s: time enough for a
  // cancel to reach it. False after 30 s.
  bool StepSlowlyUntil(const std::function<bool(const EngineStats&)>& done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (!done(harness_->engine().stats())) {
      if (absl::Now() > deadline) return false;
      harness_->engine().Step();
      absl::SleepFor(absl::Milliseconds(4));
    }
    return true;
  }

  // The request counter of `code` for the default tenant, as rendered.
  std::string RequestsLine(const char* code, int n) const {
    return absl::StrCat("weft:requests_total{model_name=\"tiny\",tenant=\"default\",code=\"",
                        code, "\"} ", n, "\n");
  }
  bool Counted(const char* code) const {
    return absl::StrContains(metrics_->Render(EngineStats{}),
                             absl::StrCat("tenant=\"default\",code=\"", code, "\""));
  }

  // Waits (engine running) until no request is live and `line` is counted.
  bool EndedAndCounted(const std::string& line) {
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    auto ended = [&] {
      const EngineStats stats = harness_->engine().stats();
      return absl::StrContains(metrics_->Render(stats), line) &&
             stats.num_live_requests == 0 && stats.kv_blocks_used == 0;
    };
    while (!ended() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
    return ended();
  }

  static void SetDeadline(grpc::ClientContext* context) {
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  }

  // The greedy text the in-process engine generates for `prompt`.
  std::string Expected(const std::string& prompt, int max_tokens) {
    EngineHarness alone(test::TinyModelPath(kTiny), Plan(), Config());
    auto ids = alone.tokenizer().Encode(prompt, EncodeOptions{});
    return alone.RunTogether({GreedyRequest("x", ids, max_tokens)})["x"].text[0];
  }

  // Sends `requests` on one stream, closes the sending side, and reads
  // every response until the server ends the stream.
  std::vector<ModelStreamInferResponse> StreamAll(
      const std::vector<ModelInferRequest>& requests, grpc::Status* status) {
    grpc::ClientContext context;
    SetDeadline(&context);
    auto stream = stub_->ModelStreamInfer(&context);
    for (const ModelInferRequest& r : requests) EXPECT_TRUE(stream->Write(r));
    stream->WritesDone();
    std::vector<ModelStreamInferResponse> responses;
    ModelStreamInferResponse response;
    while (stream->Read(&response)) responses.push_back(response);
    *status = stream->Finish();
    return responses;
  }

  ApiKeys keys_;
  std::unique_ptr<EngineHarness> harness_;
  ServedModel model_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<KServeService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(KServeServiceTest, StreamedDeltasEqualTheEngineTextThenAFinalResponse) {
  grpc::Status status;
  auto responses = StreamAll({Greedy("a", "Hello world", 10, true)}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(responses.size(), 2u);
  std::string text;
  for (size_t i = 0; i + 1 < responses.size(); ++i) {
    EXPECT_EQ(responses[i].error_message(), "");
    EXPECT_EQ(responses[i].infer_response().id(), "a");
    EXPECT_FALSE(IsFinal(responses[i].infer_response()));
    text += TextOutput(responses[i].infer_response());
  }
  const ModelInferResponse& last = responses.back().infer_response();
  EXPECT_TRUE(IsFinal(last));
  EXPECT_EQ(TextOutput(last), "");  // no text left; the flag alone
  EXPECT_EQ(text, Expected("Hello world", 10));
}

TEST_F(KServeServiceTest, EmptyFinalResponseCarriesNoOutputsWhenAskedFor) {
  ModelInferRequest r = Greedy("a", "Hello world", 4, true);
  (*r.mutable_parameters())["triton_enable_empty_final_response"].set_bool_param(true);
  grpc::Status status;
  auto responses = StreamAll({r}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_FALSE(responses.empty());
  EXPECT_TRUE(IsFinal(responses.back().infer_response()));
  EXPECT_EQ(responses.back().infer_response().outputs_size(), 0);
}

TEST_F(KServeServiceTest, NonStreamedRequestOnAStreamGetsOneResponseWithThePrompt) {
  grpc::Status status;
  auto responses = StreamAll({Greedy("a", "Hello world", 6, false)}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_TRUE(IsFinal(responses[0].infer_response()));
  EXPECT_EQ(TextOutput(responses[0].infer_response()),
            "Hello world" + Expected("Hello world", 6));
}

TEST_F(KServeServiceTest, SeveralRequestsShareAStreamAndEachEndsOnce) {
  std::vector<ModelInferRequest> requests;
  for (const char* id : {"r0", "r1", "r2"}) {
    requests.push_back(Greedy(id, absl::StrCat("Prompt ", id), 5, true));
  }
  grpc::Status status;
  auto responses = StreamAll(requests, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::map<std::string, std::string> text;
  std::map<std::string, int> finals;
  for (const auto& response : responses) {
    ASSERT_EQ(response.error_message(), "");
    const std::string& id = response.infer_response().id();
    EXPECT_EQ(finals[id], 0) << "a response after the final one of " << id;
    text[id] += TextOutput(response.infer_response());
    if (IsFinal(response.infer_response())) finals[id]++;
  }
  for (const char* id : {"r0", "r1", "r2"}) {
    EXPECT_EQ(finals[id], 1) << id;
    EXPECT_EQ(text[id], Expected(absl::StrCat("Prompt ", id), 5)) << id;
  }
}

TEST_F(KServeServiceTest, BadRequestGetsAnErrorResponseAndTheStreamGoesOn) {
  ModelInferRequest bad = Greedy("bad", "Hello", 4, true);
  bad.mutable_inputs(1)->set_datatype("FP32");  // max_tokens
  ModelInferRequest unknown_model = Greedy("nomodel", "Hello", 4, true);
  unknown_model.set_model_name("gpt");
  grpc::Status status;
  auto responses =
      StreamAll({bad, unknown_model, Greedy("good", "Hello", 4, true)}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(responses.size(), 3u);
  EXPECT_EQ(responses[0].infer_response().id(), "bad");
  EXPECT_TRUE(absl::StrContains(responses[0].error_message(),
                                "INVALID_ARGUMENT: max_tokens: datatype FP32"))
      << responses[0].error_message();
  // As Triton answers a failed request: its last response, fully addressed.
  EXPECT_TRUE(IsFinal(responses[0].infer_response()));
  EXPECT_EQ(responses[0].infer_response().model_name(), "ensemble");
  EXPECT_EQ(responses[0].infer_response().model_version(), "1");
  EXPECT_TRUE(IsFinal(responses[1].infer_response()));
  EXPECT_EQ(responses[1].infer_response().id(), "nomodel");
  EXPECT_TRUE(absl::StrContains(responses[1].error_message(),
                                "NOT_FOUND: model 'gpt' is not served here"))
      << responses[1].error_message();
  EXPECT_EQ(responses.back().infer_response().id(), "good");
  EXPECT_TRUE(IsFinal(responses.back().infer_response()));
}

// A refusal quoting a client's BYTES (a bad word that is several tokens)
// still puts valid UTF-8 into error_message, a proto3 string: a client
// refuses to parse the response otherwise, and its whole stream dies.
TEST_F(KServeServiceTest, ErrorMessagesQuotingClientBytesAreValidUtf8) {
  ModelInferRequest bad = Greedy("bytes", "Hello", 4, true);
  auto* words = bad.add_inputs();
  words->set_name("bad_words");
  words->set_datatype("BYTES");
  words->add_shape(1);
  words->add_shape(1);
  bad.add_raw_input_contents(kserve::SerializeBytes({"\xff\xfe\xfd"}));
  grpc::Status status;
  auto responses = StreamAll({bad, Greedy("good", "Hello", 4, true)}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_GE(responses.size(), 2u);
  EXPECT_EQ(responses[0].infer_response().id(), "bytes");
  EXPECT_TRUE(absl::StartsWith(responses[0].error_message(), "INVALID_ARGUMENT: bad_words[0]"))
      << responses[0].error_message();
  EXPECT_TRUE(absl::StrContains(responses[0].error_message(), "\uFFFD"))
      << responses[0].error_message();
  EXPECT_EQ(responses.back().infer_response().id(), "good");
}

TEST_F(KServeServiceTest, ModelInferReturnsThePromptAndItsContinuation) {
  grpc::ClientContext context;
  SetDeadline(&context);
  ModelInferResponse response;
  grpc::Status status =
      stub_->ModelInfer(&context, Greedy("u", "Hello world", 6, false), &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.id(), "u");
  EXPECT_EQ(response.model_name(), "ensemble");
  EXPECT_EQ(TextOutput(response), "Hello world" + Expected("Hello world", 6));
}

TEST_F(KServeServiceTest, ModelInferBadTensorIsInvalidArgument) {
  ModelInferRequest r = Greedy("u", "Hello", 4, false);
  r.mutable_raw_input_contents(1)->resize(2);  // max_tokens: 2 bytes of INT32
  grpc::ClientContext context;
  SetDeadline(&context);
  ModelInferResponse response;
  grpc::Status status = stub_->ModelInfer(&context, r, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(absl::StrContains(status.error_message(),
                                "max_tokens: raw data is 2 bytes"))
      << status.error_message();
}

TEST_F(KServeServiceTest, CancellingAStreamEndsItsRequestsAndFreesTheirBlocks) {
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    auto stream = stub_->ModelStreamInfer(&context);
    ASSERT_TRUE(stream->Write(Greedy("long", "Hello", 200, true)));
    ModelStreamInferResponse response;
    ASSERT_TRUE(stream->Read(&response));  // it runs
    context.TryCancel();
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The request's end is recorded at its terminal event; the engine's
  // stats are published at the end of that step.
  const std::string cancelled =
      "weft:requests_total{model_name=\"tiny\",tenant=\"default\",code=\"CANCELLED\"} 1\n";
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  auto ended = [&] {
    const EngineStats stats = harness_->engine().stats();
    return absl::StrContains(metrics_->Render(stats), cancelled) &&
           stats.num_live_requests == 0 && stats.kv_blocks_used == 0;
  };
  while (!ended() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_TRUE(ended()) << metrics_->Render(harness_->engine().stats());
}

TEST_F(KServeServiceTest, ModelInferCancelledByItsClientEndsCancelledAndFreesItsBlocks) {
  TearDown();
  Start(ApiKeys(), Config(), /*run_engine=*/false);
  grpc::ClientContext context;
  SetDeadline(&context);
  ModelInferResponse response;
  grpc::Status status;
  std::thread call([&] {
    status = stub_->ModelInfer(&context, Greedy("u", "Hello", 200, false), &response);
  });
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_running == 1 && s.kv_blocks_used > 0;
  }));
  context.TryCancel();
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_live_requests == 0;
  }));
  call.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  const EngineStats stats = harness_->engine().stats();
  EXPECT_EQ(stats.kv_blocks_used, 0);
  EXPECT_LT(stats.generated_tokens, 200);
  const std::string text = metrics_->Render(stats);
  EXPECT_TRUE(absl::StrContains(text, RequestsLine("CANCELLED", 1))) << text;
  EXPECT_FALSE(Counted("OK")) << text;
}

TEST_F(KServeServiceTest, ModelInferPastItsDeadlineEndsCancelledAndFreesItsBlocks) {
  TearDown();
  Start(ApiKeys(), Config(), /*run_engine=*/false);
  grpc::ClientContext context;
  // 200 tokens take at least 0.8 s here: the deadline passes while it runs.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(300));
  ModelInferResponse response;
  grpc::Status status;
  std::thread call([&] {
    status = stub_->ModelInfer(&context, Greedy("u", "Hello", 200, false), &response);
  });
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_running == 1 && s.kv_blocks_used > 0;
  }));
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_live_requests == 0;
  }));
  call.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  const EngineStats stats = harness_->engine().stats();
  EXPECT_EQ(stats.kv_blocks_used, 0);
  EXPECT_LT(stats.generated_tokens, 200);
  const std::string text = metrics_->Render(stats);
  EXPECT_TRUE(absl::StrContains(text, RequestsLine("CANCELLED", 1))) << text;
  EXPECT_FALSE(Counted("OK")) << text;
}

TEST_F(KServeServiceTest, CancellingAStreamCancelsEveryRequestRunningOnIt) {
  TearDown();
  Start(ApiKeys(), Config(), /*run_engine=*/false);
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(Greedy("s0", "Hello", 200, true)));
  ASSERT_TRUE(stream->Write(Greedy("s1", "Hello there", 200, true)));
  ASSERT_TRUE(stream->Write(Greedy("whole", "Hi", 200, false)));
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_running == 3 && s.generated_tokens > 0;
  }));
  context.TryCancel();
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_live_requests == 0;
  }));
  ModelStreamInferResponse response;
  while (stream->Read(&response)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const EngineStats stats = harness_->engine().stats();
  EXPECT_EQ(stats.kv_blocks_used, 0);
  EXPECT_LT(stats.generated_tokens, 3 * 200);
  const std::string text = metrics_->Render(stats);
  EXPECT_TRUE(absl::StrContains(text, RequestsLine("CANCELLED", 3))) << text;
  EXPECT_FALSE(Counted("OK")) << text;
}

TEST_F(KServeServiceTest, CancelBetweenAdmissionAndSubmitStillCancelsTheRequest) {
  grpc::ClientContext context;
  SetDeadline(&context);
  // The client goes while the stream is about to submit: its cancel reaches
  // the engine before the request does.
  std::atomic<bool> hook_ran{false};
  service_->SetBeforeSubmitHookForTesting([&context, &hook_ran] {
    context.TryCancel();
    absl::SleepFor(absl::Milliseconds(200));  // for OnCancel to run meanwhile
    hook_ran = true;
  });
  auto stream = stub_->ModelStreamInfer(&context);
  // The server has the request; whether the client's Write reports its
  // completion before the cancel does not matter.
  stream->Write(Greedy("late", "Hello", 200, true));
  ModelStreamInferResponse response;
  while (stream->Read(&response)) {
  }
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (!hook_ran && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  ASSERT_TRUE(hook_ran);
  EXPECT_TRUE(EndedAndCounted(RequestsLine("CANCELLED", 1)))
      << metrics_->Render(harness_->engine().stats());
  EXPECT_FALSE(Counted("OK")) << metrics_->Render(EngineStats{});
}

TEST_F(KServeServiceTest, FullEngineGetsAnErrorResponseAndTheStreamGoesOn) {
  TearDown();
  EngineConfig config = Config();
  config.max_live_requests = 1;
  Start(ApiKeys(), config, /*run_engine=*/false);
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(Greedy("first", "Hello", 4, true)));
  ASSERT_TRUE(StepSlowlyUntil([](const EngineStats& s) {
    return s.num_live_requests == 1;
  }));
  ASSERT_TRUE(stream->Write(Greedy("second", "Hello", 4, true)));
  ModelStreamInferResponse response;
  std::string refused;  // the error response of "second"
  while (refused.empty() && stream->Read(&response)) {
    if (response.infer_response().id() == "second") refused = response.error_message();
  }
  EXPECT_TRUE(absl::StartsWith(refused, "RESOURCE_EXHAUSTED: too many requests"))
      << refused;
  EXPECT_TRUE(IsFinal(response.infer_response()));

  harness_->engine().Start();  // "first" ends; then there is room again
  ASSERT_TRUE(EndedAndCounted(RequestsLine("OK", 1)));
  ASSERT_TRUE(stream->Write(Greedy("third", "Hello", 4, true)));
  stream->WritesDone();
  std::map<std::string, int> finals;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.error_message(), "") << response.infer_response().id();
    finals[response.infer_response().id()] += IsFinal(response.infer_response());
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(finals["first"], 1);
  EXPECT_EQ(finals["third"], 1);
  const std::string text = metrics_->Render(EngineStats{});
  EXPECT_TRUE(absl::StrContains(text, RequestsLine("RESOURCE_EXHAUSTED", 1))) << text;
  EXPECT_TRUE(absl::StrContains(text, RequestsLine("OK", 2))) << text;
}

TEST_F(KServeServiceTest, AClientThatSendsWithoutReadingIsHeldBackNotBuffered) {
  // Each refused request's response echoes its 3 MB model name: far more
  // than gRPC's flow-control windows hold unread.
  ModelInferRequest bad = Greedy("x", "Hello", 4, true);
  bad.set_model_name(std::string(3 << 20, 'm'));
  constexpr int kRequests = 32;
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  std::thread writer([&] {
    for (int i = 0; i < kRequests; ++i) {
      if (!stream->Write(bad)) return;  // false once cancelled
    }
  });
  auto refused = [&] {
    const std::string text = metrics_->Render(EngineStats{});
    const std::string prefix =
        "weft:requests_total{model_name=\"tiny\",tenant=\"default\",code=\"NOT_FOUND\"} ";
    const size_t at = text.find(prefix);
    return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + prefix.size());
  };
  // Wait until the server stops taking requests (or has taken them all).
  int seen = -1;
  for (int stable = 0; stable < 10 && seen < kRequests; absl::SleepFor(absl::Milliseconds(50))) {
    const int now = refused();
    stable = now == seen ? stable + 1 : 0;
    seen = now;
  }
  EXPECT_GE(seen, 1);
  // One being written, a few the client's window took, and at most
  // kMaxQueuedErrorResponses waiting: the rest wait in the client.
  EXPECT_LE(seen, static_cast<int>(KServeService::kMaxQueuedErrorResponses) + 4);
  context.TryCancel();
  writer.join();
  EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(KServeServiceTest, OverlongIdIsRefusedWithoutBeingEchoed) {
  grpc::Status status;
  auto responses = StreamAll({Greedy(std::string(257, 'i'), "Hello", 4, true)}, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(responses.size(), 1u);
  EXPECT_TRUE(absl::StartsWith(responses[0].error_message(),
                               "INVALID_ARGUMENT: id: longer than 256 bytes"))
      << responses[0].error_message();
  EXPECT_EQ(responses[0].infer_response().id(), "");
  EXPECT_TRUE(IsFinal(responses[0].infer_response()));
}

TEST_F(KServeServiceTest, DrainingRefusesNewWorkButFinishesWhatRuns) {
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(Greedy("running", "Hello", 60, true)));
  ModelStreamInferResponse first;
  ASSERT_TRUE(stream->Read(&first));  // it runs
  service_->StartDraining();
  ASSERT_TRUE(stream->Write(Greedy("late", "Hello", 8, false)));
  stream->WritesDone();
  std::map<std::string, ModelStreamInferResponse> by_id;  // the last of each
  ModelStreamInferResponse response;
  while (stream->Read(&response)) by_id[response.infer_response().id()] = response;
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(by_id["running"].error_message(), "");
  EXPECT_TRUE(IsFinal(by_id["running"].infer_response()));
  EXPECT_TRUE(absl::StartsWith(by_id["late"].error_message(), "UNAVAILABLE"))
      << by_id["late"].error_message();

  grpc::ClientContext ready_context;
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(&ready_context, {}, &ready).ok());
  EXPECT_FALSE(ready.ready());
  grpc::ClientContext new_stream_context;
  SetDeadline(&new_stream_context);
  auto refused = stub_->ModelStreamInfer(&new_stream_context);
  while (refused->Read(&response)) {
  }
  EXPECT_EQ(refused->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(KServeServiceTest, ApiKeysGuardInferenceButNotLiveness) {
  TearDown();
  auto keys = ApiKeys::FromText(absl::StrCat("acme ", Sha256Hex("secret")), "test");
  ASSERT_TRUE(keys.ok()) << keys.status();
  Start(*std::move(keys));
  {
    grpc::ClientContext context;
    inference::ServerLiveResponse live;
    ASSERT_TRUE(stub_->ServerLive(&context, {}, &live).ok());
    EXPECT_TRUE(live.live());
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    ModelInferResponse response;
    EXPECT_EQ(stub_->ModelInfer(&context, Greedy("u", "Hi", 2, false), &response)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    SetDeadline(&context);
    auto stream = stub_->ModelStreamInfer(&context);
    ModelStreamInferResponse response;
    while (stream->Read(&response)) {
    }
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::ClientContext context;
  SetDeadline(&context);
  context.AddMetadata("authorization", "Bearer secret");
  ModelInferResponse response;
  ASSERT_TRUE(stub_->ModelInfer(&context, Greedy("u", "Hi", 2, false), &response).ok());
  const std::string text = metrics_->Render(EngineStats{});
  EXPECT_TRUE(absl::StrContains(
      text, "weft:requests_total{model_name=\"tiny\",tenant=\"acme\",code=\"OK\"} 1\n"))
      << text;
  EXPECT_TRUE(absl::StrContains(
      text, "weft:generation_tokens_total{model_name=\"tiny\",tenant=\"acme\"} 2\n"));
  EXPECT_TRUE(absl::StrContains(
      text,
      "weft:requests_total{model_name=\"tiny\",tenant=\"\",code=\"UNAUTHENTICATED\"} 2\n"));
}

TEST_F(KServeServiceTest, AClientIdReusedWhileItsRequestRunsIsNoConflict) {
  grpc::ClientContext context;
  SetDeadline(&context);
  auto stream = stub_->ModelStreamInfer(&context);
  ASSERT_TRUE(stream->Write(Greedy("a", "Hello", 200, true)));
  ModelStreamInferResponse response;
  ASSERT_TRUE(stream->Read(&response));  // it runs
  // Engine ids are the server's own, under the tenant; Triton lets clients
  // reuse ids, so a second "a" while the first runs must be served.
  ASSERT_TRUE(stream->Write(Greedy("a", "Hello", 2, false)));
  stream->WritesDone();
  int finals = 0;
  while (stream->Read(&response)) {
    EXPECT_EQ(response.error_message(), "");
    finals += IsFinal(response.infer_response());
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(finals, 2);
}

TEST_F(KServeServiceTest, MetadataAndReadinessAnswerForTheServedNameAndAliases) {
  for (const char* name : {"tiny", "ensemble", "tensorrt_llm_bls"}) {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name(name);
    inference::ModelReadyResponse ready;
    ASSERT_TRUE(stub_->ModelReady(&context, request, &ready).ok());
    EXPECT_TRUE(ready.ready()) << name;
  }
  grpc::ClientContext unknown_context;
  inference::ModelReadyRequest unknown;
  unknown.set_name("gpt");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(stub_->ModelReady(&unknown_context, unknown, &ready).ok());
  EXPECT_FALSE(ready.ready());

  grpc::ClientContext metadata_context;
  inference::ModelMetadataRequest request;
  request.set_name("ensemble");
  inference::ModelMetadataResponse metadata;
  ASSERT_TRUE(stub_->ModelMetadata(&metadata_context, request, &metadata).ok());
  EXPECT_EQ(metadata.name(), "ensemble");
  ASSERT_GT(metadata.inputs_size(), 0);
  EXPECT_EQ(metadata.inputs(0).name(), "text_input");
  EXPECT_EQ(metadata.inputs(0).datatype(), "BYTES");
  EXPECT_EQ(metadata.outputs(0).name(), "text_output");
}

}  // namespace
}  // namespace weft
