// The OpenAI-compatible HTTP server over loopback on the tiny model, driven
// by cpp-httplib's client: completions equal the engine's own output,
// streamed or not; bad requests get their status and OpenAI's error body;
// API keys, drain, the connection bound, and a client that leaves
// cancelling its request.
#include "server/http_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using test::EngineHarness;

ModelPlan Plan() {
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 64;
  plan.num_kv_blocks = 128;
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

struct HttpResult {
  int status = 0;
  std::string body;
  httplib::Headers headers;
  Json json() const { return Json::parse(body); }
};

// The JSON events of an SSE body; `done` tells whether [DONE] ended it.
std::vector<Json> SseEvents(const std::string& body, bool* done) {
  std::vector<Json> events;
  *done = false;
  for (absl::string_view event : absl::StrSplit(body, "\n\n", absl::SkipEmpty())) {
    EXPECT_TRUE(absl::ConsumePrefix(&event, "data: ")) << event;
    EXPECT_FALSE(*done) << "event after [DONE]";
    if (event == "[DONE]") {
      *done = true;
    } else {
      events.push_back(Json::parse(event));
    }
  }
  return events;
}

class HttpServerTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer(/*start_engine=*/true); }

  void StartServer(bool start_engine, HttpServerConfig config = {}) {
    harness_ = std::make_unique<EngineHarness>(
        test::TinyModelPath("tiny_llama"), Plan(), Config());
    ASSERT_TRUE(harness_->ok());
    if (start_engine) harness_->engine().Start();
    ServedModel model;
    model.name = "tiny";
    model.architecture = "llama";
    model.tokenizer = &harness_->tokenizer();
    model.vocab_size = harness_->tokenizer().vocab_size();
    model.max_model_len = harness_->engine().max_model_len();
    model.max_n = 4;
    metrics_ = std::make_unique<ServerMetrics>("tiny", model.max_model_len);
    config.host = "127.0.0.1";
    config.port = 0;
    if (config.num_threads == HttpServerConfig().num_threads) {
      config.num_threads = 8;
    }
    config.max_body_bytes = 64 << 10;
    auto server = HttpServer::Start(config, &harness_->engine(), model, &keys_,
                                    metrics_.get());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
  }

  void TearDown() override {
    if (server_) server_->Stop(absl::Seconds(5));
    if (harness_ && harness_->ok()) harness_->engine().Stop();
  }

  httplib::Client Client() const {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(60, 0);
    return client;
  }

  HttpResult Send(const std::string& method, const std::string& path,
                  const std::string& body = "",
                  httplib::Headers headers = {}) const {
    httplib::Client client = Client();
    httplib::Request request;
    request.method = method;
    request.path = path;
    request.headers = std::move(headers);
    if (!body.empty() || method == "POST") {
      request.body = body;
      request.set_header("Content-Type", "application/json");
    }
    httplib::Result result = client.send(request);
    if (!result) {
      ADD_FAILURE() << method << " " << path << ": "
                    << httplib::to_string(result.error());
      return {};
    }
    return {result->status, result->body, result->headers};
  }

  HttpResult Post(const std::string& path, const Json& body,
                  httplib::Headers headers = {}) const {
    return Send("POST", path, body.dump(), std::move(headers));
  }

  // The engine's own greedy text for `prompt`.
  std::string EngineText(const std::vector<int32_t>& prompt, int max_tokens) {
    auto sink = std::make_shared<StreamBuffer>();
    EXPECT_TRUE(harness_->engine()
                    .Submit(test::GreedyRequest("direct", prompt, max_tokens), sink)
                    .ok());
    std::string text;
    while (auto event = sink->Next(absl::Seconds(60))) {
      if (auto* delta = std::get_if<Delta>(&*event)) text += delta->text;
      if (!std::holds_alternative<Delta>(*event)) break;
    }
    return text;
  }

  static Json Greedy(std::vector<int32_t> prompt, int max_tokens) {
    return {{"model", "tiny"}, {"prompt", prompt},
            {"max_tokens", max_tokens}, {"temperature", 0},
            {"ignore_eos", true}};
  }

  ApiKeys keys_;
  std::unique_ptr<EngineHarness> harness_;
  std::unique_ptr<ServerMetrics> metrics_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpServerTest, AGreedyCompletionEqualsTheEnginesText) {
  const std::vector<int32_t> prompt = {3, 4, 5, 6};
  const std::string want = EngineText(prompt, 12);
  const HttpResult r = Post("/v1/completions", Greedy(prompt, 12));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.headers.find("Content-Type")->second,
              ::testing::HasSubstr("application/json"));
  const Json body = r.json();
  EXPECT_TRUE(absl::StartsWith(body["id"].get<std::string>(), "cmpl-"));
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["model"], "tiny");
  ASSERT_EQ(body["choices"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["text"], want);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(body["usage"]["prompt_tokens"], 4);
  EXPECT_EQ(body["usage"]["completion_tokens"], 12);
}

