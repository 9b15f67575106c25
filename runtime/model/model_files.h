// The files of one model, opened once: a GGUF file, or a Hugging Face
// directory (config.json, *.safetensors, tokenizer.json,
// tokenizer_config.json), or "synthetic:NAME", a real model's shapes with
// random weights made in memory (runtime/model/synthetic_model.h). Owns the mappings the weights are read from, so it
// outlives every model built from it.
#ifndef WEFT_RUNTIME_MODEL_MODEL_FILES_H_
#define WEFT_RUNTIME_MODEL_MODEL_FILES_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/loader/gguf.h"
#include "runtime/loader/safetensors.h"
#include "runtime/model/config.h"
#include "runtime/model/synthetic_model.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft {

enum class WeightFormat { kGguf, kHuggingFace };

class ModelFiles {
 public:
  // `path` is a .gguf file, a directory holding config.json, or
  // "synthetic:NAME" (NotFound listing the names when NAME is unknown).
  static absl::StatusOr<std::unique_ptr<ModelFiles>> Open(
      const std::string& path);

  WeightFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The model's Jinja chat template; empty when it has none.
  const std::string& chat_template() const { return chat_template_; }
  // A tensor by its name in this format; nullptr when absent.
  const HostTensor* FindTensor(absl::string_view name) const;

 private:
  ModelFiles() = default;

  WeightFormat format_ = WeightFormat::kGguf;
  std::string path_;
  std::unique_ptr<GgufFile> gguf_;
  std::unique_ptr<SafetensorsModel> safetensors_;
  std::unique_ptr<SyntheticWeights> synthetic_;
  ModelConfig config_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string chat_template_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_MODEL_MODEL_FILES_H_
