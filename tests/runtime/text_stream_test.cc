#include "runtime/text_stream.h"

#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/utf8.h"

namespace weft {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// What a stream produced for a list of tokens.
struct Streamed {
  std::vector<std::string> updates;  // Update::text per token given
  std::string text;                  // all of them (+ Flush when unfinished)
  std::optional<FinishReason> finish;
  std::string stop_reason;
  int32_t stop_token = -1;
  bool stop_string = false;
  int num_tokens = 0;
};

// Feeds `ids` until the stream finishes; flushes when it does not.
Streamed Stream(TextStream& stream, const std::vector<int32_t>& ids) {
  Streamed out;
  for (int32_t id : ids) {
    TextStream::Update update = stream.Add(id);
    out.updates.push_back(update.text);
    out.text += update.text;
    if (update.finish.has_value()) {
      out.finish = update.finish;
      out.stop_reason = update.stop_reason;
      out.stop_token = update.stop_token;
      out.stop_string = update.stop_string;
      break;
    }
  }
  if (!out.finish.has_value()) out.text += stream.Flush();
  out.num_tokens = stream.num_tokens();
  return out;
}

class TextStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path =
        std::string(WEFT_MODEL_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::ifstream(path).good()) return;
    auto gguf = GgufFile::Open(path);
    if (!gguf.ok()) return;
    auto tokenizer = Tokenizer::FromGguf(**gguf);
    if (tokenizer.ok()) tokenizer_ = std::move(tokenizer).value().release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) {
      GTEST_SKIP() << "default model (its tokenizer) not found in "
                   << WEFT_MODEL_DIR;
    }
  }

  static std::vector<int32_t> Encode(const std::string& text) {
    return tokenizer_->Encode(text, EncodeOptions{});
  }
  static std::string TokenText(int32_t id) {
    return tokenizer_->Decode({&id, 1}, /*skip_special_tokens=*/false);
  }
  // Runs `text`'s tokens (plus `extra` after them) through a stream.
  static Streamed Run(const StoppingParams& params, const std::string& text,
                      const std::vector<int32_t>& extra = {}) {
    EXPECT_TRUE(params.Validate().ok()) << params.Validate();
    std::vector<int32_t> ids = Encode(text);
    ids.insert(ids.end(), extra.begin(), extra.end());
    TextStream stream(*tokenizer_, params);
    return Stream(stream, ids);
  }
  static StoppingParams Unlimited() {
    StoppingParams params;
    params.max_tokens = 1000;
    return params;
  }

  static const Tokenizer* tokenizer_;
};

const Tokenizer* TextStreamTest::tokenizer_ = nullptr;

constexpr char kHello[] = "Hello world, how are you?";

// ---------------------------------------------------------- stop strings

TEST_F(TextStreamTest, StopStringSpanningTwoTokensIsCutBeforeIt) {
  // "Hello" | " world": "o wor" begins in one token and ends in the next.
  for (int32_t id : Encode(kHello)) {
    ASSERT_THAT(TokenText(id), ::testing::Not(HasSubstr("o wor")));
  }
  StoppingParams params = Unlimited();
  params.stop = {"o wor"};
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "Hell");
  EXPECT_EQ(out.finish, FinishReason::kStop);
  EXPECT_EQ(out.stop_reason, "o wor");
  EXPECT_EQ(out.stop_token, -1);
  EXPECT_TRUE(out.stop_string);
  EXPECT_EQ(out.num_tokens, 2);
}

TEST_F(TextStreamTest, IncludeStopStrInOutputKeepsTheStopString) {
  StoppingParams params = Unlimited();
  params.stop = {"o wor"};
  params.include_stop_str_in_output = true;
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "Hello wor");
  EXPECT_EQ(out.finish, FinishReason::kStop);
}

TEST_F(TextStreamTest, TextThatMayBecomeAStopStringIsHeldBackThenReleased) {
  // After " world" the text ends in "world", a prefix of the stop string:
  // it waits until "," shows that the stop string does not follow.
  StoppingParams params = Unlimited();
  params.stop = {"world peace"};
  const Streamed out = Run(params, kHello);
  ASSERT_GE(out.updates.size(), 3u);
  EXPECT_THAT(std::vector<std::string>(out.updates.begin(),
                                       out.updates.begin() + 3),
              ElementsAre("Hello", " ", "world,"));
  EXPECT_EQ(out.text, kHello);
  EXPECT_FALSE(out.finish.has_value());
}

TEST_F(TextStreamTest, OnlyAPossibleStartOfAStopStringIsHeldBack) {
  // "you" would be a prefix of "your", but "?" ends that; nothing else in
  // the text can start the stop string, so no update is ever held.
  StoppingParams params = Unlimited();
  params.stop = {"your"};
  const std::vector<int32_t> ids = Encode(kHello);
  const Streamed out = Run(params, kHello);
  ASSERT_EQ(out.updates.size(), ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (TokenText(ids[i]) == " you") {
      EXPECT_EQ(out.updates[i], " ");
    } else if (i > 0 && TokenText(ids[i - 1]) == " you") {
      EXPECT_EQ(out.updates[i], "you" + TokenText(ids[i]));
    } else {
      EXPECT_EQ(out.updates[i], TokenText(ids[i])) << "token " << i;
    }
  }
}

