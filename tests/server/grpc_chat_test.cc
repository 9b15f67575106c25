// weft.v1.Generation/Chat over loopback gRPC on the tiny Qwen2 model: a
// chat is Generate on the prompt the chat template rendered (same stream,
// same validation, cancel, auth and drain), bad conversations are
// INVALID_ARGUMENT naming the field, and a server without a chat template
// answers FAILED_PRECONDITION pointing at --chat_template.
#include <grpcpp/grpcpp.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/chat/chat_template.h"
#include "server/generation_service.h"
#include "server/grpc_server.h"
#include "tests/engine/engine_harness.h"

namespace weft {
namespace {

using test::EngineHarness;

// ChatML, refusing roles it does not know as real templates do.
constexpr char kTemplate[] =
    "{%- for m in messages %}"
    "{%- if m.role not in ['system', 'user', 'assistant'] %}"
    "{{- raise_exception('Unknown role: ' + m.role) }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

ModelPlan Plan() {
  ModelPlan plan;
  plan.max_num_tokens = 256;
  plan.max_num_logits = 64;
  plan.num_kv_blocks = 64;
  plan.block_size = 4;
  return plan;
}

EngineConfig Config() {
  EngineConfig config;
  config.scheduler.max_num_batched_tokens = 256;
  config.scheduler.max_num_seqs = 32;
  config.scheduler.max_num_logit_rows = 64;
  return config;
}

struct Streamed {
  grpc::Status status;
  std::vector<int32_t> tokens;
  std::string text;
  std::optional<v1::Final> final_message;
};

template <typename Reader>
Streamed ReadAll(Reader& reader) {
  Streamed out;
  v1::GenerateResponse response;
  while (reader->Read(&response)) {
    if (response.has_delta()) {
      out.tokens.insert(out.tokens.end(), response.delta().token_ids().begin(),
                        response.delta().token_ids().end());
      out.text += response.delta().text();
    } else {
      out.final_message = response.final();
    }
  }
  out.status = reader->Finish();
  return out;
}

v1::ChatMessage Message(const std::string& role, const std::string& content) {
  v1::ChatMessage m;
  m.set_role(role);
  m.set_content(content);
  return m;
}

v1::ChatRequest GreedyChat(int max_tokens) {
  v1::ChatRequest request;
  *request.add_messages() = Message("system", "You are terse.");
  *request.add_messages() = Message("user", "Hello there");
  request.mutable_sampling()->set_temperature(0);
  request.mutable_stopping()->set_max_tokens(max_tokens);
  request.mutable_stopping()->set_ignore_eos(true);
  return request;
}

class GrpcChatTest : public ::testing::Test {
 protected:
  // `with_template`: serve kTemplate; else no chat template at all.
  void Start(bool with_template, const ApiKeys* keys) {
    harness_ = std::make_unique<EngineHarness>(test::TinyModelPath("tiny_qwen2"), Plan(), Config());
    ASSERT_TRUE(harness_->ok());
    harness_->engine().Start();
    if (with_template) {
      auto t = ChatTemplate::Create(kTemplate, "", "<|im_end|>");
      ASSERT_TRUE(t.ok()) << t.status();
      template_ = *std::move(t);
    }
    ServedModel model;
    model.name = "tiny";
    model.architecture = "qwen2";
    model.tokenizer = &harness_->tokenizer();
    model.vocab_size = harness_->tokenizer().vocab_size();
    model.max_model_len = harness_->engine().max_model_len();
    model.max_n = 4;
    model.chat_template = template_.get();
    served_ = model;
    GrpcServerConfig config;
    config.host = "127.0.0.1";
    config.port = 0;
    auto server = GrpcServer::Start(config, &harness_->engine(), model, "cpu", keys);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    stub_ = v1::Generation::NewStub(grpc::CreateChannel(absl::StrCat("127.0.0.1:", server_->port()),
                                                        grpc::InsecureChannelCredentials()));
  }
  void SetUp() override { Start(true, &keys_); }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Seconds(5));
    if (harness_ && harness_->ok()) harness_->engine().Stop();
  }

  Streamed Chat(const v1::ChatRequest& request, const std::string& key = "") {
    grpc::ClientContext context;
    if (!key.empty()) context.AddMetadata("authorization", "Bearer " + key);
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Chat(&context, request);
    return ReadAll(reader);
  }

