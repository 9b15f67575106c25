// Validation of weft.v1 requests before they are queued: a table of bad
// requests, each with its exact status code and the field it must name;
// and the mapping of statuses to gRPC codes.
#include "server/request_conversion.h"

#include <cmath>
#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/status.h"
#include "tests/server/bad_requests.h"
#include "tests/server/tiny_served_model.h"

namespace weft {
namespace {

class RequestConversionTest : public test::TinyServedTest {
 protected:
  static v1::GenerateRequest Good() {
    v1::GenerateRequest r;
    r.set_text("Hello world");
    return r;
  }

};

TEST_F(RequestConversionTest, AGoodRequestGetsTheDocumentedDefaults) {
  auto r = ToRuntimeRequest(Good(), model_, "assigned-1");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "assigned-1");
  EXPECT_EQ(r->prompt_ids, tokenizer_->Encode("Hello world", EncodeOptions{}));
  EXPECT_EQ(r->sampling.temperature, 1.0f);
  EXPECT_EQ(r->sampling.n, 1);
  EXPECT_FALSE(r->sampling.seed.has_value());
  EXPECT_EQ(r->stopping.max_tokens, 16);
  EXPECT_TRUE(r->stopping.skip_special_tokens);
}

TEST_F(RequestConversionTest, EveryFieldIsCarriedOver) {
  v1::GenerateRequest p = Good();
  p.set_request_id("mine");
  p.set_model("tiny");
  p.set_priority(-3);
  v1::SamplingParams* s = p.mutable_sampling();
  s->set_temperature(0.5f);
  s->set_top_p(0.9f);
  s->set_top_k(40);
  s->set_min_p(0.05f);
  s->set_repetition_penalty(1.1f);
  s->set_presence_penalty(0.5f);
  s->set_frequency_penalty(-0.5f);
  (*s->mutable_logit_bias())[7] = 2.5f;
  (*s->mutable_logit_bias())[3] = -100.0f;
  s->set_seed(42);
  s->set_logprobs(3);
  s->set_prompt_logprobs(0);
  s->set_n(2);
  v1::StoppingParams* t = p.mutable_stopping();
  t->set_max_tokens(20);
  t->set_min_tokens(2);
  t->set_ignore_eos(true);
  t->add_stop_token_ids(5);
  t->add_stop("\n\n");
  t->set_include_stop_str_in_output(true);
  t->set_skip_special_tokens(false);
  auto r = ToRuntimeRequest(p, model_, "unused");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, "mine");
  EXPECT_EQ(r->priority, -3);
  EXPECT_EQ(r->sampling.temperature, 0.5f);
  EXPECT_EQ(r->sampling.top_p, 0.9f);
  EXPECT_EQ(r->sampling.top_k, 40);
  EXPECT_EQ(r->sampling.min_p, 0.05f);
  EXPECT_EQ(r->sampling.repetition_penalty, 1.1f);
  EXPECT_EQ(r->sampling.presence_penalty, 0.5f);
  EXPECT_EQ(r->sampling.frequency_penalty, -0.5f);
  EXPECT_EQ(r->sampling.logit_bias,
            (std::vector<std::pair<int32_t, float>>{{3, -100.0f}, {7, 2.5f}}));
  EXPECT_EQ(r->sampling.seed, 42u);
  EXPECT_EQ(r->sampling.logprobs, 3);
  EXPECT_EQ(r->sampling.prompt_logprobs, 0);
  EXPECT_EQ(r->sampling.n, 2);
  EXPECT_EQ(r->stopping.max_tokens, 20);
  EXPECT_EQ(r->stopping.min_tokens, 2);
  EXPECT_TRUE(r->stopping.ignore_eos);
  EXPECT_EQ(r->stopping.stop_token_ids, std::vector<int32_t>{5});
  EXPECT_EQ(r->stopping.stop, std::vector<std::string>{"\n\n"});
  EXPECT_TRUE(r->stopping.include_stop_str_in_output);
  EXPECT_FALSE(r->stopping.skip_special_tokens);
}

TEST_F(RequestConversionTest, EachBadRequestIsInvalidArgumentNamingItsField) {
  const std::vector<test::BadRequest> cases = test::BadRequests();
  ASSERT_GE(cases.size(), 25u);
  for (const test::BadRequest& c : cases) {
    v1::GenerateRequest request = Good();
    c.mutate(&request);
    auto r = ToRuntimeRequest(request, model_, "id");
    ASSERT_FALSE(r.ok()) << c.name;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_NE(r.status().message().find(c.field), absl::string_view::npos)
        << c.name << ": " << r.status().message();
  }
}

