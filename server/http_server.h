// The OpenAI-compatible HTTP front end (cpp-httplib), beside the gRPC one
// and sharing its engine, model, API keys and metrics:
//   POST /v1/completions, /v1/chat/completions   JSON, or SSE with "stream"
//   GET  /v1/models, /v1/models/{id}
//   GET  /health    200 while serving, 503 once draining
//   GET  /metrics   Prometheus text (server/metrics.h)
// Errors use OpenAI's JSON shape (server/openai_errors.h). A client that
// closes its connection cancels its request. docs/http.md describes the
// API, defaults and limits.
#ifndef WEFT_SERVER_HTTP_SERVER_H_
#define WEFT_SERVER_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "runtime/engine.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "server/request_conversion.h"

namespace weft {

struct HttpServerConfig {
  std::string host = "0.0.0.0";
  int port = 8000;  // 0: any free port (see HttpServer::port())
  // Connections served at once. Each open stream, each request being
  // answered and each idle keep-alive connection (up to 5 s) holds one.
  int num_threads = 64;
  // Connections waiting for a thread; more are answered 429 at once.
  int max_queued_connections = 64;
  int64_t max_body_bytes = int64_t{16} << 20;  // larger bodies: 413
  // >= 0: a second listener (0: any free port) that serves only GET
  // /health and /metrics, on two threads of its own. On the main port
  // they wait behind connections that hold every worker (64 long streams
  // delay a scrape or a liveness probe by a whole generation); -1: none.
  int probe_port = -1;

  absl::Status Validate() const;
};

class HttpServer {
 public:
  // Binds and starts serving. `engine`, `keys` and `metrics` must outlive
  // the server; `metrics` may be null (nothing recorded, no /metrics).
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(
      const HttpServerConfig& config, Engine* engine, ServedModel model,
      const ApiKeys* keys, ServerMetrics* metrics);
  ~HttpServer();  // Stop()s

  int port() const { return port_; }
  int probe_port() const { return probe_port_; }  // 0 without a probe listener
  // Completions being handled or streamed (tests wait on it).
  int in_flight() const { return in_flight_; }
  // The port closes: new connections are refused, so a load balancer sends
  // them to another replica. A connection already open gets 503 for any
  // request it sends now and is shut. Requests in flight go on. The probe
  // port keeps answering (/health: 503).
  void StartDraining();
  // Waits up to `grace` for requests in flight to write their last event
  // (the caller first ends them, e.g. by stopping the engine), then ends
  // those left with an UNAVAILABLE error and cancels them in the engine,
  // stops listening and joins every thread.
  void Stop(absl::Duration grace = absl::Seconds(5));

 private:
  HttpServer() = default;
  void Route();
  void HandleCompletion(OpenAiApi api, const httplib::Request& http_request,
                        httplib::Response& response);
  void HandleModels(const httplib::Request& http_request,
                    httplib::Response& response, const std::string* id);
  // vLLM's /tokenize and /detokenize (server/openai_tokenize.h).
  void HandleTokenize(bool detokenize, const httplib::Request& http_request,
                      httplib::Response& response);
  void HandleHealth(httplib::Response& response) const;
  void HandleMetrics(const httplib::Request& http_request,
                     httplib::Response& response) const;
  absl::StatusOr<std::string> Authenticate(
      const httplib::Request& http_request) const;

  Engine* engine_ = nullptr;
  ServedModel model_;
  const ApiKeys* keys_ = nullptr;
  ServerMetrics* metrics_ = nullptr;
  HttpServerConfig config_;
  int64_t created_ = 0;  // Unix seconds the server started: /v1/models
  std::atomic<bool> draining_{false};
  // Our own descriptor of the main port's listening socket, and whether
  // that socket was shut (draining) or httplib stopped.
  int listen_fd_ = -1;
  std::atomic<bool> listener_closed_{false};
  // Completions whose handler or stream has not returned yet.
  std::atomic<int> in_flight_{0};
  std::atomic<bool> stopping_{false};  // Stop() is past its grace
  std::atomic<uint64_t> submissions_{0};  // makes engine ids unique
  httplib::Server server_;
  std::thread listener_;
  int port_ = 0;
  httplib::Server probe_server_;
  std::thread probe_listener_;
  int probe_port_ = 0;
};

}  // namespace weft

#endif  // WEFT_SERVER_HTTP_SERVER_H_