TEST_F(HttpServerTest, AStreamedCompletionEqualsTheWholeOne) {
  const std::vector<int32_t> prompt = {7, 8, 9};
  Json request = Greedy(prompt, 10);
  const std::string whole =
      Post("/v1/completions", request).json()["choices"][0]["text"];
  request["stream"] = true;
  request["stream_options"] = {{"include_usage", true}};
  const HttpResult r = Post("/v1/completions", request);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(r.headers.find("Content-Type")->second,
              ::testing::HasSubstr("text/event-stream"));
  bool done = false;
  const std::vector<Json> events = SseEvents(r.body, &done);
  EXPECT_TRUE(done);
  ASSERT_GE(events.size(), 3u);
  std::string text;
  for (const Json& event : events) {
    EXPECT_EQ(event["id"], events[0]["id"]);
    EXPECT_EQ(event["object"], "text_completion");
    if (!event["choices"].empty()) text += event["choices"][0]["text"];
  }
  EXPECT_EQ(text, whole);
  EXPECT_EQ(events[events.size() - 2]["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(events.back()["usage"]["completion_tokens"], 10);
}

TEST_F(HttpServerTest, NOfTwoGivesTwoChoices) {
  const HttpResult r = Post("/v1/completions",
                            {{"prompt", {3, 4}}, {"n", 2}, {"seed", 11},
                             {"max_tokens", 5}, {"ignore_eos", true}});
  ASSERT_EQ(r.status, 200) << r.body;
  const Json body = r.json();
  ASSERT_EQ(body["choices"].size(), 2u);
  EXPECT_EQ(body["choices"][0]["index"], 0);
  EXPECT_EQ(body["choices"][1]["index"], 1);
  EXPECT_EQ(body["usage"]["completion_tokens"], 10);
}

TEST_F(HttpServerTest, ChatWithoutATemplateNamesTheFlag) {
  const HttpResult r = Post("/v1/chat/completions",
                            {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}});
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.json()["error"]["message"].get<std::string>(),
              ::testing::HasSubstr("--chat-template"));
}

TEST_F(HttpServerTest, ModelsListsTheServedModel) {
  const HttpResult r = Send("GET", "/v1/models");
  ASSERT_EQ(r.status, 200) << r.body;
  const Json body = r.json();
  EXPECT_EQ(body["object"], "list");
  ASSERT_EQ(body["data"].size(), 1u);
  EXPECT_EQ(body["data"][0]["id"], "tiny");
  EXPECT_EQ(body["data"][0]["object"], "model");
  EXPECT_EQ(Send("GET", "/v1/models/tiny").json()["id"], "tiny");
  EXPECT_EQ(Send("GET", "/v1/models/other").status, 404);
}

struct BadHttpRequest {
  const char* name;
  const char* method;
  const char* path;
  std::string body;
  int status;
  const char* param;  // nullptr: param is null
};

