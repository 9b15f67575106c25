#include "server/kserve_service.h"

#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "runtime/request_queue.h"
#include "server/kserve_conversion.h"
#include "server/status.h"

namespace weft {
namespace {

using inference::ModelInferRequest;
using inference::ModelInferResponse;
using inference::ModelStreamInferResponse;

// What a response needs of its request: the model name as the client gave
// it, and the request's id.
ModelInferRequest ResponseHeader(const ModelInferRequest& request) {
  ModelInferRequest header;
  header.set_model_name(request.model_name());
  header.set_id(request.id());
  return header;
}

// The output of a request so far, for one response.
struct Accumulated {
  std::string text;
  std::vector<float> logprobs;
  double cumulative_logprob = 0;

  void Add(const Delta& delta) {
    text += delta.text;
    for (const SampledToken& t : delta.logprobs) {
      logprobs.push_back(t.logprob);
      cumulative_logprob += t.logprob;
    }
  }
};

// Collects a ModelInfer request's output on the engine thread and
// completes the call at its terminal event.
class InferSink : public EventSink {
 public:
  InferSink(grpc::ServerUnaryReactor* reactor, ModelInferRequest header,
            kserve::ResponseOptions options, ModelInferResponse* response)
      : reactor_(reactor),
        header_(std::move(header)),
        options_(std::move(options)),
        response_(response) {
    if (!options_.exclude_input_in_output) output_.text = options_.prompt;
  }

  void OnDelta(Delta delta) override { output_.Add(delta); }
  void OnFinished(Finished) override {
    kserve::OutputChunk chunk{std::move(output_.text), std::move(output_.logprobs),
                              output_.cumulative_logprob};
    kserve::BuildResponse(header_, options_, chunk, response_);
    reactor_->Finish(grpc::Status::OK);  // the reactor may be gone after this
  }
  void OnError(absl::Status status) override { reactor_->Finish(ToGrpcStatus(status)); }

 private:
  grpc::ServerUnaryReactor* reactor_;
  ModelInferRequest header_;
  kserve::ResponseOptions options_;
  ModelInferResponse* response_;
  Accumulated output_;
};

class InferReactor : public grpc::ServerUnaryReactor {
 public:
  explicit InferReactor(Engine* engine) : engine_(engine) {}

  // Submits `request`; the sink finishes the call. `id` names it for Cancel.
  void Submit(Request request, std::shared_ptr<EventSink> sink,
              const RequestRecorder& recorder) {
    id_ = request.id;
    if (absl::Status s = engine_->Submit(std::move(request), recorder.Wrap(sink));
        !s.ok()) {
      recorder.Refused(s);
      Finish(ToGrpcStatus(s));
    }
  }

  void OnCancel() override {
    if (!id_.empty()) engine_->Cancel(id_);
  }
  void OnDone() override { delete this; }

 private:
  Engine* engine_;
  std::string id_;
};

// One ModelStreamInfer stream. Requests are read one at a time and each
// submitted with its own StreamBuffer. Writes (one in flight) are made by
// whichever thread holds `writing_`: it takes the next immediate response
// (an error) or the next request in `ready_`, whose buffer has or may have
// an event. A request is either in ready_ (or being written) or its
// buffer's listener is armed, never both; the listener puts it back.
//
// Memory: each running request holds one buffer (bounded by the engine's
// max_live_requests and max_tokens); error responses wait in `immediate_`,
// and while kMaxQueuedErrorResponses wait the stream reads no further
// request, so a client that sends without reading is held back by gRPC's
// flow control instead of growing the queue.
class StreamReactor
    : public grpc::ServerBidiReactor<ModelInferRequest, ModelStreamInferResponse> {
 public:
  StreamReactor(KServeService* service, absl::StatusOr<std::string> tenant)
      : service_(service) {
    if (!tenant.ok() || service_->draining()) {
      const absl::Status refused =
          tenant.ok() ? absl::UnavailableError("the server is shutting down")
                      : tenant.status();
      RequestRecorder(service_->metrics(), "").Refused(refused);
      {
        absl::MutexLock lock(&mu_);
        finished_ = true;
      }
      Finish(ToGrpcStatus(refused));
      return;
    }
    tenant_ = *std::move(tenant);
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side (or the call ended)
      bool finish;
      {
        absl::MutexLock lock(&mu_);
        reads_done_ = true;
        finish = ShouldFinishLocked();
      }
      if (finish) FinishStream();
      return;
    }
    Handle(request_);
    {
      absl::MutexLock lock(&mu_);
      if (!broken_ && immediate_.size() >= KServeService::kMaxQueuedErrorResponses) {
        reading_paused_ = true;  // Pump reads on once they are written
        return;
      }
    }
    StartRead(&request_);
  }

