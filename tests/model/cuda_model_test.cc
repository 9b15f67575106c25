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
//                    logit of the compared steps within atol 0.75 + rtol
//                    0.03 (logits reach ±30; tests/model/bf16_rounding_test
//                    emulates the GPU's roundings on the CPU: worst 0.42).
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
#include "tests/model/greedy_compare.h"
#include "tests/model/synthetic_llama.h"

namespace weft {
namespace {

using test::Argmax;
using test::kBf16LogitAtol;
using test::kBf16LogitRtol;
using test::kBf16MinTopTwoGap;
using test::TopTwoGap;

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
  ASSERT_NO_FATAL_FAILURE(LoadPair(test::WriteSyntheticLlama(), &pair));
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
    const int32_t token =
        Argmax(want->subspan(want->size() - test::kSyntheticVocab));
    want = cpu.Append({&token, 1});
    got = gpu.Append({&token, 1});
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    ExpectLogitsNear(*got, *want, 5e-2, 5e-2, &c, "step " + std::to_string(step));
  }
  RecordProperty("worst_logit_error", std::to_string(c.worst));
  std::printf("synthetic llama: worst logit error %.3e\n", c.worst);
}

// Two CUDA models of the synthetic Llama on backends of the same `config`
// (plan: 128 tokens, 16 logits rows, 32 KV blocks of 16), one running
// every step eagerly and one with decode graphs captured for up to 16
// sequences (`report` gets the capture's line).
struct GraphPair {
  std::unique_ptr<ModelFiles> files;
  std::unique_ptr<CudaBackend> eager_backend, graph_backend;
  std::unique_ptr<LlamaModel> eager, graphed;
};

void MakeGraphPair(CudaBackendConfig config, GraphPair* pair, std::string* report) {
  auto files = ModelFiles::Open(test::WriteSyntheticLlama());
  ASSERT_TRUE(files.ok()) << files.status();
  pair->files = *std::move(files);
  ModelPlan plan;
  plan.max_num_tokens = 128;
  plan.max_num_logits = 16;
  plan.num_kv_blocks = 32;
  config.max_num_tokens = plan.max_num_tokens;
  config.max_num_seqs = 16;
  pair->eager_backend = test::MakeCudaOrNull(config);
  pair->graph_backend = test::MakeCudaOrNull(config);
  ASSERT_TRUE(pair->eager_backend != nullptr && pair->graph_backend != nullptr);
  auto eager = LlamaModel::Create(*pair->files, pair->eager_backend.get(), plan);
  auto graphed = LlamaModel::Create(*pair->files, pair->graph_backend.get(), plan);
  ASSERT_TRUE(eager.ok() && graphed.ok()) << eager.status() << " " << graphed.status();
  pair->eager = *std::move(eager);
  pair->graphed = *std::move(graphed);
  absl::Status captured = pair->graphed->CaptureDecodeGraphs(16, report);
  ASSERT_TRUE(captured.ok()) << captured;
}

// CUDA graphs: decode steps replayed from graphs give exactly the logits
// of the same steps run eagerly. Both models use weft's own GEMMs, whose
// results for a row do not depend on how many rows run with it, and a
// replayed decode attention takes the most splits (the split variant, used
// here: 16-token split chunks), which a token's result does not depend on
// either; so the comparison is exact.
TEST(CudaModelTest, DecodeGraphsReplayTheEagerStepsExactly) {
  if (!CudaDeviceAvailable()) GTEST_SKIP() << test::kNoGpu;
  CudaBackendConfig config;
  config.gemm = GemmPolicy::kOwn;
  // Contexts of 38-57 tokens: split-KV (and so the split graph variant)
  // from the first decode step on.
  config.split_chunk_tokens = 16;
  GraphPair pair;
  std::string report;
  ASSERT_NO_FATAL_FAILURE(MakeGraphPair(config, &pair, &report));
  LlamaModel* eager = pair.eager.get();
  LlamaModel* graphed = pair.graphed.get();
  EXPECT_EQ(graphed->decode_graph_buckets(),
            (std::vector<int>{1, 2, 4, 8, 16}));
  EXPECT_NE(report.find("decode graphs"), std::string::npos) << report;

  std::mt19937 rng(6);
  std::uniform_int_distribution<int32_t> id(3, 468);
  std::vector<int32_t> prompt(37);
  for (int32_t& t : prompt) t = id(rng);
  SequenceRunner a(eager), b(graphed);
  auto la = a.AppendAllLogits(prompt);
  auto lb = b.AppendAllLogits(prompt);
  ASSERT_TRUE(la.ok() && lb.ok()) << la.status() << " " << lb.status();
  for (int step = 0; step < 20; ++step) {
    const int32_t token =
        Argmax(la->subspan(la->size() - test::kSyntheticVocab));
    la = a.Append({&token, 1});
    lb = b.Append({&token, 1});
    ASSERT_TRUE(la.ok() && lb.ok()) << la.status() << " " << lb.status();
    ASSERT_EQ(std::vector<float>(la->begin(), la->end()),
              std::vector<float>(lb->begin(), lb->end()))
        << "decode step " << step;
  }
  // Every decode step of the graphed model was a replay (else the test
  // compared eager with eager).
  EXPECT_EQ(graphed->graph_replays(), 20);
  EXPECT_EQ(eager->graph_replays(), 0);
}

