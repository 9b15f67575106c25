#include "runtime/model/config.h"

#include <cmath>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "runtime/loader/gguf.h"

namespace weft {
namespace {

absl::Status Unsupported(absl::string_view what) {
  return absl::UnimplementedError(absl::StrCat("model config: ", what));
}

}  // namespace

absl::Status ModelConfig::Validate() const {
  auto positive = [](absl::string_view name, int value) -> absl::Status {
    if (value <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("model config: ", name, " must be positive, got ",
                       value));
    }
    return absl::OkStatus();
  };
  for (auto [name, value] :
       {std::pair<absl::string_view, int>{"vocab_size", vocab_size},
        {"hidden_size", hidden_size},
        {"intermediate_size", intermediate_size},
        {"num_layers", num_layers},
        {"num_attention_heads", num_q_heads},
        {"num_key_value_heads", num_kv_heads},
        {"head_dim", head_dim},
        {"max_position_embeddings", max_position_embeddings}}) {
    if (auto s = positive(name, value); !s.ok()) return s;
  }
  if (num_q_heads % num_kv_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: ", num_q_heads, " attention heads are not a multiple of ",
        num_kv_heads, " key/value heads"));
  }
  if (rotary_dim <= 0 || rotary_dim > head_dim || rotary_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model config: rotary dimension ", rotary_dim,
        " must be even and at most head_dim ", head_dim));
  }
  // Finite too: an infinite rope_theta gives every frequency 0 (positions
  // ignored), an infinite eps zeroes every norm; both load silently.
  auto finite_positive = [](double x) { return x > 0 && std::isfinite(x); };
  if (!finite_positive(rms_norm_eps) || !finite_positive(rope_theta) ||
      !finite_positive(rope_scaling.factor) ||
      !finite_positive(rope_scaling.low_freq_factor) ||
      !finite_positive(rope_scaling.high_freq_factor)) {
    return absl::InvalidArgumentError(
        "model config: rms_norm_eps, rope_theta and the rope scaling factors "
        "must be positive and finite");
  }
  if (hidden_size > (1 << 16) || num_layers > 1024 || vocab_size > (1 << 22) ||
      intermediate_size > (1 << 18) || num_q_heads > 1024) {
    return absl::InvalidArgumentError("model config: absurd dimensions");
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelConfig> ModelConfigFromGguf(const GgufFile& gguf) {
  auto arch = gguf.GetString("general.architecture");
  if (!arch.ok()) return arch.status();
  if (*arch != "llama" && *arch != "qwen2") {
    return Unsupported(absl::StrCat("GGUF architecture '", *arch,
                                    "' (weft runs llama and qwen2)"));
  }
  ModelConfig config;
  config.architecture = *arch;
  const std::string p = *arch + ".";
  auto get_int = [&](absl::string_view key, int* out) -> absl::Status {
    auto v = gguf.GetInt(absl::StrCat(p, key));
    if (!v.ok()) return v.status();
    if (*v < 0 || *v > (int64_t{1} << 30)) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: ", p, key, " is out of range: ", *v));
    }
    *out = static_cast<int>(*v);
    return absl::OkStatus();
  };
  for (auto [key, field] :
       {std::pair<absl::string_view, int*>{"embedding_length",
                                           &config.hidden_size},
        {"feed_forward_length", &config.intermediate_size},
        {"block_count", &config.num_layers},
        {"attention.head_count", &config.num_q_heads},
        {"context_length", &config.max_position_embeddings}}) {
    if (auto s = get_int(key, field); !s.ok()) return s;
  }
  config.num_kv_heads = config.num_q_heads;
  if (gguf.Find(p + "attention.head_count_kv") != nullptr) {
    if (auto s = get_int("attention.head_count_kv", &config.num_kv_heads);
        !s.ok()) {
      return s;
    }
  }
  config.head_dim =
      config.num_q_heads > 0 ? config.hidden_size / config.num_q_heads : 0;
  if (gguf.Find(p + "attention.key_length") != nullptr) {
    if (auto s = get_int("attention.key_length", &config.head_dim); !s.ok()) {
      return s;
    }
  }
  config.rotary_dim = config.head_dim;
  if (gguf.Find(p + "rope.dimension_count") != nullptr) {
    if (auto s = get_int("rope.dimension_count", &config.rotary_dim); !s.ok()) {
      return s;
    }
  }
  if (gguf.Find(p + "vocab_size") != nullptr) {
    if (auto s = get_int("vocab_size", &config.vocab_size); !s.ok()) return s;
  } else if (const GgufValue* tokens = gguf.Find("tokenizer.ggml.tokens");
             tokens != nullptr) {
    config.vocab_size = static_cast<int>(tokens->array.size());
  }
  if (auto eps = gguf.GetFloat(p + "attention.layer_norm_rms_epsilon");
      eps.ok()) {
    config.rms_norm_eps = *eps;
  } else {
    return eps.status();
  }
  if (gguf.Find(p + "rope.freq_base") != nullptr) {
    auto base = gguf.GetFloat(p + "rope.freq_base");
    if (!base.ok()) return base.status();
    config.rope_theta = *base;
  }
  if (gguf.Find(p + "rope.scaling.type") != nullptr) {
    auto type = gguf.GetString(p + "rope.scaling.type");
    if (!type.ok()) return type.status();
    if (*type == "linear") {
      auto factor = gguf.GetFloat(p + "rope.scaling.factor");
      if (!factor.ok()) return factor.status();
      config.rope_scaling.type = RopeScaling::Type::kLinear;
      config.rope_scaling.factor = *factor;
    } else if (*type != "none") {
      return Unsupported(absl::StrCat("rope scaling '", *type, "'"));
    }
  }
  if (gguf.Find(p + "expert_count") != nullptr) {
    auto experts = gguf.GetInt(p + "expert_count");
    if (experts.ok() && *experts > 0) {
      return Unsupported("mixture-of-experts models");
    }
  }
  // llama.cpp's converter permutes llama Q/K rows for rotation of adjacent
  // pairs; qwen2 weights are stored as in the HF checkpoint.
  config.rope_style =
      *arch == "llama" ? RopeStyle::kInterleaved : RopeStyle::kNeox;
  config.attention_bias = gguf.FindTensor("blk.0.attn_q.bias") != nullptr;
  config.output_bias = gguf.FindTensor("blk.0.attn_output.bias") != nullptr;
  config.tie_word_embeddings = gguf.FindTensor("output.weight") == nullptr;
  if (auto s = config.Validate(); !s.ok()) return s;
  return config;
}