TEST_F(TextStreamTest, TheStopStringThatEndsFirstWins) {
  // Both match inside the single token "Hello"; "el" ends first.
  ASSERT_EQ(Encode("Hello").size(), 1u);
  StoppingParams params = Unlimited();
  params.stop = {"llo", "el"};
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "H");
  EXPECT_EQ(out.stop_reason, "el");
}

TEST_F(TextStreamTest, StopStringsDoNotMatchBeforeMinTokens) {
  // "Hello" and " world" come before min_tokens = 3: the "o" in "Hello"
  // and the one in "world" are not stops; the one in " how" is.
  StoppingParams params = Unlimited();
  params.min_tokens = 3;
  params.stop = {"o"};
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "Hello world, h");
  EXPECT_EQ(out.finish, FinishReason::kStop);
}

// ----------------------------------------------------------- stop tokens

TEST_F(TextStreamTest, EosEndsWithStopAndItsTextIsNotEmitted) {
  StoppingParams params = Unlimited();
  params.skip_special_tokens = false;  // even when it would be visible
  const int32_t eos = tokenizer_->eos_id();
  const Streamed out = Run(params, "Hi there", {eos, Encode("!")[0]});
  EXPECT_EQ(out.text, "Hi there");
  EXPECT_EQ(out.finish, FinishReason::kStop);
  EXPECT_EQ(out.stop_token, -1);  // the tokenizer's EOS: no stop reason
  EXPECT_FALSE(out.stop_string);
  EXPECT_EQ(out.stop_reason, TokenText(eos));
  EXPECT_EQ(out.num_tokens, 3);
  // Named in stop_token_ids too, it is still the model's EOS (as in vLLM).
  params.stop_token_ids = {eos};
  EXPECT_EQ(Run(params, "Hi there", {eos}).stop_token, -1);
}

TEST_F(TextStreamTest, EosBeforeMinTokensIsAnOrdinaryToken) {
  const int32_t eos = tokenizer_->eos_id();
  const std::vector<int32_t> hi = Encode("Hi there");
  ASSERT_EQ(hi.size(), 2u);
  StoppingParams params = Unlimited();
  params.min_tokens = 2;
  TextStream stream(*tokenizer_, params);
  // One token before the first EOS: too early. Three before the second.
  const Streamed out = Stream(stream, {hi[0], eos, hi[1], eos});
  EXPECT_EQ(out.text, "Hi there");
  EXPECT_EQ(out.finish, FinishReason::kStop);
  EXPECT_EQ(out.num_tokens, 4);
}

TEST_F(TextStreamTest, IgnoreEosGoesOnToMaxTokens) {
  StoppingParams params;
  params.max_tokens = 4;
  params.ignore_eos = true;
  const int32_t eos = tokenizer_->eos_id();
  const Streamed out = Run(params, "Hi there", {eos, Encode("!")[0], eos});
  EXPECT_EQ(out.text, "Hi there!");
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(out.num_tokens, 4);
}

TEST_F(TextStreamTest, StopTokenIdsStopEvenWithIgnoreEos) {
  const int32_t comma = Encode(",")[0];
  StoppingParams params = Unlimited();
  params.ignore_eos = true;
  params.stop_token_ids = {comma};
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "Hello world");
  EXPECT_EQ(out.finish, FinishReason::kStop);
  EXPECT_EQ(out.stop_token, comma);
  EXPECT_FALSE(out.stop_string);
  EXPECT_EQ(out.stop_reason, ",");
}

TEST_F(TextStreamTest, IncludeStopStrInOutputEmitsAStopTokensText) {
  StoppingParams params = Unlimited();
  params.skip_special_tokens = false;
  params.include_stop_str_in_output = true;
  const int32_t eos = tokenizer_->eos_id();
  const Streamed out = Run(params, "Hi", {eos});
  EXPECT_EQ(out.text, "Hi" + TokenText(eos));
  EXPECT_EQ(out.finish, FinishReason::kStop);
}

// ------------------------------------------------------------ max tokens

TEST_F(TextStreamTest, MaxTokensEndsWithLengthAndEmitsHeldBackText) {
  // The second token's "world" would be held for "world peace"; at the
  // last token it is emitted.
  StoppingParams params;
  params.max_tokens = 2;
  params.stop = {"world peace"};
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "Hello world");
  EXPECT_EQ(out.finish, FinishReason::kLength);
  EXPECT_EQ(out.num_tokens, 2);
}

TEST_F(TextStreamTest, AStopStringCompletedByTheLastTokenIsAStop) {
  StoppingParams params;
  params.max_tokens = 2;
  params.stop = {"world"};
  const Streamed out = Run(params, kHello);
  EXPECT_EQ(out.text, "Hello ");
  EXPECT_EQ(out.finish, FinishReason::kStop);
}

