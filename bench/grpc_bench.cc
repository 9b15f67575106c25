// weft-bench-grpc: the cost of serving through gRPC. The same workload —
// N concurrent greedy requests — runs in-process (straight into the engine)
// and through weft-server's gRPC service on loopback (one client thread
// per stream), alternating, --repetitions times; prints the median output
// tokens/s of each and their ratio. Prefix caching is off so every run
// computes the same prompts.
//
//   build/bench/weft-bench-grpc --model models/SmolLM2-135M-Instruct.Q4_1.gguf
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "kernels/cpu/cpu_backend.h"
#include "runtime/engine.h"
#include "runtime/model/model_files.h"
#include "server/grpc_server.h"
#include "tools/flag_spelling.h"

ABSL_FLAG(std::string, model, "models/SmolLM2-135M-Instruct.Q4_1.gguf",
          "a .gguf file or a Hugging Face model directory");
ABSL_FLAG(int, streams, 32, "concurrent requests");
ABSL_FLAG(int, prompt_tokens, 32, "prompt length");
ABSL_FLAG(int, output_tokens, 16, "tokens generated per request");
ABSL_FLAG(int, repetitions, 3, "runs of each mode (alternating)");

namespace weft {
namespace {

using Clock = std::chrono::steady_clock;

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "weft-bench-grpc: %s\n", s.ToString().c_str());
  return 1;
}

std::vector<std::vector<int32_t>> Prompts(int vocab) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<int32_t> id(100, std::min(vocab - 1, 20000));
  std::vector<std::vector<int32_t>> prompts(absl::GetFlag(FLAGS_streams));
  for (auto& p : prompts) {
    p.resize(absl::GetFlag(FLAGS_prompt_tokens));
    for (int32_t& t : p) t = id(rng);
  }
  return prompts;
}

// Output tokens/s of the workload submitted straight to the engine.
double InProcess(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                 int run) {
  std::vector<std::shared_ptr<StreamBuffer>> sinks;
  const auto start = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    Request r;
    r.id = absl::StrCat("local-", run, "-", i);
    r.prompt_ids = prompts[i];
    r.sampling.temperature = 0;
    r.stopping.max_tokens = absl::GetFlag(FLAGS_output_tokens);
    r.stopping.ignore_eos = true;
    sinks.push_back(std::make_shared<StreamBuffer>());
    if (!engine.Submit(std::move(r), sinks.back()).ok()) return 0;
  }
  int64_t tokens = 0;
  for (auto& sink : sinks) {
    while (auto event = sink->Next()) {
      if (auto* d = std::get_if<Delta>(&*event)) tokens += d->token_ids.size();
      if (!std::holds_alternative<Delta>(*event)) break;
    }
  }
  return tokens / std::chrono::duration<double>(Clock::now() - start).count();
}

// The same through gRPC, one client thread per stream.
double OverGrpc(v1::Generation::Stub& stub,
                const std::vector<std::vector<int32_t>>& prompts) {
  std::vector<int64_t> tokens(prompts.size(), 0);
  std::vector<std::thread> clients;
  const auto start = Clock::now();
  for (size_t i = 0; i < prompts.size(); ++i) {
    clients.emplace_back([&, i] {
      v1::GenerateRequest request;
      request.mutable_token_ids()->mutable_ids()->Add(prompts[i].begin(),
                                                      prompts[i].end());
      request.mutable_sampling()->set_temperature(0);
      request.mutable_stopping()->set_max_tokens(absl::GetFlag(FLAGS_output_tokens));
      request.mutable_stopping()->set_ignore_eos(true);
      grpc::ClientContext context;
      auto reader = stub.Generate(&context, request);
      v1::GenerateResponse response;
      while (reader->Read(&response)) {
        if (response.has_delta()) tokens[i] += response.delta().token_ids_size();
      }
      reader->Finish();
    });
  }
  for (auto& t : clients) t.join();
  int64_t total = 0;
  for (int64_t t : tokens) total += t;
  return total / std::chrono::duration<double>(Clock::now() - start).count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

int Main() {
  auto files = ModelFiles::Open(absl::GetFlag(FLAGS_model));
  if (!files.ok()) return Fail(files.status());
  const int streams = absl::GetFlag(FLAGS_streams);
  EngineConfig config;
  config.scheduler.max_num_seqs = streams;
  config.scheduler.max_num_logit_rows = streams;
  config.scheduler.max_num_batched_tokens =
      std::max(512, streams * absl::GetFlag(FLAGS_prompt_tokens));
  config.scheduler.enable_prefix_caching = false;
  ModelPlan plan;
  plan.max_num_tokens = config.scheduler.max_num_batched_tokens;
  plan.max_num_logits = streams;
  plan.num_kv_blocks = streams * ((absl::GetFlag(FLAGS_prompt_tokens) +
                                   absl::GetFlag(FLAGS_output_tokens)) / 16 + 2);
  CpuBackend backend;
  auto model = LlamaModel::Create(**files, &backend, plan);
  if (!model.ok()) return Fail(model.status());
  auto engine = Engine::Create(model->get(), &backend, &(*files)->tokenizer(), config);
  if (!engine.ok()) return Fail(engine.status());
  (*engine)->Start();
  ServedModel served;
  served.name = "bench";
  served.tokenizer = &(*files)->tokenizer();
  served.vocab_size = (*files)->config().vocab_size;
  served.max_model_len = (*engine)->max_model_len();
  ApiKeys keys;
  GrpcServerConfig server_config;
  server_config.host = "127.0.0.1";
  server_config.port = 0;
  auto server = GrpcServer::Start(server_config, engine->get(), served, "cpu", &keys);
  if (!server.ok()) return Fail(server.status());
  auto stub = v1::Generation::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", (*server)->port()), grpc::InsecureChannelCredentials()));

  const auto prompts = Prompts((*files)->config().vocab_size);
  std::vector<double> local, remote;
  for (int run = 0; run < absl::GetFlag(FLAGS_repetitions); ++run) {
    local.push_back(InProcess(**engine, prompts, run));
    remote.push_back(OverGrpc(*stub, prompts));
    std::printf("run %d: in-process %.2f tok/s, gRPC %.2f tok/s\n", run,
                local.back(), remote.back());
    std::fflush(stdout);
  }
  std::printf("%d streams x %d output tokens (prompts of %d): median in-process "
              "%.2f tok/s, gRPC %.2f tok/s, ratio %.3f\n",
              streams, absl::GetFlag(FLAGS_output_tokens),
              absl::GetFlag(FLAGS_prompt_tokens), Median(local), Median(remote),
              Median(remote) / Median(local));
  (*server)->Shutdown(absl::Seconds(5));
  (*engine)->Stop();
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
