#include "runtime/model/model_files.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace weft {
namespace {

// The tokenizer's special ids must name rows of the model's embedding and
// logits: a BOS past them makes every prompt invalid, an EOS or stop id
// past them can never be sampled (generation would run to max_tokens).
absl::Status CheckSpecialIds(const Tokenizer& tokenizer, int vocab_size,
                             absl::string_view path) {
  std::vector<std::pair<std::string, int32_t>> ids = {{"BOS", tokenizer.bos_id()},
                                                      {"EOS", tokenizer.eos_id()}};
  for (int32_t id : tokenizer.stop_ids()) ids.emplace_back("stop", id);
  for (const auto& [what, id] : ids) {
    if (id >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": the tokenizer's ", what, " token id ", id,
          " is outside the model's vocabulary of ", vocab_size, " tokens"));
    }
  }
  return absl::OkStatus();
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", path, "'"));
  std::ostringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

}  // namespace

absl::StatusOr<std::unique_ptr<ModelFiles>> ModelFiles::Open(
    const std::string& path) {
  std::unique_ptr<ModelFiles> files(new ModelFiles());
  files->path_ = path;
  if (IsSyntheticModelPath(path)) {
    files->format_ = WeightFormat::kHuggingFace;  // HF names, BF16
    auto config = SyntheticModelConfig(path.substr(kSyntheticPrefix.size()));
    if (!config.ok()) return config.status();
    files->config_ = *config;
    auto tokenizer = Tokenizer::FromHfJsonText(
        SyntheticTokenizerJson(config->vocab_size),
        SyntheticTokenizerConfigJson(), path);
    if (!tokenizer.ok()) return tokenizer.status();
    files->tokenizer_ = *std::move(tokenizer);
    auto weights = SyntheticWeights::Create(*config);
    if (!weights.ok()) return weights.status();
    files->synthetic_ = *std::move(weights);
    return files;
  }
  if (!Exists(path)) {
    return absl::NotFoundError(absl::StrCat("model '", path, "' not found"));
  }
  if (!IsDirectory(path)) {
    files->format_ = WeightFormat::kGguf;
    auto gguf = GgufFile::Open(path);
    if (!gguf.ok()) return gguf.status();
    files->gguf_ = *std::move(gguf);
    auto config = ModelConfigFromGguf(*files->gguf_);
    if (!config.ok()) return config.status();
    files->config_ = *config;
    auto tokenizer = Tokenizer::FromGguf(*files->gguf_);
    if (!tokenizer.ok()) return tokenizer.status();
    if (auto s = CheckSpecialIds(**tokenizer, config->vocab_size, path); !s.ok()) return s;
    files->tokenizer_ = *std::move(tokenizer);
    if (const GgufValue* t = files->gguf_->Find("tokenizer.chat_template");
        t != nullptr && t->type == GgufValueType::kString) {
      files->chat_template_ = t->string_value;
    }
    return files;
  }

  files->format_ = WeightFormat::kHuggingFace;
  const std::string config_path = path + "/config.json";
  auto config_text = ReadFile(config_path);
  if (!config_text.ok()) return config_text.status();
  auto config = ModelConfigFromHfJson(*config_text, config_path);
  if (!config.ok()) return config.status();
  files->config_ = *config;
  auto safetensors = SafetensorsModel::Open(path);
  if (!safetensors.ok()) return safetensors.status();
  files->safetensors_ = *std::move(safetensors);
  const std::string tokenizer_config = path + "/tokenizer_config.json";
  const bool has_tokenizer_config = Exists(tokenizer_config);
  auto tokenizer = Tokenizer::FromHfFiles(
      path + "/tokenizer.json", has_tokenizer_config ? tokenizer_config : "");
  if (!tokenizer.ok()) return tokenizer.status();
  if (auto s = CheckSpecialIds(**tokenizer, config->vocab_size, path); !s.ok()) return s;
  files->tokenizer_ = *std::move(tokenizer);
  if (has_tokenizer_config) {
    auto text = ReadFile(tokenizer_config);
    if (!text.ok()) return text.status();
    const nlohmann::json j = nlohmann::json::parse(*text, nullptr, false);
    if (j.is_discarded()) {
      return absl::InvalidArgumentError(
          absl::StrCat("bad JSON in ", tokenizer_config));
    }
    if (j.is_object() && j.contains("chat_template") &&
        j["chat_template"].is_string()) {
      files->chat_template_ = j["chat_template"].get<std::string>();
    }
  }
  return files;
}

const HostTensor* ModelFiles::FindTensor(absl::string_view name) const {
  if (synthetic_ != nullptr) return synthetic_->FindTensor(name);
  return gguf_ != nullptr ? gguf_->FindTensor(name)
                          : safetensors_->FindTensor(name);
}

}  // namespace weft