namespace {

absl::StatusOr<ModelConfig> ParseHfConfig(const std::string& json_text,
                                          const std::string& origin) {
  const nlohmann::json j = nlohmann::json::parse(json_text, nullptr,
                                                 /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad JSON in ", origin));
  }
  auto error = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(origin, ": ", what));
  };
  const std::string model_type = j.value("model_type", "");
  if (model_type != "llama" && model_type != "mistral" &&
      model_type != "qwen2") {
    return Unsupported(absl::StrCat("model_type '", model_type, "' in ",
                                    origin,
                                    " (weft runs llama, mistral and qwen2)"));
  }
  ModelConfig config;
  config.architecture = model_type;
  // Reads an integer field; absent → `fallback` (or an error if < 0).
  auto get_int = [&](const char* key, int fallback, int* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (fallback < 0) return error(absl::StrCat("missing '", key, "'"));
      *out = fallback;
      return absl::OkStatus();
    }
    if (!it->is_number_integer() || it->get<int64_t>() < 0 ||
        it->get<int64_t>() > (int64_t{1} << 30)) {
      return error(absl::StrCat("'", key, "' must be a non-negative integer"));
    }
    *out = it->get<int>();
    return absl::OkStatus();
  };
  auto get_double = [&](const char* key, double fallback,
                        double* out) -> absl::Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      *out = fallback;
      return absl::OkStatus();
    }
    if (!it->is_number()) return error(absl::StrCat("'", key, "' must be a number"));
    *out = it->get<double>();
    return absl::OkStatus();
  };
  absl::Status s;
  if (!(s = get_int("vocab_size", -1, &config.vocab_size)).ok() ||
      !(s = get_int("hidden_size", -1, &config.hidden_size)).ok() ||
      !(s = get_int("intermediate_size", -1, &config.intermediate_size)).ok() ||
      !(s = get_int("num_hidden_layers", -1, &config.num_layers)).ok() ||
      !(s = get_int("num_attention_heads", -1, &config.num_q_heads)).ok() ||
      !(s = get_int("num_key_value_heads", config.num_q_heads,
                    &config.num_kv_heads)).ok() ||
      !(s = get_int("max_position_embeddings", 4096,
                    &config.max_position_embeddings)).ok() ||
      !(s = get_double("rms_norm_eps", 1e-6, &config.rms_norm_eps)).ok() ||
      !(s = get_double("rope_theta", 10000.0, &config.rope_theta)).ok()) {
    return s;
  }
  if (config.num_q_heads <= 0) return error("num_attention_heads must be > 0");
  if (!(s = get_int("head_dim", config.hidden_size / config.num_q_heads,
                    &config.head_dim)).ok()) {
    return s;
  }
  double partial_rotary = 1.0;
  if (!(s = get_double("partial_rotary_factor", 1.0, &partial_rotary)).ok()) {
    return s;
  }
  config.rotary_dim = static_cast<int>(config.head_dim * partial_rotary);
  config.rope_style = RopeStyle::kNeox;
  const std::string act = j.value("hidden_act", "silu");
  if (act != "silu") {
    return Unsupported(absl::StrCat("activation '", act, "' in ", origin));
  }
  if (j.value("mlp_bias", false)) return Unsupported("MLP biases");
  if (model_type == "qwen2") {
    config.attention_bias = true;  // Qwen2 always has q/k/v biases
  } else if (j.value("attention_bias", false)) {
    config.attention_bias = true;
    config.output_bias = true;
  }
  config.tie_word_embeddings = j.value("tie_word_embeddings", false);
  // A sliding window that the model never reaches changes nothing: cap the
  // context at the window instead of implementing windowed attention.
  const bool sliding = model_type == "mistral" ||
                       (model_type == "qwen2" && j.value("use_sliding_window", false));
  if (sliding && j.contains("sliding_window") &&
      j["sliding_window"].is_number_integer()) {
    const int window = j["sliding_window"].get<int>();
    if (window > 0 && window < config.max_position_embeddings) {
      config.max_position_embeddings = window;
    }
  }
  // transformers >= 5 writes `rope_parameters` (rope_theta and the scaling
  // in one object) where older configs have rope_theta + rope_scaling.
  auto rope_it = j.find("rope_scaling");
  if (auto params = j.find("rope_parameters");
      params != j.end() && params->is_object()) {
    if (params->contains("rope_theta")) {
      if (!(*params)["rope_theta"].is_number()) {
        return error("'rope_parameters.rope_theta' must be a number");
      }
      config.rope_theta = (*params)["rope_theta"].get<double>();
    }
    rope_it = params;
  }
  if (auto it = rope_it; it != j.end() && !it->is_null()) {
    if (!it->is_object()) return error("'rope_scaling' must be an object");
    const std::string type =
        it->value("rope_type", it->value("type", std::string("default")));
    RopeScaling& scaling = config.rope_scaling;
    if (type == "llama3") {
      scaling.type = RopeScaling::Type::kLlama3;
      scaling.factor = it->value("factor", 8.0);
      scaling.low_freq_factor = it->value("low_freq_factor", 1.0);
      scaling.high_freq_factor = it->value("high_freq_factor", 4.0);
      scaling.original_max_position_embeddings =
          it->value("original_max_position_embeddings", 8192);
      if (!(scaling.high_freq_factor > scaling.low_freq_factor) ||
          scaling.original_max_position_embeddings <= 0) {
        return error("llama3 rope_scaling needs high_freq_factor > "
                     "low_freq_factor and a positive original length");
      }
    } else if (type == "linear") {
      scaling.type = RopeScaling::Type::kLinear;
      scaling.factor = it->value("factor", 1.0);
    } else if (type != "default") {
      return Unsupported(absl::StrCat("rope scaling '", type, "' in ", origin));
    }
  }
  if (auto s2 = config.Validate(); !s2.ok()) return s2;
  return config;
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfigFromHfJson(const std::string& json_text,
                                                  const std::string& origin) {
  // nlohmann's value()/get() throw on a field of the wrong JSON type.
  try {
    return ParseHfConfig(json_text, origin);
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(origin, ": unexpected JSON value: ", e.what()));
  }
}