  Streamed Generate(const v1::GenerateRequest& request) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub_->Generate(&context, request);
    return ReadAll(reader);
  }

  // A Chat that must fail: its status.
  grpc::Status Refused(const v1::ChatRequest& request) {
    Streamed s = Chat(request);
    EXPECT_TRUE(s.tokens.empty());
    return s.status;
  }

  ApiKeys keys_;  // none: auth disabled
  ServedModel served_;
  std::unique_ptr<EngineHarness> harness_;
  std::unique_ptr<ChatTemplate> template_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<v1::Generation::Stub> stub_;
};

TEST_F(GrpcChatTest, StreamEqualsGenerateOnTheRenderedPrompt) {
  v1::ChatRequest request = GreedyChat(10);
  request.set_echo_prompt(true);
  const Streamed chat = Chat(request);
  ASSERT_TRUE(chat.status.ok()) << chat.status.error_message();
  ASSERT_TRUE(chat.final_message.has_value());
  EXPECT_EQ(chat.final_message->prompt(),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n");

  v1::GenerateRequest generate;
  generate.set_text(chat.final_message->prompt());
  *generate.mutable_sampling() = request.sampling();
  *generate.mutable_stopping() = request.stopping();
  const Streamed direct = Generate(generate);
  ASSERT_TRUE(direct.status.ok()) << direct.status.error_message();
  EXPECT_EQ(chat.tokens, direct.tokens);
  EXPECT_EQ(chat.text, direct.text);
  EXPECT_EQ(chat.tokens.size(), 10u);
  EXPECT_EQ(chat.final_message->usage().prompt_tokens(),
            direct.final_message->usage().prompt_tokens());
  // The special tokens were parsed: one id each, not their spelling.
  EXPECT_EQ(
      chat.final_message->usage().prompt_tokens(),
      static_cast<int>(
          harness_->tokenizer().Encode(chat.final_message->prompt(), EncodeOptions{}).size()));
}

TEST_F(GrpcChatTest, PromptIsEchoedOnlyWhenAsked) {
  const Streamed chat = Chat(GreedyChat(2));
  ASSERT_TRUE(chat.status.ok()) << chat.status.error_message();
  ASSERT_TRUE(chat.final_message.has_value());
  EXPECT_EQ(chat.final_message->prompt(), "");
}

TEST_F(GrpcChatTest, WithoutGenerationPromptTheAssistantHeaderIsLeftOut) {
  v1::ChatRequest request = GreedyChat(2);
  request.set_add_generation_prompt(false);
  request.set_echo_prompt(true);
  const Streamed chat = Chat(request);
  ASSERT_TRUE(chat.status.ok()) << chat.status.error_message();
  EXPECT_EQ(chat.final_message->prompt(),
            "<|im_start|>system\nYou are terse.<|im_end|>\n"
            "<|im_start|>user\nHello there<|im_end|>\n");
}

TEST_F(GrpcChatTest, EmptyMessagesAreInvalidNamingMessages) {
  v1::ChatRequest request = GreedyChat(2);
  request.clear_messages();
  const grpc::Status status = Refused(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "messages: is empty");
}

TEST_F(GrpcChatTest, AMessageWithoutRoleIsInvalidNamingIt) {
  v1::ChatRequest request = GreedyChat(2);
  request.mutable_messages(1)->clear_role();
  const grpc::Status status = Refused(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "messages[1].role: is empty");
}

TEST_F(GrpcChatTest, ARoleTheTemplateRefusesIsInvalidWithItsMessage) {
  v1::ChatRequest request = GreedyChat(2);
  *request.add_messages() = Message("narrator", "Meanwhile...");
  const grpc::Status status = Refused(request);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "messages: rejected by the chat template: Unknown role: narrator");
}

TEST_F(GrpcChatTest, MalformedJsonFieldsAreInvalidNamingTheField) {
  v1::ChatRequest tools = GreedyChat(2);
  tools.set_tools_json("[{\"type\": ");
  EXPECT_THAT(Refused(tools).error_message(),
              ::testing::StartsWith("tools_json: is not valid JSON: "));
  tools.set_tools_json("{}");
  EXPECT_EQ(Refused(tools).error_message(), "tools_json: is not a JSON array");
  v1::ChatRequest kwargs = GreedyChat(2);
  kwargs.set_chat_template_kwargs_json("[1]");
  EXPECT_EQ(Refused(kwargs).error_message(), "chat_template_kwargs_json: is not a JSON object");
  v1::ChatRequest calls = GreedyChat(2);
  calls.mutable_messages(0)->set_tool_calls_json("{}");
  EXPECT_EQ(Refused(calls).error_message(), "messages[0].tool_calls_json: is not a JSON array");
}

