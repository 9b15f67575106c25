// weft-bench-offline: N requests with varied prompt and output lengths
// through the engine in-process, all submitted at once (continuous
// batching), then the same requests one at a time. Prints requests/s and
// output tokens/s of both, and their ratio.
//
//   build/bench/weft-bench-offline --model models/SmolLM2-135M-Instruct.Q4_1.gguf
//       --num-requests 32
#include <chrono>
#include <cstdio>
#include <random>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "kernels/factory/backend_factory.h"
#include "runtime/engine.h"
#include "runtime/model/model_files.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf",
          "a .gguf file or a Hugging Face model directory");
ABSL_FLAG(int, num_requests, 32, "requests in the workload");
ABSL_FLAG(int, min_prompt, 16, "shortest prompt, tokens");
ABSL_FLAG(int, max_prompt, 160, "longest prompt, tokens");
ABSL_FLAG(int, min_output, 16, "shortest output, tokens");
ABSL_FLAG(int, max_output, 64, "longest output, tokens");
ABSL_FLAG(int, max_num_seqs, 64, "running sequences at once");
ABSL_FLAG(int, max_num_batched_tokens, 512, "tokens per step");
ABSL_FLAG(std::string, device, "auto",
          "cpu, cuda, or auto (cuda when a GPU is usable, else cpu)");
ABSL_FLAG(int, threads, 0,
          "CPU threads for the kernels (0: one per physical core)");
ABSL_FLAG(std::string, kv_cache_dtype, "auto",
          "element type of the CPU backend's KV cache: f16 (half the bytes "
          "attention reads), f32 (exact), or auto: f16, f32 with "
          "--reference_kernels; the CUDA backend keeps bf16");
ABSL_FLAG(bool, reference_kernels, false,
          "use the reference CPU kernels (fp32, one thread)");
ABSL_FLAG(uint32_t, seed, 1, "workload seed");
ABSL_FLAG(bool, skip_sequential, false, "only run the batched workload");

namespace weft {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "weft-bench-offline: %s\n", status.ToString().c_str());
  return 1;
}

// Seeded workload: prompts are slices of a fixed English text, so prompt
// tokens are realistic; outputs ignore EOS so their lengths are exact.
std::vector<Request> Workload(const Tokenizer& tokenizer) {
  std::string text;
  for (int i = 0; i < 40; ++i) {
    text += "In the year " + std::to_string(1800 + 7 * i) +
            ", the town council met to discuss the river, the new bridge, "
            "the school and the harvest festival. ";
  }
  const std::vector<int32_t> corpus = tokenizer.Encode(text, EncodeOptions{});
  std::mt19937 rng(absl::GetFlag(FLAGS_seed));
  std::uniform_int_distribution<int> prompt_len(absl::GetFlag(FLAGS_min_prompt),
                                                absl::GetFlag(FLAGS_max_prompt));
  std::uniform_int_distribution<int> output_len(absl::GetFlag(FLAGS_min_output),
                                                absl::GetFlag(FLAGS_max_output));
  std::vector<Request> requests;
  for (int i = 0; i < absl::GetFlag(FLAGS_num_requests); ++i) {
    Request r;
    r.id = absl::StrCat("bench-", i);
    const int len = std::min<int>(prompt_len(rng), corpus.size() - 1);
    const int start = std::uniform_int_distribution<int>(
        0, static_cast<int>(corpus.size()) - len)(rng);
    r.prompt_ids.assign(corpus.begin() + start, corpus.begin() + start + len);
    r.sampling.temperature = 0.0f;
    r.stopping.max_tokens = output_len(rng);
    r.stopping.ignore_eos = true;
    requests.push_back(std::move(r));
  }
  return requests;
}

struct RunResult {
  double seconds = 0;
  int64_t output_tokens = 0;
};

// Submits `requests` (all at once) and steps the engine until they end.
absl::StatusOr<RunResult> Run(Engine& engine, const std::vector<Request>& requests,
                              const std::string& suffix) {
  std::vector<std::shared_ptr<StreamBuffer>> sinks;
  const auto start = std::chrono::steady_clock::now();
  for (Request r : requests) {
    r.id += suffix;
    sinks.push_back(std::make_shared<StreamBuffer>());
    if (auto s = engine.Submit(std::move(r), sinks.back()); !s.ok()) return s;
  }
  while (engine.Step()) {
  }
  RunResult result;
  result.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (auto& sink : sinks) {
    while (auto event = sink->Next(absl::ZeroDuration())) {
      if (auto* f = std::get_if<Finished>(&*event)) {
        result.output_tokens += f->usage.completion_tokens;
      } else if (auto* e = std::get_if<absl::Status>(&*event)) {
        return *e;
      }
    }
  }
  return result;
}

