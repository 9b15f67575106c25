// inference.GRPCInferenceService (KServe v2 / Triton) on gRPC's callback
// API, in front of the same engine as weft.v1.Generation: the same API keys
// (`authorization` metadata), validation, drain and metrics.
//
// ModelInfer is one request → one response (the gRPC status carries
// errors). ModelStreamInfer is one ServerBidiReactor per stream: it reads
// requests one at a time, runs any number of them at once, and writes
// their responses with one write in flight, taking each request's events
// from its StreamBuffer (which merges deltas while the client reads
// slowly). A request's error becomes its final response, with
// error_message; the stream goes on. While kMaxQueuedErrorResponses wait
// to be written the stream reads no further request. docs/kserve.md
// describes the tensors and the responses.
#ifndef WEFT_SERVER_KSERVE_SERVICE_H_
#define WEFT_SERVER_KSERVE_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "inference/grpc_service.grpc.pb.h"
#include "runtime/engine.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/request_conversion.h"

namespace weft {

class KServeService final : public inference::GRPCInferenceService::CallbackService {
 public:
  // Error responses a stream holds unwritten before it stops reading
  // requests until they are written.
  static constexpr size_t kMaxQueuedErrorResponses = 4;

  // `engine`, `model.tokenizer`, `keys` and `metrics` must outlive the
  // service; a null `metrics` records nothing.
  KServeService(Engine* engine, ServedModel model, const ApiKeys* keys,
                ServerMetrics* metrics = nullptr);

  // Health: no API key needed (probes).
  grpc::ServerUnaryReactor* ServerLive(grpc::CallbackServerContext* context,
                                       const inference::ServerLiveRequest* request,
                                       inference::ServerLiveResponse* response) override;
  grpc::ServerUnaryReactor* ServerReady(grpc::CallbackServerContext* context,
                                        const inference::ServerReadyRequest* request,
                                        inference::ServerReadyResponse* response) override;
  grpc::ServerUnaryReactor* ModelReady(grpc::CallbackServerContext* context,
                                       const inference::ModelReadyRequest* request,
                                       inference::ModelReadyResponse* response) override;
  grpc::ServerUnaryReactor* ServerMetadata(
      grpc::CallbackServerContext* context,
      const inference::ServerMetadataRequest* request,
      inference::ServerMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelMetadata(
      grpc::CallbackServerContext* context,
      const inference::ModelMetadataRequest* request,
      inference::ModelMetadataResponse* response) override;
  grpc::ServerUnaryReactor* ModelConfig(grpc::CallbackServerContext* context,
                                        const inference::ModelConfigRequest* request,
                                        inference::ModelConfigResponse* response) override;
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context,
                                       const inference::ModelInferRequest* request,
                                       inference::ModelInferResponse* response) override;
  grpc::ServerBidiReactor<inference::ModelInferRequest,
                          inference::ModelStreamInferResponse>*
  ModelStreamInfer(grpc::CallbackServerContext* context) override;

  // From now on the server is not ready, and new inferences (new streams,
  // and new requests on open streams) end with UNAVAILABLE.
  void StartDraining() { draining_ = true; }
  bool draining() const { return draining_; }

  Engine* engine() const { return engine_; }
  const ServedModel& model() const { return model_; }
  ServerMetrics* metrics() const { return metrics_; }
  // A fresh engine request id for `tenant`'s next request.
  std::string NextRequestId(absl::string_view tenant);

  // Tests: `hook` runs on a stream's thread between a request's admission
  // to the stream and Engine::Submit (set it before any stream starts).
  void SetBeforeSubmitHookForTesting(std::function<void()> hook) {
    before_submit_hook_ = std::move(hook);
  }
  void RunBeforeSubmitHook() const {
    if (before_submit_hook_) before_submit_hook_();
  }

 private:
  // The caller's tenant from its `authorization` metadata.
  absl::StatusOr<std::string> Authenticate(
      const grpc::CallbackServerContext* context) const;

  Engine* engine_;
  ServedModel model_;
  const ApiKeys* keys_;
  ServerMetrics* metrics_;
  std::atomic<uint64_t> next_request_number_{0};
  std::atomic<bool> draining_{false};
  std::function<void()> before_submit_hook_;
};

}  // namespace weft

#endif  // WEFT_SERVER_KSERVE_SERVICE_H_
