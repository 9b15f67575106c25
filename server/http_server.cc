#include "server/http_server.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <variant>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "runtime/request_queue.h"
#include "server/http_connection.h"
#include "server/openai_chat.h"
#include "server/openai_errors.h"
#include "server/openai_response.h"
#include "server/openai_tokenize.h"
#include "server/prompt_batch.h"
#include "server/status.h"

namespace weft {
namespace {

// How often a request waiting on the engine checks that its client is
// still connected.
constexpr absl::Duration kPeerCheckInterval = absl::Milliseconds(50);
// Requests one keep-alive connection may carry before the server closes
// it; idle keep-alive connections are closed after httplib's 5 s.
constexpr size_t kKeepAliveMaxRequests = 100;

void SendJson(httplib::Response& response, int status, const std::string& body) {
  response.status = status;
  response.set_content(body, "application/json");
}

// Answers `request` with a JSON error body on its socket and shuts the
// connection (PeerWatch::SendAndShutDown): for requests refused before
// their body is read, whose unread body must never be parsed as the next
// request (behind a keep-alive proxy that would be request smuggling;
// httplib cannot close a connection whose request did not ask to).
// `response` gets the same, for httplib's own write (which goes nowhere).
httplib::Server::HandlerResponse RefuseAndShut(const httplib::Request& request,
                                               httplib::Response& response, int status,
                                               absl::string_view status_line,
                                               absl::string_view extra_headers,
                                               const std::string& body) {
  PeerWatch(request).SendAndShutDown(absl::StrCat(
      "HTTP/1.1 ", status, " ", status_line, "\r\n", extra_headers,
      "Content-Type: application/json\r\nContent-Length: ", body.size(),
      "\r\nConnection: close\r\n\r\n", body));
  SendJson(response, status, body);
  return httplib::Server::HandlerResponse::Handled;
}

// Served names come from file names, which need not be UTF-8.
std::string Dump(const Json& json) {
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

void SendError(httplib::Response& response, const absl::Status& status) {
  const HttpError error = ToHttpError(status);
  SendJson(response, error.status, error.body);
  if (error.status == 401) response.set_header("WWW-Authenticate", "Bearer");
  if (error.status == 429 || error.status == 503) {
    response.set_header("Retry-After", "1");
  }
}

// Refuses the request when it arrived on WorkerPool's refusal thread.
bool RefusedForLoad(const HttpServerConfig& config, httplib::Response& response) {
  if (!WorkerPool::OnRefusalThread()) return false;
  SendError(response,
            WithErrorCode(absl::ResourceExhaustedError(absl::StrCat(
                              "the server is serving its maximum of ",
                              config.num_threads, " HTTP connections with ",
                              config.max_queued_connections,
                              " more waiting; retry later")),
                          "rate_limit_exceeded"));
  return true;
}

// "cmpl-<X-Request-Id>" / "chatcmpl-<…>", or 32 random hex digits.
absl::StatusOr<std::string> ResponseId(OpenAiApi api,
                                       const httplib::Request& request) {
  std::string base = request.get_header_value("X-Request-Id");
  if (base.empty()) {
    absl::BitGen gen;
    base = absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen),
                           absl::Uniform<uint64_t>(gen));
  } else if (base.size() > static_cast<size_t>(kMaxRequestIdBytes) ||
             std::any_of(base.begin(), base.end(),
                         [](char c) { return c < '!' || c > '~'; })) {
    // Any visible ASCII: tracers and gateways put base64 (+/=) and more
    // in it; the id only names the response (JSON-escaped there).
    return WithParam(
        absl::InvalidArgumentError(absl::StrCat(
            "X-Request-Id: at most ", kMaxRequestIdBytes,
            " visible ASCII characters (no spaces)")),
        "X-Request-Id");
  }
  return absl::StrCat(
      api == OpenAiApi::kChatCompletions ? "chatcmpl-" : "cmpl-", base);
}

// The parsers check each field's type before reading it; a JSON type error
// that slips past them is still the client's 400, not a 500.
absl::StatusOr<OpenAiRequest> ParseBody(OpenAiApi api, const std::string& body,
                                        const ServedModel& model) {
  try {
    return api == OpenAiApi::kChatCompletions ? ParseChatRequest(body, model)
                                              : ParseCompletionRequest(body, model);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the request body has a value of the wrong type: ",
                     e.what()));
  }
}

