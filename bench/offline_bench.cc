// weft-bench-offline: N requests with varied prompt and output lengths
// through the engine in-process, all submitted at once (continuous
// batching), then the same requests one at a time. Prints requests/s and
// output tokens/s of both, and their ratio.
//
//   build/bench/weft-bench-offline --model models/SmolLM2-135M-Instruct.Q4_1.gguf
//       --num-requests 32
//
// --sweep B:PxO,... instead runs, for each entry, B requests of exactly P
// prompt and O output tokens at once, twice (O and O/2 output tokens): the
// difference of the two times over O - O/2 steps is the decode step time
// with prefill and start-up cancelled. With --copy_gb_s (the device's
// measured copy bandwidth, bytes read + written per second, e.g. from
// weft-bench-cuda-kernels) it reports the decode step as a fraction of the
// bandwidth roofline: (weight bytes — bf16, or 5 bits a weight with
// --weight_dtype int4 — + the batch's K/V bytes at the step's mean
// context) / copy bandwidth. bench/cuda_serving runs the
// synthetic Llama-3-8B sweep of issue #7 this way.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "kernels/factory/backend_factory.h"
#include "runtime/engine.h"
#include "runtime/grammar.h"
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
ABSL_FLAG(std::string, sweep, "",
          "BATCH:PROMPTxOUTPUT,...: run these fixed workloads instead (see "
          "the file comment)");
ABSL_FLAG(double, copy_gb_s, 0,
          "with --sweep: the device's copy bandwidth in GB/s (read + "
          "written) for the roofline fraction; 0: not reported");
ABSL_FLAG(std::string, json, "", "with --sweep: also write the results here");
ABSL_FLAG(std::string, weight_dtype, "bf16",
          "CUDA: bf16 or int4 (W4A16; see weft-server --help)");
ABSL_FLAG(std::string, gemm, "autotune",
          "CUDA: autotune, cublas, own or invariant (see weft-server --help)");
ABSL_FLAG(bool, cuda_graphs, true, "CUDA: replay decode steps from graphs");
ABSL_FLAG(std::string, structured, "",
          "constrain every request's output: json_object, regex:<RE> or "
          "json_schema:<file>; the batched run then also prints the engine's "
          "sampling time per step (masks included)");

namespace weft {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "weft-bench-offline: %s\n", status.ToString().c_str());
  return 1;
}

// `count` requests of prompts of `prompt_len(rng)` and outputs of
// `output_len(rng)` tokens: slices of a fixed English text, so prompt
// tokens are realistic; outputs ignore EOS so their lengths are exact.
template <typename Length>
std::vector<Request> Requests(const Tokenizer& tokenizer, int count,
                              Length prompt_len, Length output_len,
                              uint32_t seed) {
  std::string text;
  for (int i = 0; i < 40; ++i) {
    text += "In the year " + std::to_string(1800 + 7 * i) +
            ", the town council met to discuss the river, the new bridge, "
            "the school and the harvest festival. ";
  }
  const std::vector<int32_t> corpus = tokenizer.Encode(text, EncodeOptions{});
  std::mt19937 rng(seed);
  std::vector<Request> requests;
  for (int i = 0; i < count; ++i) {
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

// --structured as a StructuredOutput (kind kNone when empty).
absl::StatusOr<StructuredOutput> StructuredFlag() {
  const std::string flag = absl::GetFlag(FLAGS_structured);
  StructuredOutput out;
  if (flag.empty()) return out;
  if (flag == "json_object") {
    out.kind = StructuredOutput::Kind::kJsonObject;
  } else if (absl::StartsWith(flag, "regex:")) {
    out.kind = StructuredOutput::Kind::kRegex;
    out.spec = flag.substr(6);
  } else if (absl::StartsWith(flag, "json_schema:")) {
    std::ifstream file(flag.substr(12));
    if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", flag.substr(12)));
    out.kind = StructuredOutput::Kind::kJsonSchema;
    out.spec.assign(std::istreambuf_iterator<char>(file), {});
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--structured must be json_object, regex:<RE> or json_schema:<file>, got '",
        flag, "'"));
  }
  return out;
}

