// weft.v1.Generation end to end over loopback gRPC, on the tiny model:
// streamed tokens equal the in-process engine's, bad requests fail with
// their code and field, a client cancel frees the request's KV blocks, a
// client gone silent is cancelled by keepalive.
#include "server/grpc_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_harness.h"
#include "tests/server/bad_requests.h"

namespace weft {
namespace {

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

// The tiny model as the server describes it.
ServedModel TinyServed(EngineHarness& harness) {
  ServedModel model;
  model.name = "tiny";
  model.architecture = "llama";
  model.tokenizer = &harness.tokenizer();
  model.vocab_size = harness.tokenizer().vocab_size();
  model.max_model_len = harness.engine().max_model_len();
  model.max_n = 4;
  return model;
}

class GrpcServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*start_engine=*/true); }

  void StartServer(bool start_engine) {
    harness_ = std::make_unique<EngineHarness>(test::TinyModelPath(kTiny), Plan(),
                                               Config());
    ASSERT_TRUE(harness_->ok());
    if (start_engine) harness_->engine().Start();
    const ServedModel model = TinyServed(*harness_);
    GrpcServerConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    auto server =
        GrpcServer::Start(config, &harness_->engine(), model, "cpu", &keys_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    channel_ = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                   grpc::InsecureChannelCredentials());
    stub_ = v1::Generation::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
    if (harness_ && harness_->ok()) harness_->engine().Stop();
  }

  // Runs one Generate call to the end.
  struct Streamed {
    grpc::Status status;
    std::vector<int32_t> tokens;
    std::string text;
    std::optional<v1::Final> final_message;
  };
  Streamed Generate(const v1::GenerateRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Generate(&context, request);
    Streamed out;
    v1::GenerateResponse response;
    while (reader->Read(&response)) {
      if (response.has_delta()) {
        out.tokens.insert(out.tokens.end(), response.delta().token_ids().begin(),
                          response.delta().token_ids().end());
        out.text += response.delta().text();
      } else {
        out.final_message = response.final();
      }
    }
    out.status = reader->Finish();
    return out;
  }

  std::unique_ptr<EngineHarness> harness_;
  ApiKeys keys_;  // none: auth disabled
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