// One accepted request, from Submit until its handler or stream is done.
// Whatever way that ends, a request that has not ended is cancelled (with
// several prompts, one engine request each: all of them, unless the
// joined Finished was taken; after an error the others go on otherwise).
class Completion {
 public:
  Completion(Engine* engine, std::vector<std::string> engine_ids,
             std::shared_ptr<StreamBuffer> buffer, OpenAiResponseBuilder builder,
             const httplib::Request& http_request, std::atomic<int>* in_flight,
             const std::atomic<bool>* stopping)
      : engine_(engine),
        engine_ids_(std::move(engine_ids)),
        buffer_(std::move(buffer)),
        builder_(std::move(builder)),
        peer_(http_request),
        in_flight_(in_flight),
        stopping_(stopping) {
    ++*in_flight_;
  }
  ~Completion() {
    if (!ended_ || (!finished_ && engine_ids_.size() > 1)) {
      for (const std::string& id : engine_ids_) engine_->Cancel(id);
    }
    --*in_flight_;
  }

  // The request's next event; nullopt once the client has gone; an
  // UNAVAILABLE error once the server stops (the request is then
  // cancelled, so that no worker waits on an engine that goes on).
  std::optional<StreamEvent> Next() {
    for (;;) {
      std::optional<StreamEvent> event = buffer_->Next(kPeerCheckInterval);
      // Taken before anything else: a terminal event dropped for a gone
      // client must not make ~Completion cancel an ended id.
      if (event) {
        ended_ = !std::holds_alternative<Delta>(*event);
        finished_ = std::holds_alternative<Finished>(*event);
      }
      const absl::Time now = absl::Now();
      if (!event || now - last_peer_check_ >= kPeerCheckInterval) {
        last_peer_check_ = now;
        if (peer_.Closed()) return std::nullopt;
      }
      if (event) return event;
      if (*stopping_) {
        return StreamEvent(
            absl::UnavailableError("the server stopped before the request ended"));
      }
    }
  }

  // Streaming: the SSE text for the next events the client should see;
  // sets `last` with the final piece. nullopt once the client has gone.
  std::optional<std::string> NextChunks(bool* last) {
    for (;;) {
      std::optional<StreamEvent> event = Next();
      if (!event) return std::nullopt;
      // The error Next() makes up when the server stops is last too (ended_
      // stays false: ~Completion still cancels the request).
      *last = ended_ || std::holds_alternative<absl::Status>(*event);
      if (const Delta* delta = std::get_if<Delta>(&*event)) {
        std::string chunk = builder_.StreamDelta(*delta);
        if (!chunk.empty()) return chunk;
      } else if (const Finished* finished = std::get_if<Finished>(&*event)) {
        return builder_.StreamFinish(*finished);
      } else {
        return SseError(std::get<absl::Status>(*event));
      }
    }
  }

  OpenAiResponseBuilder& builder() { return builder_; }

 private:
  Engine* engine_;
  std::vector<std::string> engine_ids_;  // one per prompt
  std::shared_ptr<StreamBuffer> buffer_;
  OpenAiResponseBuilder builder_;
  PeerWatch peer_;
  std::atomic<int>* in_flight_;
  const std::atomic<bool>* stopping_;  // HttpServer::stopping_
  absl::Time last_peer_check_ = absl::Now();
  bool ended_ = false;     // the terminal event was taken
  bool finished_ = false;  // and it was Finished
};

void RespondWhole(Completion& completion, httplib::Response& response) {
  for (;;) {
    std::optional<StreamEvent> event = completion.Next();
    if (!event) {  // the client has gone; nobody reads this
      response.status = ToHttpStatus(absl::StatusCode::kCancelled);
      return;
    }
    if (const Delta* delta = std::get_if<Delta>(&*event)) {
      completion.builder().Accumulate(*delta);
    } else if (const Finished* finished = std::get_if<Finished>(&*event)) {
      SendJson(response, 200, Dump(completion.builder().Complete(*finished)));
      return;
    } else {
      SendError(response, std::get<absl::Status>(*event));
      return;
    }
  }
}

void RespondStream(std::shared_ptr<Completion> completion,
                   httplib::Response& response) {
  response.set_header("Cache-Control", "no-cache");
  response.set_header("X-Accel-Buffering", "no");  // proxies: do not buffer
  std::string opening = completion->builder().StreamStart();
  response.set_chunked_content_provider(
      "text/event-stream",
      [completion, opening = std::move(opening)](
          size_t, httplib::DataSink& sink) mutable {
        if (!opening.empty()) {
          const bool written = sink.write(opening.data(), opening.size());
          opening.clear();
          return written;
        }
        bool last = false;
        std::optional<std::string> chunks = completion->NextChunks(&last);
        // Returning false ends the response; ~Completion cancels.
        if (!chunks || !sink.write(chunks->data(), chunks->size())) return false;
        if (last) sink.done();
        return true;
      });
}

}  // namespace

