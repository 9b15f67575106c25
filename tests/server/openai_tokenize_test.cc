// vLLM's /tokenize and /detokenize: text and chat prompts counted with the
// served tokenizer and template (the chat count equals what a chat
// completion's prompt is), token strings on request, and bad bodies
// refused naming their field.
#include "server/openai_tokenize.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/openai_chat.h"
#include "server/openai_errors.h"
#include "server/openai_response.h"
#include "tests/test_util.h"
#include "tests/server/tiny_served_model.h"

namespace weft {
namespace {

using test::StatusIs;

class OpenAiTokenizeTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    AddChatTemplate(
        "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}");
  }

  std::vector<int32_t> Encode(const std::string& text, bool special) const {
    EncodeOptions options;
    options.add_special_tokens = special;
    return tokenizer_->Encode(text, options);
  }

};

TEST_F(OpenAiTokenizeTest, TextIsCountedWithTheServedTokenizer) {
  auto out = Tokenize(Json({{"prompt", "Hello world"}}).dump(), model_);
  ASSERT_TRUE(out.ok()) << out.status();
  const std::vector<int32_t> ids = Encode("Hello world", true);  // BOS by default
  EXPECT_EQ((*out)["tokens"], Json(ids));
  EXPECT_EQ((*out)["count"], ids.size());
  EXPECT_EQ((*out)["max_model_len"], 256);
  EXPECT_FALSE(out->contains("token_strs"));
  auto bare = Tokenize(
      Json({{"prompt", "Hello world"}, {"add_special_tokens", false}, {"return_token_strs", true}})
          .dump(),
      model_);
  ASSERT_TRUE(bare.ok()) << bare.status();
  EXPECT_EQ((*bare)["tokens"], Json(Encode("Hello world", false)));
  // Each token's text as the log-probs show it (its bytes; "bytes:\xNN"
  // for part of a character), not the vocabulary's spelling ("▁Hello").
  const std::vector<int32_t> bare_ids = Encode("Hello world", false);
  ASSERT_EQ((*bare)["token_strs"].size(), bare_ids.size());
  for (size_t i = 0; i < bare_ids.size(); ++i) {
    EXPECT_EQ((*bare)["token_strs"][i], TokenString(*tokenizer_, bare_ids[i]));
  }
  std::string joined;
  for (const Json& piece : (*bare)["token_strs"]) joined += piece.get<std::string>();
  EXPECT_EQ(joined, " Hello world");  // SentencePiece's leading space kept
}

TEST_F(OpenAiTokenizeTest, AChatCountsWhatAChatCompletionsPromptIs) {
  const Json messages = Json::array({{{"role", "user"}, {"content", "Hi"}}});
  auto out = Tokenize(Json({{"messages", messages}}).dump(), model_);
  ASSERT_TRUE(out.ok()) << out.status();
  auto chat = ParseChatRequest(Json({{"messages", messages}}).dump(), model_);
  ASSERT_TRUE(chat.ok()) << chat.status();
  EXPECT_EQ((*out)["tokens"], Json(chat->request.prompt_ids));
  auto no_prompt = Tokenize(
      Json({{"messages", messages}, {"add_generation_prompt", false}}).dump(), model_);
  ASSERT_TRUE(no_prompt.ok()) << no_prompt.status();
  EXPECT_LT((*no_prompt)["count"], (*out)["count"]);
}

TEST_F(OpenAiTokenizeTest, DetokenizeGivesTheTextBack) {
  const std::vector<int32_t> ids = Encode("Hello world", false);
  auto out = Detokenize(Json({{"tokens", ids}}).dump(), model_);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ((*out)["prompt"], "Hello world");
}

TEST_F(OpenAiTokenizeTest, BadBodiesNameTheirField) {
  const struct {
    Json body;
    std::string param;
  } cases[] = {
      {Json::object(), "messages"},
      {{{"prompt", "x"}, {"messages", Json::array()}}, "prompt"},
      {{{"prompt", 5}}, "prompt"},
      {{{"messages", "x"}}, "messages"},
      {{{"prompt", "x"}, {"model", "gpt-4"}}, "model"},
      {{{"prompt", "x"}, {"messages", nullptr}, {"return_token_strs", "yes"}},
       "return_token_strs"},
      {{{"messages", Json::array({{{"role", "user"}, {"content", "x"}}})},
        {"add_special_tokens", true}},
       "add_special_tokens"},
      // More tokens than the context: no response of gigabytes.
      {{{"prompt", std::string(2000, 'x')}}, "prompt"},
  };
  for (const auto& c : cases) {
    auto out = Tokenize(c.body.dump(), model_);
    ASSERT_FALSE(out.ok()) << c.body;
    EXPECT_EQ(ParamOf(out.status()), c.param) << c.body << " " << out.status();
  }
  for (const Json& body : {Json::object(), Json({{"tokens", "x"}}),
                           Json({{"tokens", {1, -1}}}),
                           Json({{"tokens", {model_.vocab_size}}}),
                           Json({{"tokens", std::vector<int32_t>(300, 1)}})}) {
    auto out = Detokenize(body.dump(), model_);
    EXPECT_THAT(out, StatusIs(absl::StatusCode::kInvalidArgument, "tokens")) << body;
    EXPECT_EQ(ParamOf(out.status()), "tokens") << body;
  }
  EXPECT_EQ(ParamOf(Detokenize(Json({{"tokens", {1}}, {"model", "gpt-4"}}).dump(), model_)
                        .status()),
            "model");
  model_.chat_template = nullptr;
  auto out = Tokenize(Json({{"messages", Json::array({{{"role", "user"}, {"content", "x"}}})}}).dump(),
                      model_);
  EXPECT_THAT(out, StatusIs(absl::StatusCode::kFailedPrecondition, "--chat-template"));
}

}  // namespace
}  // namespace weft
