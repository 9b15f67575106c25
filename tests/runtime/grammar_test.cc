// Structured output's grammars on real vocabularies: the default model's
// (byte-level BPE) and Llama 2's (SentencePiece with byte fallback). A
// text the grammar describes is accepted token by token, with every token
// in the mask before it; a text it does not describe is cut off at the
// first token that leaves it; a finished text allows only the stop tokens.
#include "runtime/grammar.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/tokenizer.h"

namespace weft {
namespace {

using ::testing::HasSubstr;

struct Vocab {
  const char* name;
  const char* path;  // under WEFT_MODEL_DIR
};

class GrammarTest : public ::testing::TestWithParam<Vocab> {
 protected:
  void SetUp() override {
    const std::string path =
        std::string(WEFT_MODEL_DIR) + "/" + GetParam().path;
    if (!std::ifstream(path).good()) {
      GTEST_SKIP() << path << " not found (tools/fetch_model.sh, "
                   << "tools/fetch_vocabs.sh)";
    }
    auto gguf = GgufFile::Open(path);
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    auto tokenizer = Tokenizer::FromGguf(**gguf);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    // A model whose logits are wider than the vocabulary (padded).
    auto compiler = GrammarCompiler::Create(
        *tokenizer_, tokenizer_->vocab_size() + 64, GrammarConfig{});
    ASSERT_TRUE(compiler.ok()) << compiler.status();
    compiler_ = *std::move(compiler);
  }

  std::shared_ptr<const CompiledGrammar> Compile(const StructuredOutput& out) {
    auto compiled = compiler_->Compile(out);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    return compiled.ok() ? *compiled : nullptr;
  }

  std::unique_ptr<GrammarMatcher> Matcher(const StructuredOutput& out) {
    auto compiled = Compile(out);
    if (compiled == nullptr) return nullptr;
    return std::make_unique<GrammarMatcher>(compiled, tokenizer_->stop_ids());
  }

  // Tokens whose bytes are exactly `text`: the tokenizer's own encoding,
  // unless it adds bytes (SentencePiece's prefix space); then the longest
  // vocabulary match at each point (byte tokens cover every byte).
  std::vector<int32_t> Tokens(const std::string& text) const {
    EncodeOptions options;
    options.parse_special = false;
    std::vector<int32_t> ids = tokenizer_->Encode(text, options);
    std::string bytes;
    for (int32_t id : ids) bytes += tokenizer_->TokenBytes(id);
    if (bytes == text) return ids;
    ids.clear();
    for (size_t at = 0; at < text.size();) {
      int32_t best = -1;
      size_t best_size = 0;
      for (int32_t id = 0; id < tokenizer_->vocab_size(); ++id) {
        if (tokenizer_->IsSpecial(id)) continue;
        const std::string piece = tokenizer_->TokenBytes(id);
        if (piece.size() > best_size && text.compare(at, piece.size(), piece) == 0) {
          best = id;
          best_size = piece.size();
        }
      }
      if (best < 0) {
        ADD_FAILURE() << "no token for byte " << at << " of " << text;
        break;
      }
      ids.push_back(best);
      at += best_size;
    }
    return ids;
  }

  // How many of `text`'s tokens the matcher takes, each checked against
  // the mask first (a token accepted while masked out fails the test).
  size_t Walk(GrammarMatcher& matcher, const std::string& text) {
    size_t taken = 0;
    for (int32_t token : Tokens(text)) {
      const bool allowed = TokenAllowed(matcher.NextTokenMask(), token);
      const bool accepted = matcher.Accept(token);
      EXPECT_EQ(allowed, accepted) << "token " << token << " ("
                                   << tokenizer_->TokenBytes(token) << ")";
      if (!accepted) break;
      ++taken;
    }
    return taken;
  }

  // The allowed tokens of `mask`.
  static std::vector<int32_t> Allowed(absl::Span<const uint32_t> mask) {
    std::vector<int32_t> tokens;
    for (size_t t = 0; t < mask.size() * 32; ++t) {
      if (TokenAllowed(mask, static_cast<int32_t>(t))) {
        tokens.push_back(static_cast<int32_t>(t));
      }
    }
    return tokens;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<GrammarCompiler> compiler_;
};

StructuredOutput Schema(const std::string& schema, bool any_whitespace) {
  StructuredOutput out;
  out.kind = StructuredOutput::Kind::kJsonSchema;
  out.spec = schema;
  out.any_whitespace = any_whitespace;
  return out;
}

constexpr char kPersonSchema[] = R"({
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "age": {"type": "integer", "minimum": 0}
  },
  "required": ["name", "age"]
})";

