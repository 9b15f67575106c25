// The shape and hyper-parameters of a Llama-family decoder, read from GGUF
// metadata (`<arch>.*` keys) or a Hugging Face `config.json`.
//
// Supported: Llama 2/3 (incl. Llama 3 rope scaling), Mistral, Qwen2 (QKV
// bias), SmolLM2 (tied embeddings); grouped-query attention. Anything else
// (another architecture, an activation other than SiLU, YaRN or dynamic
// rope scaling, MLP biases) is an error at load, never a silently wrong
// model.
#ifndef WEFT_RUNTIME_MODEL_CONFIG_H_
#define WEFT_RUNTIME_MODEL_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/backend.h"

namespace weft {

class GgufFile;

struct RopeScaling {
  enum class Type { kNone, kLinear, kLlama3 };
  Type type = Type::kNone;
  double factor = 1.0;
  // Llama 3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // "llama", "mistral" or "qwen2"
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_layers = 0;
  int num_q_heads = 0;
  int num_kv_heads = 0;
  int head_dim = 0;
  int rotary_dim = 0;
  int max_position_embeddings = 0;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeStyle rope_style = RopeStyle::kNeox;
  RopeScaling rope_scaling;
  bool attention_bias = false;   // biases on q, k, v projections
  bool output_bias = false;      // bias on o_proj (Llama attention_bias)
  bool tie_word_embeddings = false;

  absl::Status Validate() const;
};

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& gguf);
// `json_text` is the contents of config.json; `origin` names it in errors.
absl::StatusOr<ModelConfig> ModelConfigFromHfJson(const std::string& json_text,
                                                  const std::string& origin);

// inv_freq[i] for i < rotary_dim / 2, in fp32 as Hugging Face computes it,
// with the configured scaling applied. `freq_factors` (GGUF's
// `rope_freqs.weight`, which llama.cpp's converter writes instead of the
// Llama 3 scaling metadata) divides each frequency when non-empty.
std::vector<float> RopeInverseFrequencies(
    const ModelConfig& config, const std::vector<float>& freq_factors);

}  // namespace weft

#endif  // WEFT_RUNTIME_MODEL_CONFIG_H_
