// weft: the command-line client of weft-server.
//
//   weft generate --prompt "Why is the sky blue?" [--chat] [--max-tokens 64]
//   weft chat [--system "Be brief."] [--max-tokens 256] [--show-prompt]
//   weft tokenize --text "Hello"        weft health        weft load
//
// `weft chat` is an interactive conversation: each line read from stdin is
// a user message, the assistant's reply streams to stdout, and both join
// the history sent with the next line (the server renders it with the
// model's chat template). /reset forgets the history; /exit or end of input
// quits.
//
// Common flags: --server host:port, --api-key KEY (or $WEFT_API_KEY),
// --tls-ca ca.pem (TLS), --tls-cert/--tls-key (mTLS). Exit code 0 on
// success, 1 with the gRPC status on stderr otherwise.
#include <unistd.h>

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
          "generate: send the prompt as one user message of a chat (the "
          "server applies the model's chat template)");
ABSL_FLAG(std::string, system, "", "chat, generate --chat: a system message");
ABSL_FLAG(bool, show_prompt, false,
          "chat, generate --chat: print the prompt the chat template rendered "
          "to stderr");
ABSL_FLAG(int, max_tokens, 256, "generate, chat: most tokens to generate (per reply)");
ABSL_FLAG(float, temperature, 0.0f, "generate, chat: 0 is greedy");
ABSL_FLAG(float, top_p, 1.0f, "generate, chat: nucleus mass");
ABSL_FLAG(int64_t, seed, -1, "generate: sampling seed (-1: server's choice)");
ABSL_FLAG(std::string, text, "", "tokenize: the text");
ABSL_FLAG(std::string, json_schema, "",
          "generate, chat: the reply is an instance of this JSON schema (a file)");
ABSL_FLAG(bool, json_object, false, "generate, chat: the reply is a JSON object");
ABSL_FLAG(std::string, regex, "",
          "generate, chat: the reply matches this regular expression");
ABSL_FLAG(std::string, grammar, "",
          "generate, chat: the reply matches this EBNF or Lark grammar (a file)");

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

void SetSampling(v1::SamplingParams* sampling, v1::StoppingParams* stopping) {
  sampling->set_temperature(absl::GetFlag(FLAGS_temperature));
  sampling->set_top_p(absl::GetFlag(FLAGS_top_p));
  if (absl::GetFlag(FLAGS_seed) >= 0) sampling->set_seed(absl::GetFlag(FLAGS_seed));
  stopping->set_max_tokens(absl::GetFlag(FLAGS_max_tokens));
}

// --json_schema, --json_object, --regex, --grammar (at most one) into
// `out`; false (reported) for more than one. An unreadable file exits 1.
bool SetStructuredOutput(v1::StructuredOutput* out) {
  const int given = !absl::GetFlag(FLAGS_json_schema).empty() +
                    absl::GetFlag(FLAGS_json_object) +
                    !absl::GetFlag(FLAGS_regex).empty() +
                    !absl::GetFlag(FLAGS_grammar).empty();
  if (given > 1) {
    std::fprintf(stderr,
                 "weft: give at most one of --json_schema, --json_object, --regex, "
                 "--grammar\n");
    return false;
  }
  if (!absl::GetFlag(FLAGS_json_schema).empty()) {
    out->set_json_schema(ReadFile(absl::GetFlag(FLAGS_json_schema)));
  } else if (!absl::GetFlag(FLAGS_grammar).empty()) {
    out->set_grammar(ReadFile(absl::GetFlag(FLAGS_grammar)));
  } else if (absl::GetFlag(FLAGS_json_object)) {
    out->set_json_object(true);
  } else if (!absl::GetFlag(FLAGS_regex).empty()) {
    out->set_regex(absl::GetFlag(FLAGS_regex));
  }
  return true;
}

// Prints a Generate or Chat stream: text to stdout as it comes, the usage
// line to stderr. Returns the whole text and the Final message.
struct StreamResult {
  grpc::Status status;
  std::string text;
  v1::Final final_message;
};