absl::Status HttpServerConfig::Validate() const {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_port must be in [0, 65535], got ", port));
  }
  if (host.empty()) {
    return absl::InvalidArgumentError("--http_host must not be empty");
  }
  if (num_threads < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http_threads must be >= 1, got ", num_threads));
  }
  if (max_queued_connections < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http_max_queued_connections must be >= 0, got ",
        max_queued_connections));
  }
  if (max_body_bytes < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http_max_body_bytes must be >= 1, got ", max_body_bytes));
  }
  if (probe_port < -1 || probe_port > 65535 || (probe_port > 0 && probe_port == port)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http_probe_port must be -1 (none) or a port in [0, 65535] other than "
        "--http_port, got ", probe_port));
  }
  return absl::OkStatus();
}

namespace {

// Binds `http` to host:port (0: any free port), starts its accept loop on
// `thread` and waits until it runs; the bound port.
absl::StatusOr<int> Listen(httplib::Server& http, const std::string& host, int port,
                           std::thread* thread) {
  const int bound = port == 0 ? http.bind_to_any_port(host)
                              : (http.bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on ", host, ":", port));
  }
  *thread = std::thread([&http] { http.listen_after_bind(); });
  // Stop() must not race the listener's start (httplib's stop() is a no-op
  // before it runs).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!http.is_running() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (!http.is_running()) {
    return absl::InternalError("the HTTP listener did not start");
  }
  return bound;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(
    const HttpServerConfig& config, Engine* engine, ServedModel model,
    const ApiKeys* keys, ServerMetrics* metrics) {
  if (auto s = config.Validate(); !s.ok()) return s;
  std::unique_ptr<HttpServer> server(new HttpServer());
  server->engine_ = engine;
  server->model_ = std::move(model);
  server->keys_ = keys;
  server->metrics_ = metrics;
  server->config_ = config;
  server->created_ = absl::ToUnixSeconds(absl::Now());
  httplib::Server& http = server->server_;
  http.new_task_queue = [config] {
    return new WorkerPool(config.num_threads, config.max_queued_connections);
  };
  http.set_payload_max_length(static_cast<size_t>(config.max_body_bytes));
  http.set_keep_alive_max_count(kKeepAliveMaxRequests);
  http.set_tcp_nodelay(true);  // SSE events are small: send each at once
  // Called for the listening socket only. A descriptor of our own for it:
  // StartDraining shuts the socket down through it, whatever httplib did
  // with its own (a number httplib closed may belong to another socket).
  http.set_socket_options([raw = server.get()](socket_t sock) {
    httplib::default_socket_options(sock);
    if (raw->listen_fd_ >= 0) close(raw->listen_fd_);  // an address that failed
    raw->listen_fd_ = fcntl(sock, F_DUPFD_CLOEXEC, 0);
  });
  server->Route();

  absl::StatusOr<int> port = Listen(http, config.host, config.port, &server->listener_);
  if (!port.ok()) return port.status();
  server->port_ = *port;
  if (config.probe_port >= 0) {
    httplib::Server& probes = server->probe_server_;
    probes.new_task_queue = [] { return new httplib::ThreadPool(2); };
    probes.set_keep_alive_max_count(1);  // probes hold no thread between scrapes
    probes.set_read_timeout(1, 0);       // a slow client holds a thread 1 s a read
    probes.set_payload_max_length(0);
    // GET only, answered before any body is read; anything else is refused
    // and its connection shut (httplib would read a body of any length).
    probes.set_pre_routing_handler([](const httplib::Request& request,
                                      httplib::Response& response) {
      if (request.method == "GET") return httplib::Server::HandlerResponse::Unhandled;
      return RefuseAndShut(request, response, 405, "Method Not Allowed", "Allow: GET\r\n",
                           ErrorBody(405, "the probe port serves GET /health and "
                                          "GET /metrics only",
                                     std::nullopt, "method_not_allowed"));
    });
    probes.Get("/health", [raw = server.get()](const httplib::Request&,
                                               httplib::Response& response) {
      raw->HandleHealth(response);
    });
    probes.Get("/metrics", [raw = server.get()](const httplib::Request& request,
                                                httplib::Response& response) {
      raw->HandleMetrics(request, response);
    });
    absl::StatusOr<int> probe_port =
        Listen(probes, config.host, config.probe_port, &server->probe_listener_);
    if (!probe_port.ok()) return probe_port.status();
    server->probe_port_ = *probe_port;
  }
  return server;
}

void HttpServer::Route() {
  server_.Post("/v1/completions",
               [this](const httplib::Request& request, httplib::Response& response) {
                 HandleCompletion(OpenAiApi::kCompletions, request, response);
               });
  server_.Post("/v1/chat/completions",
               [this](const httplib::Request& request, httplib::Response& response) {
                 HandleCompletion(OpenAiApi::kChatCompletions, request, response);
               });
  server_.Post("/tokenize",
               [this](const httplib::Request& request, httplib::Response& response) {
                 HandleTokenize(/*detokenize=*/false, request, response);
               });
  server_.Post("/detokenize",
               [this](const httplib::Request& request, httplib::Response& response) {
                 HandleTokenize(/*detokenize=*/true, request, response);
               });
  server_.Get("/v1/models",
              [this](const httplib::Request& request, httplib::Response& response) {
                HandleModels(request, response, nullptr);
              });
  server_.Get(R"(/v1/models/(.+))",
              [this](const httplib::Request& request, httplib::Response& response) {
                const std::string id = request.matches[1];
                HandleModels(request, response, &id);
              });
  server_.Get("/health", [this](const httplib::Request&, httplib::Response& response) {
    HandleHealth(response);
  });
  server_.Get("/metrics",
              [this](const httplib::Request& request, httplib::Response& response) {
                HandleMetrics(request, response);
              });

  // Known paths with the wrong method: 405 naming the right one.
  auto not_allowed = [](const char* allowed) {
    return [allowed](const httplib::Request& request, httplib::Response& response) {
      SendJson(response, 405,
               ErrorBody(405,
                         absl::StrCat(request.method, " is not allowed on ",
                                      request.path, "; use ", allowed),
                         std::nullopt, "method_not_allowed"));
      response.set_header("Allow", allowed);
    };
  };
  for (const char* path :
       {"/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"}) {
    server_.Get(path, not_allowed("POST"));
    server_.Put(path, not_allowed("POST"));
    server_.Patch(path, not_allowed("POST"));
    server_.Delete(path, not_allowed("POST"));
  }
  for (const char* path : {"/v1/models", R"(/v1/models/(.+))", "/health", "/metrics"}) {
    server_.Post(path, not_allowed("GET"));
    server_.Put(path, not_allowed("GET"));
    server_.Patch(path, not_allowed("GET"));
    server_.Delete(path, not_allowed("GET"));
  }

  // httplib 0.11 enforces --http_max_body_bytes only against a declared
  // Content-Length: a chunked body, or a POST without a length read to the
  // end of the connection, would be read whole into memory (no limit, and
  // before authentication). Such requests are refused before the body is
  // read: 411, the status for "send a Content-Length". Every OpenAI client
  // sends one with its JSON body.
  server_.set_pre_routing_handler(
      [this](const httplib::Request& request, httplib::Response& response) {
        if (draining_) {
          // The port is closed; a connection opened before gets 503 for
          // whatever it asks and is shut, so that its client's next request
          // finds another replica (httplib would keep it open, and its
          // keep-alive loop would hold Stop() for up to 100 requests).
          const absl::Status status = absl::UnavailableError("the server is shutting down");
          if (request.path == "/v1/completions" || request.path == "/v1/chat/completions") {
            RequestRecorder(metrics_, "").Refused(status);
          }
          return RefuseAndShut(request, response, 503, "Service Unavailable",
                               "Retry-After: 1\r\n", ToHttpError(status).body);
        }
        const bool chunked = request.has_header("Transfer-Encoding");
        // httplib reads a body for POST, PUT, PATCH and PRI to the
        // connection's end when there is no length (a DELETE without one it
        // takes as bodiless, as RFC 9112 says every request is: answered
        // 405 at once, tested).
        const bool body_method = request.method != "GET" && request.method != "HEAD" &&
                                 request.method != "OPTIONS" && request.method != "DELETE";
        if (!chunked && (!body_method || request.has_header("Content-Length"))) {
          return httplib::Server::HandlerResponse::Unhandled;
        }
        return RefuseAndShut(
            request, response, 411, "Length Required", "",
            ErrorBody(411,
                      chunked ? "chunked request bodies are not accepted: "
                                "send the body with a Content-Length"
                              : "a Content-Length header is required",
                      std::nullopt, "length_required"));
      });
  // Whatever httplib answers itself (unknown path 404, body too large 413,
  // unreadable request 400) gets OpenAI's error body too.
  server_.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& request, httplib::Response& response) {
    if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message;
    std::optional<std::string> code;
    switch (response.status) {
      case 404:
        message = absl::StrCat("no such endpoint: ", request.method, " ",
                               request.path);
        code = "not_found";
        break;
      case 413:
        message = absl::StrCat("the request body is larger than ",
                               config_.max_body_bytes,
                               " bytes (--http_max_body_bytes)");
        code = "request_too_large";
        break;
      default:
        message = absl::StrCat("HTTP ", response.status);
    }
    response.set_content(ErrorBody(response.status, message, std::nullopt, code),
                         "application/json");
    return httplib::Server::HandlerResponse::Handled;
  }));
  // The refusal thread serves one request per connection, so that one
  // client cannot hold it.
  server_.set_post_routing_handler(
      [](const httplib::Request&, httplib::Response& response) {
        if (WorkerPool::OnRefusalThread()) response.set_header("Connection", "close");
      });
  server_.set_exception_handler([](const httplib::Request&,
                                   httplib::Response& response,
                                   std::exception_ptr error) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(error);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    SendError(response, absl::InternalError(what));
  });
}