TEST_F(GrpcServerTest, StreamedGreedyTokensEqualTheInProcessEngine) {
  const std::vector<int32_t> prompt = {5, 17, 42, 99, 7, 300, 12};
  v1::GenerateRequest request;
  request.mutable_token_ids()->mutable_ids()->Add(prompt.begin(), prompt.end());
  request.mutable_sampling()->set_temperature(0);
  request.mutable_stopping()->set_max_tokens(12);
  request.mutable_stopping()->set_ignore_eos(true);
  const Streamed streamed = Generate(request);
  ASSERT_TRUE(streamed.status.ok()) << streamed.status.error_message();
  EngineHarness alone(test::TinyModelPath(kTiny), Plan(), Config());
  auto expected = alone.RunTogether({GreedyRequest("x", prompt, 12)})["x"];
  EXPECT_EQ(streamed.tokens, expected.tokens[0]);
  EXPECT_EQ(streamed.text, expected.text[0]);
  ASSERT_TRUE(streamed.final_message.has_value());
  EXPECT_EQ(streamed.final_message->samples(0).finish_reason(),
            v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(streamed.final_message->usage().prompt_tokens(), 7);
  EXPECT_EQ(streamed.final_message->usage().completion_tokens(), 12);
}

TEST_F(GrpcServerTest, BadRequestsFailWithTheirCodeAndField) {
  v1::GenerateRequest request;
  request.set_text("hello");
  request.mutable_sampling()->set_temperature(-1);
  Streamed streamed = Generate(request);
  EXPECT_EQ(streamed.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(streamed.status.error_message().find("sampling.temperature"),
            std::string::npos);

  v1::GenerateRequest no_prompt;
  streamed = Generate(no_prompt);
  EXPECT_EQ(streamed.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(streamed.status.error_message().find("prompt"), std::string::npos);
}

TEST_F(GrpcServerTest, ClientCancelFreesTheRequestsBlocks) {
  // One cancel mid-stream: gone, and its blocks free, within a second.
  {
    grpc::ClientContext context;
    v1::GenerateRequest request;
    for (int32_t id : {3, 4, 5, 6, 7, 8}) request.mutable_token_ids()->add_ids(id);
    request.mutable_stopping()->set_max_tokens(240);
    request.mutable_stopping()->set_ignore_eos(true);
    auto reader = stub_->Generate(&context, request);
    v1::GenerateResponse response;
    ASSERT_TRUE(reader->Read(&response));
    context.TryCancel();
    reader->Finish();
    const absl::Time deadline = absl::Now() + absl::Seconds(1);
    v1::Load load;
    do {
      grpc::ClientContext c;
      ASSERT_TRUE(stub_->GetLoad(&c, v1::GetLoadRequest(), &load).ok());
    } while ((load.live_requests() > 0 || load.kv_blocks_used() > 0) &&
             absl::Now() < deadline);
    EXPECT_EQ(load.live_requests(), 0);
    EXPECT_EQ(load.kv_blocks_used(), 0);
  }
  // 200 rapid open-cancel cycles leave the block count where it started.
  for (int i = 0; i < 200; ++i) {
    grpc::ClientContext context;
    v1::GenerateRequest request;
    for (int32_t id : {3, 4, 5, 6, 7, 8}) request.mutable_token_ids()->add_ids(id);
    request.mutable_stopping()->set_max_tokens(200);
    request.mutable_stopping()->set_ignore_eos(true);
    auto reader = stub_->Generate(&context, request);
    v1::GenerateResponse response;
    ASSERT_TRUE(reader->Read(&response));  // it is running
    context.TryCancel();
    reader->Finish();
  }
  v1::Load load;
  for (int tries = 0; tries < 100; ++tries) {
    grpc::ClientContext context;
    ASSERT_TRUE(stub_->GetLoad(&context, v1::GetLoadRequest(), &load).ok());
    if (load.live_requests() == 0 && load.kv_blocks_used() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(load.live_requests(), 0);
  EXPECT_EQ(load.kv_blocks_used(), 0);
}

// A client's request_id names its responses only: a retry may reuse the
// id of a stream still running or ending, and cancelling one stream never
// ends another of the same id (before, the second got ALREADY_EXISTS, and
// a late Cancel of the first would have ended it).
TEST_F(GrpcServerTest, StreamsWithTheSameRequestIdAreIndependent) {
  v1::GenerateRequest request;
  request.set_request_id("r");
  for (int32_t id : {3, 4, 5, 6, 7, 8}) request.mutable_token_ids()->add_ids(id);
  request.mutable_sampling()->set_temperature(0);
  request.mutable_stopping()->set_max_tokens(200);
  request.mutable_stopping()->set_ignore_eos(true);
  grpc::ClientContext first_context;
  auto first = stub_->Generate(&first_context, request);
  v1::GenerateResponse response;
  ASSERT_TRUE(first->Read(&response));  // running
  request.mutable_stopping()->set_max_tokens(40);
  grpc::ClientContext second_context;
  second_context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto second = stub_->Generate(&second_context, request);
  ASSERT_TRUE(second->Read(&response));  // accepted and running too
  first_context.TryCancel();
  first->Finish();
  int tokens = response.delta().token_ids_size();
  std::optional<v1::Final> final_message;
  while (second->Read(&response)) {
    if (response.has_final()) {
      final_message = response.final();
    } else {
      tokens += response.delta().token_ids_size();
    }
  }
  const grpc::Status status = second->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(final_message.has_value());
  EXPECT_EQ(final_message->request_id(), "r");
  EXPECT_EQ(final_message->samples(0).finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_EQ(tokens, 40);
}

TEST_F(GrpcServerTest, TokenizeDetokenizeAndModelInfo) {
  grpc::ClientContext c1;
  v1::TokenizeRequest tokenize;
  tokenize.set_text("Hello world");
  v1::TokenizeResponse ids;
  ASSERT_TRUE(stub_->Tokenize(&c1, tokenize, &ids).ok());
  EXPECT_EQ(std::vector<int32_t>(ids.token_ids().begin(), ids.token_ids().end()),
            harness_->Encode("Hello world"));
  grpc::ClientContext c2;
  v1::DetokenizeRequest detokenize;
  *detokenize.mutable_token_ids() = ids.token_ids();
  v1::DetokenizeResponse text;
  ASSERT_TRUE(stub_->Detokenize(&c2, detokenize, &text).ok());
  EXPECT_EQ(text.text(), "Hello world");
  grpc::ClientContext c3;
  detokenize.add_token_ids(1 << 20);
  EXPECT_EQ(stub_->Detokenize(&c3, detokenize, &text).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext c4;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&c4, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.name(), "tiny");
  EXPECT_EQ(info.vocab_size(), harness_->tokenizer().vocab_size());
  EXPECT_EQ(info.backend(), "cpu");
}

TEST_F(GrpcServerTest, SixteenConcurrentStreamsEachEqualTheirSoloRun) {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 16; ++i) {
    prompts.push_back({static_cast<int32_t>(10 + i), 20, static_cast<int32_t>(30 + 7 * i)});
    for (int k = 0; k < i % 5; ++k) prompts.back().push_back(40 + k);
  }
  std::vector<Streamed> streamed(16);
  std::vector<std::thread> clients;
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      v1::GenerateRequest request;
      for (int32_t id : prompts[i]) request.mutable_token_ids()->add_ids(id);
      request.mutable_sampling()->set_temperature(0);
      request.mutable_stopping()->set_max_tokens(8 + i);
      request.mutable_stopping()->set_ignore_eos(true);
      streamed[i] = Generate(request);
    });
  }
  for (auto& t : clients) t.join();
  EngineHarness alone(test::TinyModelPath(kTiny), Plan(), Config());
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(streamed[i].status.ok()) << i;
    const std::string id = absl::StrCat("solo", i);
    auto solo = alone.RunTogether({GreedyRequest(id, prompts[i], 8 + i)})[id];
    EXPECT_EQ(streamed[i].tokens, solo.tokens[0]) << i;
    EXPECT_EQ(streamed[i].text, solo.text[0]) << i;
  }
}

TEST_F(GrpcServerTest, BadRequestsFailWhileOtherStreamsKeepFlowing) {
  // A long stream runs while a table of bad requests is refused.
  grpc::ClientContext context;
  v1::GenerateRequest good;
  for (int32_t id : {3, 4, 5}) good.mutable_token_ids()->add_ids(id);
  good.mutable_stopping()->set_max_tokens(200);
  good.mutable_stopping()->set_ignore_eos(true);
  auto reader = stub_->Generate(&context, good);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  // Invalid UTF-8 in a proto3 string never reaches the service: protobuf
  // refuses to parse the message (gRPC answers UNIMPLEMENTED, code 12) and
  // conforming clients cannot even build it. The rest of the table goes
  // through the service.
  std::vector<test::BadRequest> bad = test::BadRequests();
  std::erase_if(bad, [](const test::BadRequest& c) {
    return std::string(c.name).find("UTF-8") != std::string::npos;
  });
  ASSERT_GE(bad.size(), 25u);
  for (const test::BadRequest& c : bad) {
    v1::GenerateRequest request;
    request.set_text("Hello world");
    c.mutate(&request);
    const Streamed s = Generate(request);
    EXPECT_EQ(s.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_NE(s.status.error_message().find(c.field), std::string::npos)
        << c.name << ": " << s.status.error_message();
  }
  // The long stream was not disturbed.
  int tokens = 0;
  bool saw_final = false;
  while (reader->Read(&response)) {
    if (response.has_delta()) tokens += response.delta().token_ids_size();
    saw_final |= response.has_final();
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(saw_final);
  EXPECT_GT(tokens, 0);
}

// Opens `count` streams of `max_tokens` each and reads their first message.
struct OpenStream {
  std::unique_ptr<grpc::ClientContext> context;
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader;
};

std::vector<OpenStream> OpenStreams(v1::Generation::Stub* stub, int count,
                                   int max_tokens) {
  std::vector<OpenStream> streams;
  for (int i = 0; i < count; ++i) {
    v1::GenerateRequest request;
    for (int32_t id : {3, 4, 5, 6}) request.mutable_token_ids()->add_ids(id + i);
    request.mutable_stopping()->set_max_tokens(max_tokens);
    request.mutable_stopping()->set_ignore_eos(true);
    OpenStream s;
    s.context = std::make_unique<grpc::ClientContext>();
    s.context->set_deadline(std::chrono::system_clock::now() +
                            std::chrono::seconds(30));
    s.reader = stub->Generate(s.context.get(), request);
    v1::GenerateResponse first;
    EXPECT_TRUE(s.reader->Read(&first));
    streams.push_back(std::move(s));
  }
  return streams;
}

// Reads each stream to its end: {finished with Final, ended UNAVAILABLE}.
std::pair<int, int> Outcomes(std::vector<OpenStream>& streams) {
  int finished = 0, unavailable = 0;
  for (OpenStream& s : streams) {
    v1::GenerateResponse response;
    bool saw_final = false;
    while (s.reader->Read(&response)) saw_final |= response.has_final();
    const grpc::Status status = s.reader->Finish();
    if (status.ok() && saw_final) ++finished;
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) ++unavailable;
  }
  return {finished, unavailable};
}

// Whether a new TCP connection to `port` on loopback is refused.
bool ConnectionRefused(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool refused =
      connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 &&
      errno == ECONNREFUSED;
  close(fd);
  return refused;
}

// Waits up to `timeout` for `done`.
bool WaitFor(const std::function<bool()>& done, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

TEST_F(GrpcServerTest, DrainLetsStreamsInFlightFinishAndRefusesNewOnes) {
  std::vector<OpenStream> streams = OpenStreams(stub_.get(), 8, 24);
  ASSERT_EQ(channel_->GetState(false), GRPC_CHANNEL_READY);
  std::thread drain([this] { server_->Drain(absl::Seconds(20)); });
  // The server's GOAWAY moves the channel off its connection; a new call
  // then finds the port closed.
  EXPECT_TRUE(WaitFor([&] { return channel_->GetState(false) != GRPC_CHANNEL_READY; }));
  v1::GenerateRequest late;
  late.mutable_token_ids()->add_ids(3);
  const grpc::Status refused = Generate(late).status;
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE) << refused.error_message();
  EXPECT_EQ(Outcomes(streams), std::make_pair(8, 0));
  drain.join();
}

TEST_F(GrpcServerTest, DrainClosesThePortAtOnceWhileRequestsAreInFlight) {
  // The engine never steps: the request stays in flight until the drain's
  // deadline stops the engine.
  TearDown();
  StartServer(/*start_engine=*/false);
  grpc::ClientContext context;
  v1::GenerateRequest request;
  request.mutable_token_ids()->add_ids(3);
  auto reader = stub_->Generate(&context, request);
  ASSERT_TRUE(WaitFor([&] { return harness_->engine().stats().num_live_requests == 1; }));
  std::atomic<bool> drained{false};
  const int port = server_->port();
  const absl::Time start = absl::Now();
  std::thread drain([&] {
    server_->Drain(absl::Seconds(3));
    drained = true;
  });
  // Load balancers and new clients go elsewhere from the first moment, not
  // once the request in flight is done.
  EXPECT_TRUE(WaitFor([&] { return ConnectionRefused(port); }, absl::Seconds(2)));
  EXPECT_FALSE(drained);
  drain.join();
  EXPECT_GE(absl::Now() - start, absl::Seconds(3));
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(GrpcServerTest, ADrainWithNothingInFlightDoesNotWaitOutItsTimeoutForAWatch) {
  // A health Watch never ends on its own (nor does an idle KServe stream):
  // the drain cancels such calls 5 s after the engine stopped, not at its
  // timeout.
  auto health = grpc::health::v1::Health::NewStub(channel_);
  grpc::ClientContext context;
  auto watch = health->Watch(&context, grpc::health::v1::HealthCheckRequest());
  grpc::health::v1::HealthCheckResponse response;
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  const absl::Time start = absl::Now();
  server_->Drain(absl::Seconds(60));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  while (watch->Read(&response)) {
  }
  watch->Finish();
}

TEST_F(GrpcServerTest, DrainTimeoutEndsWhatIsLeftWithUnavailable) {
  // The streams opened first may finish before the drain starts (the tiny
  // model is fast); the last one opened still has 199 tokens to go.
  std::vector<OpenStream> streams = OpenStreams(stub_.get(), 8, 200);
  server_->Drain(absl::ZeroDuration());
  const auto [finished, unavailable] = Outcomes(streams);
  EXPECT_EQ(finished + unavailable, 8);
  EXPECT_GE(unavailable, 1);
}

// A TCP proxy on loopback for one connection, which can turn into a
// black hole: from then on it reads both sides and forwards nothing, and
// closes neither (a client whose pod died, or a NAT that forgot the flow:
// no FIN, no RST).
class BlackholeProxy {
 public:
  explicit BlackholeProxy(int target_port) : target_port_(target_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address = Loopback(0);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    EXPECT_EQ(listen(listener_, 1), 0);
    socklen_t length = sizeof(address);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    thread_ = std::thread([this] { Run(); });
  }
  ~BlackholeProxy() {
    stop_ = true;
    thread_.join();
    close(listener_);
  }
  int port() const { return port_; }
  void Blackhole() { blackhole_ = true; }

 private:
  static sockaddr_in Loopback(int port) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    return address;
  }

  void Run() {
    pollfd accept_poll{listener_, POLLIN, 0};
    while (!stop_ && poll(&accept_poll, 1, 50) == 0) {
    }
    if (stop_) return;
    const int client = accept(listener_, nullptr, nullptr);
    const int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in target = Loopback(target_port_);
    connect(server, reinterpret_cast<sockaddr*>(&target), sizeof(target));
    pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
    char buffer[16384];
    while (!stop_) {
      if (poll(fds, 2, 50) <= 0) continue;
      for (int side = 0; side < 2; ++side) {
        if ((fds[side].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = recv(fds[side].fd, buffer, sizeof(buffer), 0);
        if (n <= 0) {
          fds[side].fd = -1;  // that side closed: stop polling it
          continue;
        }
        if (!blackhole_) send(fds[1 - side].fd, buffer, static_cast<size_t>(n), MSG_NOSIGNAL);
      }
    }
    close(client);
    close(server);
  }

  int target_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> blackhole_{false};
  std::thread thread_;
};

// A client that vanishes without closing its connection has its stream
// cancelled by the server's keepalive (here 1 s + 1 s): the request ends
// without generating. The engine starts only after the black hole and the
// keepalive timeout, so that what it does first is the cancel; without
// keepalive the request would generate its 8 tokens.
TEST(GrpcKeepaliveTest, AClientGoneSilentIsCancelled) {
  EngineHarness harness(test::TinyModelPath(kTiny), Plan(), Config());
  ASSERT_TRUE(harness.ok());
  const ServedModel model = TinyServed(harness);
  GrpcServerConfig config;
  config.host = "127.0.0.1";
  config.port = 0;
  config.keepalive_seconds = 1;
  config.keepalive_timeout_seconds = 1;
  ApiKeys keys;
  auto server = GrpcServer::Start(config, &harness.engine(), model, "cpu", &keys);
  ASSERT_TRUE(server.ok()) << server.status();
  BlackholeProxy proxy((*server)->port());
  auto stub = v1::Generation::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", proxy.port()), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GenerateRequest request;
  for (int32_t id : {3, 4, 5}) request.mutable_token_ids()->add_ids(id);
  request.mutable_sampling()->set_temperature(0);
  request.mutable_stopping()->set_max_tokens(8);
  request.mutable_stopping()->set_ignore_eos(true);
  auto reader = stub->Generate(&context, request);
  // Submitted once the engine counts it live (it waits: not started).
  const absl::Time submitted_by = absl::Now() + absl::Seconds(5);
  while (harness.engine().stats().num_live_requests == 0 && absl::Now() < submitted_by) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(harness.engine().stats().num_live_requests, 1);
  proxy.Blackhole();
  // A ping after 1 s, unanswered for 1 s: ~2 s; margin for a loaded CI.
  absl::SleepFor(absl::Seconds(7));
  harness.engine().Start();
  const absl::Time ended_by = absl::Now() + absl::Seconds(5);
  while (harness.engine().stats().num_live_requests > 0 && absl::Now() < ended_by) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(harness.engine().stats().num_live_requests, 0);
  EXPECT_EQ(harness.engine().stats().generated_tokens, 0);
  context.TryCancel();
  reader->Finish();
  (*server)->Shutdown(absl::Seconds(1));
  harness.engine().Stop();
}

}  // namespace
}  // namespace weft