  void OnWriteDone(bool ok) override {
    if (ok) {
      Pump();
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;  // no further write: the client is gone
    }
    Break();
  }

  void OnCancel() override { Break(); }

  void OnDone() override {
    std::vector<std::shared_ptr<StreamBuffer>> buffers;
    {
      absl::MutexLock lock(&mu_);
      for (const auto& weak : listened_) {
        if (auto buffer = weak.lock()) buffers.push_back(std::move(buffer));
      }
    }
    // After this no listener runs or will run, so `this` may go. A finished
    // request's listener may still be running on the engine thread (its
    // terminal event already written by another thread), hence every buffer
    // still alive, not only those in live_.
    for (auto& buffer : buffers) buffer->ClearListener();
    delete this;
  }

 private:
  struct Pending {
    ModelInferRequest header;
    kserve::ResponseOptions options;
    std::string engine_id;
    std::shared_ptr<StreamBuffer> buffer = std::make_shared<StreamBuffer>();
    Accumulated output;  // everything so far (non-streamed), or the log-prob sum
  };

  void Handle(const ModelInferRequest& proto) {
    RequestRecorder recorder(service_->metrics(), tenant_);
    absl::Status status =
        service_->draining() ? absl::UnavailableError("the server is shutting down")
                             : kserve::CheckModel(proto.model_name(),
                                                  proto.model_version(),
                                                  service_->model());
    absl::StatusOr<kserve::ConvertedRequest> converted =
        status.ok() ? kserve::FromInferRequest(proto, service_->model(),
                                               service_->NextRequestId(tenant_))
                    : status;
    status = converted.status();
    if (!status.ok()) {
      recorder.Refused(status);
      Queue(ErrorResponse(proto, status));
      return;
    }
    converted->request.tenant = tenant_;
    auto pending = std::make_shared<Pending>();
    pending->header = ResponseHeader(proto);
    pending->options = std::move(converted->options);
    if (!pending->options.stream && !pending->options.exclude_input_in_output) {
      pending->output.text = pending->options.prompt;
    }
    pending->engine_id = converted->request.id;
    Pending* raw = pending.get();
    pending->buffer->SetListener([this, raw] { OnEvent(raw); });
    bool gone;
    {
      absl::MutexLock lock(&mu_);
      gone = broken_;
      if (!gone) {
        live_[pending->engine_id] = pending;
        // A buffer lives while the engine or live_ holds it; an expired one
        // has no listener call running and will have none.
        if (listened_.size() > 2 * live_.size() + 16) {
          std::erase_if(listened_, [](const auto& weak) { return weak.expired(); });
        }
        listened_.push_back(pending->buffer);
      }
    }
    if (gone) {  // the client is gone: run nothing more
      recorder.Refused(absl::CancelledError("the client cancelled the stream"));
      return;
    }
    service_->RunBeforeSubmitHook();
    status = service_->engine()->Submit(std::move(converted->request),
                                        recorder.Wrap(pending->buffer));
    if (!status.ok()) {
      recorder.Refused(status);
      {
        absl::MutexLock lock(&mu_);
        live_.erase(pending->engine_id);
      }
      Queue(ErrorResponse(proto, status));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      gone = broken_;
    }
    // A Break since the insertion into live_ may have cancelled the id
    // before the engine knew it, which Engine::Cancel ignores: again.
    if (gone) service_->engine()->Cancel(pending->engine_id);
    OnEvent(raw);  // take what is there, or arm the listener
  }

  // As Triton answers a failed request on a stream: the request's last
  // response, with its id, model name and version and the final flag.
  static ModelStreamInferResponse ErrorResponse(const ModelInferRequest& proto,
                                                const absl::Status& status) {
    ModelStreamInferResponse response;
    // The code's name first: the stream has no status per request.
    response.set_error_message(absl::StrCat(absl::StatusCodeToString(status.code()), ": ",
                                            ClientMessage(status.message())));
    ModelInferResponse* infer = response.mutable_infer_response();
    infer->set_model_name(proto.model_name());
    infer->set_model_version(kserve::kModelVersion);
    // An id refused for its length is not echoed.
    if (proto.id().size() <= static_cast<size_t>(kMaxRequestIdBytes)) {
      infer->set_id(proto.id());
    }
    kserve::SetFinalFlag(true, infer);
    return response;
  }

  // The listener (engine thread), or Handle: `pending` may have an event.
  void OnEvent(Pending* pending) {
    {
      absl::MutexLock lock(&mu_);
      if (broken_ || finished_) return;
      auto it = live_.find(pending->engine_id);
      if (it == live_.end()) return;
      ready_.push_back(it->second);
      if (writing_) return;
      writing_ = true;
    }
    Pump();
  }

