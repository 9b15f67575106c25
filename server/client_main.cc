// weft: the command-line client of weft-server.
//
//   weft generate --prompt "Why is the sky blue?" [--chat] [--max-tokens 64]
//   weft tokenize --text "Hello"        weft health        weft load
//
// Common flags: --server host:port, --api-key KEY (or $WEFT_API_KEY),
// --tls-ca ca.pem (TLS), --tls-cert/--tls-key (mTLS). Exit code 0 on
// success, 1 with the gRPC status on stderr otherwise.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include <grpcpp/grpcpp.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/flag_spelling.h"
#include "weft/v1/generation.grpc.pb.h"

ABSL_FLAG(std::string, server, "localhost:50051", "weft-server address");
ABSL_FLAG(std::string, api_key, "", "API key (default: $WEFT_API_KEY)");
ABSL_FLAG(std::string, tls_ca, "", "PEM CA to trust: connect with TLS");
ABSL_FLAG(std::string, tls_cert, "", "PEM client certificate (mTLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM key of --tls_cert");
ABSL_FLAG(std::string, tls_server_name, "",
          "name to verify in the server certificate (default: the host)");
ABSL_FLAG(double, timeout, 600, "seconds before the call is abandoned");
ABSL_FLAG(std::string, prompt, "", "generate: the prompt text");
ABSL_FLAG(bool, chat, false,
          "generate: wrap the prompt as one ChatML user turn");
ABSL_FLAG(int, max_tokens, 256, "generate: most tokens to generate");
ABSL_FLAG(float, temperature, 0.0f, "generate: 0 is greedy");
ABSL_FLAG(float, top_p, 1.0f, "generate: nucleus mass");
ABSL_FLAG(int64_t, seed, -1, "generate: sampling seed (-1: server's choice)");
ABSL_FLAG(std::string, text, "", "tokenize: the text");

namespace weft {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "weft: cannot read '%s'\n", path.c_str());
    std::exit(1);
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::shared_ptr<grpc::Channel> Connect() {
  grpc::ChannelArguments args;
  if (absl::GetFlag(FLAGS_tls_ca).empty()) {
    return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                     grpc::InsecureChannelCredentials(), args);
  }
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = ReadFile(absl::GetFlag(FLAGS_tls_ca));
  if (!absl::GetFlag(FLAGS_tls_cert).empty()) {
    options.pem_cert_chain = ReadFile(absl::GetFlag(FLAGS_tls_cert));
    options.pem_private_key = ReadFile(absl::GetFlag(FLAGS_tls_key));
  }
  if (!absl::GetFlag(FLAGS_tls_server_name).empty()) {
    args.SetSslTargetNameOverride(absl::GetFlag(FLAGS_tls_server_name));
  }
  return grpc::CreateCustomChannel(absl::GetFlag(FLAGS_server),
                                   grpc::SslCredentials(options), args);
}

void Prepare(grpc::ClientContext* context) {
  std::string key = absl::GetFlag(FLAGS_api_key);
  if (key.empty() && std::getenv("WEFT_API_KEY") != nullptr) {
    key = std::getenv("WEFT_API_KEY");
  }
  if (!key.empty()) context->AddMetadata("authorization", "Bearer " + key);
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(
                            absl::GetFlag(FLAGS_timeout) * 1000)));
}

int Report(const grpc::Status& status) {
  if (status.ok()) return 0;
  std::fprintf(stderr, "weft: %d %s\n", static_cast<int>(status.error_code()),
               status.error_message().c_str());
  return 1;
}

int Generate(v1::Generation::Stub& stub) {
  v1::GenerateRequest request;
  const std::string prompt = absl::GetFlag(FLAGS_prompt);
  request.set_text(absl::GetFlag(FLAGS_chat)
                       ? "<|im_start|>user\n" + prompt +
                             "<|im_end|>\n<|im_start|>assistant\n"
                       : prompt);
  request.mutable_sampling()->set_temperature(absl::GetFlag(FLAGS_temperature));
  request.mutable_sampling()->set_top_p(absl::GetFlag(FLAGS_top_p));
  if (absl::GetFlag(FLAGS_seed) >= 0) {
    request.mutable_sampling()->set_seed(absl::GetFlag(FLAGS_seed));
  }
  request.mutable_stopping()->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
  grpc::ClientContext context;
  Prepare(&context);
  auto reader = stub.Generate(&context, request);
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_delta()) {
      std::cout << response.delta().text() << std::flush;
    } else {
      const v1::Final& f = response.final();
      std::cout << std::endl;
      std::fprintf(stderr,
                   "[%d prompt + %d completion tokens, %d cached; first token "
                   "after %.3f s, %.3f s in all]\n",
                   f.usage().prompt_tokens(), f.usage().completion_tokens(),
                   f.usage().cached_prompt_tokens(),
                   f.timings().time_to_first_token_seconds(),
                   f.timings().end_to_end_seconds());
    }
  }
  return Report(reader->Finish());
}

int Tokenize(v1::Generation::Stub& stub) {
  v1::TokenizeRequest request;
  request.set_text(absl::GetFlag(FLAGS_text));
  v1::TokenizeResponse response;
  grpc::ClientContext context;
  Prepare(&context);
  if (int rc = Report(stub.Tokenize(&context, request, &response)); rc != 0) {
    return rc;
  }
  std::string out = "[";
  for (int i = 0; i < response.token_ids_size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", response.token_ids(i));
  }
  std::cout << out << "]" << std::endl;
  return 0;
}

int Health(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::health::v1::HealthCheckResponse response;
  grpc::ClientContext context;
  Prepare(&context);
  if (int rc = Report(stub->Check(&context, {}, &response)); rc != 0) return rc;
  std::cout << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                   response.status())
            << std::endl;
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

int Load(v1::Generation::Stub& stub) {
  v1::Load load;
  grpc::ClientContext context;
  Prepare(&context);
  if (int rc = Report(stub.GetLoad(&context, {}, &load)); rc != 0) return rc;
  std::printf("waiting %d  running %d  live %d  kv blocks %d/%d used  "
              "prefix-cache hit rate %.3f\n",
              load.waiting(), load.running(), load.live_requests(),
              load.kv_blocks_used(), load.kv_blocks_total(),
              load.prefix_cache_hit_rate());
  return 0;
}

}  // namespace
}  // namespace weft

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "weft generate|tokenize|health|load [flags]: talks to weft-server");
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() != 2) {
    std::fprintf(stderr, "usage: weft generate|tokenize|health|load [flags]\n");
    return 2;
  }
  const std::string command = rest[1];
  auto channel = weft::Connect();
  auto stub = weft::v1::Generation::NewStub(channel);
  if (command == "generate") return weft::Generate(*stub);
  if (command == "tokenize") return weft::Tokenize(*stub);
  if (command == "health") return weft::Health(channel);
  if (command == "load") return weft::Load(*stub);
  std::fprintf(stderr, "weft: unknown command '%s'\n", command.c_str());
  return 2;
}
