#include "server/generation_service.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "runtime/request_queue.h"
#include "server/metrics.h"
#include "server/status.h"

namespace weft {
namespace {

// One Generate stream. Events flow engine → StreamBuffer → this reactor;
// exactly one write is in flight or the buffer's listener is armed, never
// both (see StreamBuffer::TryNext), so WriteNext never runs concurrently.
class GenerateReactor : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // `reported_id` is the id the client knows the request by.
  // `recorder` counts the request's end in the server's metrics.
  // `echoed_prompt` goes into Final.prompt (Chat with echo_prompt).
  GenerateReactor(Engine* engine, absl::StatusOr<Request> request,
                  std::string reported_id = "", RequestRecorder recorder = {},
                  std::string echoed_prompt = "")
      : engine_(engine),
        buffer_(std::make_shared<StreamBuffer>()),
        reported_id_(std::move(reported_id)),
        echoed_prompt_(std::move(echoed_prompt)) {
    if (!request.ok()) {
      recorder.Refused(request.status());
      Finish(ToGrpcStatus(request.status()));
      return;
    }
    id_ = request->id;
    buffer_->SetListener([this] { WriteNext(); });
    if (absl::Status s = engine_->Submit(*std::move(request), recorder.Wrap(buffer_));
        !s.ok()) {
      recorder.Refused(s);
      buffer_->ClearListener();
      Finish(ToGrpcStatus(s));
      return;
    }
    submitted_ = true;
    WriteNext();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {  // the client is gone: stop; OnCancel tells the engine
      engine_->Cancel(id_);
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
      return;
    }
    WriteNext();
  }

  void OnCancel() override {
    if (submitted_) engine_->Cancel(id_);
  }

  void OnDone() override {
    buffer_->ClearListener();
    delete this;
  }

 private:
  void WriteNext() {
    std::optional<StreamEvent> event = buffer_->TryNext();
    if (!event) return;  // the listener calls again
    response_.Clear();
    if (Delta* delta = std::get_if<Delta>(&*event)) {
      ToProto(*delta, response_.mutable_delta());
      StartWrite(&response_);
    } else if (Finished* finished = std::get_if<Finished>(&*event)) {
      ToProto(*finished, reported_id_, response_.mutable_final());
      if (!echoed_prompt_.empty()) response_.mutable_final()->set_prompt(echoed_prompt_);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    } else {
      Finish(ToGrpcStatus(std::get<absl::Status>(*event)));
    }
  }

  Engine* engine_;
  std::shared_ptr<StreamBuffer> buffer_;
  std::string id_;  // the engine's: tenant/request_id
  std::string reported_id_;
  std::string echoed_prompt_;
  bool submitted_ = false;
  v1::GenerateResponse response_;
};

}  // namespace

GenerationService::GenerationService(Engine* engine, ServedModel model,
                                     std::string backend, const ApiKeys* keys,
                                     ServerMetrics* metrics)
    : engine_(engine),
      model_(std::move(model)),
      backend_(std::move(backend)),
      keys_(keys),
      metrics_(metrics) {}

absl::StatusOr<std::string> GenerationService::Authenticate(
    const grpc::CallbackServerContext* context) const {
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  const absl::string_view value =
      it == metadata.end() ? absl::string_view()
                           : absl::string_view(it->second.data(), it->second.size());
  return keys_->Authenticate(value);
}

absl::Status GenerationService::CheckModel(const std::string& name) const {
  if (name.empty() || name == model_.name) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("model: '", name, "' is not served here (this server serves '",
                   model_.name, "')"));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return StartStream(context, [&](const std::string& assigned, std::string*) {
    return ToRuntimeRequest(*request, model_, assigned);
  });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::Chat(
    grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  return StartStream(context, [&](const std::string& assigned, std::string* echoed) {
    std::string prompt;
    absl::StatusOr<Request> converted = ToRuntimeRequest(*request, model_, assigned, &prompt);
    if (request->echo_prompt()) *echoed = std::move(prompt);
    return converted;
  });
}