  void Queue(ModelStreamInferResponse response) {
    {
      absl::MutexLock lock(&mu_);
      if (broken_ || finished_) return;
      immediate_.push_back(std::move(response));
      if (writing_) return;
      writing_ = true;
    }
    Pump();
  }

  // Runs while this thread holds writing_: starts the next write, or
  // releases writing_ when there is nothing to write.
  void Pump() {
    for (;;) {
      std::shared_ptr<Pending> pending;
      bool write_immediate = false;
      bool resume_reading = false;
      bool finish = false;
      {
        absl::MutexLock lock(&mu_);
        if (!broken_ && !immediate_.empty()) {
          response_ = std::move(immediate_.front());
          immediate_.pop_front();
          write_immediate = true;
          if (reading_paused_ &&
              immediate_.size() < KServeService::kMaxQueuedErrorResponses) {
            reading_paused_ = false;
            resume_reading = true;
          }
        } else if (broken_ || ready_.empty()) {
          writing_ = false;
          finish = ShouldFinishLocked();
        } else {
          pending = std::move(ready_.front());
          ready_.pop_front();
        }
      }
      if (resume_reading) StartRead(&request_);  // no read is in flight
      if (write_immediate) {
        StartWrite(&response_);
        return;
      }
      if (pending == nullptr) {
        if (finish) FinishStream();
        return;
      }
      std::optional<StreamEvent> event = pending->buffer->TryNext();
      if (!event) continue;  // its listener is armed now
      const bool terminal = !std::holds_alternative<Delta>(*event);
      const bool write = ToResponse(pending.get(), std::move(*event), &response_);
      {
        absl::MutexLock lock(&mu_);
        if (terminal) {
          live_.erase(pending->engine_id);
        } else {
          ready_.push_back(pending);  // for its next event, after this one
        }
      }
      if (write) {
        StartWrite(&response_);
        return;
      }
    }
  }

  // The engine's event as the response to write, if any.
  bool ToResponse(Pending* pending, StreamEvent event, ModelStreamInferResponse* out) {
    out->Clear();
    ModelInferResponse* response = out->mutable_infer_response();
    const kserve::ResponseOptions& options = pending->options;
    if (Delta* delta = std::get_if<Delta>(&event)) {
      if (!options.stream) {
        pending->output.Add(*delta);
        return false;
      }
      kserve::OutputChunk chunk;
      chunk.text = std::move(delta->text);
      for (const SampledToken& t : delta->logprobs) {
        chunk.token_logprobs.push_back(t.logprob);
        pending->output.cumulative_logprob += t.logprob;
      }
      chunk.cumulative_logprob = pending->output.cumulative_logprob;
      kserve::BuildResponse(pending->header, options, chunk, response);
      kserve::SetFinalFlag(false, response);
      return true;
    }
    if (std::holds_alternative<Finished>(event)) {
      kserve::OutputChunk chunk;
      chunk.cumulative_logprob = pending->output.cumulative_logprob;
      if (!options.stream) {
        chunk.text = std::move(pending->output.text);
        chunk.token_logprobs = std::move(pending->output.logprobs);
      }
      if (options.stream && options.empty_final_response) {
        // Triton's empty final response: no outputs, only the flag.
        response->set_model_name(pending->header.model_name());
        response->set_model_version(kserve::kModelVersion);
        response->set_id(pending->header.id());
      } else {
        kserve::BuildResponse(pending->header, options, chunk, response);
      }
      kserve::SetFinalFlag(true, response);
      return true;
    }
    *out = ErrorResponse(pending->header, std::get<absl::Status>(event));
    return true;
  }

  // The client is gone: cancel what runs; finish once nothing is in flight.
  void Break() {
    std::vector<std::string> ids;
    bool finish;
    {
      absl::MutexLock lock(&mu_);
      broken_ = true;
      if (reading_paused_) {  // no read in flight, and none will start
        reading_paused_ = false;
        reads_done_ = true;
      }
      for (auto& [id, pending] : live_) ids.push_back(id);
      finish = ShouldFinishLocked();
    }
    for (const std::string& id : ids) service_->engine()->Cancel(id);
    if (finish) FinishStream();
  }

