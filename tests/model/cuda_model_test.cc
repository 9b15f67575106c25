// The whole forward pass on CUDA (bf16 weights and KV, fp32 activations)
// against the fp32 CPU reference backend:
//   SyntheticLlama   a tiny Llama with random bf16-exact weights, written by
//                    the test as a safetensors directory (head_dim 64, GQA
//                    2:1, a 70-token prompt that crosses the prefill tile and
//                    KV block boundaries, then 12 decode steps): every
//                    logit within atol 5e-2 + rtol 5e-2 of the CPU's.
//                    Needs no model file.
//   DefaultModel     SmolLM2-135M-Instruct Q4_1 on the golden prompts
//                    (tests/fixtures/golden): greedy tokens equal to the
//                    CPU's until a step whose CPU top-2 logit gap is below
//                    0.1 (bf16 rounding may flip such a step), and every
//                    logit of the compared steps within atol 0.3 + rtol 0.03
//                    (logits of this model reach ±30).
// Both skip without a GPU; DefaultModel also without the model file.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sequence_runner.h"
#include "tests/kernels/cuda_test_util.h"

namespace weft {
namespace {

#ifdef WEFT_HAVE_CUDA

struct Comparison {
  double worst = 0;
  int compared_steps = 0;
};

// Max |a - b| - rtol·|b| style check, reporting the worst absolute error.
void ExpectLogitsNear(absl::Span<const float> gpu, absl::Span<const float> cpu,
                      double atol, double rtol, Comparison* c,
                      const std::string& where) {
  ASSERT_EQ(gpu.size(), cpu.size());
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double diff = std::fabs(double(gpu[i]) - cpu[i]);
    c->worst = std::max(c->worst, diff);
    ASSERT_LE(diff, atol + rtol * std::fabs(cpu[i]))
        << where << " logit " << i << ": gpu " << gpu[i] << " cpu " << cpu[i];
  }
}

int32_t Argmax(absl::Span<const float> v) {
  return static_cast<int32_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

double TopTwoGap(absl::Span<const float> v) {
  float first = -INFINITY, second = -INFINITY;
  for (float x : v) {
    if (x > first) {
      second = first;
      first = x;
    } else if (x > second) {
      second = x;
    }
  }
  return double(first) - second;
}

// Writes a random tiny Llama as a Hugging Face directory: config.json,
// model.safetensors (F32 values that bf16 represents exactly) and the
// tiny_llama fixture's tokenizer.
std::string WriteSyntheticLlama() {
  const std::string dir = testing::TempDir() + "/weft_synthetic_llama";
  std::filesystem::create_directories(dir);
  const std::string fixture = test::SourceDir() + "/tests/fixtures/tiny_llama/";
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

// A CPU reference model and a CUDA model over the same files.
struct ModelPair {
  std::unique_ptr<ModelFiles> files;
  CpuBackend cpu;
  std::unique_ptr<CudaBackend> gpu;
  std::unique_ptr<LlamaModel> cpu_model, gpu_model;
};

void LoadPair(const std::string& path, ModelPair* pair) {
  auto files = ModelFiles::Open(path);
  ASSERT_TRUE(files.ok()) << files.status();
  pair->files = *std::move(files);
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 256;
  plan.num_kv_blocks = 64;
  CudaBackendConfig config;
  config.max_num_tokens = plan.max_num_tokens;
  config.max_num_seqs = 4;
  pair->gpu = test::MakeCudaOrNull(config);
  ASSERT_NE(pair->gpu, nullptr);
  auto cpu_model = LlamaModel::Create(*pair->files, &pair->cpu, plan);
  ASSERT_TRUE(cpu_model.ok()) << cpu_model.status();
  pair->cpu_model = *std::move(cpu_model);
  auto gpu_model = LlamaModel::Create(*pair->files, pair->gpu.get(), plan);
  ASSERT_TRUE(gpu_model.ok()) << gpu_model.status();
  pair->gpu_model = *std::move(gpu_model);
}

TEST(CudaModelTest, SyntheticLlamaLogitsMatchCpu) {
  if (!CudaDeviceAvailable()) GTEST_SKIP() << test::kNoGpu;
  ModelPair pair;
  ASSERT_NO_FATAL_FAILURE(LoadPair(WriteSyntheticLlama(), &pair));
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> id(3, 468);
  std::vector<int32_t> prompt(70);
  for (int32_t& t : prompt) t = id(rng);
  SequenceRunner cpu(pair.cpu_model.get()), gpu(pair.gpu_model.get());
  auto want = cpu.AppendAllLogits(prompt);
  auto got = gpu.AppendAllLogits(prompt);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(got.ok()) << got.status();
  Comparison c;
  ExpectLogitsNear(*got, *want, 5e-2, 5e-2, &c, "prompt");
  for (int step = 0; step < 12; ++step) {
    const int32_t token = Argmax(want->subspan(want->size() - 469));
    want = cpu.Append({&token, 1});
    got = gpu.Append({&token, 1});
    ASSERT_TRUE(want.ok() && got.ok());
    ExpectLogitsNear(*got, *want, 5e-2, 5e-2, &c, "step " + std::to_string(step));
  }
  RecordProperty("worst_logit_error", std::to_string(c.worst));
  std::printf("synthetic llama: worst logit error %.3e\n", c.worst);
}

const nlohmann::json& Golden() {
  static const nlohmann::json* golden = [] {
    std::ifstream in(test::SourceDir() +
                     "/tests/fixtures/golden/smollm2_q4_1.json");
    std::stringstream text;
    text << in.rdbuf();
    return new nlohmann::json(nlohmann::json::parse(text.str()));
  }();
  return *golden;
}

TEST(CudaModelTest, DefaultModelGreedyTokensMatchCpuOnGoldenPrompts) {
  if (!CudaDeviceAvailable()) GTEST_SKIP() << test::kNoGpu;
  const std::string path = test::ModelDir() +
                           "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(path).good()) {
    GTEST_SKIP() << "default model not found at " << path
                 << " (run tools/fetch_model.sh)";
  }
  constexpr double kMinGap = 0.1;
  constexpr int kMaxSteps = 24;
  ModelPair pair;
  ASSERT_NO_FATAL_FAILURE(LoadPair(path, &pair));
  Comparison total;
  for (const auto& prompt : Golden()["prompts"]) {
    const std::string name = prompt["name"].get<std::string>();
    SCOPED_TRACE(name);
    const std::vector<int32_t> ids = prompt["prompt_ids"].get<std::vector<int32_t>>();
    SequenceRunner cpu(pair.cpu_model.get()), gpu(pair.gpu_model.get());
    auto want = cpu.Append(ids);
    auto got = gpu.Append(ids);
    ASSERT_TRUE(want.ok() && got.ok());
    Comparison c;
    for (int step = 0; step < kMaxSteps; ++step) {
      if (TopTwoGap(*want) < kMinGap) break;  // bf16 may flip this step
      const int32_t token = Argmax(*want);
      ASSERT_EQ(Argmax(*got), token) << "step " << step;
      ExpectLogitsNear(*got, *want, 0.3, 0.03, &c, "step " + std::to_string(step));
      ++c.compared_steps;
      want = cpu.Append({&token, 1});
      got = gpu.Append({&token, 1});
      ASSERT_TRUE(want.ok() && got.ok());
    }
    std::printf("%s: %d steps compared, worst logit error %.3e\n", name.c_str(),
                c.compared_steps, c.worst);
    total.worst = std::max(total.worst, c.worst);
    total.compared_steps += c.compared_steps;
  }
  EXPECT_GT(total.compared_steps, 0);
  RecordProperty("compared_steps", total.compared_steps);
  RecordProperty("worst_logit_error", std::to_string(total.worst));
}

#else  // !WEFT_HAVE_CUDA

TEST(CudaModelTest, SkippedWithoutCuda) { GTEST_SKIP() << test::kNoGpu; }

#endif  // WEFT_HAVE_CUDA

}  // namespace
}  // namespace weft