TEST_F(HttpServerTest, BadRequestsGetTheirStatusAndOpenAisErrorBody) {
  const std::vector<BadHttpRequest> table = {
      {"malformed JSON", "POST", "/v1/completions", "{\"prompt\": ", 400, nullptr},
      {"not an object", "POST", "/v1/completions", "[]", 400, nullptr},
      {"temperature type", "POST", "/v1/completions",
       R"({"prompt": "x", "temperature": "hot"})", 400, "temperature"},
      {"top_p range", "POST", "/v1/completions", R"({"prompt": "x", "top_p": 2})",
       400, "top_p"},
      {"n range", "POST", "/v1/completions", R"({"prompt": "x", "n": 9})", 400, "n"},
      {"max_tokens past context", "POST", "/v1/completions",
       R"({"prompt": "x", "max_tokens": 100000})", 400, "max_tokens"},
      {"unknown model", "POST", "/v1/completions",
       R"({"prompt": "x", "model": "gpt-4"})", 404, "model"},
      {"no messages", "POST", "/v1/chat/completions", R"({"model": "tiny"})", 400,
       "messages"},
      {"bad role", "POST", "/v1/chat/completions",
       R"({"messages": [{"role": "wizard", "content": "x"}]})", 400,
       "messages[0].role"},
      {"wrong method", "GET", "/v1/completions", "", 405, nullptr},
      {"wrong method on models", "DELETE", "/v1/models", "", 405, nullptr},
      {"unknown path", "GET", "/v2/everything", "", 404, nullptr},
      {"too large", "POST", "/v1/completions",
       "{\"prompt\": \"" + std::string(70 << 10, 'a') + "\"}", 413, nullptr},
  };
  for (const BadHttpRequest& bad : table) {
    SCOPED_TRACE(bad.name);
    const HttpResult r = Send(bad.method, bad.path, bad.body);
    EXPECT_EQ(r.status, bad.status) << r.body;
    ASSERT_FALSE(r.body.empty());
    const Json error = r.json()["error"];
    EXPECT_TRUE(error["message"].is_string() && !error["message"].empty());
    EXPECT_TRUE(error["type"].is_string());
    EXPECT_TRUE(error.contains("code"));
    if (bad.param == nullptr) {
      EXPECT_TRUE(error["param"].is_null()) << error;
    } else {
      EXPECT_EQ(error["param"], bad.param);
    }
  }
}

