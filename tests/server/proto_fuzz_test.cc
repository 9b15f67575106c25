// Random gRPC requests against their conversions (weft.v1 Generate and
// Chat, KServe ModelInfer): seeded mutations of valid requests through
// protobuf reflection (any field set to extremes, NaN, unknown names and
// datatypes, broken JSON text and byte strings; repeated and map fields
// grown and shrunk), each of which must convert or be refused with a
// client's status, never crash or throw. A gRPC handler that throws takes
// the whole server down, so this matters more here than over HTTP.
//
// WEFT_FUZZ_ITERATIONS (default 1500 a seed) and WEFT_FUZZ_SEED set the run;
// tools/sanitize.sh runs it longer under ASan and UBSan.
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/message.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/kserve_conversion.h"
#include "server/request_conversion.h"
#include "server/status.h"
#include "tests/server/tiny_served_model.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Strings the conversions give meaning to, and some that break them.
using std::string_view_literals::operator""sv;

// (string_view: the KServe length prefixes below hold NUL bytes.)
constexpr std::string_view kStrings[] = {
    "", "x", "tiny", "ensemble", "user", "assistant", "tool", "system",
    "text_input", "max_tokens", "stream", "temperature", "top_k", "top_p",
    "random_seed", "beam_width", "end_id", "pad_id", "stop_words", "bad_words",
    "return_log_probs", "exclude_input_in_output", "guided_decoding_guide_type",
    "guided_decoding_guide", "json", "json_schema", "regex", "choice", "ebnf",
    "BYTES", "BOOL", "INT32", "INT64", "UINT64", "FP32", "FP64", "FP16", "BF16",
    "{", "[]", "null", "{\"type\": \"object\"}", "[{\"type\": \"function\"}]",
    "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": "
    "\"{\\\"a\\\": [1, {}]}\"}}]",
    "[{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": "
    "{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"string\"}}}}}]",
    "{\"greeting\": [1, 2, {\"a\": null}]}", "a+b*", "(", "root ::= \"a\"",
    "<s>", "</s>", "{{ x }}", "{% for %}", "\xff\xfe", "\xE2\x82",
    "\x05\x00\x00\x00hello"sv, "\xff\xff\xff\x7f", "\x01\x00\x00"sv,
    "\x00\x00\x00\x00"sv};

class ProtoMutator {
 public:
  explicit ProtoMutator(uint64_t seed) : rng_(seed) {}

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  // 1-4 changes somewhere in `message`.
  void Mutate(Message* message) {
    for (int i = 0, n = 1 + Below(4); i < n; ++i) MutateOnce(message, 0);
  }

 private:
  std::string RandomString() {
    switch (Below(6)) {
      case 0: return std::string(static_cast<size_t>(Below(5000)), 'a');
      case 1: {  // random bytes, often a KServe BYTES entry's length prefix
        std::string s(static_cast<size_t>(Below(24)), '\0');
        for (char& c : s) c = static_cast<char>(Below(256));
        return s;
      }
      default: return std::string(kStrings[Below(static_cast<int>(std::size(kStrings)))]);
    }
  }
  int64_t RandomInt(int64_t lo, int64_t hi) {
    switch (Below(6)) {
      case 0: return lo;
      case 1: return hi;
      case 2: return 0;
      case 3: return -1;
      default: return Below(300) - 20;
    }
  }
  double RandomDouble() {
    constexpr double kValues[] = {std::numeric_limits<double>::quiet_NaN(),
                                  std::numeric_limits<double>::infinity(),
                                  -std::numeric_limits<double>::infinity(),
                                  0.0, -0.0, 1e30, -1e30, 1e-30, 0.5, 1.0, 2.0, -1.0};
    return kValues[Below(static_cast<int>(std::size(kValues)))];
  }