// The padded path of the decode graphs: 3 sequences of different contexts
// decode together, padded to the bucket of 4 (a dummy sequence on the
// reserved block), against the same steps run eagerly. Both models use
// GemmPolicy::kInvariant (a row's sums do not depend on the row count, so
// 3 rows eagerly and 4 in the graph give the same bits) and either the
// decode attention kernel or, with prefill_min_query_len 1 (what --gemm
// invariant sets), the prefill kernel for every token; neither's per-token
// result depends on the batch.
class CudaPaddedGraphTest : public ::testing::TestWithParam<int> {};

TEST_P(CudaPaddedGraphTest, PaddedMultiSequenceGraphsReplayTheEagerStepsExactly) {
  if (!CudaDeviceAvailable()) GTEST_SKIP() << test::kNoGpu;
  CudaBackendConfig config;
  config.gemm = GemmPolicy::kInvariant;
  config.prefill_min_query_len = GetParam();
  config.split_chunk_tokens = 16;  // contexts of 20-60: split from the start
  GraphPair pair;
  ASSERT_NO_FATAL_FAILURE(MakeGraphPair(config, &pair, nullptr));
  LlamaModel* eager = pair.eager.get();
  LlamaModel* graphed = pair.graphed.get();

  const int block_size = eager->plan().block_size;
  const int vocab = test::kSyntheticVocab;
  std::mt19937 rng(8);
  std::uniform_int_distribution<int32_t> id(3, vocab - 1);
  struct Seq {
    std::vector<int32_t> blocks;
    int length = 0;
    int32_t next = 0;
  };
  std::vector<Seq> seqs(3);
  const int prompt_lengths[3] = {37, 20, 50};
  for (int s = 0; s < 3; ++s) {
    for (int b = 0; b < 8; ++b) seqs[s].blocks.push_back(8 * s + b);
    std::vector<int32_t> prompt(prompt_lengths[s]);
    for (int32_t& t : prompt) t = id(rng);
    const BatchMetadata batch =
        SingleSequenceBatch(prompt, 0, seqs[s].blocks, block_size, false);
    std::vector<float> la, lb;
    ASSERT_TRUE(eager->Forward(batch, &la).ok());
    ASSERT_TRUE(graphed->Forward(batch, &lb).ok());
    ASSERT_EQ(la, lb) << "prompt of sequence " << s;
    seqs[s].length = prompt_lengths[s];
    seqs[s].next = Argmax(la);
  }
  for (int step = 0; step < 10; ++step) {
    BatchMetadata batch;
    batch.query_indptr = {0};
    batch.kv_indptr = {0};
    for (const Seq& seq : seqs) {  // one decode token each
      const BatchMetadata one = SingleSequenceBatch(
          {&seq.next, 1}, seq.length, seq.blocks, block_size, false);
      const int offset = batch.num_tokens();
      batch.token_ids.push_back(seq.next);
      batch.positions.push_back(one.positions[0]);
      batch.slot_mapping.push_back(one.slot_mapping[0]);
      batch.query_indptr.push_back(offset + 1);
      batch.kv_indices.insert(batch.kv_indices.end(), one.kv_indices.begin(),
                              one.kv_indices.end());
      batch.kv_indptr.push_back(static_cast<int>(batch.kv_indices.size()));
      batch.kv_last_block_len.push_back(one.kv_last_block_len[0]);
      batch.logits_rows.push_back(offset);
    }
    std::vector<float> la, lb;
    ASSERT_TRUE(eager->Forward(batch, &la).ok());
    ASSERT_TRUE(graphed->Forward(batch, &lb).ok());
    ASSERT_EQ(la.size(), size_t{3} * vocab);
    ASSERT_EQ(la, lb) << "decode step " << step;
    for (int s = 0; s < 3; ++s) {
      ++seqs[s].length;
      seqs[s].next = Argmax(absl::MakeConstSpan(la).subspan(s * vocab, vocab));
    }
  }
  EXPECT_EQ(graphed->graph_replays(), 10);
  EXPECT_EQ(eager->graph_replays(), 0);
}

INSTANTIATE_TEST_SUITE_P(PrefillMinQueryLen, CudaPaddedGraphTest,
                         ::testing::Values(2, 1));

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
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    Comparison c;
    for (int step = 0; step < kMaxSteps; ++step) {
      const float gap = TopTwoGap(*want);
      if (gap < kBf16MinTopTwoGap) break;  // bf16 may flip this step
      const int32_t token = Argmax(*want);
      const int32_t gpu_token = Argmax(*got);
      // What a GPU session needs to tell a bf16 near-tie from a bug.
      ASSERT_EQ(gpu_token, token)
          << "step " << step << ": CPU top-2 gap " << gap << "; tokens "
          << token << " and " << gpu_token << ": CPU logits " << (*want)[token]
          << " and " << (*want)[gpu_token] << ", GPU logits " << (*got)[token]
          << " and " << (*got)[gpu_token];
      ExpectLogitsNear(*got, *want, kBf16LogitAtol, kBf16LogitRtol, &c,
                       "step " + std::to_string(step));
      ++c.compared_steps;
      want = cpu.Append({&token, 1});
      got = gpu.Append({&token, 1});
      ASSERT_TRUE(want.ok()) << want.status();
      ASSERT_TRUE(got.ok()) << got.status();
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
