// weft-generate: runs one prompt through a model on the CPU and streams the
// continuation to stdout; timings go to stderr.
//
//   weft-generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf
//       --chat --prompt "What is the capital of France?" --max-tokens 64
// Flags may be spelled with dashes or underscores.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "kernels/factory/backend_factory.h"
#include "runtime/chat/chat_template.h"
#include "runtime/model/llama.h"
#include "runtime/model/model_files.h"
#include "runtime/sampler.h"
#include "runtime/sequence_runner.h"
#include "runtime/text_stream.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf",
          "a .gguf file, or a Hugging Face model directory");
ABSL_FLAG(std::string, prompt, "", "the prompt text");
ABSL_FLAG(bool, chat, false,
          "send the prompt as one user turn, rendered with the model's chat "
          "template");
ABSL_FLAG(std::string, system, "", "with --chat: a system message");
ABSL_FLAG(std::string, chat_template, "",
          "with --chat: a Jinja chat template file to use instead of the "
          "model's");
ABSL_FLAG(std::string, device, "auto",
          "cpu, cuda, or auto (cuda when a GPU is usable, else cpu)");
ABSL_FLAG(int, threads, 0,
          "CPU threads for the kernels (0: one per physical core)");
ABSL_FLAG(std::string, kv_cache_dtype, "auto",
          "element type of the CPU backend's KV cache: f16 (half the bytes "
          "attention reads), f32 (exact), or auto: f16, f32 with "
          "--reference_kernels; the CUDA backend keeps bf16");
ABSL_FLAG(int, activation_levels, 2,
          "CPU backend: int8 levels per block of 32 that quantized matmuls "
          "quantize activations to: 2 (log-probs within ~1e-2 of fp32) or 1 "
          "(llama.cpp's scheme; docs/cpu.md)");
ABSL_FLAG(bool, reference_kernels, false,
          "use the reference CPU kernels (fp32, one thread)");
ABSL_FLAG(int, max_tokens, 128, "tokens to generate at most");
ABSL_FLAG(float, temperature, 0.0f, "0 for greedy decoding");
ABSL_FLAG(float, top_p, 1.0f, "nucleus sampling mass, (0, 1]");
ABSL_FLAG(int, top_k, 0, "sample among the k most likely tokens; 0 = all");
ABSL_FLAG(float, min_p, 0.0f,
          "drop tokens less likely than min_p times the most likely, [0, 1]");
ABSL_FLAG(float, repetition_penalty, 1.0f,
          "penalize tokens already in the prompt or output; 1 = off");
ABSL_FLAG(uint64_t, seed, 0, "random seed for sampling");
ABSL_FLAG(bool, ignore_eos, false, "keep generating past end-of-sequence");
ABSL_FLAG(int, max_model_len, 4096, "context length to plan the KV cache for");
ABSL_FLAG(std::string, gemm, "autotune",
          "CUDA: autotune, cublas, own or invariant (see weft-server --help)");
ABSL_FLAG(std::string, weight_dtype, "bf16",
          "CUDA: bf16 or int4 (W4A16; see weft-server --help)");
ABSL_FLAG(bool, cuda_graphs, true, "CUDA: replay decode steps from a graph");