absl::StatusOr<std::string> HttpServer::Authenticate(
    const httplib::Request& http_request) const {
  absl::StatusOr<std::string> tenant =
      keys_->Authenticate(http_request.get_header_value("Authorization"));
  if (!tenant.ok()) {
    return WithErrorCode(tenant.status(), "invalid_api_key");
  }
  return tenant;
}

void HttpServer::HandleCompletion(OpenAiApi api,
                                  const httplib::Request& http_request,
                                  httplib::Response& response) {
  RequestRecorder refusals(metrics_, "");
  if (RefusedForLoad(config_, response)) {
    refusals.Refused(absl::ResourceExhaustedError("HTTP connections"));
    return;
  }
  if (draining_) {
    const absl::Status status =
        absl::UnavailableError("the server is shutting down");
    refusals.Refused(status);
    SendError(response, status);
    return;
  }
  absl::StatusOr<std::string> tenant = Authenticate(http_request);
  if (!tenant.ok()) {
    refusals.Refused(tenant.status());
    SendError(response, tenant.status());
    return;
  }
  const RequestRecorder recorder(metrics_, *tenant);
  absl::StatusOr<OpenAiRequest> parsed = ParseBody(api, http_request.body, model_);
  absl::StatusOr<std::string> id =
      parsed.ok() ? ResponseId(api, http_request)
                  : absl::StatusOr<std::string>(parsed.status());
  if (!id.ok()) {
    recorder.Refused(id.status());
    SendError(response, id.status());
    return;
  }
  // Counted from before Submit, so that in_flight() never reads 0 while
  // an accepted request has no Completion yet.
  ++in_flight_;
  struct Uncount {
    std::atomic<int>* n;
    ~Uncount() { --*n; }
  } uncount{&in_flight_};
  // Several prompts: one engine request each, their events joined, all
  // admitted together or not at all.
  const int num_prompts = parsed->num_prompts();
  if (num_prompts > engine_->config().max_live_requests) {
    const absl::Status status = InvalidParam(
        "prompt", absl::StrCat("has ", num_prompts, " prompts; this server "
                               "takes at most ", engine_->config().max_live_requests,
                               " requests in flight (--max_live_requests)"));
    recorder.Refused(status);
    SendError(response, status);
    return;
  }
  // Built before anything is queued: nothing below can throw and leave a
  // queued request nobody cancels.
  OpenAiResponseBuilder builder(*parsed, *id, model_.name,
                                absl::ToUnixSeconds(absl::Now()), *model_.tokenizer);
  auto buffer = std::make_shared<StreamBuffer>();
  std::shared_ptr<PromptBatch> batch =
      num_prompts > 1
          ? PromptBatch::Create(num_prompts, parsed->request.sampling.n, buffer)
          : nullptr;
  std::vector<std::pair<Request, std::shared_ptr<EventSink>>> requests;
  std::vector<std::string> engine_ids;
  for (int p = 0; p < num_prompts; ++p) {
    Request request = parsed->PromptRequest(p);
    request.tenant = *tenant;
    // Unique per submission: X-Request-Id names the response only, so that
    // neither another tenant, a retry with the same id, nor a gRPC request
    // can meet this one in the engine (and a late Cancel cannot end them).
    request.id = absl::StrCat("http/", *tenant, "/", *id, "#", ++submissions_);
    engine_ids.push_back(request.id);
    requests.emplace_back(std::move(request),
                          recorder.Wrap(batch ? batch->PromptSink(p) : buffer));
  }
  if (absl::Status s = engine_->SubmitAll(std::move(requests)); !s.ok()) {
    recorder.Refused(s);
    SendError(response, s);
    return;
  }
  auto completion = std::make_shared<Completion>(
      engine_, std::move(engine_ids), std::move(buffer), std::move(builder),
      http_request, &in_flight_, &stopping_);
  if (parsed->stream) {
    RespondStream(std::move(completion), response);
  } else {
    RespondWhole(*completion, response);
  }
}

