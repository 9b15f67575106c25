// Synthetic models: the shapes of real models with random bf16 weights made
// in memory, so throughput can be measured at realistic sizes without weight
// files (`--model synthetic:llama3-8b`). Speed does not depend on weight
// values; correctness is checked on real models, never on these.
//
// A synthetic model poses as a Hugging Face checkpoint (tensor names and
// rotate-half RoPE as in HF) whose weights are BF16, norm weights 1 and
// biases small, with matrices scaled by 1/sqrt(columns) so activations stay
// O(1) through every layer (no inf/NaN). Its tokenizer is byte-level BPE
// without merges: ids 0-255 are the 256 bytes, ids 256 … vocab-2 decode to
// "<t{id}>", the last id is the special "<|endoftext|>" (EOS). Weights are
// generated from a fixed seed on all cores (an 8B model is 16 GB: 47 s on
// 2 cores, docs/models.md) and held in host memory for the model's lifetime.
#ifndef WEFT_RUNTIME_MODEL_SYNTHETIC_MODEL_H_
#define WEFT_RUNTIME_MODEL_SYNTHETIC_MODEL_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/loader/host_tensor.h"
#include "runtime/model/config.h"

namespace weft {

inline constexpr absl::string_view kSyntheticPrefix = "synthetic:";

// Whether `path` names a synthetic model ("synthetic:NAME").
bool IsSyntheticModelPath(absl::string_view path);
// The known names: llama3-8b, llama2-7b, qwen2.5-7b, smollm2-135m.
std::vector<std::string> SyntheticModelNames();
// The config of synthetic model `name`; NotFound listing the known names.
absl::StatusOr<ModelConfig> SyntheticModelConfig(absl::string_view name);

// The random weights of one synthetic model, by HF tensor name.
class SyntheticWeights {
 public:
  static absl::StatusOr<std::unique_ptr<SyntheticWeights>> Create(
      const ModelConfig& config, uint64_t seed = 0);
  const HostTensor* FindTensor(absl::string_view name) const;
  int64_t num_bytes() const { return num_bytes_; }

 private:
  SyntheticWeights() = default;
  absl::flat_hash_map<std::string, HostTensor> tensors_;
  std::vector<std::unique_ptr<uint16_t[]>> buffers_;
  int64_t num_bytes_ = 0;
};

// tokenizer.json and tokenizer_config.json text of the synthetic tokenizer
// (see the file comment) for `vocab_size` ids (at least 258).
std::string SyntheticTokenizerJson(int vocab_size);
std::string SyntheticTokenizerConfigJson();

}  // namespace weft

#endif  // WEFT_RUNTIME_MODEL_SYNTHETIC_MODEL_H_