StreamResult PrintStream(grpc::ClientReader<v1::GenerateResponse>& reader) {
  StreamResult result;
  v1::GenerateResponse response;
  while (reader.Read(&response)) {
    if (response.has_delta()) {
      result.text += response.delta().text();
      std::cout << response.delta().text() << std::flush;
    } else {
      const v1::Final& f = response.final();
      result.final_message = f;
      std::cout << std::endl;
      if (absl::GetFlag(FLAGS_show_prompt)) {
        std::fprintf(stderr, "[prompt]\n%s[/prompt]\n", f.prompt().c_str());
      }
      std::fprintf(stderr,
                   "[%d prompt + %d completion tokens, %d cached; first token "
                   "after %.3f s, %.3f s in all]\n",
                   f.usage().prompt_tokens(), f.usage().completion_tokens(),
                   f.usage().cached_prompt_tokens(),
                   f.timings().time_to_first_token_seconds(),
                   f.timings().end_to_end_seconds());
    }
  }
  result.status = reader.Finish();
  return result;
}

v1::ChatRequest NewChatRequest() {
  v1::ChatRequest request;
  if (!absl::GetFlag(FLAGS_system).empty()) {
    v1::ChatMessage* system = request.add_messages();
    system->set_role("system");
    system->set_content(absl::GetFlag(FLAGS_system));
  }
  SetSampling(request.mutable_sampling(), request.mutable_stopping());
  request.set_echo_prompt(absl::GetFlag(FLAGS_show_prompt));
  return request;
}

int Generate(v1::Generation::Stub& stub) {
  grpc::ClientContext context;
  Prepare(&context);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader;
  v1::StructuredOutput structured;
  if (!SetStructuredOutput(&structured)) return 2;
  const bool constrained =
      structured.kind_case() != v1::StructuredOutput::KIND_NOT_SET;
  if (absl::GetFlag(FLAGS_chat)) {
    v1::ChatRequest request = NewChatRequest();
    v1::ChatMessage* user = request.add_messages();
    user->set_role("user");
    user->set_content(absl::GetFlag(FLAGS_prompt));
    if (constrained) *request.mutable_structured_output() = structured;
    reader = stub.Chat(&context, request);
  } else {
    v1::GenerateRequest request;
    request.set_text(absl::GetFlag(FLAGS_prompt));
    SetSampling(request.mutable_sampling(), request.mutable_stopping());
    if (constrained) *request.mutable_structured_output() = structured;
    reader = stub.Generate(&context, request);
  }
  return Report(PrintStream(*reader).status);
}

// The interactive conversation. A turn the server refuses is reported and
// left out of the history; the exit code is then 1.
int Chat(v1::Generation::Stub& stub) {
  const bool interactive = isatty(STDIN_FILENO);
  v1::ChatRequest request = NewChatRequest();
  if (!SetStructuredOutput(request.mutable_structured_output())) return 2;
  if (request.structured_output().kind_case() == v1::StructuredOutput::KIND_NOT_SET) {
    request.clear_structured_output();
  }
  const int num_system_messages = request.messages_size();
  int rc = 0;
  std::string line;
  while (true) {
    if (interactive) std::cout << "> " << std::flush;
    if (!std::getline(std::cin, line)) break;
    if (line == "/exit" || line == "/quit") break;
    if (line == "/reset") {
      while (request.messages_size() > num_system_messages) request.mutable_messages()->RemoveLast();
      continue;
    }
    if (line.empty()) continue;
    v1::ChatMessage* user = request.add_messages();
    user->set_role("user");
    user->set_content(line);
    grpc::ClientContext context;
    Prepare(&context);
    auto reader = stub.Chat(&context, request);
    const StreamResult result = PrintStream(*reader);
    if (!result.status.ok()) {
      Report(result.status);
      request.mutable_messages()->RemoveLast();
      rc = 1;
      continue;
    }
    v1::ChatMessage* assistant = request.add_messages();
    assistant->set_role("assistant");
    assistant->set_content(result.text);
  }
  if (interactive) std::cout << std::endl;
  return rc;
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
      "weft generate|chat|tokenize|health|load [flags]: talks to weft-server");
  std::vector<std::string> flag_storage;
  weft::AcceptDashedFlags(argc, argv, flag_storage);
  std::vector<char*> rest = absl::ParseCommandLine(argc, argv);
  if (rest.size() != 2) {
    std::fprintf(stderr, "usage: weft generate|chat|tokenize|health|load [flags]\n");
    return 2;
  }
  const std::string command = rest[1];
  auto channel = weft::Connect();
  auto stub = weft::v1::Generation::NewStub(channel);
  if (command == "generate") return weft::Generate(*stub);
  if (command == "chat") return weft::Chat(*stub);
  if (command == "tokenize") return weft::Tokenize(*stub);
  if (command == "health") return weft::Health(channel);
  if (command == "load") return weft::Load(*stub);
  std::fprintf(stderr, "weft: unknown command '%s'\n", command.c_str());
  return 2;
}