void HttpServer::HandleModels(const httplib::Request& http_request,
                              httplib::Response& response,
                              const std::string* id) {
  if (RefusedForLoad(config_, response)) return;
  if (absl::Status s = Authenticate(http_request).status(); !s.ok()) {
    SendError(response, s);
    return;
  }
  const Json card = {
      {"id", model_.name},
      {"object", "model"},
      {"created", created_},
      {"owned_by", "weft"},
      {"root", model_.name},
      {"parent", nullptr},
      {"max_model_len", model_.max_model_len},
  };
  if (id == nullptr) {
    SendJson(response, 200,
             Dump(Json{{"object", "list"}, {"data", Json::array({card})}}));
  } else if (*id == model_.name) {
    SendJson(response, 200, Dump(card));
  } else {
    SendError(response, ModelNotFound(*id, model_.name));
  }
}

void HttpServer::HandleTokenize(bool detokenize, const httplib::Request& http_request,
                                httplib::Response& response) {
  if (RefusedForLoad(config_, response)) return;
  if (absl::Status s = Authenticate(http_request).status(); !s.ok()) {
    SendError(response, s);
    return;
  }
  absl::StatusOr<Json> out;
  try {
    out = detokenize ? Detokenize(http_request.body, model_)
                     : Tokenize(http_request.body, model_);
  } catch (const nlohmann::json::exception& e) {
    out = absl::InvalidArgumentError(
        absl::StrCat("the request body has a value of the wrong type: ", e.what()));
  }
  if (!out.ok()) {
    SendError(response, out.status());
    return;
  }
  SendJson(response, 200, Dump(*out));
}