  // True once, when the stream may end: no write in flight, the client
  // done sending, and every request answered (or the client gone).
  bool ShouldFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_ || writing_ || !reads_done_) return false;
    if (!broken_ && (!live_.empty() || !immediate_.empty() || !ready_.empty())) {
      return false;
    }
    finished_ = true;
    finish_status_ = broken_ ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")
                             : grpc::Status::OK;
    return true;
  }

  void FinishStream() { Finish(finish_status_); }  // `this` may go after

  KServeService* service_;
  std::string tenant_;
  ModelInferRequest request_;            // the read in flight
  ModelStreamInferResponse response_;    // the write in flight

  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<Pending>> live_ ABSL_GUARDED_BY(mu_);
  std::deque<std::shared_ptr<Pending>> ready_ ABSL_GUARDED_BY(mu_);
  std::deque<ModelStreamInferResponse> immediate_ ABSL_GUARDED_BY(mu_);
  // Every buffer given a listener that may still be called.
  std::vector<std::weak_ptr<StreamBuffer>> listened_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool reading_paused_ ABSL_GUARDED_BY(mu_) = false;  // no read in flight, on purpose
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status finish_status_;
};

}  // namespace

KServeService::KServeService(Engine* engine, ServedModel model, const ApiKeys* keys,
                             ServerMetrics* metrics)
    : engine_(engine), model_(std::move(model)), keys_(keys), metrics_(metrics) {}

std::string KServeService::NextRequestId(absl::string_view tenant) {
  // Ids are the server's own: clients' ids need not be unique in Triton.
  return absl::StrCat(tenant, "/kserve-", next_request_number_.fetch_add(1));
}

absl::StatusOr<std::string> KServeService::Authenticate(
    const grpc::CallbackServerContext* context) const {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  const absl::string_view value =
      it == metadata.end() ? absl::string_view()
                           : absl::string_view(it->second.data(), it->second.size());
  return keys_->Authenticate(value);
}

grpc::ServerUnaryReactor* KServeService::ServerLive(
    grpc::CallbackServerContext* context, const inference::ServerLiveRequest*,
    inference::ServerLiveResponse* response) {
  response->set_live(true);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ServerReady(
    grpc::CallbackServerContext* context, const inference::ServerReadyRequest*,
    inference::ServerReadyResponse* response) {
  response->set_ready(!draining_);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelReady(
    grpc::CallbackServerContext* context, const inference::ModelReadyRequest* request,
    inference::ModelReadyResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authenticate(context).status();
  if (status.ok()) {
    response->set_ready(!draining_ &&
                        kserve::CheckModel(request->name(), request->version(), model_)
                            .ok());
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ServerMetadata(
    grpc::CallbackServerContext* context, const inference::ServerMetadataRequest*,
    inference::ServerMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authenticate(context).status();
  if (status.ok()) {
    response->set_name("weft");
    response->set_version("dev");
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelMetadata(
    grpc::CallbackServerContext* context, const inference::ModelMetadataRequest* request,
    inference::ModelMetadataResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authenticate(context).status();
  if (status.ok()) status = kserve::CheckModel(request->name(), request->version(), model_);
  if (status.ok()) kserve::FillModelMetadata(request->name(), response);
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelConfig(
    grpc::CallbackServerContext* context, const inference::ModelConfigRequest* request,
    inference::ModelConfigResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authenticate(context).status();
  if (status.ok()) status = kserve::CheckModel(request->name(), request->version(), model_);
  if (status.ok()) kserve::FillModelConfig(request->name(), response->mutable_config());
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* KServeService::ModelInfer(
    grpc::CallbackServerContext* context, const inference::ModelInferRequest* request,
    inference::ModelInferResponse* response) {
  auto* reactor = new InferReactor(engine_);
  absl::StatusOr<std::string> tenant = Authenticate(context);
  RequestRecorder recorder(metrics_, tenant.ok() ? *tenant : "");
  absl::Status status = tenant.status();
  if (status.ok() && draining_) status = absl::UnavailableError("the server is shutting down");
  if (status.ok()) {
    status = kserve::CheckModel(request->model_name(), request->model_version(), model_);
  }
  absl::StatusOr<kserve::ConvertedRequest> converted =
      status.ok() ? kserve::FromInferRequest(*request, model_, NextRequestId(*tenant))
                  : status;
  status = converted.status();
  if (!status.ok()) {
    recorder.Refused(status);
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  converted->request.tenant = *tenant;
  auto sink = std::make_shared<InferSink>(reactor, ResponseHeader(*request),
                                          converted->options, response);
  reactor->Submit(std::move(converted->request), std::move(sink), recorder);
  return reactor;
}

grpc::ServerBidiReactor<inference::ModelInferRequest,
                        inference::ModelStreamInferResponse>*
KServeService::ModelStreamInfer(grpc::CallbackServerContext* context) {
  return new StreamReactor(this, Authenticate(context));
}

}  // namespace weft