TEST_P(GrammarTest, JsonSchemaAcceptsItsDocumentsThenOnlyStops) {
  auto matcher = Matcher(Schema(kPersonSchema, /*any_whitespace=*/false));
  ASSERT_NE(matcher, nullptr);
  const std::string text = R"({"name": "Ada Lovelace", "age": 36})";
  EXPECT_EQ(Walk(*matcher, text), Tokens(text).size());
  EXPECT_FALSE(matcher->IsTerminated());
  // Complete, and compact: nothing may follow but a stop token.
  std::vector<int32_t> stops = tokenizer_->stop_ids();
  std::sort(stops.begin(), stops.end());
  EXPECT_EQ(Allowed(matcher->NextTokenMask()), stops);
  EXPECT_TRUE(matcher->Accept(stops[0]));
  EXPECT_TRUE(matcher->IsTerminated());
}

TEST_P(GrammarTest, JsonSchemaCutsOffWhatItDoesNotDescribe) {
  const StructuredOutput schema = Schema(kPersonSchema, false);
  // A string where the integer goes: everything up to the value is taken.
  auto matcher = Matcher(schema);
  ASSERT_NE(matcher, nullptr);
  const std::string prefix = R"({"name": "Ada", "age":)";
  const size_t prefix_tokens = Tokens(prefix).size();
  EXPECT_EQ(Walk(*matcher, prefix + R"( "old"})"), prefix_tokens);
  // Not an object at all: the first token is refused.
  auto other = Matcher(schema);
  EXPECT_EQ(Walk(*other, "Sure! Here is"), 0u);
  // A stop token before the object is complete is refused too.
  auto early = Matcher(schema);
  Walk(*early, R"({"name": "Ada")");
  EXPECT_FALSE(TokenAllowed(early->NextTokenMask(), tokenizer_->stop_ids()[0]));
  EXPECT_FALSE(early->Accept(tokenizer_->stop_ids()[0]));
}

TEST_P(GrammarTest, JsonObjectTakesAnyObjectOnly) {
  StructuredOutput out;
  out.kind = StructuredOutput::Kind::kJsonObject;
  auto matcher = Matcher(out);
  ASSERT_NE(matcher, nullptr);
  const std::string text = "{\n  \"a\": [1, 2.5, null, true],\n  \"b\": {}\n}";
  EXPECT_EQ(Walk(*matcher, text), Tokens(text).size());
  auto array = Matcher(out);
  EXPECT_EQ(Walk(*array, "[1, 2]"), 0u);
}

TEST_P(GrammarTest, AnyJsonTakesEveryJsonValue) {
  for (bool any_whitespace : {true, false}) {
    StructuredOutput out;
    out.kind = StructuredOutput::Kind::kJson;
    out.any_whitespace = any_whitespace;
    // ", " and ": ": the separators of compact JSON (xgrammar's, vLLM's
    // disable_any_whitespace), which any whitespace allows too.
    for (const std::string text : {"[1, 2]", "3.5", "\"x\"", "{\"a\": null}", "true"}) {
      auto matcher = Matcher(out);
      ASSERT_NE(matcher, nullptr);
      EXPECT_EQ(Walk(*matcher, text), Tokens(text).size()) << text;
    }
    auto prose = Matcher(out);
    EXPECT_EQ(Walk(*prose, "Sure"), 0u);
  }
}

TEST_P(GrammarTest, ChoiceAllowsExactlyItsStrings) {
  StructuredOutput out;
  out.kind = StructuredOutput::Kind::kChoice;
  out.choices = {"positive", "negative", "say \"maybe\"\\\n"};
  for (const std::string& choice : out.choices) {
    auto matcher = Matcher(out);
    ASSERT_NE(matcher, nullptr);
    EXPECT_EQ(Walk(*matcher, choice), Tokens(choice).size()) << choice;
    EXPECT_TRUE(TokenAllowed(matcher->NextTokenMask(), tokenizer_->stop_ids()[0]))
        << choice;
  }
  auto matcher = Matcher(out);
  EXPECT_LT(Walk(*matcher, "neutral"), Tokens("neutral").size());
}

