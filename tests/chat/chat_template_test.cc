// ChatTemplate's contract: unsupported constructs fail at load naming the
// construct and its line; render errors are InvalidArgument (raise_exception
// with its own message); inputs are prepared as transformers prepares them;
// the served template is the override file or the model's own; chat prompts
// tokenize with special tokens parsed and no extra BOS.
#include "runtime/chat/chat_template.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gtest/gtest.h"
#include "runtime/model/model_files.h"
#include "tests/test_util.h"

namespace weft {
namespace {

using test::StatusIs;
using ::testing::HasSubstr;
using ::testing::IsNull;
using ::testing::NotNull;
using Json = nlohmann::ordered_json;

constexpr auto kInvalid = absl::StatusCode::kInvalidArgument;

std::unique_ptr<ChatTemplate> MustCreate(absl::string_view source) {
  auto t = ChatTemplate::Create(source, "<s>", "</s>");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? *std::move(t) : nullptr;
}

ChatTemplateInputs Conversation(const char* messages_json) {
  ChatTemplateInputs inputs;
  inputs.messages = Json::parse(messages_json);
  return inputs;
}

std::string DefaultModelPath() {
  return std::string(WEFT_MODEL_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
}

// ---- load errors ----

struct LoadError {
  const char* source;
  const char* message;  // what the error must contain
};

void PrintTo(const LoadError& e, std::ostream* os) { *os << e.source; }

class UnsupportedConstructTest : public ::testing::TestWithParam<LoadError> {};

TEST_P(UnsupportedConstructTest, FailsAtLoadNamingConstructAndLine) {
  EXPECT_THAT(ChatTemplate::Create(GetParam().source, "", ""),
              StatusIs(kInvalid, GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Constructs, UnsupportedConstructTest,
    ::testing::Values(
        LoadError{"{% extends 'base.jinja' %}", "line 1: '{% extends %}' (template inheritance)"},
        LoadError{"a\n{% block body %}{% endblock %}", "line 2: '{% block %}'"},
        LoadError{"a\n\n{% include 'x.jinja' %}", "line 3: '{% include %}'"},
        LoadError{"{% import 'macros.jinja' as m %}", "'{% import %}'"},
        LoadError{"{% from 'm.jinja' import f %}", "'{% from %}'"},
        LoadError{"{% macro f() %}{{ caller() }}{% endmacro %}\n{% call f() %}x{% endcall %}",
                  "line 2: '{% call %}' (call blocks)"},
        LoadError{"{% for x in xs recursive %}{{ loop(x) }}{% endfor %}",
                  "recursive for loops are not supported"},
        LoadError{"{{ messages | groupby('role') }}", "the filter 'groupby' is not supported"},
        LoadError{"x\n{{ messages | no_such_filter }}", "line 2: no filter named 'no_such_filter'"},
        LoadError{"{{ 1 is no_such_test }}", "no test named 'no_such_test'"},
        LoadError{"{% do messages.append(1) %}", "unknown tag 'do'"},
        LoadError{"{% if true %}unclosed",
                  "unexpected end of template, expected 'elif' or 'else' or 'endif'"},
        LoadError{"{{ 'a' ", "missing end of variable tag"},
        LoadError{"{{ 'unterminated }}", "unterminated string literal"},
        LoadError{"{{ f(*args) }}", "*args and **kwargs in calls are not supported"},
        LoadError{"{% for x in y %}{% endif %}",
                  "unexpected 'endif', expected 'endfor' or 'else'"}));

TEST(ChatTemplateTest, UnknownFilterInAnIfLoadsAndFailsOnlyWhenItRuns) {
  auto t = MustCreate("{% if flag %}{{ x | from_json }}{% endif %}ok");
  ASSERT_THAT(t, NotNull());
  ChatTemplateInputs inputs;
  inputs.extra["flag"] = false;
  EXPECT_EQ(*t->Render(inputs), "ok");
  inputs.extra["flag"] = true;
  EXPECT_THAT(t->Render(inputs), StatusIs(kInvalid, "no filter named 'from_json'"));
}

TEST(ChatTemplateTest, DeeplyNestedExpressionsAreRefusedAtLoad) {
  const std::string source = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
  EXPECT_THAT(ChatTemplate::Create(source, "", ""),
              StatusIs(kInvalid, "nests deeper than 200 levels"));
  EXPECT_THAT(ChatTemplate::Create("{{ " + std::string(5000, '-') + "1 }}", "", ""),
              StatusIs(kInvalid, "nests deeper than 200 levels"));
}

TEST(ChatTemplateTest, DeeplyNestedBlocksAreRefusedAtLoad) {
  std::string source;
  for (int i = 0; i < 1000; ++i) source += "{% if true %}";
  for (int i = 0; i < 1000; ++i) source += "{% endif %}";
  EXPECT_THAT(ChatTemplate::Create(source, "", ""),
              StatusIs(kInvalid, "nests deeper than 200 levels"));
}

// ---- render errors ----

TEST(ChatTemplateTest, RaiseExceptionIsInvalidArgumentWithTheTemplatesMessage) {
  auto t = MustCreate(
      "{% for m in messages %}{% if m.role not in ['user', 'assistant'] %}"
      "{{ raise_exception('Unknown role: ' + m.role) }}{% endif %}{% endfor %}");
  auto rendered = t->Render(Conversation(R"([{"role": "narrator", "content": "x"}])"));
  EXPECT_THAT(rendered, StatusIs(kInvalid, ""));
  EXPECT_EQ(rendered.status().message(), "Unknown role: narrator");
}

TEST(ChatTemplateTest, RenderErrorsNameTheLine) {
  auto t = MustCreate("line one\n{{ missing.attribute }}");
  EXPECT_THAT(t->Render({}), StatusIs(kInvalid, "chat template line 2: 'missing' is undefined"));
}

TEST(ChatTemplateTest, MessagesThatAreNotObjectsAreInvalid) {
  auto t = MustCreate("{{ messages }}");
  EXPECT_THAT(t->Render(Conversation(R"([{"role": "user"}, "text"])")),
              StatusIs(kInvalid, "messages[1]: must be an object"));
}

TEST(ChatTemplateTest, RunawayMacroRecursionIsAnErrorNotACrash) {
  auto t = MustCreate("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  EXPECT_THAT(t->Render({}), StatusIs(kInvalid, "macro 'f': calls nested deeper than 100"));
}

TEST(ChatTemplateTest, HugeRepetitionsAreRefusedNotAllocated) {
  auto t = MustCreate("{{ 'x' * 1000000000 }}");
  EXPECT_THAT(t->Render({}), StatusIs(kInvalid, "too large"));
}

TEST(ChatTemplateTest, DeeplyNestedInputsAreRefused) {
  Json deep = Json::array();
  for (int i = 0; i < 100000; ++i) deep = Json::array({std::move(deep)});
  auto t = MustCreate("{{ tools | length }}");
  ChatTemplateInputs inputs;
  inputs.tools = std::move(deep);
  EXPECT_THAT(t->Render(inputs), StatusIs(kInvalid, "tools: nested deeper than 64 levels"));
}

// ---- inputs ----

TEST(ChatTemplateTest, NullValuedMessageKeysAreDropped) {
  auto t = MustCreate("{{ messages[0] | tojson }}|{{ messages[0].content is defined }}");
  EXPECT_EQ(
      *t->Render(Conversation(R"([{"role": "assistant", "content": null, "tool_calls": []}])")),
      R"({"role": "assistant", "tool_calls": []}|False)");
}

TEST(ChatTemplateTest, ReasoningIsAliasedAsThinkingAndReasoningContent) {
  auto t = MustCreate("{{ messages[0] | tojson }}");
  EXPECT_EQ(
      *t->Render(Conversation(R"([{"role": "assistant", "content": "4", "reasoning": "2+2"}])")),
      R"({"thinking": "2+2", "role": "assistant", "content": "4", "reasoning": "2+2", )"
      R"("reasoning_content": "2+2"})");
}

TEST(ChatTemplateTest, TemplatesSeeTokensToolsFlagAndKwargs) {
  auto t = MustCreate(
      "{{ bos_token }}|{{ eos_token }}|{{ tools is none }}|{{ documents is none }}|"
      "{{ add_generation_prompt }}|{{ enable_thinking }}");
  ChatTemplateInputs inputs;
  inputs.add_generation_prompt = false;
  inputs.extra["enable_thinking"] = false;
  EXPECT_EQ(*t->Render(inputs), "<s>|</s>|True|True|False|False");
}

TEST(ChatTemplateTest, KwargsOverrideTheSpecialTokens) {
  auto t = MustCreate("{{ bos_token }}{{ tools | length }}");
  ChatTemplateInputs inputs;
  inputs.extra["bos_token"] = "<BOS>";
  inputs.tools = Json::parse(R"([{"type": "function"}])");
  EXPECT_EQ(*t->Render(inputs), "<BOS>1");
}

TEST(ChatTemplateTest, StrftimeNowFormatsTheGivenTime) {
  auto t = MustCreate("{{ strftime_now('%d %B %Y, %A %H:%M') }}");
  EXPECT_EQ(*t->Render({}, absl::CivilSecond(2024, 7, 26, 9, 5, 0)), "26 July 2024, Friday 09:05");
}

TEST(ChatTemplateTest, StrftimeNowReadsTheClockByDefault) {
  auto t = MustCreate("{{ strftime_now('%Y-%m-%d') }}");
  auto today = [] {
    const std::time_t now = std::time(nullptr);
    std::tm local;
    localtime_r(&now, &local);
    char buf[16];
    std::strftime(buf, sizeof(buf), "%Y-%m-%d", &local);
    return std::string(buf);
  };
  const std::string before = today();
  const std::string rendered = *t->Render({});
  const std::string after = today();  // the date may turn during the render
  EXPECT_TRUE(rendered == before || rendered == after) << rendered;
}

TEST(ChatTemplateTest, RendersConcurrentlyFromManyThreads) {
  auto t = MustCreate(
      "{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
      "{{ m.content }}{% endfor %}{{ ns.n }}");
  std::vector<std::thread> threads;
  std::vector<std::string> results(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] {
      ChatTemplateInputs inputs;
      for (int k = 0; k <= i; ++k) {
        inputs.messages.push_back({{"role", "user"}, {"content", std::to_string(k)}});
      }
      for (int round = 0; round < 200; ++round) results[i] = *t->Render(inputs);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int i = 0; i < 8; ++i) {
    std::string expected;
    for (int k = 0; k <= i; ++k) expected += std::to_string(k);
    EXPECT_EQ(results[i], expected + std::to_string(i + 1));
  }
}

// ---- the served template ----

TEST(LoadChatTemplateTest, AModelWithoutATemplateHasNone) {
  auto files = ModelFiles::Open(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama");
  ASSERT_TRUE(files.ok()) << files.status();
  auto loaded = LoadChatTemplate(**files, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(*loaded, IsNull());
}

TEST(LoadChatTemplateTest, TheModelsOwnTemplateIsServed) {
  auto files = ModelFiles::Open(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_qwen2");
  ASSERT_TRUE(files.ok()) << files.status();
  auto loaded = LoadChatTemplate(**files, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(*loaded, NotNull());
  EXPECT_EQ(*(*loaded)->Render(Conversation(R"([{"role": "user", "content": "hi"}])")),
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(LoadChatTemplateTest, AnOverrideFileReplacesTheModelsTemplate) {
  const std::filesystem::path dir = test::MakeScratchDir("weft_chat_template");
  const std::filesystem::path path = dir / "override.jinja";
  std::ofstream(path) << "{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}";
  auto files = ModelFiles::Open(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_qwen2");
  ASSERT_TRUE(files.ok()) << files.status();
  auto loaded = LoadChatTemplate(**files, path.string());
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(*(*loaded)->Render(Conversation(R"([{"role": "user", "content": "hi"}])")),
            "[user] hi\n");
  test::RemoveScratchDir(dir);
}

TEST(LoadChatTemplateTest, AMissingOverrideFileIsNotFound) {
  auto files = ModelFiles::Open(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama");
  ASSERT_TRUE(files.ok()) << files.status();
  EXPECT_THAT(LoadChatTemplate(**files, "/nonexistent/template.jinja"),
              StatusIs(absl::StatusCode::kNotFound, "/nonexistent/template.jinja"));
}

TEST(LoadChatTemplateTest, ABrokenOverrideFileNamesTheFileAndLine) {
  const std::filesystem::path dir = test::MakeScratchDir("weft_chat_template");
  const std::filesystem::path path = dir / "broken.jinja";
  std::ofstream(path) << "ok\n{% include 'other.jinja' %}";
  auto files = ModelFiles::Open(std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama");
  ASSERT_TRUE(files.ok()) << files.status();
  auto loaded = LoadChatTemplate(**files, path.string());
  EXPECT_THAT(loaded, StatusIs(kInvalid, "broken.jinja"));
  EXPECT_THAT(loaded, StatusIs(kInvalid, "line 2: '{% include %}'"));
  test::RemoveScratchDir(dir);
}

TEST(LoadChatTemplateTest, TheDefaultModelsTemplateUsesItsSpecialTokens) {
  if (!std::ifstream(DefaultModelPath()).good()) GTEST_SKIP() << "no " << DefaultModelPath();
  auto files = ModelFiles::Open(DefaultModelPath());
  ASSERT_TRUE(files.ok()) << files.status();
  auto loaded = LoadChatTemplate(**files, "");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_THAT(*loaded, NotNull());
  EXPECT_EQ(*(*loaded)->Render(Conversation(R"([{"role": "user", "content": "Hi"}])")),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(EncodeChatPromptTest, ParsesSpecialTokensAndAddsNoBos) {
  if (!std::ifstream(DefaultModelPath()).good()) GTEST_SKIP() << "no " << DefaultModelPath();
  auto files = ModelFiles::Open(DefaultModelPath());
  ASSERT_TRUE(files.ok()) << files.status();
  auto loaded = LoadChatTemplate(**files, "");
  ASSERT_TRUE(loaded.ok() && *loaded != nullptr);
  const Tokenizer& tokenizer = (*files)->tokenizer();
  const ChatTemplateInputs inputs = Conversation(R"([{"role": "user", "content": "Hi"}])");
  auto ids = EncodeChatPrompt(**loaded, tokenizer, inputs);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EncodeOptions options;
  options.parse_special = true;
  options.add_special_tokens = false;
  EXPECT_EQ(*ids, tokenizer.Encode(*(*loaded)->Render(inputs), options));
  ASSERT_FALSE(ids->empty());
  EXPECT_EQ(ids->front(), tokenizer.PieceToId("<|im_start|>"));
  EXPECT_EQ(std::count(ids->begin(), ids->end(), tokenizer.PieceToId("<|im_end|>")), 2);
}

TEST(EncodeChatPromptTest, TemplateErrorsPassThrough) {
  if (!std::ifstream(DefaultModelPath()).good()) GTEST_SKIP() << "no " << DefaultModelPath();
  auto files = ModelFiles::Open(DefaultModelPath());
  ASSERT_TRUE(files.ok()) << files.status();
  auto t = MustCreate("{{ raise_exception('no') }}");
  EXPECT_THAT(EncodeChatPrompt(*t, (*files)->tokenizer(), {}), StatusIs(kInvalid, "no"));
}

}  // namespace
}  // namespace weft