  // A random value into singular field f (or a new element of repeated f).
  void SetRandom(Message* m, const FieldDescriptor* f, bool add, int depth) {
    const Reflection* r = m->GetReflection();
    switch (f->cpp_type()) {
#define WEFT_SET(Type, value)      \
  if (add) {                       \
    r->Add##Type(m, f, value);     \
  } else {                         \
    r->Set##Type(m, f, value);     \
  }                                \
  break;
      case FieldDescriptor::CPPTYPE_INT32:
        WEFT_SET(Int32, static_cast<int32_t>(RandomInt(INT32_MIN, INT32_MAX)))
      case FieldDescriptor::CPPTYPE_INT64:
        WEFT_SET(Int64, RandomInt(INT64_MIN, INT64_MAX))
      case FieldDescriptor::CPPTYPE_UINT32:
        WEFT_SET(UInt32, static_cast<uint32_t>(RandomInt(0, UINT32_MAX)))
      case FieldDescriptor::CPPTYPE_UINT64:
        WEFT_SET(UInt64, Below(2) ? UINT64_MAX : static_cast<uint64_t>(Below(1000)))
      case FieldDescriptor::CPPTYPE_DOUBLE:
        WEFT_SET(Double, RandomDouble())
      case FieldDescriptor::CPPTYPE_FLOAT:
        WEFT_SET(Float, static_cast<float>(RandomDouble()))
      case FieldDescriptor::CPPTYPE_BOOL:
        WEFT_SET(Bool, Below(2) == 0)
      case FieldDescriptor::CPPTYPE_STRING:
        WEFT_SET(String, RandomString())
      case FieldDescriptor::CPPTYPE_ENUM:
        WEFT_SET(Enum, f->enum_type()->value(Below(f->enum_type()->value_count())))
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        Message* child = add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        if (depth < 6) MutateOnce(child, depth + 1);
        break;
      }
#undef WEFT_SET
    }
  }

  void MutateOnce(Message* m, int depth) {
    const auto* d = m->GetDescriptor();
    if (d->field_count() == 0) return;
    const FieldDescriptor* f = d->field(Below(d->field_count()));
    const Reflection* r = m->GetReflection();
    if (f->is_repeated()) {
      const int size = r->FieldSize(*m, f);
      const int action = Below(4);
      if (action == 0 && size > 0) {
        r->RemoveLast(m, f);
      } else if (action == 1 && size > 0 &&
                 f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && depth < 6) {
        MutateOnce(r->MutableRepeatedMessage(m, f, Below(size)), depth + 1);
      } else if (action == 2 && size > 0 && f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
        // Replace one element: remove the last, add a random one.
        r->RemoveLast(m, f);
        SetRandom(m, f, /*add=*/true, depth);
      } else {
        SetRandom(m, f, /*add=*/true, depth);
      }
      return;
    }
    if (Below(5) == 0) {
      r->ClearField(m, f);
    } else if (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && depth < 6) {
      MutateOnce(r->MutableMessage(m, f), depth + 1);
    } else {
      SetRandom(m, f, /*add=*/false, depth);
    }
  }

  std::mt19937_64 rng_;
};

// A conversion's status for a client's bad request: a 4xx in HTTP terms.
// KServe also answers UNIMPLEMENTED for inputs weft knows but does not
// serve (beam_width > 1, logits): `unimplemented_ok`.
bool IsClientError(const absl::Status& status, bool unimplemented_ok) {
  const int http = ToHttpStatus(status.code());
  return (http >= 400 && http < 500) ||
         (unimplemented_ok && status.code() == absl::StatusCode::kUnimplemented);
}

template <typename Proto>
Proto FromText(const char* text) {
  Proto proto;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &proto)) << text;
  return proto;
}

class ProtoFuzzTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    ASSERT_NO_FATAL_FAILURE(AddGrammars());
    ASSERT_NO_FATAL_FAILURE(AddChatTemplate(
        "{% if greeting is defined %}{{ greeting }}{% endif %}"
        "{% if tools %}{{ tools | tojson }}{% endif %}"
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
        "{% if m.tool_calls %}{{ m.tool_calls | tojson }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"));
  }

  template <typename Proto, typename Convert>
  void Run(const Proto& seed, Convert convert, bool unimplemented_ok = false) {
    ProtoMutator mutator(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
    ASSERT_TRUE(convert(seed).ok()) << "the seed itself: " << seed.DebugString();
    int64_t accepted = 0, refused = 0;
    for (int64_t i = 0, n = test::EnvInt("WEFT_FUZZ_ITERATIONS", 1500); i < n; ++i) {
      Proto proto = seed;
      mutator.Mutate(&proto);
      absl::Status status;
      try {
        status = convert(proto).status();
      } catch (const std::exception& e) {
        FAIL() << "exception " << e.what() << " for:\n" << proto.DebugString();
      }
      if (status.ok()) {
        ++accepted;
        continue;
      }
      ++refused;
      ASSERT_TRUE(IsClientError(status, unimplemented_ok)) << status << " for:\n" << proto.DebugString();
      ASSERT_FALSE(status.message().empty()) << "for:\n" << proto.DebugString();
    }
    std::cout << accepted << " requests accepted, " << refused << " refused\n";
    EXPECT_GT(accepted, 0);
    EXPECT_GT(refused, 0);
  }
};

TEST_F(ProtoFuzzTest, GenerateRequestsConvertOrAreRefused) {
  Run(FromText<v1::GenerateRequest>(R"pb(
        model: "tiny" text: "hello there" add_special_tokens: true priority: 1
        sampling { temperature: 0.7 top_p: 0.9 top_k: 5 seed: 3 logprobs: 2 n: 2
                   logit_bias { key: 5 value: -1.5 } presence_penalty: 0.1 }
        stopping { max_tokens: 8 min_tokens: 1 stop: "x" stop_token_ids: 2 }
        structured_output { json_schema: "{\"type\": \"object\"}" })pb"),
      [&](const v1::GenerateRequest& p) { return ToRuntimeRequest(p, model_, "id"); });
}

TEST_F(ProtoFuzzTest, ChatRequestsConvertOrAreRefused) {
  Run(FromText<v1::ChatRequest>(R"pb(
        model: "tiny"
        messages { role: "system" content: "be brief" }
        messages { role: "user" content: "weather?" name: "ann" }
        messages { role: "assistant" tool_calls_json:
          "[{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"w\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\"}\"}}]" }
        messages { role: "tool" tool_call_id: "c1" content: "sunny" }
        tools_json: "[{\"type\": \"function\", \"function\": {\"name\": \"w\"}}]"
        chat_template_kwargs_json: "{\"greeting\": \"hi\"}"
        sampling { temperature: 0.5 n: 1 }
        stopping { max_tokens: 16 }
        echo_prompt: true)pb"),
      [&](const v1::ChatRequest& p) {
        std::string rendered;
        return ToRuntimeRequest(p, model_, "id", &rendered);
      });
}

TEST_F(ProtoFuzzTest, KServeInferRequestsConvertOrAreRefused) {
  Run(FromText<inference::ModelInferRequest>(R"pb(
        model_name: "ensemble" id: "r1"
        inputs { name: "text_input" datatype: "BYTES" shape: [ 1, 1 ] }
        inputs { name: "max_tokens" datatype: "INT32" shape: [ 1, 1 ] }
        inputs { name: "temperature" datatype: "FP32" shape: [ 1, 1 ] }
        inputs { name: "stop_words" datatype: "BYTES" shape: [ 1, 2 ] }
        raw_input_contents: "\005\000\000\000hello"
        raw_input_contents: "\010\000\000\000"
        raw_input_contents: "\000\000\000?"
        raw_input_contents: "\001\000\000\000x\002\000\000\000yz")pb"),
      [&](const inference::ModelInferRequest& p) {
        return kserve::FromInferRequest(p, model_, "id");
      },
      /*unimplemented_ok=*/true);
}

}  // namespace
}  // namespace weft