TEST_P(GrammarTest, RegexAndGrammars) {
  StructuredOutput regex;
  regex.kind = StructuredOutput::Kind::kRegex;
  regex.spec = R"(\d{3}-[A-Z]{2})";
  auto matcher = Matcher(regex);
  ASSERT_NE(matcher, nullptr);
  EXPECT_EQ(Walk(*matcher, "123-AB"), Tokens("123-AB").size());
  auto wrong = Matcher(regex);
  EXPECT_LT(Walk(*wrong, "12-AB"), Tokens("12-AB").size());

  StructuredOutput ebnf;
  ebnf.kind = StructuredOutput::Kind::kGrammar;
  ebnf.spec = "root ::= \"SELECT \" col (\", \" col)*\ncol ::= [a-z]+";
  auto sql = Matcher(ebnf);
  ASSERT_NE(sql, nullptr);
  EXPECT_EQ(Walk(*sql, "SELECT id, name"), Tokens("SELECT id, name").size());

  StructuredOutput lark;  // no "::=": Lark
  lark.kind = StructuredOutput::Kind::kGrammar;
  lark.spec = "start: \"SELECT \" COL (\", \" COL)*\nCOL: /[a-z]+/";
  auto sql2 = Matcher(lark);
  ASSERT_NE(sql2, nullptr);
  EXPECT_EQ(Walk(*sql2, "SELECT id, name"), Tokens("SELECT id, name").size());
}

TEST_P(GrammarTest, BadSpecsAreInvalidArgument) {
  const auto expect_invalid = [&](const StructuredOutput& out) {
    auto compiled = compiler_->Compile(out);
    EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument)
        << out.spec << ": " << compiled.status();
  };
  expect_invalid(Schema("{\"type\": ", true));              // not JSON
  expect_invalid(Schema(R"({"type": "tuple"})", true));     // not a type
  StructuredOutput regex;
  regex.kind = StructuredOutput::Kind::kRegex;
  regex.spec = "(ab";
  expect_invalid(regex);
  StructuredOutput grammar;
  grammar.kind = StructuredOutput::Kind::kGrammar;
  grammar.spec = "root ::= undefined_rule";
  expect_invalid(grammar);
  StructuredOutput choice;
  choice.kind = StructuredOutput::Kind::kChoice;
  expect_invalid(choice);  // no choices
  StructuredOutput huge = Schema(std::string(kMaxGrammarSpecBytes + 1, ' '), true);
  auto compiled = compiler_->Compile(huge);
  EXPECT_THAT(compiled.status().message(), HasSubstr("bytes long"));
  expect_invalid(StructuredOutput{});  // kNone
  // xgrammar's own words, without its logger's time and source path.
  auto unclosed = compiler_->Compile(regex);
  EXPECT_EQ(unclosed.status().message(),
            "is not valid: Regex parsing error at position 4: The parenthesis "
            "is not closed.");
}

TEST_P(GrammarTest, TokensPastTheVocabularyAreNeverAllowed) {
  StructuredOutput regex;
  regex.kind = StructuredOutput::Kind::kRegex;
  regex.spec = ".*";
  auto matcher = Matcher(regex);
  ASSERT_NE(matcher, nullptr);
  const absl::Span<const uint32_t> mask = matcher->NextTokenMask();
  EXPECT_EQ(mask.size(), (tokenizer_->vocab_size() + 64 + 31) / 32u);
  for (int t = tokenizer_->vocab_size(); t < tokenizer_->vocab_size() + 64; ++t) {
    EXPECT_FALSE(TokenAllowed(mask, t)) << t;
  }
  EXPECT_TRUE(TokenAllowed(mask, Tokens("hello")[0]));
}

// A schema that takes the compiler a while: many properties with their
// own bounded strings (each bound is expanded into a repetition).
StructuredOutput SlowSchema(int variant) {
  std::string properties;
  for (int i = 0; i < 8; ++i) {
    absl::StrAppend(&properties, i ? "," : "", "\"p", variant, "_", i,
                    "\": {\"type\": \"string\", \"minLength\": ", 5 + i,
                    ", \"maxLength\": ", 40 + i, "}");
  }
  return Schema(absl::StrCat("{\"type\": \"object\", \"properties\": {", properties,
                             "}}"),
                true);
}