grpc::ServerWriteReactor<v1::GenerateResponse>* GenerationService::StartStream(
    grpc::CallbackServerContext* context,
    absl::FunctionRef<absl::StatusOr<Request>(const std::string&, std::string*)> convert) {
  if (draining_) {
    return new GenerateReactor(
        engine_, absl::UnavailableError("the server is shutting down"), "",
        RequestRecorder(metrics_, ""));
  }
  absl::StatusOr<std::string> tenant = Authenticate(context);
  if (!tenant.ok()) {
    return new GenerateReactor(engine_, tenant.status(), "",
                               RequestRecorder(metrics_, ""));
  }
  const uint64_t number = next_request_number_.fetch_add(1);
  const std::string assigned = absl::StrCat("weft-", number);
  std::string echoed_prompt;
  absl::StatusOr<Request> converted = convert(assigned, &echoed_prompt);
  std::string reported_id;
  if (converted.ok()) {
    converted->tenant = *tenant;
    reported_id = converted->id;
    // The engine's id is this stream's own: the client's id names the
    // response only, so that neither another tenant's "1", a retry with
    // the id of a stream still ending (a late Cancel of which would end
    // the retry), nor a KServe or HTTP request can meet it in the engine.
    converted->id = absl::StrCat("grpc/", *tenant, "/", converted->id, "#", number);
  }
  return new GenerateReactor(engine_, std::move(converted),
                             std::move(reported_id),
                             RequestRecorder(metrics_, *tenant),
                             std::move(echoed_prompt));
}

grpc::ServerUnaryReactor* GenerationService::Tokenize(
    grpc::CallbackServerContext* context, const v1::TokenizeRequest* request,
    v1::TokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authenticate(context).status();
  if (status.ok()) status = CheckModel(request->model());
  if (!status.ok()) {
    reactor->Finish(ToGrpcStatus(status));
    return reactor;
  }
  EncodeOptions options;
  options.add_special_tokens = request->add_special_tokens();
  const std::vector<int32_t> ids = model_.tokenizer->Encode(request->text(), options);
  response->mutable_token_ids()->Add(ids.begin(), ids.end());
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::Detokenize(
    grpc::CallbackServerContext* context, const v1::DetokenizeRequest* request,
    v1::DetokenizeResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::Status status = Authenticate(context).status();
  if (status.ok()) status = CheckModel(request->model());
  for (int i = 0; status.ok() && i < request->token_ids_size(); ++i) {
    const int32_t id = request->token_ids(i);
    if (id < 0 || id >= model_.vocab_size) {
      status = absl::InvalidArgumentError(
          absl::StrCat("token_ids[", i, "]: ", id, " is outside the vocabulary of ",
                       model_.vocab_size, " tokens"));
    }
  }
  if (status.ok()) {
    const std::vector<int32_t> ids(request->token_ids().begin(),
                                   request->token_ids().end());
    response->set_text(
        model_.tokenizer->Decode(ids, request->skip_special_tokens()));
  }
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::GetModelInfo(
    grpc::CallbackServerContext* context, const v1::GetModelInfoRequest*,
    v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = Authenticate(context).status(); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  response->set_name(model_.name);
  response->set_architecture(model_.architecture);
  response->set_vocab_size(model_.vocab_size);
  response->set_max_model_len(model_.max_model_len);
  response->set_backend(backend_);
  response->set_max_n(model_.max_n);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* GenerationService::GetLoad(
    grpc::CallbackServerContext* context, const v1::GetLoadRequest*,
    v1::Load* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (absl::Status s = Authenticate(context).status(); !s.ok()) {
    reactor->Finish(ToGrpcStatus(s));
    return reactor;
  }
  const EngineStats stats = engine_->stats();
  response->set_waiting(stats.num_waiting);
  response->set_running(stats.num_running);
  response->set_kv_blocks_total(stats.kv_blocks_total);
  response->set_kv_blocks_used(stats.kv_blocks_used);
  response->set_kv_blocks_free(stats.kv_blocks_free);
  response->set_prefix_cache_hit_rate(
      stats.prefix_cache_queried_tokens > 0
          ? static_cast<double>(stats.prefix_cache_hit_tokens) /
                stats.prefix_cache_queried_tokens
          : 0.0);
  response->set_live_requests(stats.num_live_requests);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace weft