// Messages quoting a client's bytes are sent as valid UTF-8 and at most
// kMaxClientMessageBytes: a 20,000-byte model name in grpc-message went past
// the client's metadata limit (RESOURCE_EXHAUSTED instead of
// INVALID_ARGUMENT), and raw bytes made proto3 clients refuse the response.
TEST(DeltaToProtoTest, ASamplesEndTravelsInItsDelta) {
  Delta delta;
  delta.index = 2;
  delta.token_ids = {9};
  delta.text = "z";
  v1::Delta plain;
  ToProto(delta, &plain);
  EXPECT_FALSE(plain.has_finished());
  delta.finished = SampleResult{FinishReason::kStop, "###", 4, -1, true};
  v1::Delta last;
  ToProto(delta, &last);
  ASSERT_TRUE(last.has_finished());
  EXPECT_EQ(last.finished().index(), 2);
  EXPECT_EQ(last.finished().finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(last.finished().stop_reason(), "###");
  EXPECT_EQ(last.finished().num_tokens(), 4);
  EXPECT_EQ(last.text(), "z");
}

TEST(StatusTest, MessagesAreValidUtf8AndCutShort) {
  const grpc::Status bytes = ToGrpcStatus(absl::InvalidArgumentError("bad '\xff\xfe' word"));
  EXPECT_EQ(bytes.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(bytes.error_message(), "bad '\uFFFD\uFFFD' word");
  const std::string name = "model: '" + std::string(20000, 'x') + "é' is not served";
  const grpc::Status long_name = ToGrpcStatus(absl::InvalidArgumentError(name));
  EXPECT_EQ(long_name.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_LE(long_name.error_message().size(), kMaxClientMessageBytes);
  EXPECT_TRUE(absl::StartsWith(long_name.error_message(), "model: 'xxx"));
  EXPECT_TRUE(absl::EndsWith(long_name.error_message(),
                             absl::StrCat("… (", name.size(), " bytes)")));
  // Cut at a character, never inside one.
  const std::string accents = std::string(1, 'a') + [] {
    std::string s;
    for (int i = 0; i < 1000; ++i) s += "é";
    return s;
  }();
  const std::string cut = ClientMessage(accents);
  EXPECT_LE(cut.size(), kMaxClientMessageBytes);
  EXPECT_EQ(ClientMessage(cut), cut);  // valid UTF-8: unchanged
  EXPECT_EQ(ClientMessage("short"), "short");
}

TEST(StatusTest, CodesMapOneToOneAndMessagesAreKept) {
  EXPECT_TRUE(ToGrpcStatus(absl::OkStatus()).ok());
  const std::pair<absl::Status, grpc::StatusCode> cases[] = {
      {absl::InvalidArgumentError("x"), grpc::StatusCode::INVALID_ARGUMENT},
      {absl::ResourceExhaustedError("x"), grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("x"), grpc::StatusCode::UNAVAILABLE},
      {absl::UnauthenticatedError("x"), grpc::StatusCode::UNAUTHENTICATED},
      {absl::NotFoundError("x"), grpc::StatusCode::NOT_FOUND},
      {absl::AlreadyExistsError("x"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::CancelledError("x"), grpc::StatusCode::CANCELLED},
      {absl::DeadlineExceededError("x"), grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::InternalError("x"), grpc::StatusCode::INTERNAL},
      {absl::UnimplementedError("x"), grpc::StatusCode::UNIMPLEMENTED},
  };
  for (const auto& [status, code] : cases) {
    const grpc::Status converted = ToGrpcStatus(status);
    EXPECT_EQ(converted.error_code(), code) << status;
    EXPECT_EQ(converted.error_message(), "x");
  }
}

}  // namespace
}  // namespace weft

namespace weft {
namespace {

// weft.v1 StructuredOutput: each kind compiles into the request's grammar;
// a bad one is INVALID_ARGUMENT naming structured_output.
class StructuredOutputConversionTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(AddGrammars());
    AddChatTemplate("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}");
  }

  absl::StatusOr<Request> Convert(const v1::StructuredOutput& structured) const {
    v1::GenerateRequest r;
    r.set_text("Hello");
    *r.mutable_structured_output() = structured;
    return ToRuntimeRequest(r, model_, "id");
  }

};

TEST_F(StructuredOutputConversionTest, ChatCarriesItToo) {
  v1::ChatRequest chat;
  v1::ChatMessage* m = chat.add_messages();
  m->set_role("user");
  m->set_content("Hi");
  auto free = ToRuntimeRequest(chat, model_, "id", nullptr);
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_EQ(free->grammar, nullptr);
  chat.mutable_structured_output()->set_json_object(true);
  auto constrained = ToRuntimeRequest(chat, model_, "id", nullptr);
  ASSERT_TRUE(constrained.ok()) << constrained.status();
  EXPECT_NE(constrained->grammar, nullptr);
}

TEST_F(StructuredOutputConversionTest, EachKindCompiles) {
  std::vector<v1::StructuredOutput> kinds(7);
  kinds[5].set_any_json(true);
  kinds[6].set_any_json(true);
  kinds[6].set_compact_json(true);
  kinds[0].set_json_schema(R"({"type": "object"})");
  kinds[1].set_json_object(true);
  kinds[2].set_regex("[a-z]+");
  kinds[3].mutable_choice()->add_choices("yes");
  kinds[3].mutable_choice()->add_choices("no");
  kinds[4].set_grammar("root ::= \"a\"+");
  kinds[4].set_compact_json(true);
  for (const v1::StructuredOutput& kind : kinds) {
    auto r = Convert(kind);
    ASSERT_TRUE(r.ok()) << kind.ShortDebugString() << ": " << r.status();
    EXPECT_NE(r->grammar, nullptr) << kind.ShortDebugString();
  }
  v1::GenerateRequest free;
  free.set_text("Hello");
  EXPECT_EQ(ToRuntimeRequest(free, model_, "id")->grammar, nullptr);
}

TEST_F(StructuredOutputConversionTest, BadOnesNameTheField) {
  std::vector<v1::StructuredOutput> bad(5);
  bad[0].set_json_schema(R"({"type": "tuple"})");
  bad[1].set_json_object(false);
  bad[2].set_regex("(ab");
  // bad[3]: nothing set
  bad[4].set_any_json(false);
  for (const v1::StructuredOutput& kind : bad) {
    auto r = Convert(kind);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
        << kind.ShortDebugString() << ": " << r.status();
    EXPECT_TRUE(absl::StartsWith(r.status().message(), "structured_output"))
        << r.status();
  }
  model_.grammars = nullptr;
  v1::StructuredOutput regex;
  regex.set_regex("a");
  EXPECT_EQ(Convert(regex).status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace weft