namespace weft {
namespace {

// The prompt as one user turn (after an optional system message) rendered
// with the model's chat template, or --chat_template's.
absl::StatusOr<std::vector<int32_t>> ChatPrompt(const ModelFiles& files) {
  auto chat_template = LoadChatTemplate(files, absl::GetFlag(FLAGS_chat_template));
  if (!chat_template.ok()) return chat_template.status();
  if (*chat_template == nullptr) {
    return absl::FailedPreconditionError(
        "the model has no chat template: give one with --chat_template FILE");
  }
  ChatTemplateInputs inputs;
  if (!absl::GetFlag(FLAGS_system).empty()) {
    inputs.messages.push_back({{"role", "system"}, {"content", absl::GetFlag(FLAGS_system)}});
  }
  inputs.messages.push_back({{"role", "user"}, {"content", absl::GetFlag(FLAGS_prompt)}});
  return EncodeChatPrompt(**chat_template, files.tokenizer(), inputs);
}

int Fail(const absl::Status& status) {
  std::fprintf(stderr, "weft-generate: %s\n", status.ToString().c_str());
  return 1;
}

int Run() {
  SamplingParams sampling;
  sampling.temperature = absl::GetFlag(FLAGS_temperature);
  sampling.top_p = absl::GetFlag(FLAGS_top_p);
  sampling.top_k = absl::GetFlag(FLAGS_top_k);
  sampling.min_p = absl::GetFlag(FLAGS_min_p);
  sampling.repetition_penalty = absl::GetFlag(FLAGS_repetition_penalty);
  sampling.seed = absl::GetFlag(FLAGS_seed);
  StoppingParams stopping;
  stopping.max_tokens = absl::GetFlag(FLAGS_max_tokens);
  stopping.ignore_eos = absl::GetFlag(FLAGS_ignore_eos);
  if (auto s = stopping.Validate(); !s.ok()) return Fail(s);

  auto files = ModelFiles::Open(absl::GetFlag(FLAGS_model));
  if (!files.ok()) return Fail(files.status());
  const Tokenizer& tokenizer = (*files)->tokenizer();
  if (auto s = sampling.Validate(tokenizer.vocab_size()); !s.ok()) {
    return Fail(s);
  }
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 1;
  auto device = ParseDeviceKind(absl::GetFlag(FLAGS_device));
  if (!device.ok()) return Fail(device.status());
  BackendOptions backend_options;
  backend_options.device = *device;
  backend_options.model_head_dim = (*files)->config().head_dim;
  backend_options.cpu.num_threads = absl::GetFlag(FLAGS_threads);
  backend_options.cpu.reference = absl::GetFlag(FLAGS_reference_kernels);
  backend_options.cpu.activation_levels = absl::GetFlag(FLAGS_activation_levels);
  auto kv_cache_dtype = ParseCpuKvCacheDtype(absl::GetFlag(FLAGS_kv_cache_dtype),
                                             absl::GetFlag(FLAGS_reference_kernels));
  if (!kv_cache_dtype.ok()) return Fail(kv_cache_dtype.status());
  backend_options.cpu.kv_cache_dtype = *kv_cache_dtype;
  backend_options.cuda.max_num_tokens = plan.max_num_tokens;
  backend_options.cuda.max_num_seqs = 1;
  if (auto s = ParseCudaKernelOptions(absl::GetFlag(FLAGS_gemm),
                                      absl::GetFlag(FLAGS_weight_dtype),
                                      &backend_options.cuda);
      !s.ok()) {
    return Fail(s);
  }
  auto backend_or = MakeBackend(backend_options);
  if (!backend_or.ok()) return Fail(backend_or.status());
  Backend& backend = **backend_or;
  const int max_len = std::min(absl::GetFlag(FLAGS_max_model_len),
                               (*files)->config().max_position_embeddings);
  plan.num_kv_blocks = (max_len + plan.block_size - 1) / plan.block_size;
  auto model = LlamaModel::Create(**files, &backend, plan);
  if (!model.ok()) return Fail(model.status());
  // As weft-server does: the GEMM autotune, then the decode graph (CUDA).
  std::string warm_up_report;
  if (auto s = (*model)->WarmUp(1, absl::GetFlag(FLAGS_cuda_graphs),
                                &warm_up_report);
      !s.ok()) {
    return Fail(s);
  }
  if (!warm_up_report.empty()) {
    std::fprintf(stderr, "%s", warm_up_report.c_str());
  }

  std::vector<int32_t> prompt;
  if (absl::GetFlag(FLAGS_chat)) {
    absl::StatusOr<std::vector<int32_t>> ids = ChatPrompt(**files);
    if (!ids.ok()) return Fail(ids.status());
    prompt = *std::move(ids);
  } else {
    EncodeOptions encode;
    encode.add_special_tokens = true;
    prompt = tokenizer.Encode(absl::GetFlag(FLAGS_prompt), encode);
  }
  if (prompt.empty()) {
    return Fail(absl::InvalidArgumentError("the prompt encodes to no tokens"));
  }

  SequenceRunner runner(model->get());
  SequenceSampler sampler(sampling, *sampling.seed, /*index=*/0);
  TextStream text_stream(tokenizer, stopping);
  std::vector<int32_t> output;
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  auto logits = runner.Append(prompt);
  if (!logits.ok()) return Fail(logits.status());
  const auto prefill_done = Clock::now();
  while (true) {
    const int32_t token = sampler.Sample(*logits, prompt, output).token;
    output.push_back(token);
    const TextStream::Update update = text_stream.Add(token);
    std::cout << update.text << std::flush;
    if (update.finish.has_value()) break;
    logits = runner.Append({&token, 1});
    if (!logits.ok()) {
      if (absl::IsOutOfRange(logits.status())) break;  // context is full
      return Fail(logits.status());
    }
  }
  const int generated = text_stream.num_tokens();
  std::cout << text_stream.Flush() << std::endl;
  const auto end = Clock::now();
  const double prefill_s =
      std::chrono::duration<double>(prefill_done - start).count();
  const double decode_s =
      std::chrono::duration<double>(end - prefill_done).count();
  std::fprintf(stderr,
               "prompt: %zu tokens, %.1f tokens/s; generation: %d tokens, "
               "%.1f tokens/s\n",
               prompt.size(), prompt.size() / prefill_s, generated,
               generated > 1 ? (generated - 1) / decode_s : 0.0);
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Generates a continuation of --prompt with a GGUF or Hugging Face "
      "model on the CPU.");
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  absl::ParseCommandLine(argc, argv);
  return weft::Run();
}
