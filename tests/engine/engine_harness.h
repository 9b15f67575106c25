// A model, a CPU backend and an engine over them, driven step by step on the
// test's thread, with helpers to run requests to completion.
#ifndef WEFT_TESTS_ENGINE_ENGINE_HARNESS_H_
#define WEFT_TESTS_ENGINE_ENGINE_HARNESS_H_

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_cpu_backend.h"
#include "kernels/factory/backend_factory.h"
#include "runtime/engine.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "tests/test_util.h"

namespace weft::test {

// Under ModelDir() (tests/test_util.h: WEFT_MODEL_DIR may override it).
inline std::string DefaultModelPath() {
  return ModelDir() + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}
inline bool HaveDefaultModel() {
  return std::ifstream(DefaultModelPath()).good();
}
inline std::string TinyModelPath(const std::string& name) {
  return std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/" + name;
}

// What one request produced.
struct Outcome {
  std::vector<std::vector<int32_t>> tokens;  // per sample index
  std::vector<std::string> text;             // per sample index
  std::optional<Finished> finished;
  std::optional<absl::Status> error;
  int num_terminal_events = 0;
};

// Which kernels a harness runs: the fp32 CPU reference, the fast CPU ones
// weft-server serves with, or the CUDA backend (tests skip it without a GPU:
// see CudaUsable()).
enum class Kernels { kReference, kFast, kCuda };

inline bool CudaUsable() { return CudaDeviceAvailable(); }

class EngineHarness {
 public:
  // `plan` sizes the model's KV cache and scratch; `config` the engine.
  EngineHarness(const std::string& model_path, const ModelPlan& plan,
                EngineConfig config, Kernels kernels = Kernels::kReference) {
    BackendOptions options;
    options.device = kernels == Kernels::kCuda ? DeviceKind::kCuda : DeviceKind::kCpu;
    options.cpu.reference = kernels == Kernels::kReference;
    options.cpu.num_threads = 2;
    options.cuda.max_num_tokens = plan.max_num_tokens;
    options.cuda.max_num_seqs = config.scheduler.max_num_seqs;
    // The batch-invariant CUDA configuration (--gemm invariant): the tests
    // compare a request's tokens in a batch with its tokens alone, which
    // cuBLAS (kernels chosen by row count) and the decode kernel for
    // one-token chunks do not promise bit for bit (docs/cuda.md).
    options.cuda.gemm = GemmPolicy::kInvariant;
    options.cuda.prefill_min_query_len = 1;
    auto backend = MakeBackend(options);
    EXPECT_TRUE(backend.ok()) << backend.status();
    if (!backend.ok()) return;
    backend_ = *std::move(backend);
    auto files = ModelFiles::Open(model_path);
    EXPECT_TRUE(files.ok()) << files.status();
    if (!files.ok()) return;
    files_ = *std::move(files);
    auto model = LlamaModel::Create(*files_, backend_.get(), plan);
    EXPECT_TRUE(model.ok()) << model.status();
    if (!model.ok()) return;
    model_ = *std::move(model);
    auto engine = Engine::Create(model_.get(), backend_.get(), &files_->tokenizer(),
                                 config);
    EXPECT_TRUE(engine.ok()) << engine.status();
    if (engine.ok()) engine_ = *std::move(engine);
  }

  bool ok() const { return engine_ != nullptr; }
  Engine& engine() { return *engine_; }
  const Tokenizer& tokenizer() const { return files_->tokenizer(); }

  std::vector<int32_t> Encode(const std::string& text) const {
    return files_->tokenizer().Encode(text, EncodeOptions{});
  }

  // Submits `request`; its events are collected until Collect().
  absl::Status Submit(Request request) {
    auto sink = std::make_shared<StreamBuffer>();
    const std::string id = request.id;
    absl::Status status = engine_->Submit(std::move(request), sink);
    if (status.ok()) sinks_[id] = sink;
    return status;
  }

  // Steps until no work is left (bounded).
  void RunUntilIdle(int max_steps = 100000) {
    for (int i = 0; i < max_steps && engine_->Step(); ++i) {
    }
  }

  // Drains every event of request `id` so far into its Outcome.
  Outcome& Collect(const std::string& id) {
    Outcome& out = outcomes_[id];
    auto it = sinks_.find(id);
    if (it == sinks_.end()) return out;
    while (auto event = it->second->Next(absl::ZeroDuration())) {
      if (Delta* d = std::get_if<Delta>(&*event)) {
        if (static_cast<int>(out.tokens.size()) <= d->index) {
          out.tokens.resize(d->index + 1);
          out.text.resize(d->index + 1);
        }
        out.tokens[d->index].insert(out.tokens[d->index].end(),
                                    d->token_ids.begin(), d->token_ids.end());
        out.text[d->index] += d->text;
      } else if (Finished* f = std::get_if<Finished>(&*event)) {
        out.finished = *f;
        ++out.num_terminal_events;
      } else {
        out.error = std::get<absl::Status>(*event);
        ++out.num_terminal_events;
      }
    }
    return out;
  }

  // Runs `requests` together to completion.
  std::map<std::string, Outcome> RunTogether(std::vector<Request> requests) {
    for (Request& r : requests) EXPECT_TRUE(Submit(r).ok()) << r.id;
    RunUntilIdle();
    std::map<std::string, Outcome> out;
    for (const Request& r : requests) out[r.id] = Collect(r.id);
    return out;
  }

 private:
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<ModelFiles> files_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<Engine> engine_;
  std::map<std::string, std::shared_ptr<StreamBuffer>> sinks_;
  std::map<std::string, Outcome> outcomes_;
};

// The default-model engine tests' model plan (512 tokens and 64 logit
// rows a step) with `num_kv_blocks` KV blocks, and their engine
// configuration (up to 32 sequences).
inline ModelPlan DefaultModelPlan(int num_kv_blocks) {
  ModelPlan plan;
  plan.max_num_tokens = 512;
  plan.max_num_logits = 64;
  plan.num_kv_blocks = num_kv_blocks;
  return plan;
}

inline EngineConfig DefaultModelConfig(int max_num_batched_tokens = 512) {
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = max_num_batched_tokens;
  config.scheduler.max_num_logit_rows = 64;
  config.scheduler.max_num_seqs = 32;
  return config;
}

// The tiny fixture's model plan (256 tokens and 64 logit rows a step,
// blocks of 4 tokens) with `num_kv_blocks` KV blocks, and an engine
// configuration for it.
inline ModelPlan TinyPlan(int num_kv_blocks = 64) {
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 64;
  plan.num_kv_blocks = num_kv_blocks;
  plan.block_size = 4;
  return plan;
}

inline EngineConfig TinyConfig(int max_num_batched_tokens = 256, int max_num_seqs = 32) {
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = max_num_batched_tokens;
  config.scheduler.max_num_seqs = max_num_seqs;
  config.scheduler.max_num_logit_rows = 64;
  return config;
}

inline Request GreedyRequest(const std::string& id,
                             std::vector<int32_t> prompt, int max_tokens) {
  Request r;
  r.id = id;
  r.prompt_ids = std::move(prompt);
  r.sampling.temperature = 0.0f;
  r.stopping.max_tokens = max_tokens;
  r.stopping.ignore_eos = true;
  return r;
}

}  // namespace weft::test

#endif  // WEFT_TESTS_ENGINE_ENGINE_HARNESS_H_
