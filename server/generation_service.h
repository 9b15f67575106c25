// weft.v1.Generation on gRPC's callback API: one ServerWriteReactor per
// Generate stream with one write in flight, client cancel or deadline →
// Engine::Cancel, OnDone releases the reactor. The unary calls run inline.
#ifndef WEFT_SERVER_GENERATION_SERVICE_H_
#define WEFT_SERVER_GENERATION_SERVICE_H_

#include <atomic>
#include <string>

#include "absl/functional/function_ref.h"
#include "runtime/engine.h"
#include "server/auth.h"
#include "server/metrics.h"
#include "server/request_conversion.h"
#include "weft/v1/generation.grpc.pb.h"

namespace weft {

class GenerationService final : public v1::Generation::CallbackService {
 public:
  // `engine`, `model.tokenizer`, `keys` and `metrics` must outlive the
  // service; a null `metrics` records nothing.
  GenerationService(Engine* engine, ServedModel model, std::string backend,
                    const ApiKeys* keys, ServerMetrics* metrics = nullptr);

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context,
      const v1::GenerateRequest* request) override;
  // Generate on the conversation rendered with the chat template.
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(
      grpc::CallbackServerContext* context,
      const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(
      grpc::CallbackServerContext* context,
      const v1::DetokenizeRequest* request,
      v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(
      grpc::CallbackServerContext* context,
      const v1::GetModelInfoRequest* request,
      v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* GetLoad(grpc::CallbackServerContext* context,
                                    const v1::GetLoadRequest* request,
                                    v1::Load* response) override;

  // From now on new Generate calls end with UNAVAILABLE.
  void StartDraining() { draining_ = true; }

 private:
  absl::Status CheckModel(const std::string& name) const;
  // The streaming path Generate and Chat share: drain and auth checks, then
  // `convert(assigned_id, &echoed_prompt)` makes the engine request.
  grpc::ServerWriteReactor<v1::GenerateResponse>* StartStream(
      grpc::CallbackServerContext* context,
      absl::FunctionRef<absl::StatusOr<Request>(const std::string&, std::string*)>
          convert);
  // The caller's tenant from its `authorization` metadata.
  absl::StatusOr<std::string> Authenticate(
      const grpc::CallbackServerContext* context) const;

  Engine* engine_;
  ServedModel model_;
  std::string backend_;
  const ApiKeys* keys_;
  ServerMetrics* metrics_;
  std::atomic<uint64_t> next_request_number_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace weft

#endif  // WEFT_SERVER_GENERATION_SERVICE_H_