TEST_P(GrammarTest, CompilesAreCachedByTheirText) {
  const StructuredOutput schema = Schema(kPersonSchema, false);
  auto first = compiler_->Compile(schema);
  auto second = compiler_->Compile(schema);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->get(), second->get());  // the same object
  StructuredOutput other = schema;
  other.any_whitespace = true;  // another grammar
  EXPECT_NE(compiler_->Compile(other)->get(), first->get());
}

TEST_P(GrammarTest, ASlowCompileTimesOutAndIsCachedWhenDone) {
  GrammarConfig config;
  config.compile_timeout = absl::Milliseconds(1);
  auto compiler = GrammarCompiler::Create(*tokenizer_, tokenizer_->vocab_size(), config);
  ASSERT_TRUE(compiler.ok());
  const StructuredOutput slow = SlowSchema(0);
  auto timed_out = (*compiler)->Compile(slow);
  // Within 1 ms a worker may not have taken the job yet (a loaded machine,
  // CI): that answer is ResourceExhausted, the busy-server case tested
  // below. Asking again joins the same compile; once it has started and
  // not finished, the answer is the too-complex one this test is about.
  for (int i = 0;
       i < 5000 && timed_out.status().code() == absl::StatusCode::kResourceExhausted; ++i) {
    absl::SleepFor(absl::Milliseconds(1));
    timed_out = (*compiler)->Compile(slow);
  }
  EXPECT_EQ(timed_out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(timed_out.status().message(), HasSubstr("did not compile within 1ms"));
  // The compile went on; once done, the same text is answered at once.
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> later = timed_out.status();
  for (int i = 0; i < 600 && !later.ok(); ++i) {
    absl::SleepFor(absl::Milliseconds(50));
    later = (*compiler)->Compile(slow);
  }
  EXPECT_TRUE(later.ok()) << later.status();
}

TEST_P(GrammarTest, WaitingForABusyWorkerPastTheDeadlineIsExhaustionNotABadSpec) {
  GrammarConfig config;
  config.max_compiles = 1;
  config.compile_timeout = absl::Milliseconds(300);
  auto compiler = GrammarCompiler::Create(*tokenizer_, tokenizer_->vocab_size(), config);
  ASSERT_TRUE(compiler.ok());
  absl::Status first;
  std::thread slow([&] { first = (*compiler)->Compile(SlowSchema(3)).status(); });
  absl::SleepFor(absl::Milliseconds(50));  // the worker has taken it
  const absl::Status queued = (*compiler)->Compile(Schema(kPersonSchema, true)).status();
  slow.join();
  // The slow one ran out of time compiling: its spec is too complex.
  EXPECT_EQ(first.code(), absl::StatusCode::kInvalidArgument) << first;
  // The person schema never reached the worker: the server was busy.
  EXPECT_EQ(queued.code(), absl::StatusCode::kResourceExhausted) << queued;
  EXPECT_THAT(queued.message(), HasSubstr("no compile worker was free"));
}

TEST_P(GrammarTest, CompilesBeyondTheWaitingLimitAreRefused) {
  GrammarConfig config;
  config.max_compiles = 1;
  config.max_waiting = 0;
  auto compiler = GrammarCompiler::Create(*tokenizer_, tokenizer_->vocab_size(), config);
  ASSERT_TRUE(compiler.ok());
  // One slow compile occupies the only worker; a second, different one
  // would have to wait, which max_waiting 0 does not allow.
  std::thread first([&] { EXPECT_TRUE((*compiler)->Compile(SlowSchema(1)).ok()); });
  absl::StatusOr<std::shared_ptr<const CompiledGrammar>> second;
  for (int i = 0; i < 200; ++i) {
    absl::SleepFor(absl::Milliseconds(5));
    second = (*compiler)->Compile(SlowSchema(2));
    if (!second.ok()) break;
  }
  first.join();
  EXPECT_EQ(second.status().code(), absl::StatusCode::kResourceExhausted) << second.status();
}

INSTANTIATE_TEST_SUITE_P(
    Vocabularies, GrammarTest,
    ::testing::Values(Vocab{"SmolLM2", "SmolLM2-135M-Instruct.Q4_1.gguf"},
                      Vocab{"Llama2", "vocab/ggml-vocab-llama-spm.gguf"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace weft
