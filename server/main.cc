// weft-server: serves one model over gRPC (weft.v1.Generation,
// grpc.health.v1, reflection) and over OpenAI-compatible HTTP
// (docs/http.md). SIGTERM or SIGINT drains: health turns
// NOT_SERVING, the gRPC and HTTP ports close (gRPC clients get GOAWAY, new
// calls go to another replica), calls in flight get up to --drain_timeout
// to finish, the rest end with UNAVAILABLE, and the process exits 0.
//
//   weft-server --model models/SmolLM2-135M-Instruct.Q4_1.gguf --port 50051
// Flags may be spelled with dashes or underscores (--max-num-seqs).
#include <signal.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "kernels/factory/backend_factory.h"
#include "runtime/chat/chat_template.h"
#include "runtime/engine.h"
#include "runtime/grammar.h"
#include "runtime/request_queue.h"
#include "runtime/model/model_files.h"
#include "server/grpc_server.h"
#include "server/http_server.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf",
          "a .gguf file, a Hugging Face model directory, or synthetic:NAME "
          "(random weights of a real shape: llama3-8b, llama2-7b, "
          "qwen2.5-7b, smollm2-135m; for throughput only)");
ABSL_FLAG(std::string, served_model_name, "",
          "the name clients give in `model`; default: the model file or "
          "directory name");
ABSL_FLAG(std::string, host, "0.0.0.0", "address to listen on");
ABSL_FLAG(int, port, 50051, "gRPC port (0: any free port)");
ABSL_FLAG(int, grpc_keepalive_seconds, 30,
          "ping a gRPC connection idle this long; one that does not answer in "
          "--grpc_keepalive_timeout_seconds is closed and its streams cancelled "
          "(0: no pings)");
ABSL_FLAG(int, grpc_keepalive_timeout_seconds, 10, "see --grpc_keepalive_seconds");
ABSL_FLAG(int, http_port, 8000,
          "OpenAI-compatible HTTP port (0: any free port; -1: no HTTP)");
ABSL_FLAG(std::string, http_host, "", "address for HTTP; empty: --host");
ABSL_FLAG(int, http_threads, 64,
          "HTTP connections served at once (open streams and idle keep-alive "
          "connections each hold one thread)");
ABSL_FLAG(int, http_max_queued_connections, 64,
          "HTTP connections waiting for a thread; more are answered 429");
ABSL_FLAG(int, http_probe_port, -1,
          "a second HTTP port serving only GET /health and /metrics on threads "
          "of its own, so probes and scrapes never wait behind long streams "
          "(-1: none)");
ABSL_FLAG(int64_t, http_max_body_bytes, int64_t{16} << 20,
          "largest HTTP request body; larger ones are answered 413");
ABSL_FLAG(int, max_num_seqs, 64, "sequences running at once");
ABSL_FLAG(int, max_num_batched_tokens, 512, "tokens in one forward pass");
ABSL_FLAG(int, max_model_len, 0,
          "longest prompt + output in tokens; 0: the model's context, capped "
          "by the KV cache");
ABSL_FLAG(int64_t, kv_cache_memory, int64_t{1} << 30,
          "bytes of KV cache (fp32 on the CPU backend, bf16 on CUDA)");
ABSL_FLAG(std::string, device, "auto",
          "cpu, cuda, or auto (cuda when a GPU is usable, else cpu)");
ABSL_FLAG(std::string, gemm, "autotune",
          "CUDA: the bf16 GEMM of each MatMul: autotune (time weft's own "
          "kernels against cuBLAS at startup, keep the faster per weight "
          "shape and token count), cublas, own, or invariant (one fixed-tile "
          "kernel for every token count and every query token through the "
          "prefill attention kernel: a request's output does not depend on "
          "what it is batched with; slower)");
ABSL_FLAG(std::string, weight_dtype, "bf16",
          "CUDA: how weight matrices are kept: bf16 (quantized ones "
          "dequantized at load) or int4 (W4A16 kernels, 5 bits a weight: "
          "Q4_0/Q4_1 repacked losslessly, float matrices quantized to "
          "nearest per 32 weights)");
ABSL_FLAG(bool, cuda_graphs, true,
          "CUDA: capture decode steps as CUDA graphs at start-up (one per "
          "batch-size bucket up to min(max_num_seqs, 256)) and replay them");
ABSL_FLAG(int, block_size, 16, "tokens per KV block");
ABSL_FLAG(bool, enable_prefix_caching, true, "reuse KV of shared prompt prefixes");
ABSL_FLAG(int, sampling_threads, 0,
          "threads that sample a step's rows (temperature, top-k/p, "
          "penalties); 0: the hardware threads, at most 16");