std::vector<float> RopeInverseFrequencies(
    const ModelConfig& config, const std::vector<float>& freq_factors) {
  const int half = config.rotary_dim / 2;
  std::vector<float> inv_freq(half);
  const RopeScaling& scaling = config.rope_scaling;
  for (int i = 0; i < half; ++i) {
    // HF: 1 / base ** (arange(0, dim, 2) / dim), in fp32.
    const float exponent = static_cast<float>(2 * i) /
                           static_cast<float>(config.rotary_dim);
    float freq = 1.0f / std::pow(static_cast<float>(config.rope_theta),
                                 exponent);
    if (scaling.type == RopeScaling::Type::kLinear) {
      freq /= static_cast<float>(scaling.factor);
    } else if (scaling.type == RopeScaling::Type::kLlama3) {
      // Long wavelengths are slowed by `factor`, short ones kept, and the
      // band between is interpolated (HF's _compute_llama3_parameters).
      const double old_len = scaling.original_max_position_embeddings;
      const double low_freq_wavelen = old_len / scaling.low_freq_factor;
      const double high_freq_wavelen = old_len / scaling.high_freq_factor;
      const double wavelen = 2 * M_PI / freq;
      if (wavelen > low_freq_wavelen) {
        freq = static_cast<float>(freq / scaling.factor);
      } else if (wavelen >= high_freq_wavelen) {
        const double smooth = (old_len / wavelen - scaling.low_freq_factor) /
                              (scaling.high_freq_factor - scaling.low_freq_factor);
        freq = static_cast<float>((1 - smooth) * freq / scaling.factor +
                                  smooth * freq);
      }
    }
    if (i < static_cast<int>(freq_factors.size())) freq /= freq_factors[i];
    inv_freq[i] = freq;
  }
  return inv_freq;
}

}  // namespace weft