// X-Request-Id names the response: any visible ASCII (tracers send base64
// with + / =), at most 256 characters.
TEST_F(HttpServerTest, RequestIdsOfAnyVisibleAsciiNameTheResponse) {
  const HttpResult r =
      Post("/v1/completions", Greedy({3}, 2), {{"X-Request-Id", "aB3+/=:_.-~x"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["id"], "cmpl-aB3+/=:_.-~x");
  const HttpResult long_id =
      Post("/v1/completions", Greedy({3}, 2), {{"X-Request-Id", std::string(257, 'x')}});
  EXPECT_EQ(long_id.status, 400) << long_id.body;
  EXPECT_EQ(long_id.json()["error"]["param"], "X-Request-Id");
}

// A TCP connection to 127.0.0.1:port; -1 if it fails.
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `raw` on connection `fd` and returns the server's first response
// (headers and Content-Length bytes of body), or what came before 5 s
// passed or the server closed; then closes `fd`. With `closed`, reads on
// until the server closes or 5 s pass, and says whether it closed (EOF).
std::string ExchangeOn(int fd, const std::string& raw, bool* closed = nullptr) {
  EXPECT_GE(fd, 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  EXPECT_EQ(send(fd, raw.data(), raw.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(raw.size()));
  std::string response;
  char buffer[4096];
  ssize_t n;
  while ((n = recv(fd, buffer, sizeof(buffer), 0)) > 0) {
    response.append(buffer, static_cast<size_t>(n));
    if (closed != nullptr) continue;
    const size_t end = response.find("\r\n\r\n");
    const size_t field = response.find("Content-Length: ");
    if (end == std::string::npos || field == std::string::npos) continue;
    size_t length = 0;
    if (absl::SimpleAtoi(response.substr(field + 16, response.find('\r', field) - field - 16),
                         &length) &&
        response.size() >= end + 4 + length) {
      break;
    }
  }
  if (closed != nullptr) *closed = n == 0;
  close(fd);
  return response;
}

// ExchangeOn a fresh connection.
std::string RawExchange(int port, const std::string& raw) {
  return ExchangeOn(ConnectLoopback(port), raw);
}

// --http_max_body_bytes bounds only a declared Content-Length in httplib
// 0.11: a chunked body, or a POST body without a length, would be read
// whole, to the end of the connection (before authentication). Both are
// answered 411 as soon as the headers are in, nothing of the body read:
// the requests below never finish their bodies, so a server that reads
// them answers nothing within the 5 s.
TEST_F(HttpServerTest, BodiesWithoutAContentLengthAreRefusedWith411) {
  const std::string chunked =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
      "10\r\n{\"prompt\": \"aaaa\r\n";
  const std::string no_length =
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
      "Content-Type: application/json\r\n\r\n{\"prompt\": \"hi\"";
  for (const std::string& raw : {chunked, no_length}) {
    const std::string response = RawExchange(server_->port(), raw);
    EXPECT_TRUE(absl::StartsWith(response, "HTTP/1.1 411")) << response.substr(0, 300);
    EXPECT_THAT(response, ::testing::HasSubstr("\"code\":\"length_required\""));
  }
  // A body with its length is served as before; a DELETE without a length
  // is bodiless (RFC 9112) and answered at once.
  EXPECT_EQ(Post("/v1/completions", Greedy({3}, 2)).status, 200);
  EXPECT_TRUE(absl::StartsWith(
      RawExchange(server_->port(), "DELETE /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n"),
      "HTTP/1.1 405"));
}

// The refused body is never read as the next request on the connection
// (behind a keep-alive proxy that would be request smuggling): a chunked
// body holding a whole request gets the 411 and then the connection's end.
TEST_F(HttpServerTest, ARefusedBodyIsNeverTakenForAnotherRequest) {
  const std::string smuggled = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  const std::string raw = absl::StrCat(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
      absl::Hex(smuggled.size()), "\r\n", smuggled, "\r\n0\r\n\r\n");
  const int fd = ConnectLoopback(server_->port());
  ASSERT_GE(fd, 0);
  timeval timeout{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  ASSERT_EQ(send(fd, raw.data(), raw.size(), MSG_NOSIGNAL), static_cast<ssize_t>(raw.size()));
  std::string received;
  char buffer[4096];
  const absl::Time start = absl::Now();
  for (ssize_t n; (n = recv(fd, buffer, sizeof(buffer), 0)) > 0;) {
    received.append(buffer, static_cast<size_t>(n));
  }
  close(fd);
  EXPECT_TRUE(absl::StartsWith(received, "HTTP/1.1 411")) << received.substr(0, 200);
  EXPECT_THAT(received, ::testing::Not(::testing::HasSubstr("\"object\":\"list\"")));
  EXPECT_EQ(received.find("HTTP/1.1 ", 1), std::string::npos) << received;
  EXPECT_LT(absl::Now() - start, absl::Seconds(4));  // closed, not timed out
}

TEST_F(HttpServerTest, DrainingClosesThePortAndRefusesWith503OnOpenConnections) {
  EXPECT_EQ(Send("GET", "/health").status, 200);
  // Two connections opened before the drain, idle in their workers.
  const int first = ConnectLoopback(server_->port());
  const int second = ConnectLoopback(server_->port());
  absl::SleepFor(absl::Milliseconds(200));
  server_->StartDraining();
  // New connections are refused: a load balancer tries another replica.
  EXPECT_LT(ConnectLoopback(server_->port()), 0);
  EXPECT_EQ(errno, ECONNREFUSED);
  // An open connection gets 503 for anything and is shut: its client's
  // next request goes elsewhere (and Stop() is not held by it).
  bool closed = false;
  const std::string models =
      ExchangeOn(first, "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
  EXPECT_TRUE(absl::StartsWith(models, "HTTP/1.1 503")) << models;
  EXPECT_TRUE(closed);
  const std::string body = Greedy({3}, 2).dump();
  const std::string completion = ExchangeOn(
      second,
      absl::StrCat("POST /v1/completions HTTP/1.1\r\nHost: x\r\n"
                   "Content-Type: application/json\r\nContent-Length: ",
                   body.size(), "\r\n\r\n", body),
      &closed);
  EXPECT_TRUE(absl::StartsWith(completion, "HTTP/1.1 503")) << completion;
  EXPECT_THAT(completion, ::testing::HasSubstr("\"server_error\""));
  EXPECT_TRUE(closed);
}

TEST_F(HttpServerTest, MetricsCountHttpRequestsByTenantAndCode) {
  ASSERT_EQ(Post("/v1/completions", Greedy({3, 4}, 2)).status, 200);
  ASSERT_EQ(Post("/v1/completions", {{"prompt", "x"}, {"n", 0}}).status, 400);
  const HttpResult r = Send("GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.headers.find("Content-Type")->second,
              ::testing::HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(r.body, ::testing::HasSubstr(
                          "weft:requests_total{model_name=\"tiny\","
                          "tenant=\"default\",code=\"OK\"} 1"));
  EXPECT_THAT(r.body, ::testing::HasSubstr(
                          "weft:requests_total{model_name=\"tiny\","
                          "tenant=\"default\",code=\"INVALID_ARGUMENT\"} 1"));
}

class HttpAuthTest : public HttpServerTest {
 protected:
  void SetUp() override {
    auto keys = ApiKeys::FromText(
        absl::StrCat("alice ", Sha256Hex("alice-key"), "\n"), "test");
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
    HttpServerTest::SetUp();
  }
};

TEST_F(HttpAuthTest, RequestsWithoutAValidKeyAreUnauthorized) {
  for (const httplib::Headers& headers :
       {httplib::Headers{}, httplib::Headers{{"Authorization", "Bearer nope"}},
        httplib::Headers{{"Authorization", "alice-key"}}}) {
    const HttpResult r = Post("/v1/completions", Greedy({3}, 2), headers);
    EXPECT_EQ(r.status, 401) << r.body;
    EXPECT_EQ(r.json()["error"]["type"], "authentication_error");
    EXPECT_EQ(r.json()["error"]["code"], "invalid_api_key");
  }
  EXPECT_EQ(Send("GET", "/v1/models").status, 401);
}

TEST_F(HttpAuthTest, AValidKeyServesTheRequestUnderItsTenant) {
  const HttpResult r = Post("/v1/completions", Greedy({3}, 2),
                            {{"Authorization", "Bearer alice-key"}});
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_THAT(Send("GET", "/metrics").body,
              ::testing::HasSubstr("tenant=\"alice\",code=\"OK\"} 1"));
}

TEST_F(HttpAuthTest, HealthAndMetricsNeedNoKey) {
  EXPECT_EQ(Send("GET", "/health").status, 200);
  EXPECT_EQ(Send("GET", "/metrics").status, 200);
}

// The engine does not run here (the test steps it): requests wait in its
// queue, so nothing is written to the client, and only PeerWatch can
// notice that it left.
class HttpCancelTest : public HttpServerTest {
 protected:
  void SetUp() override { StartServer(/*start_engine=*/false); }

  // A streamed completion of 200 tokens whose body `received` collects.
  static httplib::Request StreamRequest(std::string* received) {
    Json body = Greedy({3, 4, 5}, 200);
    body["stream"] = true;
    httplib::Request request;
    request.method = "POST";
    request.path = "/v1/completions";
    request.body = body.dump();
    request.set_header("Content-Type", "application/json");
    request.content_receiver = [received](const char* data, size_t size, uint64_t,
                                          uint64_t) {
      received->append(data, size);
      return true;
    };
    return request;
  }

  // Waits until the engine holds the `n` requests sent (one per prompt).
  void WaitUntilLive(int n = 1) {
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (harness_->engine().stats().num_live_requests != n &&
           absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(harness_->engine().stats().num_live_requests, n);
  }

  // Waits until the request was accepted and its handler has given it up
  // (which cancels it in the engine).
  void WaitUntilAbandoned(int n = 1) {
    WaitUntilLive(n);
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (server_->in_flight() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    ASSERT_EQ(server_->in_flight(), 0);
  }
};

TEST_F(HttpCancelTest, AStreamingClientThatLeavesCancelsItsRequest) {
  httplib::Client client = Client();
  std::string received;
  httplib::Request request = StreamRequest(&received);
  // Leave as soon as the response head arrives.
  request.response_handler = [](const httplib::Response&) { return false; };
  EXPECT_FALSE(client.send(request));
  WaitUntilAbandoned();
  // One step takes the request and, had the server not cancelled it, would
  // have computed its first token.
  harness_->engine().Step();
  EXPECT_EQ(harness_->engine().stats().requests_finished, 1);
  EXPECT_EQ(harness_->engine().stats().num_live_requests, 0);
  EXPECT_EQ(harness_->engine().stats().generated_tokens, 0);
  EXPECT_THAT(metrics_->Render(harness_->engine().stats()),
              ::testing::HasSubstr("code=\"CANCELLED\"} 1"));
}

// A completions call with several prompts is one engine request each:
// the client leaving cancels every one of them.
TEST_F(HttpCancelTest, AClientThatLeavesABatchOfPromptsCancelsEveryOne) {
  httplib::Client client = Client();
  std::string received;
  httplib::Request request = StreamRequest(&received);
  Json body = Json::parse(request.body);
  body["prompt"] = Json::array({Json::array({3, 4, 5}), Json::array({6, 7}),
                                Json::array({8, 9, 10, 11})});
  request.body = body.dump();
  request.response_handler = [](const httplib::Response&) { return false; };
  EXPECT_FALSE(client.send(request));
  WaitUntilAbandoned(/*n=*/3);
  harness_->engine().Step();
  EXPECT_EQ(harness_->engine().stats().requests_finished, 3);
  EXPECT_EQ(harness_->engine().stats().num_live_requests, 0);
  EXPECT_EQ(harness_->engine().stats().generated_tokens, 0);
}

TEST_F(HttpCancelTest, AClientThatLeavesAWholeBatchResponseCancelsEveryPrompt) {
  httplib::Client client = Client();
  client.set_read_timeout(0, 200000);  // gives up after 0.2 s
  Json body = Greedy({3, 4, 5}, 200);
  body["prompt"] = Json::array({Json::array({3, 4, 5}), Json::array({6, 7})});
  EXPECT_FALSE(client.Post("/v1/completions", body.dump(), "application/json"));
  WaitUntilAbandoned(/*n=*/2);
  harness_->engine().Step();
  EXPECT_EQ(harness_->engine().stats().requests_finished, 2);
  EXPECT_EQ(harness_->engine().stats().num_live_requests, 0);
  EXPECT_EQ(harness_->engine().stats().generated_tokens, 0);
}

TEST_F(HttpCancelTest, AClientThatLeavesAWholeResponseCancelsItsRequest) {
  httplib::Client client = Client();
  client.set_read_timeout(0, 200000);  // gives up after 0.2 s
  EXPECT_FALSE(client.Post("/v1/completions", Greedy({3, 4, 5}, 200).dump(),
                           "application/json"));
  WaitUntilAbandoned();
  harness_->engine().Step();
  EXPECT_EQ(harness_->engine().stats().requests_finished, 1);
  EXPECT_EQ(harness_->engine().stats().num_live_requests, 0);
  EXPECT_EQ(harness_->engine().stats().generated_tokens, 0);
}

TEST_F(HttpCancelTest, StopEndsStreamsOfAStoppedEngineWithAnErrorEvent) {
  std::string received;
  std::atomic<bool> head_received{false};
  std::thread reader([&] {
    httplib::Client client = Client();
    httplib::Request request = StreamRequest(&received);
    request.response_handler = [&](const httplib::Response&) {
      head_received = true;  // sent once the request was submitted
      return true;
    };
    client.send(request);
  });
  while (!head_received) absl::SleepFor(absl::Milliseconds(5));
  server_->StartDraining();
  harness_->engine().Stop();  // the request ends UNAVAILABLE
  server_->Stop(absl::Seconds(5));
  reader.join();
  bool done = false;
  const std::vector<Json> events = SseEvents(received, &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0]["error"]["type"], "server_error");
}

TEST_F(HttpCancelTest, StopEndsRequestsTheEngineStillRunsAndCancelsThem) {
  // The engine is never stepped: without the stop the worker would wait on
  // it for ever and Stop() could not join it.
  std::thread reader([&] {
    HttpResult result = Post("/v1/completions", Greedy({3, 4, 5}, 200));
    EXPECT_EQ(result.status, 503) << result.body;
  });
  WaitUntilLive();
  const absl::Time start = absl::Now();
  server_->Stop(absl::Milliseconds(100));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  reader.join();
  harness_->engine().Step();  // takes the cancel
  EXPECT_EQ(harness_->engine().stats().num_live_requests, 0);
  EXPECT_EQ(harness_->engine().stats().generated_tokens, 0);
}

TEST_F(HttpCancelTest, AStreamThatStopEndsAfterADrainGetsItsErrorAndDone) {
  // After StartDraining httplib is no longer told to stop (its stop() cuts
  // streams): the error Stop() makes up must end the stream by itself.
  std::string received;
  std::thread reader([&] { Client().send(StreamRequest(&received)); });
  WaitUntilLive();
  server_->StartDraining();
  const absl::Time start = absl::Now();
  server_->Stop(absl::Milliseconds(100));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  reader.join();
  bool done = false;
  const std::vector<Json> events = SseEvents(received, &done);
  EXPECT_TRUE(done);
  ASSERT_EQ(events.size(), 1u) << received;
  EXPECT_EQ(events[0]["error"]["type"], "server_error");
}

TEST_F(HttpCancelTest, RequestsWithTheSameRequestIdAreSeparateInTheEngine) {
  // Two live requests may share an X-Request-Id; leaving one cancels only
  // that one.
  httplib::Client client = Client();
  client.set_read_timeout(0, 200000);
  httplib::Headers headers = {{"X-Request-Id", "same"}};
  EXPECT_FALSE(client.Post("/v1/completions", headers,
                           Greedy({3, 4, 5}, 2).dump(), "application/json"));
  WaitUntilAbandoned();
  std::thread reader([&] {
    httplib::Client second = Client();
    auto result = second.Post("/v1/completions", headers,
                              Greedy({3, 4, 5}, 2).dump(), "application/json");
    ASSERT_TRUE(result);
    EXPECT_EQ(result->status, 200) << result->body;
    EXPECT_EQ(Json::parse(result->body)["id"], "cmpl-same");
  });
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (harness_->engine().stats().num_live_requests != 2 &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  ASSERT_EQ(harness_->engine().stats().num_live_requests, 2);
  while (harness_->engine().stats().num_live_requests > 0 &&
         absl::Now() < deadline) {
    harness_->engine().Step();
  }
  reader.join();
  EXPECT_EQ(harness_->engine().stats().requests_finished, 2);
}

class HttpPoolTest : public HttpServerTest {
 protected:
  void SetUp() override {
    HttpServerConfig config;
    config.num_threads = 1;
    config.max_queued_connections = 0;
    StartServer(/*start_engine=*/true, config);
  }
};

// The probe listener answers /health and /metrics at once while every
// worker of the main port is held (here by a connection that sends
// nothing), where they would wait in the queue.
class HttpProbePortTest : public HttpServerTest {
 protected:
  void SetUp() override {
    HttpServerConfig config;
    config.num_threads = 1;
    config.max_queued_connections = 4;
    config.probe_port = 0;
    StartServer(/*start_engine=*/true, config);
  }
};

TEST_F(HttpProbePortTest, ProbesAreAnsweredWhileEveryWorkerIsHeld) {
  ASSERT_GT(server_->probe_port(), 0);
  ASSERT_NE(server_->probe_port(), server_->port());
  const int idle = ConnectLoopback(server_->port());
  ASSERT_GE(idle, 0);
  absl::SleepFor(absl::Milliseconds(100));  // the only worker takes it
  httplib::Client main_port("127.0.0.1", server_->port());
  main_port.set_read_timeout(1, 0);
  EXPECT_FALSE(main_port.Get("/metrics"));  // queued behind the held worker
  httplib::Client probes("127.0.0.1", server_->probe_port());
  probes.set_read_timeout(5, 0);
  const absl::Time start = absl::Now();
  auto health = probes.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto metrics = probes.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_THAT(metrics->body, ::testing::HasSubstr("weft:num_requests_running"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // GET only; anything else is refused before its body is read (DELETE
  // without a length too: httplib would read it to the connection's end).
  auto completion = probes.Post("/v1/completions", Greedy({3}, 2).dump(), "application/json");
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->status, 405);
  const std::string endless_delete =
      RawExchange(server_->probe_port(), "DELETE /health HTTP/1.1\r\nHost: x\r\n\r\nxx");
  EXPECT_TRUE(absl::StartsWith(endless_delete, "HTTP/1.1 405")) << endless_delete;
  server_->StartDraining();
  auto draining = probes.Get("/health");
  ASSERT_TRUE(draining);
  EXPECT_EQ(draining->status, 503);
  close(idle);
}

TEST_F(HttpPoolTest, ConnectionsBeyondThePoolAreRefusedWith429) {
  // A connection that sends nothing holds the only worker.
  const int idle = ConnectLoopback(server_->port());
  ASSERT_GE(idle, 0);
  absl::SleepFor(absl::Milliseconds(100));  // the worker takes it

  const HttpResult refused = Post("/v1/completions", Greedy({3}, 2));
  EXPECT_EQ(refused.status, 429) << refused.body;
  EXPECT_EQ(refused.json()["error"]["type"], "rate_limit_error");
  EXPECT_EQ(Send("GET", "/health").status, 200);  // probes still answered

  close(idle);
  // The worker is free again once it has seen the close (a few ms).
  HttpResult served;
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  do {
    served = Post("/v1/completions", Greedy({3}, 2));
  } while (served.status == 429 && absl::Now() < deadline);
  EXPECT_EQ(served.status, 200) << served.body;
}

}  // namespace
}  // namespace weft