ABSL_FLAG(int, max_live_requests, 1024,
          "requests accepted and not yet finished; more get RESOURCE_EXHAUSTED");
ABSL_FLAG(std::string, api_key_file, "",
          "file of '<tenant> <sha256 of key>' lines; when set, every call needs "
          "'authorization: Bearer <key>'");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate (enables TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA that client certificates must chain to (enables mTLS)");
ABSL_FLAG(int, threads, 0,
          "CPU threads for the model's kernels (0: one per physical core)");
ABSL_FLAG(std::string, kv_cache_dtype, "auto",
          "element type of the CPU backend's KV cache: f16 (half the bytes "
          "attention reads), f32 (exact), or auto: f16, f32 with "
          "--reference_kernels; the CUDA backend keeps bf16");
ABSL_FLAG(int, activation_levels, 2,
          "CPU backend: int8 levels per block of 32 that quantized matmuls "
          "quantize activations to: 2 (log-probs within ~1e-2 of fp32) or 1 "
          "(llama.cpp's scheme, log-probs ~0.4 off as llama.cpp's are: "
          "batched decode and prompts faster, except AVX2's Q8_0 and AMX; "
          "docs/cpu.md)");
ABSL_FLAG(bool, reference_kernels, false,
          "serve with the reference CPU kernels (fp32, one thread): slow; for "
          "checking the fast kernels");
ABSL_FLAG(std::string, chat_template, "",
          "a Jinja chat template file to render chat requests with instead of "
          "the model's own (docs/chat.md)");
ABSL_FLAG(std::string, tool_call_parser, "auto",
          "how chat completions with tools find the model's tool calls: "
          "hermes (<tool_call> JSON: Qwen2.5/3, Hermes), llama3_json (Llama "
          "3.x), mistral ([TOOL_CALLS]), none (calls stay message text), or "
          "auto: the one the chat template shows, else none");
ABSL_FLAG(int, grammar_threads, 2,
          "threads one structured-output grammar (response_format, "
          "structured_outputs, guided_*) may use to compile");
ABSL_FLAG(int, grammar_cache_mb, 256,
          "MiB of compiled grammars kept for reuse, by their text");
ABSL_FLAG(double, grammar_timeout, 15.0,
          "seconds a request waits for its grammar to compile before it is "
          "refused (400); the compile goes on and is cached");
ABSL_FLAG(double, drain_timeout, 30.0,
          "seconds in-flight calls get to finish after SIGTERM");

namespace weft {
namespace {

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "weft-server: %s\n", status.ToString().c_str());
  return 1;
}

int Main() {
  // Signals are taken synchronously by this thread (sigwait); every thread
  // started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const std::string model_path = absl::GetFlag(FLAGS_model);
  auto files = ModelFiles::Open(model_path);
  if (!files.ok()) return Fail(files.status());
  const ModelConfig& config = (*files)->config();
  auto chat_template = LoadChatTemplate(**files, absl::GetFlag(FLAGS_chat_template));
  if (!chat_template.ok()) return Fail(chat_template.status());

  EngineConfig engine_config;
  engine_config.scheduler.max_num_seqs = absl::GetFlag(FLAGS_max_num_seqs);
  engine_config.scheduler.max_num_batched_tokens =
      absl::GetFlag(FLAGS_max_num_batched_tokens);
  engine_config.scheduler.max_num_logit_rows = engine_config.scheduler.max_num_seqs;
  engine_config.scheduler.enable_prefix_caching =
      absl::GetFlag(FLAGS_enable_prefix_caching);
  engine_config.max_model_len = absl::GetFlag(FLAGS_max_model_len);
  engine_config.max_live_requests = absl::GetFlag(FLAGS_max_live_requests);
  engine_config.sampling_threads = absl::GetFlag(FLAGS_sampling_threads);
  if (auto s = engine_config.Validate(); !s.ok()) return Fail(s);

  ModelPlan plan;
  plan.max_num_tokens = engine_config.scheduler.max_num_batched_tokens;
  plan.max_num_logits = engine_config.scheduler.max_num_logit_rows;
  plan.block_size = absl::GetFlag(FLAGS_block_size);
  auto device = ParseDeviceKind(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return Fail(device.status());
  BackendOptions backend_options;
  backend_options.device = *device;
  backend_options.model_head_dim = config.head_dim;
  backend_options.cpu.num_threads = absl::GetFlag(FLAGS_threads);
  backend_options.cpu.reference = absl::GetFlag(FLAGS_reference_kernels);
  backend_options.cpu.activation_levels = absl::GetFlag(FLAGS_activation_levels);
  auto kv_cache_dtype = ParseCpuKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype),
                                             absl::GetFlag(FLAGS_reference_kernels));
  if (!kv_cache_dtype.ok()) return Fail(kv_cache_dtype.status());
  backend_options.cpu.kv_cache_dtype = *kv_cache_dtype;
  backend_options.cuda.max_num_tokens = plan.max_num_tokens;
  backend_options.cuda.max_num_seqs = engine_config.scheduler.max_num_seqs;
  if (auto s = ParseCudaKernelOptions(absl::GetFlag(FLAGS_gemm),
                                      absl::GetFlag(FLAGS_weight_dtype),
                                      &backend_options.cuda);
      !s.ok()) {
    return Fail(s);
  }
  std::string backend_description;
  auto backend = MakeBackend(backend_options, &backend_description);
  if (!backend.ok()) return Fail(backend.status());
  std::fprintf(stderr, "weft-server: backend %s\n", backend_description.c_str());
  const int64_t block_bytes =
      int64_t{2} * config.num_layers * config.num_kv_heads * plan.block_size *
      config.head_dim * DTypeBlockBytes((*backend)->kv_cache_dtype());
  const int64_t kv_memory = absl::GetFlag(FLAGS_kv_cache_memory);
  if (plan.block_size < 1 || kv_memory < block_bytes) {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--kv_cache_memory must hold at least one block (", block_bytes,
        " bytes) and --block_size must be positive")));
  }
  plan.num_kv_blocks = static_cast<int>(std::min<int64_t>(kv_memory / block_bytes, 1 << 24));
  auto model = LlamaModel::Create(**files, backend->get(), plan);
  if (!model.ok()) return Fail(model.status());
  {
    std::string warm_up_report;
    if (auto s = (*model)->WarmUp(engine_config.scheduler.max_num_seqs,
                                  absl::GetFlag(FLAGS_cuda_graphs),
                                  &warm_up_report);
        !s.ok()) {
      return Fail(s);
    }
    if (!warm_up_report.empty()) {
      std::fprintf(stderr, "weft-server: kernels chosen at warm-up:\n%s",
                   warm_up_report.c_str());
    }
  }
  auto engine = Engine::Create(model->get(), backend->get(), &(*files)->tokenizer(),
                               engine_config);
  if (!engine.ok()) return Fail(engine.status());
  (*engine)->Start();
  // Warm up (first-touch of the weights, scratch and KV pages) before
  // health says SERVING.
  {
    Request warmup;
    warmup.id = "weft-warmup";
    warmup.prompt_ids = (*files)->tokenizer().Encode("Hello", EncodeOptions{});
    warmup.sampling.temperature = 0;
    warmup.stopping.max_tokens = 2;
    warmup.stopping.ignore_eos = true;
    auto sink = std::make_shared<StreamBuffer>();
    if (auto s = (*engine)->Submit(std::move(warmup), sink); !s.ok()) return Fail(s);
    while (auto event = sink->Next()) {
      if (auto* error = std::get_if<absl::Status>(&*event)) return Fail(*error);
      if (std::holds_alternative<Finished>(*event)) break;
    }
  }

  ServedModel served;
  served.name = absl::GetFlag(FLAGS_served_model_name);
  if (served.name.empty()) {
    served.name = std::filesystem::path(model_path).filename().string();
  }
  served.architecture = config.architecture;
  served.tokenizer = &(*files)->tokenizer();
  served.vocab_size = config.vocab_size;
  served.max_model_len = (*engine)->max_model_len();
  served.max_n = engine_config.max_n;
  served.chat_template = chat_template->get();
  if (const std::string parser = absl::GetFlag(FLAGS_tool_call_parser); parser == "auto") {
    served.tool_call_format = served.chat_template != nullptr
                                  ? DetectToolCallFormat(served.chat_template->source())
                                  : ToolCallFormat::kNone;
  } else if (auto format = ToolCallFormatFromName(parser)) {
    served.tool_call_format = *format;
  } else {
    return Fail(absl::InvalidArgumentError(absl::StrCat(
        "--tool_call_parser must be auto, hermes, llama3_json, mistral or none; got '",
        parser, "'")));
  }
  std::fprintf(stderr, "weft-server: tool calls: %s\n",
               ToolCallFormatName(served.tool_call_format));
  GrammarConfig grammar_config;
  grammar_config.compile_threads = std::max(1, absl::GetFlag(FLAGS_grammar_threads));
  grammar_config.cache_bytes =
      int64_t{std::max(0, absl::GetFlag(FLAGS_grammar_cache_mb))} << 20;
  grammar_config.compile_timeout =
      absl::Seconds(std::clamp(absl::GetFlag(FLAGS_grammar_timeout), 0.001, 86400.0));
  auto grammars = GrammarCompiler::Create(*served.tokenizer, served.vocab_size,
                                          grammar_config);
  if (grammars.ok()) {
    served.grammars = grammars->get();
  } else {
    // Serve all the same: only structured-output requests are refused.
    std::fprintf(stderr, "weft-server: no structured output: %s\n",
                 grammars.status().ToString().c_str());
  }
  ApiKeys keys;
  if (!absl::GetFlag(FLAGS_api_key_file).empty()) {
    auto loaded = ApiKeys::FromFile(absl::GetFlag(FLAGS_api_key_file));
    if (!loaded.ok()) return Fail(loaded.status());
    keys = *std::move(loaded);
  }
  GrpcServerConfig server_config;
  server_config.host = absl::GetFlag(FLAGS_host);
  server_config.port = absl::GetFlag(FLAGS_port);
  server_config.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  server_config.tls_key = absl::GetFlag(FLAGS_tls_key);
  server_config.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  server_config.keepalive_seconds = absl::GetFlag(FLAGS_grpc_keepalive_seconds);
  server_config.keepalive_timeout_seconds =
      absl::GetFlag(FLAGS_grpc_keepalive_timeout_seconds);
  ServerMetrics metrics(served.name, served.max_model_len);
  auto server = GrpcServer::Start(server_config, engine->get(), served,
                                  std::string((*backend)->name()),
                                  &keys, &metrics);
  if (!server.ok()) return Fail(server.status());
  std::fprintf(stderr,
               "weft-server: serving '%s' (%s, %d KV blocks of %d tokens, "
               "max_model_len %d) on %s:%d\n",
               served.name.c_str(), config.architecture.c_str(),
               plan.num_kv_blocks, plan.block_size, served.max_model_len,
               server_config.host.c_str(), (*server)->port());
  std::unique_ptr<HttpServer> http;
  if (absl::GetFlag(FLAGS_http_port) < 0 && absl::GetFlag(FLAGS_http_probe_port) >= 0) {
    return Fail(absl::InvalidArgumentError(
        "--http_probe_port needs HTTP on (--http_port >= 0)"));
  }
  if (absl::GetFlag(FLAGS_http_port) >= 0) {
    HttpServerConfig http_config;
    http_config.host = absl::GetFlag(FLAGS_http_host).empty()
                           ? server_config.host
                           : absl::GetFlag(FLAGS_http_host);
    http_config.port = absl::GetFlag(FLAGS_http_port);
    http_config.num_threads = absl::GetFlag(FLAGS_http_threads);
    http_config.max_queued_connections =
        absl::GetFlag(FLAGS_http_max_queued_connections);
    http_config.max_body_bytes = absl::GetFlag(FLAGS_http_max_body_bytes);
    http_config.probe_port = absl::GetFlag(FLAGS_http_probe_port);
    auto started =
        HttpServer::Start(http_config, engine->get(), served, &keys, &metrics);
    if (!started.ok()) return Fail(started.status());
    http = *std::move(started);
    std::fprintf(stderr, "weft-server: OpenAI-compatible HTTP at http://%s:%d\n",
                 http_config.host.c_str(), http->port());
    if (http->probe_port() > 0) {
      std::fprintf(stderr, "weft-server: /health and /metrics also at http://%s:%d\n",
                   http_config.host.c_str(), http->probe_port());
    }
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  std::fprintf(stderr, "weft-server: signal %d, draining for up to %.0f s\n",
               signal_number, absl::GetFlag(FLAGS_drain_timeout));
  // Both ports close first; Drain waits for every request in the engine,
  // whichever front end it came from, then stops the engine.
  if (http) http->StartDraining();
  (*server)->Drain(absl::Seconds(absl::GetFlag(FLAGS_drain_timeout)));
  if (http) http->Stop();
  std::fprintf(stderr, "weft-server: stopped\n");
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Serves a model over gRPC (weft.v1.Generation) and OpenAI-compatible "
      "HTTP. See --helpfull.");
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  absl::ParseCommandLine(argc, argv);
  return weft::Main();
}