void HttpServer::HandleHealth(httplib::Response& response) const {
  if (draining_) {
    SendError(response, absl::UnavailableError("the server is shutting down"));
    return;
  }
  response.status = 200;
}

void HttpServer::HandleMetrics(const httplib::Request&,
                               httplib::Response& response) const {
  if (metrics_ == nullptr) {
    SendError(response, absl::NotFoundError("metrics are not enabled"));
    return;
  }
  response.set_content(metrics_->Render(engine_->stats()),
                       "text/plain; version=0.0.4; charset=utf-8");
}

void HttpServer::StartDraining() {
  draining_ = true;
  // Shutting the listening socket down refuses new connections and wakes
  // httplib's accept with an error: its loop closes its descriptor and
  // ends, and its workers finish the connections they hold (the
  // pre-routing handler answers their next request 503 and shuts them).
  // httplib's stop() would also cut every response being streamed; and as
  // httplib keeps the number it closed, stop() must not run after this.
  if (listen_fd_ >= 0 && !listener_closed_.exchange(true)) {
    shutdown(listen_fd_, SHUT_RDWR);
  }
}

void HttpServer::Stop(absl::Duration grace) {
  if (!listener_.joinable()) return;
  draining_ = true;
  const absl::Time deadline = absl::Now() + grace;
  while (in_flight_ > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  // Requests still waiting on the engine end (within a peer-check
  // interval) and cancel theirs, so that the workers can be joined.
  stopping_ = true;
  if (!listener_closed_.exchange(true)) server_.stop();
  // The socket closes with the last descriptor: ours, now.
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  listener_.join();
  if (probe_listener_.joinable()) {
    probe_server_.stop();
    probe_listener_.join();
  }
}

HttpServer::~HttpServer() {
  Stop(absl::ZeroDuration());
  if (listen_fd_ >= 0) close(listen_fd_);  // a start that failed
}

}  // namespace weft
