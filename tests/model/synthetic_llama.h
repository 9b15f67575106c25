// A random tiny Llama for end-to-end parity checks that need no model file:
// head_dim 64 (what the CUDA attention kernels support), GQA 2:1, 2 layers,
// bf16-exact F32 weights, the tiny_llama fixture's tokenizer.
#ifndef WEFT_TESTS_MODEL_SYNTHETIC_LLAMA_H_
#define WEFT_TESTS_MODEL_SYNTHETIC_LLAMA_H_

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "kernels/dtype.h"
#include "tests/kernels/cuda_test_util.h"

namespace weft::test {

inline constexpr int kSyntheticVocab = 469;

// Writes a random tiny Llama as a Hugging Face directory: config.json,
// model.safetensors (F32 values that bf16 represents exactly) and the
// tiny_llama fixture's tokenizer.
inline std::string WriteSyntheticLlama() {
  const std::string dir = testing::TempDir() + "/weft_synthetic_llama";
  std::filesystem::create_directories(dir);
  const std::string fixture = SourceDir() + "/tests/fixtures/tiny_llama/";
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"}) {
    std::filesystem::copy_file(fixture + f, dir + "/" + f,
                               std::filesystem::copy_options::overwrite_existing);
  }
  const int vocab = 469, hidden = 256, heads = 4, kv_heads = 2, head_dim = 64;
  const int inter = 384, layers = 2;
  nlohmann::json config = {
      {"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
      {"hidden_size", hidden}, {"intermediate_size", inter},
      {"num_attention_heads", heads}, {"num_key_value_heads", kv_heads},
      {"head_dim", head_dim}, {"num_hidden_layers", layers},
      {"vocab_size", vocab}, {"max_position_embeddings", 512},
      {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0},
      {"tie_word_embeddings", false}, {"bos_token_id", 1},
      {"eos_token_id", 2}, {"hidden_act", "silu"}, {"torch_dtype", "float32"}};
  std::ofstream(dir + "/config.json") << config.dump(2);

  std::mt19937 rng(2024);
  struct Entry {
    std::string name;
    std::vector<int64_t> shape;
    float scale, mean;
  };
  std::vector<Entry> entries = {{"model.embed_tokens.weight", {vocab, hidden}, 1.0f, 0},
                                {"lm_head.weight", {vocab, hidden}, 0.06f, 0},
                                {"model.norm.weight", {hidden}, 0.1f, 1}};
  for (int l = 0; l < layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    entries.push_back({p + "input_layernorm.weight", {hidden}, 0.1f, 1});
    entries.push_back({p + "post_attention_layernorm.weight", {hidden}, 0.1f, 1});
    entries.push_back({p + "self_attn.q_proj.weight", {heads * head_dim, hidden}, 0.08f, 0});
    entries.push_back({p + "self_attn.k_proj.weight", {kv_heads * head_dim, hidden}, 0.08f, 0});
    entries.push_back({p + "self_attn.v_proj.weight", {kv_heads * head_dim, hidden}, 0.06f, 0});
    entries.push_back({p + "self_attn.o_proj.weight", {hidden, heads * head_dim}, 0.06f, 0});
    entries.push_back({p + "mlp.gate_proj.weight", {inter, hidden}, 0.06f, 0});
    entries.push_back({p + "mlp.up_proj.weight", {inter, hidden}, 0.06f, 0});
    entries.push_back({p + "mlp.down_proj.weight", {hidden, inter}, 0.05f, 0});
  }
  nlohmann::json header = {{"__metadata__", {{"format", "pt"}}}};
  std::string data;
  for (const Entry& e : entries) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    std::normal_distribution<float> dist(e.mean, e.scale);
    std::vector<float> values(n);
    for (float& v : values) v = Bf16ToFloat(FloatToBf16(dist(rng)));
    header[e.name] = {{"dtype", "F32"},
                      {"shape", e.shape},
                      {"data_offsets", {data.size(), data.size() + n * 4}}};
    data.append(reinterpret_cast<const char*>(values.data()), n * 4);
  }
  std::string header_text = header.dump();
  while (header_text.size() % 8 != 0) header_text += ' ';
  const uint64_t header_len = header_text.size();
  std::ofstream out(dir + "/model.safetensors", std::ios::binary);
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out << header_text << data;
  return dir;
}

}  // namespace weft::test

#endif  // WEFT_TESTS_MODEL_SYNTHETIC_LLAMA_H_