int Main() {
  auto files = ModelFiles::Open(absl::GetFlag(FLAGS_model));
  if (!files.ok()) return Fail(files.status());
  EngineConfig config;
  config.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  config.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  auto device = ParseDeviceKind(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return Fail(device.status());
  BackendOptions backend_options;
  backend_options.device = *device;
  backend_options.model_head_dim = (*files)->config().head_dim;
  backend_options.cpu.num_threads = absl::GetFlag(FLAGS_threads);
  backend_options.cpu.reference = absl::GetFlag(FLAGS_reference_kernels);
  auto kv_cache_dtype = ParseCpuKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype),
                                             absl::GetFlag(FLAGS_reference_kernels));
  if (!kv_cache_dtype.ok()) return Fail(kv_cache_dtype.status());
  backend_options.cpu.kv_cache_dtype = *kv_cache_dtype;
  backend_options.cuda.max_num_tokens = config.scheduler.max_num_batched_tokens;
  backend_options.cuda.max_num_seqs = config.scheduler.max_num_seqs;
  std::string backend_description;
  auto backend_or = MakeBackend(backend_options, &backend_description);
  if (!backend_or.ok()) return Fail(backend_or.status());
  Backend& backend = **backend_or;
  std::printf("backend: %s\n", backend_description.c_str());
  config.scheduler.max_num_logit_rows = config.scheduler.max_num_seqs;
  ModelPlan plan;
  plan.max_num_tokens = config.scheduler.max_num_batched_tokens;
  plan.max_num_logits = config.scheduler.max_num_logit_rows;
  const int per_request = absl::GetFlag(FLAGS_max_prompt) + absl::GetFlag(FLAGS_max_output);
  plan.num_kv_blocks = (per_request / plan.block_size + 2) * config.scheduler.max_num_seqs;
  auto model = LlamaModel::Create(**files, &backend, plan);
  if (!model.ok()) return Fail(model.status());
  std::string warm_up_report;
  if (auto s = backend.WarmUp(&warm_up_report); !s.ok()) return Fail(s);
  if (auto s = (*model)->CaptureDecodeGraphs(config.scheduler.max_num_seqs,
                                             &warm_up_report);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("%s", warm_up_report.c_str());
  auto engine = Engine::Create(model->get(), &backend, &(*files)->tokenizer(), config);
  if (!engine.ok()) return Fail(engine.status());
  const std::vector<Request> requests = Workload((*files)->tokenizer());
  int64_t prompt_tokens = 0;
  for (const Request& r : requests) prompt_tokens += r.prompt_ids.size();
  std::printf("workload: %zu requests, %lld prompt tokens, outputs %d-%d tokens\n",
              requests.size(), static_cast<long long>(prompt_tokens),
              absl::GetFlag(FLAGS_min_output), absl::GetFlag(FLAGS_max_output));

  auto batched = Run(**engine, requests, "-batched");
  if (!batched.ok()) return Fail(batched.status());
  std::printf("batched:    %6.2f s  %7.3f req/s  %8.2f output tok/s\n",
              batched->seconds, requests.size() / batched->seconds,
              batched->output_tokens / batched->seconds);
  if (absl::GetFlag(FLAGS_skip_sequential)) return 0;

  // A fresh engine, so no prompt is served from the batched run's cache.
  auto sequential_engine =
      Engine::Create(model->get(), &backend, &(*files)->tokenizer(), config);
  if (!sequential_engine.ok()) return Fail(sequential_engine.status());
  RunResult sequential;
  for (const Request& r : requests) {
    auto one = Run(**sequential_engine, {r}, "-alone");
    if (!one.ok()) return Fail(one.status());
    sequential.seconds += one->seconds;
    sequential.output_tokens += one->output_tokens;
  }
  std::printf("one-by-one: %6.2f s  %7.3f req/s  %8.2f output tok/s\n",
              sequential.seconds, requests.size() / sequential.seconds,
              sequential.output_tokens / sequential.seconds);
  std::printf("batched / one-by-one output tok/s: %.2fx\n",
              (batched->output_tokens / batched->seconds) /
                  (sequential.output_tokens / sequential.seconds));
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
