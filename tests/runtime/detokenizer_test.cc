#include "runtime/detokenizer.h"

#include <fstream>

#include "gtest/gtest.h"
#include "runtime/loader/gguf.h"

namespace weft {
namespace {

TEST(CompleteUtf8PrefixTest, HoldsBackUnfinishedCharacters) {
  EXPECT_EQ(CompleteUtf8Prefix("abc"), 3u);
  EXPECT_EQ(CompleteUtf8Prefix("a\xc3"), 1u);              // é cut after 1 byte
  EXPECT_EQ(CompleteUtf8Prefix("a\xc3\xa9"), 3u);          // é complete
  EXPECT_EQ(CompleteUtf8Prefix("\xe2\x82"), 0u);           // € cut
  EXPECT_EQ(CompleteUtf8Prefix("x\xf0\x9f\x98"), 1u);      // 😀 cut after 3
  EXPECT_EQ(CompleteUtf8Prefix("x\xf0\x9f\x98\x80"), 5u);  // 😀 complete
  EXPECT_EQ(CompleteUtf8Prefix("\xff"), 1u);  // never valid: emitted (as U+FFFD)
}

class DefaultModelDetokenizerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string path =
        std::string(WEFT_MODEL_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
    if (!std::ifstream(path).good()) {
      GTEST_SKIP() << "default model not found in " << WEFT_MODEL_DIR;
    }
    auto gguf = GgufFile::Open(path);
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    auto tokenizer = Tokenizer::FromGguf(**gguf);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(DefaultModelDetokenizerTest, StreamsWholeCharactersAndMatchesDecode) {
  const std::string text =
      "Grüße aus Köln! 東京タワー 🙂👍🏽 naïve café — ok\n\tdone";
  const std::vector<int32_t> ids = tokenizer_->Encode(text, EncodeOptions{});
  IncrementalDetokenizer detokenizer(*tokenizer_);
  std::string streamed;
  for (int32_t id : ids) {
    const std::string delta = detokenizer.Add(id);
    // Every delta is valid UTF-8 on its own.
    EXPECT_EQ(CompleteUtf8Prefix(delta), delta.size());
    streamed += delta;
  }
  streamed += detokenizer.Flush();
  EXPECT_EQ(streamed, text);
  EXPECT_EQ(streamed, tokenizer_->Decode(ids, /*skip_special_tokens=*/true));
}

TEST_F(DefaultModelDetokenizerTest, SpecialTokensProduceNoText) {
  IncrementalDetokenizer detokenizer(*tokenizer_);
  EXPECT_EQ(detokenizer.Add(tokenizer_->PieceToId("<|im_end|>")), "");
}

// On a SentencePiece vocabulary (Llama 2) the first generated token keeps
// its space: the stream continues the prompt, as vLLM and llama.cpp's
// server stream it (before, "▁Paris" came out as "Paris", and an echoed
// prompt ran into the completion).
TEST(SpmDetokenizerTest, TheFirstTokenKeepsItsSpace) {
  const std::string path = std::string(WEFT_MODEL_DIR) + "/vocab/ggml-vocab-llama-spm.gguf";
  if (!std::ifstream(path).good()) {
    GTEST_SKIP() << path << " is absent (tools/fetch_vocabs.sh fetches it)";
  }
  auto gguf = GgufFile::Open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto tokenizer = Tokenizer::FromGguf(**gguf);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::vector<int32_t> prompt = (*tokenizer)->Encode("The capital of France is", {});
  // "▁Paris", ".", "▁It", "▁is" (the encoder adds the leading "▁").
  const std::vector<int32_t> output = (*tokenizer)->Encode("Paris. It is", {});
  ASSERT_FALSE(output.empty());
  ASSERT_EQ((*tokenizer)->TokenBytes(output[0]).front(), ' ');
  IncrementalDetokenizer detokenizer(**tokenizer);
  std::string streamed;
  for (int32_t id : output) streamed += detokenizer.Add(id);
  streamed += detokenizer.Flush();
  EXPECT_EQ(streamed, " Paris. It is");
  std::vector<int32_t> all = prompt;
  all.insert(all.end(), output.begin(), output.end());
  EXPECT_EQ((*tokenizer)->Decode(prompt, true) + streamed, (*tokenizer)->Decode(all, true));
}

}  // namespace
}  // namespace weft