// ------------------------------------------------------------ characters

TEST_F(TextStreamTest, MultiByteCharactersSplitAcrossTokensAreNeverHalved) {
  const std::string text = "東京タワー 🙂👍🏽 naïve";
  const std::vector<int32_t> ids = Encode(text);
  bool some_token_is_partial = false;
  for (int32_t id : ids) {
    some_token_is_partial |=
        !tokenizer_internal::IsValidUtf8(tokenizer_->TokenBytes(id));
  }
  ASSERT_TRUE(some_token_is_partial) << "no character spans tokens";
  const Streamed out = Run(Unlimited(), text);
  for (const std::string& update : out.updates) {
    EXPECT_TRUE(tokenizer_internal::IsValidUtf8(update)) << update;
  }
  EXPECT_EQ(out.text, text);
}

TEST_F(TextStreamTest, UpdatesAndFlushConcatenateToTheDecodedText) {
  // Stop strings that keep almost matching make text wait and come back.
  const std::string text =
      "Grüße aus Köln! 東京タワー 🙂👍🏽 naïve café — ok\n\tdone. Köln again";
  StoppingParams params = Unlimited();
  params.stop = {"Köln?", "naïve cafeteria", "🙂👍🏽!", "\n\n"};
  const std::vector<int32_t> ids = Encode(text);
  TextStream stream(*tokenizer_, params);
  std::string streamed;
  for (int32_t id : ids) {
    TextStream::Update update = stream.Add(id);
    ASSERT_FALSE(update.finish.has_value());
    streamed += update.text;
  }
  streamed += stream.Flush();
  EXPECT_EQ(streamed, tokenizer_->Decode(ids, /*skip_special_tokens=*/true));
  EXPECT_EQ(streamed, text);
}

TEST_F(TextStreamTest, FlushReturnsHeldBackTextAndEndsTheStream) {
  StoppingParams params = Unlimited();
  params.stop = {"world peace"};
  const std::vector<int32_t> ids = Encode(kHello);
  TextStream stream(*tokenizer_, params);
  EXPECT_EQ(stream.Add(ids[0]).text, "Hello");
  EXPECT_EQ(stream.Add(ids[1]).text, " ");
  EXPECT_EQ(stream.Flush(), "world");  // e.g. cancelled here
  EXPECT_EQ(stream.Flush(), "");
  EXPECT_EQ(stream.Add(ids[2]).text, "");
}

// -------------------------------------------------------- special tokens

TEST_F(TextStreamTest, SkipSpecialTokensDropsTheirText) {
  const std::string chat = "<|im_start|>user\nHi<|im_end|>";
  StoppingParams params = Unlimited();
  params.ignore_eos = true;  // <|im_end|> is a stop token
  EXPECT_EQ(Run(params, chat).text, "user\nHi");
}

TEST_F(TextStreamTest, WithoutSkipSpecialTokensTheirTextIsEmitted) {
  const std::string chat = "<|im_start|>user\nHi<|im_end|>";
  ASSERT_EQ(Encode(chat).size(), 5u);  // the special tokens are single ids
  StoppingParams params = Unlimited();
  params.ignore_eos = true;
  params.skip_special_tokens = false;
  EXPECT_EQ(Run(params, chat).text, chat);
}

// ------------------------------------------------------------ validation

TEST(StoppingParamsTest, AcceptsTheDefaults) {
  EXPECT_TRUE(StoppingParams{}.Validate().ok());
}

TEST(StoppingParamsTest, RejectsEachInvalidFieldByName) {
  struct Case {
    std::string field;
    StoppingParams params;
  };
  std::vector<Case> cases = {
      {"max_tokens", {.max_tokens = 0}},
      {"min_tokens", {.max_tokens = 4, .min_tokens = 5}},
      {"min_tokens", {.min_tokens = -1}},
      {"stop_token_ids", {.stop_token_ids = {3, -1}}},
      {"stop_token_ids", {.stop_token_ids = std::vector<int32_t>(kMaxStopTokenIds + 1, 3)}},
      {"stop", {.stop = std::vector<std::string>(17, "x")}},
      {"stop[1]", {.stop = {"a", ""}}},
      {"stop[0]", {.stop = {std::string(257, 'x')}}},
      {"stop[0]", {.stop = {"\xff"}}},
  };
  for (const Case& c : cases) {
    const absl::Status status = c.params.Validate();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument)
        << c.field << ": " << status;
    EXPECT_THAT(std::string(status.message()), HasSubstr(c.field));
  }
}

TEST(StoppingParamsTest, AcceptsTheEdgesOfEachRange) {
  StoppingParams params{.max_tokens = 1,
                        .min_tokens = 1,
                        .stop_token_ids = std::vector<int32_t>(kMaxStopTokenIds, 3),
                        .stop = std::vector<std::string>(16, "é")};
  params.stop[0] = std::string(256, 'x');
  EXPECT_TRUE(params.Validate().ok()) << params.Validate();
}

}  // namespace
}  // namespace weft
