// KServe v2 / Triton inference messages ↔ runtime types, for a model that
// looks like TensorRT-LLM's `ensemble` / `tensorrt_llm_bls` Triton models.
//
// A request is one prompt: `text_input` (BYTES) with one element, shape [1]
// or [1, 1] (a leading batch dimension of 1). Scalar inputs likewise hold
// one element. Tensor data comes either typed (InferTensorContents) or raw
// (raw_input_contents, little-endian; BYTES elements length-prefixed), as
// tritonclient sends it. Values then go through the same validation as
// weft.v1 Generate (ToRuntimeRequest), with errors renamed to the tensor
// that carried the value. docs/kserve.md lists the tensors.
#ifndef WEFT_SERVER_KSERVE_CONVERSION_H_
#define WEFT_SERVER_KSERVE_CONVERSION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "inference/grpc_service.pb.h"
#include "runtime/request.h"
#include "server/request_conversion.h"

namespace weft::kserve {

// The model version weft reports; requests may name it or leave it empty.
inline constexpr char kModelVersion[] = "1";
// Model names accepted besides the served model's: the names of
// TensorRT-LLM's Triton models, which genai-perf and perf_analyzer default to.
inline constexpr const char* kModelAliases[] = {"ensemble", "tensorrt_llm_bls"};

// OK when `name` is the served model's or an alias and `version` is empty
// or kModelVersion; NOT_FOUND otherwise.
absl::Status CheckModel(absl::string_view name, absl::string_view version,
                        const ServedModel& model);

// One input tensor's elements, decoded from typed or raw contents.
struct Tensor {
  enum class Kind { kBytes, kBool, kInt, kUnsigned, kFloat };
  std::string name;
  std::string datatype;
  std::vector<int64_t> shape;
  Kind kind = Kind::kBytes;
  std::vector<std::string> bytes;  // kBytes
  std::vector<bool> bools;         // kBool
  std::vector<int64_t> ints;       // kInt
  std::vector<uint64_t> uints;     // kUnsigned
  std::vector<double> floats;      // kFloat
};

// Decodes every input. Before reading any data: INVALID_ARGUMENT for more
// inputs than weft accepts, an unknown or repeated name, a datatype the
// input does not take, a negative dimension, more elements than the input
// holds (one; a word list at most 256, padding included). Then (naming the
// tensor) for data that does not match the shape, a raw BYTES element that
// runs past its entry, or typed and raw contents mixed.
absl::StatusOr<std::vector<Tensor>> DecodeInputs(
    const inference::ModelInferRequest& request);

// How the response to one request is shaped.
struct ResponseOptions {
  bool stream = false;                   // `stream`: one response per delta
  bool exclude_input_in_output = false;  // non-streamed text_output omits the prompt
  bool text_output = true;               // return text_output
  bool cum_log_probs = false;            // return cum_log_probs
  bool output_log_probs = false;         // return output_log_probs
  bool empty_final_response = false;     // triton_enable_empty_final_response
  bool batched = true;                   // outputs carry a leading batch dim of 1
  std::string prompt;
};

struct ConvertedRequest {
  Request request;
  ResponseOptions options;
};

// Validates and converts `proto` (the model name is checked by the caller).
// `id` becomes Request::id. INVALID_ARGUMENT names the tensor (or `id`, over
// kMaxRequestIdBytes; bad_words are capped like stop strings before they are
// tokenized); UNIMPLEMENTED for inputs weft knows but does not serve
// (beam_width > 1, logits).
absl::StatusOr<ConvertedRequest> FromInferRequest(
    const inference::ModelInferRequest& proto, const ServedModel& model,
    const std::string& id);

// Output of one request so far, as the response carries it.
struct OutputChunk {
  std::string text;
  std::vector<float> token_logprobs;  // one per token in this chunk
  double cumulative_logprob = 0;      // over all tokens so far
};

// A response to `request` with model_name, model_version and id set and
// the outputs `options` asks for, holding `chunk`.
void BuildResponse(const inference::ModelInferRequest& request,
                   const ResponseOptions& options, const OutputChunk& chunk,
                   inference::ModelInferResponse* out);
// Sets the "triton_final_response" parameter.
void SetFinalFlag(bool final, inference::ModelInferResponse* out);

// BYTES tensor data in the raw layout: each element as a 4-byte
// little-endian length followed by its bytes.
std::string SerializeBytes(const std::vector<std::string>& elements);

// Metadata and configuration of the served model under `name` (as asked).
void FillModelMetadata(absl::string_view name, inference::ModelMetadataResponse* out);
void FillModelConfig(absl::string_view name, inference::ModelConfig* out);

}  // namespace weft::kserve

#endif  // WEFT_SERVER_KSERVE_CONVERSION_H_
