#include "runtime/model/synthetic_model.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/dtype.h"
#include "nlohmann/json.hpp"

namespace weft {
namespace {

struct Spec {
  const char* name;
  ModelConfig config;
};

ModelConfig Llama(int vocab, int hidden, int inter, int layers, int heads,
                  int kv_heads, int head_dim, int max_pos, double theta,
                  double eps) {
  ModelConfig c;
  c.architecture = "llama";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = inter;
  c.num_layers = layers;
  c.num_q_heads = heads;
  c.num_kv_heads = kv_heads;
  c.head_dim = head_dim;
  c.rotary_dim = head_dim;
  c.max_position_embeddings = max_pos;
  c.rope_theta = theta;
  c.rms_norm_eps = eps;
  c.rope_style = RopeStyle::kNeox;
  return c;
}

// The published configs (config.json) of each model, shapes only.
std::vector<Spec> Specs() {
  std::vector<Spec> specs;
  ModelConfig llama3 =
      Llama(128256, 4096, 14336, 32, 32, 8, 128, 131072, 500000.0, 1e-5);
  llama3.rope_scaling.type = RopeScaling::Type::kLlama3;
  llama3.rope_scaling.factor = 8.0;
  llama3.rope_scaling.low_freq_factor = 1.0;
  llama3.rope_scaling.high_freq_factor = 4.0;
  llama3.rope_scaling.original_max_position_embeddings = 8192;
  specs.push_back({"llama3-8b", llama3});
  specs.push_back({"llama2-7b", Llama(32000, 4096, 11008, 32, 32, 32, 128,
                                      4096, 10000.0, 1e-5)});
  ModelConfig qwen =
      Llama(152064, 3584, 18944, 28, 28, 4, 128, 32768, 1000000.0, 1e-6);
  qwen.architecture = "qwen2";
  qwen.attention_bias = true;
  specs.push_back({"qwen2.5-7b", qwen});
  ModelConfig smollm =
      Llama(49152, 576, 1536, 30, 9, 3, 64, 8192, 100000.0, 1e-5);
  smollm.tie_word_embeddings = true;
  specs.push_back({"smollm2-135m", smollm});
  return specs;
}

// splitmix64: a fast, well-mixed stream per tensor.
uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// `count` bf16 values uniform in [center - scale, center + scale).
void Fill(uint16_t* out, int64_t count, float center, float scale,
          uint64_t seed) {
  uint64_t state = seed;
  for (int64_t i = 0; i < count; i += 4) {
    uint64_t bits = SplitMix(state);
    for (int64_t j = i; j < std::min(count, i + 4); ++j, bits >>= 16) {
      const float u = static_cast<float>(bits & 0xFFFF) / 32768.0f - 1.0f;
      out[j] = FloatToBf16(center + scale * u);
    }
  }
}

// GPT-2's byte ↔ printable character map (the byte-level alphabet).
std::string ByteLevelChar(int byte) {
  auto printable = [](int b) {
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
           (b >= 0xAE && b <= 0xFF);
  };
  int code = byte;
  if (!printable(byte)) {
    int n = 0;
    for (int b = 0; b < byte; ++b) n += printable(b) ? 0 : 1;
    code = 256 + n;
  }
  std::string utf8;
  if (code < 0x80) {
    utf8 += static_cast<char>(code);
  } else {
    utf8 += static_cast<char>(0xC0 | (code >> 6));
    utf8 += static_cast<char>(0x80 | (code & 0x3F));
  }
  return utf8;
}

}  // namespace

bool IsSyntheticModelPath(absl::string_view path) {
  return absl::StartsWith(path, kSyntheticPrefix);
}

std::vector<std::string> SyntheticModelNames() {
  std::vector<std::string> names;
  for (const Spec& s : Specs()) names.push_back(s.name);
  return names;
}

absl::StatusOr<ModelConfig> SyntheticModelConfig(absl::string_view name) {
  for (const Spec& s : Specs()) {
    if (name == s.name) {
      if (absl::Status v = s.config.Validate(); !v.ok()) return v;
      return s.config;
    }
  }
  return absl::NotFoundError(absl::StrCat(
      "no synthetic model '", name, "'; known: ",
      absl::StrJoin(SyntheticModelNames(), ", ")));
}

absl::StatusOr<std::unique_ptr<SyntheticWeights>> SyntheticWeights::Create(
    const ModelConfig& c, uint64_t seed) {
  std::unique_ptr<SyntheticWeights> w(new SyntheticWeights());
  struct Job {
    uint16_t* data;
    int64_t count;
    float center, scale;
    uint64_t seed;
  };
  std::vector<Job> jobs;
  auto add = [&](const std::string& name, std::vector<int64_t> shape,
                 float center, float scale) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    w->buffers_.push_back(std::make_unique<uint16_t[]>(count));
    HostTensor t;
    t.name = name;
    t.dtype = DType::kBF16;
    t.shape = std::move(shape);
    t.data = reinterpret_cast<const uint8_t*>(w->buffers_.back().get());
    t.num_bytes = static_cast<size_t>(count) * 2;
    w->num_bytes_ += count * 2;
    jobs.push_back({w->buffers_.back().get(), count, center, scale,
                    seed * 1000003 + jobs.size() + 1});
    w->tensors_[name] = std::move(t);
  };
  // Uniform in [-a, a) has standard deviation a/sqrt(3): a matrix of
  // `cols` columns gets a = sqrt(3 / cols), so it keeps a vector's RMS.
  auto matrix = [&](const std::string& name, int64_t rows, int64_t cols) {
    add(name, {rows, cols}, 0.0f, std::sqrt(3.0f / cols));
  };
  const int64_t h = c.hidden_size, q = int64_t{c.num_q_heads} * c.head_dim,
                kv = int64_t{c.num_kv_heads} * c.head_dim;
  add("model.embed_tokens.weight", {c.vocab_size, h}, 0.0f, 1.0f);
  add("model.norm.weight", {h}, 1.0f, 0.0f);
  if (!c.tie_word_embeddings) matrix("lm_head.weight", c.vocab_size, h);
  for (int i = 0; i < c.num_layers; ++i) {
    const std::string p = absl::StrCat("model.layers.", i, ".");
    add(p + "input_layernorm.weight", {h}, 1.0f, 0.0f);
    add(p + "post_attention_layernorm.weight", {h}, 1.0f, 0.0f);
    matrix(p + "self_attn.q_proj.weight", q, h);
    matrix(p + "self_attn.k_proj.weight", kv, h);
    matrix(p + "self_attn.v_proj.weight", kv, h);
    matrix(p + "self_attn.o_proj.weight", h, q);
    matrix(p + "mlp.gate_proj.weight", c.intermediate_size, h);
    matrix(p + "mlp.up_proj.weight", c.intermediate_size, h);
    matrix(p + "mlp.down_proj.weight", h, c.intermediate_size);
    if (c.attention_bias) {
      add(p + "self_attn.q_proj.bias", {q}, 0.0f, 0.02f);
      add(p + "self_attn.k_proj.bias", {kv}, 0.0f, 0.02f);
      add(p + "self_attn.v_proj.bias", {kv}, 0.0f, 0.02f);
    }
  }
  // Every core takes tensors off one counter; the values depend only on
  // each tensor's seed, not on which thread filled it.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      Fill(jobs[j].data, jobs[j].count, jobs[j].center, jobs[j].scale,
           jobs[j].seed);
    }
  };
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return w;
}

const HostTensor* SyntheticWeights::FindTensor(absl::string_view name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

std::string SyntheticTokenizerJson(int vocab_size) {
  using json = nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[ByteLevelChar(b)] = b;
  for (int id = 256; id < vocab_size - 1; ++id) {
    vocab[absl::StrCat("<t", id, ">")] = id;
  }
  const std::string eos = "<|endoftext|>";
  vocab[eos] = vocab_size - 1;
  json byte_level = {{"type", "ByteLevel"},
                     {"add_prefix_space", false},
                     {"trim_offsets", true},
                     {"use_regex", true}};
  json root = {
      {"version", "1.0"},
      {"added_tokens",
       json::array({{{"id", vocab_size - 1},
                     {"content", eos},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", false},
                     {"special", true}}})},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"vocab", vocab},
        {"merges", json::array()}}}};
  return root.dump();
}

std::string SyntheticTokenizerConfigJson() {
  return R"({"eos_token": "<|endoftext|>", "bos_token": null})";
}

}  // namespace weft