TEST_F(GrpcChatTest, DeeplyNestedJsonIsInvalidNamingTheField) {
  v1::ChatRequest tools = GreedyChat(2);
  tools.set_tools_json(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_EQ(Refused(tools).error_message(), "tools_json: nests deeper than 64 levels");
}

// The JSON fields are parsed with the HTTP API's caps: an object of K keys
// costs O(K²) to insert uncapped (200,000 keys: minutes of a gRPC thread).
TEST_F(GrpcChatTest, JsonFieldsWithTooManyKeysAreInvalidAtOnce) {
  std::string keys = "{";
  for (int k = 0; k < 200000; ++k) absl::StrAppend(&keys, k ? "," : "", "\"k", k, "\":0");
  keys += "}";
  v1::ChatRequest kwargs = GreedyChat(2);
  kwargs.set_chat_template_kwargs_json(keys);
  const absl::Time start = absl::Now();
  EXPECT_EQ(Refused(kwargs).error_message(),
            "chat_template_kwargs_json: has an object with more than 1024 keys");
  v1::ChatRequest tools = GreedyChat(2);
  tools.set_tools_json(absl::StrCat("[", keys, "]"));
  EXPECT_EQ(Refused(tools).error_message(),
            "tools_json: has an object with more than 1024 keys");
  v1::ChatRequest calls = GreedyChat(2);
  calls.mutable_messages(0)->set_tool_calls_json(absl::StrCat("[", keys, "]"));
  EXPECT_EQ(Refused(calls).error_message(),
            "messages[0].tool_calls_json: has an object with more than 1024 keys");
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
}

TEST_F(GrpcChatTest, SamplingAndStoppingAreValidatedAsInGenerate) {
  v1::ChatRequest temperature = GreedyChat(2);
  temperature.mutable_sampling()->set_temperature(-1);
  grpc::Status status = Refused(temperature);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("sampling.temperature"), std::string::npos);

  v1::ChatRequest too_long = GreedyChat(100000);
  status = Refused(too_long);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("stopping.max_tokens"), std::string::npos);

  v1::ChatRequest other_model = GreedyChat(2);
  other_model.set_model("gpt-4");
  status = Refused(other_model);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("model:"), std::string::npos);
}

TEST_F(GrpcChatTest, ClientCancelEndsTheChatAndFreesItsBlocks) {
  grpc::ClientContext context;
  v1::ChatRequest request = GreedyChat(200);
  auto reader = stub_->Chat(&context, request);
  v1::GenerateResponse response;
  ASSERT_TRUE(reader->Read(&response));
  context.TryCancel();
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  v1::Load load;
  const absl::Time deadline = absl::Now() + absl::Seconds(2);
  do {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->GetLoad(&c, v1::GetLoadRequest(), &load).ok());
  } while ((load.live_requests() > 0 || load.kv_blocks_used() > 0) && absl::Now() < deadline);
  EXPECT_EQ(load.live_requests(), 0);
  EXPECT_EQ(load.kv_blocks_used(), 0);
}

TEST_F(GrpcChatTest, DrainingRefusesNewChatsWithUnavailable) {
  // The service itself, so that draining starts without the server going
  // away (GrpcServer::Drain stops the engine once nothing is live).
  GenerationService service(&harness_->engine(), served_, "cpu", &keys_);
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  stub_ = v1::Generation::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  EXPECT_TRUE(Chat(GreedyChat(1)).status.ok());
  service.StartDraining();
  const grpc::Status refused = Chat(GreedyChat(1)).status;
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(refused.error_message(), "the server is shutting down");
  server->Shutdown();
}

class GrpcChatWithKeysTest : public GrpcChatTest {
 protected:
  void SetUp() override {
    auto keys = ApiKeys::FromText(absl::StrCat("acme ", Sha256Hex("secret"), "\n"), "test");
    ASSERT_TRUE(keys.ok()) << keys.status();
    keys_ = *std::move(keys);
    Start(true, &keys_);
  }
};

TEST_F(GrpcChatWithKeysTest, ChatNeedsAnApiKeyWhenKeysAreSet) {
  EXPECT_EQ(Chat(GreedyChat(1)).status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Chat(GreedyChat(1), "wrong").status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  const Streamed ok = Chat(GreedyChat(1), "secret");
  EXPECT_TRUE(ok.status.ok()) << ok.status.error_message();
}

class GrpcChatWithoutTemplateTest : public GrpcChatTest {
 protected:
  void SetUp() override { Start(false, &keys_); }
};

TEST_F(GrpcChatWithoutTemplateTest, ChatIsAFailedPreconditionPointingAtTheFlag) {
  const grpc::Status status = Refused(GreedyChat(2));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(status.error_message().find("--chat_template"), std::string::npos)
      << status.error_message();
}

}  // namespace
}  // namespace weft
