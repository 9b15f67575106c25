// weft-bench-cpu: the CPU forward pass measured the way llama.cpp's
// llama-bench and llama-batched-bench measure theirs, so the two can be put
// side by side (bench/cpu_vs_llamacpp/run.py does).
//
//   pp<N>      one LlamaModel::Forward of N random prompt tokens from an empty
//              cache, logits of the last token only (llama-bench's pp512:
//              n_batch 2048 / n_ubatch 512, so 512 tokens are one ubatch;
//              longer prompts run in chunks of --max-num-batched-tokens).
//              Warm-up: one whole pp run. t/s = N / time.
//   tg<N>      N single-token forwards from an empty cache, logits every
//              step, no sampling: each step's token is random (llama-bench's
//              tg128). Warm-up: one single-token forward. t/s = N / time.
//   tg<N>-engine  the serving path: one request (a 1-token prompt, greedy,
//              ignore_eos, max_tokens N) through Engine::Step with sampling,
//              detokenization and events; N forwards of one token, like tg.
//              t/s = N / (submit → finished).
//   batched    for each B in --batch-sizes: B sequences, each a 128-token
//              random prompt (prefilled first, not timed for S_TG), then 128
//              steps of B single-token decodes with logits for every
//              sequence (llama-batched-bench -npp 128 -ntg 128 -npl B, its
//              default "0123 0123" decode pattern). S_TG = B·128 / time of
//              the decode steps; S_PP = B·128 / prefill time. Warm-up: one
//              forward of 16 prompt tokens, as llama-batched-bench does.
//
// Every rep prints one JSON line; the first line describes the run
// (backend, ISA, threads, model bytes read per generated token).
//
//   build-bench/bench/weft-bench-cpu --model models/SmolLM2-135M-Instruct.Q4_1.gguf
//       --threads 2 --tests pp,tg,engine,batched --reps 5
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "kernels/cpu/cpu_backend.h"
#include "kernels/cpu/fast_cpu_backend.h"
#include "runtime/engine.h"
#include "runtime/loader/gguf.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf",
          "a .gguf file or a Hugging Face model directory");
ABSL_FLAG(std::string, backend, "fast",
          "fast (FastCpuBackend) or reference (CpuBackend, one thread)");
ABSL_FLAG(int, threads, 0, "threads of the fast backend; 0: one per physical core");
ABSL_FLAG(std::string, kv_cache_dtype, "auto",
          "KV cache element type: f16, f32, or auto (f16 fast, f32 reference)");
ABSL_FLAG(std::string, tests, "pp,tg,engine,batched",
          "comma-separated: pp, tg, engine, batched");
ABSL_FLAG(int, n_prompt, 512, "prompt tokens of the pp test");
ABSL_FLAG(int, n_gen, 128, "generated tokens of the tg and engine tests");
ABSL_FLAG(std::string, batch_sizes, "1,4,16", "sequences of the batched test");
ABSL_FLAG(bool, force_avx2, false,
          "fast backend: the AVX2 kernels even where AVX-512 is present");
ABSL_FLAG(bool, allow_amx, true,
          "fast backend with AVX-512: AMX-INT8 for batches where the processor "
          "and the OS allow it (false: what AVX-512 processors without AMX, "
          "such as AMD's Zen 4 and 5, run)");
ABSL_FLAG(bool, allow_avx_vnni, true,
          "fast backend without AVX-512 (or with --force_avx2): AVX-VNNI's "
          "quantized matmuls where the processor has AVX-VNNI");
ABSL_FLAG(int64_t, decode_prefetch_bytes, -1,
          "fast backend: how far ahead decode matmuls prefetch each weight "
          "stream, bytes (-1: the backend's choice for this processor)");
ABSL_FLAG(int64_t, decode_l2_prefetch_bytes, -1,
          "fast backend: how far ahead AVX-512's quantized decode matmuls also "
          "prefetch each weight stream into L2, bytes (0: not; -1: the "
          "backend's choice for this processor)");
ABSL_FLAG(int, activation_levels, 2,
          "fast backend: int8 levels of the quantized matmuls' activations, "
          "2 or 1 (llama.cpp's scheme)");
