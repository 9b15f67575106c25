// The fixture of the response-builder tests: a builder per API over the
// tiny_llama tokenizer, deltas and finishes to feed it, and the JSON
// events of an SSE text.
#ifndef WEFT_TESTS_SERVER_OPENAI_RESPONSE_FIXTURE_H_
#define WEFT_TESTS_SERVER_OPENAI_RESPONSE_FIXTURE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "server/openai_response.h"

namespace weft::test {

class OpenAiResponseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string dir =
        std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tiny_llama";
    auto tokenizer = Tokenizer::FromHfFiles(dir + "/tokenizer.json",
                                            dir + "/tokenizer_config.json");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    hello_ = tokenizer_->Encode("Hello", EncodeOptions{});
    ASSERT_FALSE(hello_.empty());
  }

  OpenAiResponseBuilder Builder(OpenAiApi api, int n = 1, bool logprobs = false,
                                bool include_usage = false) {
    OpenAiRequest request;
    request.api = api;
    request.request.sampling.n = n;
    request.logprobs = logprobs;
    request.include_usage = include_usage;
    return OpenAiResponseBuilder(
        request, api == OpenAiApi::kChatCompletions ? "chatcmpl-1" : "cmpl-1",
        "tiny", 1700000000, *tokenizer_);
  }

  static Delta TextDelta(int index, std::string text,
                         std::vector<SampledToken> logprobs = {}) {
    Delta delta;
    delta.index = index;
    delta.text = std::move(text);
    for (const SampledToken& t : logprobs) delta.token_ids.push_back(t.token);
    delta.logprobs = std::move(logprobs);
    return delta;
  }

  static Finished Done(std::vector<FinishReason> reasons, int prompt = 3,
                       int completion = 4, int cached = 1) {
    Finished finished;
    for (FinishReason r : reasons) finished.samples.push_back({r, "", 2});
    finished.usage = {prompt, completion, cached};
    return finished;
  }

  // The JSON objects of an SSE text, and whether it ended with [DONE].
  static std::vector<Json> Events(const std::string& sse, bool* done) {
    std::vector<Json> out;
    *done = false;
    for (absl::string_view event : absl::StrSplit(sse, "\n\n", absl::SkipEmpty())) {
      EXPECT_TRUE(absl::ConsumePrefix(&event, "data: ")) << event;
      EXPECT_FALSE(*done) << "an event after [DONE]";
      if (event == "[DONE]") {
        *done = true;
      } else {
        out.push_back(Json::parse(event));
      }
    }
    return out;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::vector<int32_t> hello_;
};

}  // namespace weft::test

#endif  // WEFT_TESTS_SERVER_OPENAI_RESPONSE_FIXTURE_H_