// The --num_requests workload, lengths drawn from the flags' ranges.
std::vector<Request> Workload(const Tokenizer& tokenizer) {
  std::uniform_int_distribution<int> prompt_len(absl::GetFlag(FLAGS_min_prompt),
                                                absl::GetFlag(FLAGS_max_prompt));
  std::uniform_int_distribution<int> output_len(absl::GetFlag(FLAGS_min_output),
                                                absl::GetFlag(FLAGS_max_output));
  return Requests(tokenizer, absl::GetFlag(FLAGS_num_requests), prompt_len,
                  output_len, absl::GetFlag(FLAGS_seed));
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

struct SweepPoint {
  int batch = 0, prompt = 0, output = 0;
};

absl::StatusOr<std::vector<SweepPoint>> ParseSweep(const std::string& text) {
  std::vector<SweepPoint> points;
  for (absl::string_view entry : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<absl::string_view> parts = absl::StrSplit(entry, absl::ByAnyChar(":x"));
    SweepPoint p;
    if (parts.size() != 3 || !absl::SimpleAtoi(parts[0], &p.batch) ||
        !absl::SimpleAtoi(parts[1], &p.prompt) ||
        !absl::SimpleAtoi(parts[2], &p.output) || p.batch < 1 || p.prompt < 1 ||
        p.output < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--sweep entry '", entry, "' is not BATCH:PROMPTxOUTPUT (output ≥ 2)"));
    }
    points.push_back(p);
  }
  return points;
}

// The sweep (see the file comment): one line and one JSON object per point.
int RunSweep(Engine& engine, const ModelFiles& files,
             const std::vector<SweepPoint>& points) {
  const ModelConfig& c = files.config();
  const double q = double(c.num_q_heads) * c.head_dim;
  const double kv = double(c.num_kv_heads) * c.head_dim;
  // Matrices read once per decode step (the embedding only by row): bf16,
  // or W4 (20 bytes per 32 weights) with --weight_dtype int4.
  const double bytes_per_weight =
      absl::GetFlag(FLAGS_weight_dtype) == "int4" ? 20.0 / 32 : 2.0;
  const double weight_bytes =
      bytes_per_weight *
      (c.num_layers * (2 * c.hidden_size * q + 2 * c.hidden_size * kv +
                       3.0 * c.hidden_size * c.intermediate_size) +
       double(c.vocab_size) * c.hidden_size);
  const double kv_bytes_per_token = 2.0 * 2 * c.num_layers * kv;  // K+V bf16
  const double copy_gb_s = absl::GetFlag(FLAGS_copy_gb_s);
  std::printf("%-18s %10s %12s %12s %10s\n", "batch:prompt x out", "seconds",
              "output tok/s", "decode ms", "roofline");
  std::string json = "[";
  if (!absl::GetFlag(FLAGS_json).empty()) {
    std::ofstream(absl::GetFlag(FLAGS_json)) << "[]\n";
  }
  auto fixed = [](int n) { return [n](std::mt19937&) { return n; }; };
  if (!points.empty()) {
    // One untimed run first, so that the first point's numbers hold no
    // one-time costs (kernels first launched, host memory first touched).
    const SweepPoint& p = points.front();
    auto warm = Run(engine,
                    Requests(files.tokenizer(), p.batch, fixed(p.prompt),
                             fixed(std::max(2, p.output / 4)), 9),
                    "-warmup");
    if (!warm.ok()) return Fail(warm.status());
  }
  for (const SweepPoint& p : points) {
    const std::vector<Request> full = Requests(
        files.tokenizer(), p.batch, fixed(p.prompt), fixed(p.output), 7);
    const std::vector<Request> half = Requests(
        files.tokenizer(), p.batch, fixed(p.prompt), fixed(p.output / 2), 8);
    const int64_t preemptions_before = engine.stats().num_preemptions;
    auto t_full = Run(engine, full, absl::StrCat("-", p.batch, "-full"));
    if (!t_full.ok()) return Fail(t_full.status());
    auto t_half = Run(engine, half, absl::StrCat("-", p.batch, "-half"));
    if (!t_half.ok()) return Fail(t_half.status());
    // Every request must have produced all its tokens, or the point would
    // measure fewer sequences than it names.
    if (t_full->output_tokens != int64_t{p.batch} * p.output ||
        t_half->output_tokens != int64_t{p.batch} * (p.output / 2)) {
      return Fail(absl::InternalError(absl::StrFormat(
          "point %d:%dx%d produced %d and %d output tokens, expected %d and %d",
          p.batch, p.prompt, p.output, t_full->output_tokens,
          t_half->output_tokens, int64_t{p.batch} * p.output,
          int64_t{p.batch} * (p.output / 2))));
    }
    // Preempted sequences recompute their prefix: the point then measures
    // less than a batch of p.batch decoding together.
    const int64_t preemptions = engine.stats().num_preemptions - preemptions_before;
    const int steps = p.output - p.output / 2;
    const double step_s = (t_full->seconds - t_half->seconds) / steps;
    const double tok_s = t_full->output_tokens / t_full->seconds;
    double fraction = 0;
    if (copy_gb_s > 0 && step_s > 0) {
      const double context = p.prompt + 0.75 * p.output;
      const double bytes =
          weight_bytes + p.batch * context * kv_bytes_per_token;
      fraction = bytes / (copy_gb_s * 1e9) / step_s;
    }
    const std::string name = absl::StrFormat("%d:%dx%d", p.batch, p.prompt, p.output);
    const std::string roofline =
        copy_gb_s > 0 ? absl::StrFormat("%9.0f%%", 100 * fraction) : "       n/a";
    std::printf("%-18s %10.2f %12.1f %12.3f %s%s\n", name.c_str(), t_full->seconds,
                tok_s, 1e3 * step_s, roofline.c_str(),
                preemptions > 0 ? absl::StrCat("  (", preemptions, " preemptions)").c_str()
                                : "");
    absl::StrAppendFormat(
        &json,
        "%s{\"point\": \"%s\", \"seconds\": %.4f, \"output_tok_s\": %.2f, "
        "\"decode_step_ms\": %.4f, \"roofline_fraction\": %s, \"preemptions\": %d}",
        json.size() > 1 ? ", " : "", name, t_full->seconds, tok_s, 1e3 * step_s,
        copy_gb_s > 0 ? absl::StrFormat("%.4f", fraction) : "null", preemptions);
    // Written after every point: a sweep cut short keeps what it measured.
    std::fflush(stdout);
    if (!absl::GetFlag(FLAGS_json).empty()) {
      std::ofstream(absl::GetFlag(FLAGS_json)) << json << "]\n";
    }
  }
  return 0;
}

int Main() {
  // Line by line even into a file: a run cut short keeps what it printed.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  auto files = ModelFiles::Open(absl::GetFlag(FLAGS_model));
  if (!files.ok()) return Fail(files.status());
  auto sweep = ParseSweep(absl::GetFlag(FLAGS_sweep));
  if (!sweep.ok()) return Fail(sweep.status());
  EngineConfig config;
  config.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  config.scheduler.max_num_batched_tokens = absl::GetFlag(FLAGS_max_num_batched_tokens);
  int max_tokens_per_request =
      absl::GetFlag(FLAGS_max_prompt) + absl::GetFlag(FLAGS_max_output);
  if (!sweep->empty()) {
    // Every point's batch runs at once; no prompt is served from a cache
    // (the two runs of a point must prefill alike).
    config.scheduler.max_num_seqs = 0;
    max_tokens_per_request = 0;
    for (const SweepPoint& p : *sweep) {
      config.scheduler.max_num_seqs = std::max(config.scheduler.max_num_seqs, p.batch);
      max_tokens_per_request = std::max(max_tokens_per_request, p.prompt + p.output);
    }
    config.scheduler.enable_prefix_caching = false;
  }
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
  if (auto s = ParseCudaKernelOptions(absl::GetFlag(FLAGS_gemm),
                                      absl::GetFlag(FLAGS_weight_dtype),
                                      &backend_options.cuda);
      !s.ok()) {
    return Fail(s);
  }
  std::string backend_description;
  auto backend_or = MakeBackend(backend_options, &backend_description);
  if (!backend_or.ok()) return Fail(backend_or.status());
  Backend& backend = **backend_or;
  std::printf("backend: %s\n", backend_description.c_str());
  config.scheduler.max_num_logit_rows = config.scheduler.max_num_seqs;
  ModelPlan plan;
  plan.max_num_tokens = config.scheduler.max_num_batched_tokens;
  plan.max_num_logits = config.scheduler.max_num_logit_rows;
  plan.num_kv_blocks = (max_tokens_per_request / plan.block_size + 2) *
                       config.scheduler.max_num_seqs;
  auto model = LlamaModel::Create(**files, &backend, plan);
  if (!model.ok()) return Fail(model.status());
  std::string warm_up_report;
  if (auto s = (*model)->WarmUp(config.scheduler.max_num_seqs,
                                absl::GetFlag(FLAGS_cuda_graphs),
                                &warm_up_report);
      !s.ok()) {
    return Fail(s);
  }
  std::printf("%s", warm_up_report.c_str());
  auto engine = Engine::Create(model->get(), &backend, &(*files)->tokenizer(), config);
  if (!engine.ok()) return Fail(engine.status());
  if (!sweep->empty()) return RunSweep(**engine, **files, *sweep);
  std::vector<Request> requests = Workload((*files)->tokenizer());
  auto structured = StructuredFlag();
  if (!structured.ok()) return Fail(structured.status());
  std::unique_ptr<GrammarCompiler> grammars;
  if (structured->enabled()) {
    auto compiler = GrammarCompiler::Create((*files)->tokenizer(),
                                            (*files)->config().vocab_size, GrammarConfig{});
    if (!compiler.ok()) return Fail(compiler.status());
    grammars = *std::move(compiler);
    const auto compile_start = std::chrono::steady_clock::now();
    auto grammar = grammars->Compile(*structured);
    if (!grammar.ok()) return Fail(grammar.status());
    std::printf("structured output %s: compiled in %.1f ms\n",
                absl::GetFlag(FLAGS_structured).c_str(),
                std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - compile_start).count());
    for (Request& r : requests) r.grammar = *grammar;
  }
  int64_t prompt_tokens = 0;
  for (const Request& r : requests) prompt_tokens += r.prompt_ids.size();
  std::printf("workload: %zu requests, %lld prompt tokens, outputs %d-%d tokens\n",
              requests.size(), static_cast<long long>(prompt_tokens),
              absl::GetFlag(FLAGS_min_output), absl::GetFlag(FLAGS_max_output));

  const EngineStats before = (*engine)->stats();
  auto batched = Run(**engine, requests, "-batched");
  if (!batched.ok()) return Fail(batched.status());
  std::printf("batched:    %6.2f s  %7.3f req/s  %8.2f output tok/s\n",
              batched->seconds, requests.size() / batched->seconds,
              batched->output_tokens / batched->seconds);
  const EngineStats after = (*engine)->stats();
  const int64_t steps = after.num_steps - before.num_steps;
  std::printf("batched:    %lld steps, sampling %.3f ms/step, forward %.3f ms/step\n",
              static_cast<long long>(steps),
              1e3 * (after.sample_seconds - before.sample_seconds) / std::max<int64_t>(1, steps),
              1e3 * (after.execute_seconds - before.execute_seconds) /
                  std::max<int64_t>(1, steps));
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