ABSL_FLAG(int, batched_prompt, 128, "prompt tokens per sequence, batched test");
ABSL_FLAG(int, batched_gen, 128, "decode steps, batched test");
ABSL_FLAG(int, reps, 5, "timed repetitions of each test");
ABSL_FLAG(bool, warmup, true, "one untimed warm-up run before each test");
ABSL_FLAG(int, max_num_batched_tokens, 512,
          "tokens in one forward (llama-bench's n_ubatch is 512)");
ABSL_FLAG(uint32_t, seed, 1, "seed of the random tokens");

namespace weft {
namespace {

using Clock = std::chrono::steady_clock;
using Json = nlohmann::json;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void PrintJson(const Json& line) {
  std::printf("%s\n", line.dump().c_str());
  std::fflush(stdout);
}

absl::StatusOr<std::vector<int>> ParseInts(const std::string& text,
                                           const char* flag) {
  std::vector<int> values;
  for (absl::string_view s : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(s, &v) || v < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", flag, ": '", std::string(s), "' is not a positive integer"));
    }
    values.push_back(v);
  }
  if (values.empty()) return absl::InvalidArgumentError(absl::StrCat("--", flag, ": empty"));
  return values;
}

// Bytes of weights one generated token reads: every tensor of the GGUF file
// except the token embedding, of which one row is read, unless the model
// ties it as the output projection (then all of it is). 0 for a Hugging
// Face directory (not computed).
absl::StatusOr<int64_t> WeightBytesPerToken(const ModelFiles& files) {
  if (files.format() != WeightFormat::kGguf) return 0;
  auto gguf = GgufFile::Open(files.path());
  if (!gguf.ok()) return gguf.status();
  const bool tied = (*gguf)->FindTensor("output.weight") == nullptr;
  int64_t bytes = 0;
  for (const HostTensor& t : (*gguf)->tensors()) {
    if (t.name == "token_embd.weight" && !tied) {
      bytes += t.num_bytes / std::max<int64_t>(1, t.shape.empty() ? 1 : t.shape[0]);
    } else {
      bytes += t.num_bytes;
    }
  }
  return bytes;
}

// Builds step metadata directly (no scheduler): sequence s owns KV blocks
// [s * blocks_per_seq, (s + 1) * blocks_per_seq), so every run starts from
// an empty cache by starting again at position 0.
class BatchBuilder {
 public:
  BatchBuilder(int block_size, int blocks_per_seq, int vocab_size, uint32_t seed)
      : block_size_(block_size),
        blocks_per_seq_(blocks_per_seq),
        rng_(seed),
        token_(0, vocab_size - 1) {}

  void Clear() {
    meta_ = BatchMetadata{};
    meta_.query_indptr.push_back(0);
    meta_.kv_indptr.push_back(0);
  }
  // Appends positions [begin, begin + len) of sequence `seq` with random
  // tokens; `logits` asks for the logits of its last token.
  void Add(int seq, int begin, int len, bool logits) {
    for (int p = begin; p < begin + len; ++p) {
      meta_.token_ids.push_back(token_(rng_));
      meta_.positions.push_back(p);
      meta_.slot_mapping.push_back(
          int64_t{seq * blocks_per_seq_ + p / block_size_} * block_size_ + p % block_size_);
    }
    if (logits) meta_.logits_rows.push_back(meta_.num_tokens() - 1);
    meta_.query_indptr.push_back(meta_.num_tokens());
    const int end = begin + len;
    const int num_blocks = (end + block_size_ - 1) / block_size_;
    for (int b = 0; b < num_blocks; ++b) {
      meta_.kv_indices.push_back(seq * blocks_per_seq_ + b);
    }
    meta_.kv_indptr.push_back(static_cast<int>(meta_.kv_indices.size()));
    meta_.kv_last_block_len.push_back(end - (num_blocks - 1) * block_size_);
  }
  const BatchMetadata& batch() const { return meta_; }
  int RandomToken() { return token_(rng_); }

 private:
  int block_size_;
  int blocks_per_seq_;
  std::mt19937 rng_;
  std::uniform_int_distribution<int> token_;
  BatchMetadata meta_;
};

struct Options {
  std::string backend;
  int threads = 1;
  std::string isa;
  int n_prompt = 0;
  int n_gen = 0;
  std::vector<int> batch_sizes;
  int batched_prompt = 0;
  int batched_gen = 0;
  int reps = 0;
  bool warmup = true;
  int max_tokens = 0;
};

class Bench {
 public:
  Bench(const Options& options, const ModelFiles* files, Backend* backend,
        LlamaModel* model, int blocks_per_seq)
      : options_(options),
        files_(files),
        backend_(backend),
        model_(model),
        builder_(model->plan().block_size, blocks_per_seq,
                 model->config().vocab_size, absl::GetFlag(FLAGS_seed)) {}

  Json Line(const std::string& test) const {
    return Json{{"bench", "weft-bench-cpu"}, {"test", test},
                {"backend", options_.backend}, {"isa", options_.isa},
                {"threads", options_.threads}};
  }

  // One sequence's prompt from position 0 in chunks of max_tokens; logits
  // of the last token only.
  absl::Status Prompt(int n) {
    for (int begin = 0; begin < n; begin += options_.max_tokens) {
      const int len = std::min(options_.max_tokens, n - begin);
      builder_.Clear();
      builder_.Add(0, begin, len, begin + len == n);
      if (auto s = model_->Forward(builder_.batch(), &logits_); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  // n single-token steps of one sequence from position 0.
  absl::Status Generate(int n) {
    for (int p = 0; p < n; ++p) {
      builder_.Clear();
      builder_.Add(0, p, 1, true);
      if (auto s = model_->Forward(builder_.batch(), &logits_); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status RunPrompt() {
    const int n = options_.n_prompt;
    if (options_.warmup) {
      if (auto s = Prompt(n); !s.ok()) return s;
    }
    for (int rep = 0; rep < options_.reps; ++rep) {
      const auto start = Clock::now();
      if (auto s = Prompt(n); !s.ok()) return s;
      const double seconds = SecondsSince(start);
      Json line = Line(absl::StrCat("pp", n));
      line.update({{"n_prompt", n}, {"rep", rep}, {"seconds", seconds},
                   {"tokens_per_second", n / seconds}});
      PrintJson(line);
    }
    return absl::OkStatus();
  }

  absl::Status RunGenerate() {
    const int n = options_.n_gen;
    if (options_.warmup) {
      if (auto s = Generate(1); !s.ok()) return s;
    }
    for (int rep = 0; rep < options_.reps; ++rep) {
      const auto start = Clock::now();
      if (auto s = Generate(n); !s.ok()) return s;
      const double seconds = SecondsSince(start);
      Json line = Line(absl::StrCat("tg", n));
      line.update({{"n_gen", n}, {"rep", rep}, {"seconds", seconds},
                   {"tokens_per_second", n / seconds}});
      PrintJson(line);
    }
    return absl::OkStatus();
  }

  // One request through the engine: 1-token prompt, n greedy tokens.
  absl::Status RunEngine() {
    EngineConfig config;
    config.scheduler.max_num_seqs = 1;
    config.scheduler.max_num_batched_tokens = options_.max_tokens;
    config.scheduler.max_num_logit_rows = 1;
    config.scheduler.enable_prefix_caching = false;
    auto engine = Engine::Create(model_, backend_, &files_->tokenizer(), config);
    if (!engine.ok()) return engine.status();
    const int n = options_.n_gen;
    for (int rep = options_.warmup ? -1 : 0; rep < options_.reps; ++rep) {
      Request request;
      request.id = absl::StrCat("engine-", rep);
      request.prompt_ids = {builder_.RandomToken()};
      request.sampling.temperature = 0.0f;
      request.stopping.max_tokens = rep < 0 ? 1 : n;
      request.stopping.ignore_eos = true;
      auto sink = std::make_shared<StreamBuffer>();
      const auto start = Clock::now();
      if (auto s = (*engine)->Submit(std::move(request), sink); !s.ok()) return s;
      while ((*engine)->Step()) {
      }
      const double seconds = SecondsSince(start);
      int completion_tokens = -1;
      while (auto event = sink->Next(absl::ZeroDuration())) {
        if (auto* f = std::get_if<Finished>(&*event)) {
          completion_tokens = f->usage.completion_tokens;
        } else if (auto* e = std::get_if<absl::Status>(&*event)) {
          return *e;
        }
      }
      if (rep < 0) continue;
      if (completion_tokens != n) {
        return absl::InternalError(absl::StrCat("engine: ", completion_tokens,
                                                " tokens generated, ", n, " asked"));
      }
      Json line = Line(absl::StrCat("tg", n, "-engine"));
      line.update({{"n_gen", n}, {"rep", rep}, {"seconds", seconds},
                   {"tokens_per_second", n / seconds}});
      PrintJson(line);
    }
    return absl::OkStatus();
  }

  absl::Status RunBatched() {
    const int pp = options_.batched_prompt;
    const int tg = options_.batched_gen;
    if (options_.warmup) {  // llama-batched-bench: 16 prompt tokens, once
      builder_.Clear();
      builder_.Add(0, 0, std::min(16, options_.max_tokens), false);
      if (auto s = model_->Forward(builder_.batch(), &logits_); !s.ok()) return s;
    }
    for (int rep = 0; rep < options_.reps; ++rep) {
      for (int pl : options_.batch_sizes) {
        // Prefill: whole sequences (or chunks of one) up to max_tokens per
        // forward, logits of each sequence's last token.
        const auto pp_start = Clock::now();
        builder_.Clear();
        int tokens = 0;
        for (int seq = 0; seq < pl; ++seq) {
          for (int begin = 0; begin < pp; begin += options_.max_tokens) {
            const int len = std::min(options_.max_tokens, pp - begin);
            if (tokens + len > options_.max_tokens) {
              if (auto s = model_->Forward(builder_.batch(), &logits_); !s.ok()) return s;
              builder_.Clear();
              tokens = 0;
            }
            builder_.Add(seq, begin, len, begin + len == pp);
            tokens += len;
          }
        }
        if (auto s = model_->Forward(builder_.batch(), &logits_); !s.ok()) return s;
        const double t_pp = SecondsSince(pp_start);

        const auto tg_start = Clock::now();
        for (int i = 0; i < tg; ++i) {
          builder_.Clear();
          for (int seq = 0; seq < pl; ++seq) builder_.Add(seq, pp + i, 1, true);
          if (auto s = model_->Forward(builder_.batch(), &logits_); !s.ok()) return s;
        }
        const double t_tg = SecondsSince(tg_start);
        Json line = Line("batched");
        line.update({{"pp", pp}, {"tg", tg}, {"pl", pl}, {"rep", rep},
                     {"t_pp", t_pp}, {"speed_pp", static_cast<double>(pl) * pp / t_pp},
                     {"t_tg", t_tg}, {"speed_tg", static_cast<double>(pl) * tg / t_tg}});
        PrintJson(line);
      }
    }
    return absl::OkStatus();
  }

 private:
  const Options& options_;
  const ModelFiles* files_;
  Backend* backend_;
  LlamaModel* model_;
  BatchBuilder builder_;
  std::vector<float> logits_;
};

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "weft-bench-cpu: %s\n", status.ToString().c_str());
  return 1;
}

int Main() {
  Options options;
  options.backend = absl::GetFlag(FLAGS_backend);
  options.n_prompt = absl::GetFlag(FLAGS_n_prompt);
  options.n_gen = absl::GetFlag(FLAGS_n_gen);
  options.batched_prompt = absl::GetFlag(FLAGS_batched_prompt);
  options.batched_gen = absl::GetFlag(FLAGS_batched_gen);
  options.reps = absl::GetFlag(FLAGS_reps);
  options.warmup = absl::GetFlag(FLAGS_warmup);
  options.max_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  auto batch_sizes = ParseInts(absl::GetFlag(FLAGS_batch_sizes), "batch-sizes");
  if (!batch_sizes.ok()) return Fail(batch_sizes.status());
  options.batch_sizes = *batch_sizes;
  if (options.n_prompt < 1 || options.n_gen < 1 || options.batched_prompt < 1 ||
      options.batched_gen < 1 || options.reps < 1 || options.max_tokens < 1) {
    return Fail(absl::InvalidArgumentError(
        "--n-prompt, --n-gen, --batched-prompt, --batched-gen, --reps and "
        "--max-num-batched-tokens must be positive"));
  }
  bool run_pp = false, run_tg = false, run_engine = false, run_batched = false;
  for (absl::string_view t : absl::StrSplit(absl::GetFlag(FLAGS_tests), ',', absl::SkipEmpty())) {
    if (t == "pp") run_pp = true;
    else if (t == "tg") run_tg = true;
    else if (t == "engine") run_engine = true;
    else if (t == "batched") run_batched = true;
    else return Fail(absl::InvalidArgumentError(absl::StrCat("--tests: unknown test '", std::string(t), "'")));
  }

  std::unique_ptr<CpuBackend> backend;
  auto kv_cache_dtype = ParseCpuKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype),
                                             options.backend == "reference");
  if (!kv_cache_dtype.ok()) return Fail(kv_cache_dtype.status());
  if (options.backend == "fast") {
    CpuBackendConfig config;
    config.num_threads = absl::GetFlag(FLAGS_threads);
    config.kv_cache_dtype = *kv_cache_dtype;
    config.force_avx2 = absl::GetFlag(FLAGS_force_avx2);
    config.allow_avx_vnni = absl::GetFlag(FLAGS_allow_avx_vnni);
    config.allow_amx = absl::GetFlag(FLAGS_allow_amx);
    config.decode_prefetch_bytes = absl::GetFlag(FLAGS_decode_prefetch_bytes);
    config.decode_l2_prefetch_bytes = absl::GetFlag(FLAGS_decode_l2_prefetch_bytes);
    config.activation_levels = absl::GetFlag(FLAGS_activation_levels);
    auto fast = FastCpuBackend::Create(config);
    if (!fast.ok()) return Fail(fast.status());
    options.threads = (*fast)->num_threads();
    options.isa = std::string((*fast)->isa());
    backend = *std::move(fast);
  } else if (options.backend == "reference") {
    if (absl::GetFlag(FLAGS_threads) > 1) {
      std::fprintf(stderr, "weft-bench-cpu: the reference backend runs on one thread\n");
    }
    options.threads = 1;
    options.isa = "scalar";
    backend = std::make_unique<CpuBackend>(*kv_cache_dtype);
  } else {
    return Fail(absl::InvalidArgumentError("--backend: fast or reference"));
  }

  auto files = ModelFiles::Open(absl::GetFlag(FLAGS_model));
  if (!files.ok()) return Fail(files.status());
  const ModelConfig& config = (*files)->config();
  ModelPlan plan;
  plan.max_num_tokens = options.max_tokens;
  const int max_batch =
      run_batched ? *std::max_element(options.batch_sizes.begin(), options.batch_sizes.end()) : 1;
  plan.max_num_logits = max_batch;
  // One sequence's longest context over the tests; the engine's sequence
  // (1 + n_gen) fits in it too.
  int max_len = std::max(options.n_prompt, options.n_gen + 1);
  if (run_batched) max_len = std::max(max_len, options.batched_prompt + options.batched_gen);
  if (max_len > config.max_position_embeddings) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "a context of ", max_len, " tokens exceeds the model's ",
        config.max_position_embeddings)));
  }
  const int blocks_per_seq = (max_len + plan.block_size - 1) / plan.block_size;
  plan.num_kv_blocks = blocks_per_seq * max_batch;
  const auto load_start = Clock::now();
  auto model = LlamaModel::Create(**files, backend.get(), plan);
  if (!model.ok()) return Fail(model.status());
  const double load_seconds = SecondsSince(load_start);
  auto weight_bytes = WeightBytesPerToken(**files);
  if (!weight_bytes.ok()) return Fail(weight_bytes.status());

  Bench bench(options, files->get(), backend.get(), model->get(), blocks_per_seq);
  Json info = bench.Line("info");
  info.update({{"model", (*files)->path()},
               {"weight_bytes_per_token", *weight_bytes},
               {"num_layers", config.num_layers},
               {"hidden_size", config.hidden_size},
               {"vocab_size", config.vocab_size},
               {"max_num_batched_tokens", options.max_tokens},
               {"kv_dtype", std::string(DTypeName(backend->kv_cache_dtype()))},
               {"activation_levels", options.backend == "fast"
                                         ? absl::GetFlag(FLAGS_activation_levels)
                                         : 0},
               {"load_seconds", load_seconds}});
  PrintJson(info);

  absl::Status status;
  if (status.ok() && run_pp) status = bench.RunPrompt();
  if (status.ok() && run_tg) status = bench.RunGenerate();
  if (status.ok() && run_engine) status = bench.RunEngine();
  if (status.ok() && run_batched) status = bench.RunBatched();
  if (!status.ok()) return Fail(status);
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  absl::ParseCommandLine(argc, argv);
  return weft::Main();
}
