// Random text and random token ids against the tokenizers of three
// families (SmolLM2's byte-level BPE from the default model, Llama 2's
// SentencePiece BPE and Qwen2's byte-level BPE from llama.cpp's vocabulary
// files): prompts are what users control, so every input must work.
//   - Encode gives ids inside the vocabulary, for any bytes.
//   - Valid UTF-8 without special-token text comes back byte for byte from
//     the ids' TokenBytes (the tokenizers are lossless; SentencePiece adds
//     its one leading space).
//   - Streaming random ids through IncrementalDetokenizer gives Decode's
//     text (byte-level vocabularies; SentencePiece's Decode drops the
//     stream's leading space, tested in detokenizer_test).
// A vocabulary file that is absent skips its case with a message.
// WEFT_FUZZ_ITERATIONS (default 300 a vocabulary) and WEFT_FUZZ_SEED set
// the run; tools/sanitize.sh runs it longer under ASan and UBSan.
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/detokenizer.h"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/test_util.h"

namespace weft {
namespace {

struct Vocab {
  const char* name;
  const char* path;  // under WEFT_MODEL_DIR
  bool byte_level;
};

// Pieces of text: ASCII words and punctuation, whitespace runs, digits,
// precomposed (NFC-stable) letters of several scripts, emoji, and text
// spelling special tokens.
constexpr const char* kPieces[] = {
    "the", " cat", "Hello", ",", ".", "!", "?", "'s", "'ll", " ", "  ", "\t",
    "\n", "\n\n", "\r\n", "   \n ", "0", "123", "4567890", "3.14", "-", "_",
    "(", ")", "{", "}", "[", "]", "\"", "\\", "/", "<", ">", "#", "@", "$",
    "\xC3\xA9", "\xC3\xBC", "\xC3\x9F", "\xD0\x96", "\xD0\xB8\xD1\x80",
    "\xE4\xB8\xAD\xE6\x96\x87", "\xE3\x81\x82", "\xED\x95\x9C", "\xD8\xB9",
    "\xE0\xA4\x95", "\xF0\x9F\x98\x80", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
    "\xE2\x82\xAC", "\xC2\xA0", "\xE2\x80\x8B", "\xEF\xBB\xBF",
    "<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<unk>",
    "<|", "|>", "<0x41>", "\xE2\x96\x81"};

// Bytes that are not UTF-8: a lone continuation, a truncated sequence, an
// overlong encoding, a surrogate, 0xFF.
constexpr const char* kInvalid[] = {"\x80", "\xC3", "\xE4\xB8", "\xC0\xAF",
                                    "\xED\xA0\x80", "\xFF", "\xF4\x90\x80\x80"};

class TokenizerFuzzTest : public ::testing::TestWithParam<Vocab> {
 protected:
  void SetUp() override {
    const std::string path = test::ModelDir() + "/" + GetParam().path;
    if (!std::filesystem::exists(path)) {
      GTEST_SKIP() << path << " is absent (tools/fetch_model.sh, tools/fetch_vocabs.sh)";
    }
    auto gguf = GgufFile::Open(path);
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    auto tokenizer = Tokenizer::FromGguf(**gguf);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = *std::move(tokenizer);
    rng_.seed(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
  }

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  // Valid UTF-8 (with_special: also special-token spellings; invalid: also
  // bytes that are not UTF-8).
  std::string RandomText(bool with_special, bool invalid) {
    std::string text;
    for (int i = 0, n = Below(60); i < n; ++i) {
      if (invalid && Below(6) == 0) {
        text += kInvalid[Below(static_cast<int>(std::size(kInvalid)))];
        continue;
      }
      std::string piece = kPieces[Below(static_cast<int>(std::size(kPieces)))];
      if (!with_special && (piece.find('<') != std::string::npos ||
                            piece.find('>') != std::string::npos)) {
        continue;
      }
      // SentencePiece writes a space as U+2581 and reads U+2581 back as a
      // space (so does Hugging Face's decode): a typed U+2581 cannot
      // round-trip there.
      if (!with_special && !GetParam().byte_level && piece == "\xE2\x96\x81") continue;
      text += piece;
    }
    return text;
  }

  std::unique_ptr<Tokenizer> tokenizer_;
  std::mt19937_64 rng_;
};

int64_t Iterations() { return test::EnvInt("WEFT_FUZZ_ITERATIONS", 300); }

TEST_P(TokenizerFuzzTest, AnyBytesEncodeToIdsInTheVocabulary) {
  for (int64_t i = 0; i < Iterations(); ++i) {
    const std::string text = RandomText(/*with_special=*/true, /*invalid=*/true);
    for (bool parse_special : {false, true}) {
      EncodeOptions options;
      options.parse_special = parse_special;
      options.add_special_tokens = Below(2) == 0;
      for (int32_t id : tokenizer_->Encode(text, options)) {
        ASSERT_TRUE(id >= 0 && id < tokenizer_->vocab_size())
            << id << " for " << ::testing::PrintToString(text);
      }
    }
  }
}

TEST_P(TokenizerFuzzTest, ValidTextComesBackFromItsTokensBytes) {
  for (int64_t i = 0; i < Iterations(); ++i) {
    const std::string text = RandomText(/*with_special=*/false, /*invalid=*/false);
    EncodeOptions options;
    options.parse_special = false;
    std::string bytes;
    for (int32_t id : tokenizer_->Encode(text, options)) bytes += tokenizer_->TokenBytes(id);
    const std::string expected =
        !GetParam().byte_level && !text.empty() ? " " + text : text;
    ASSERT_EQ(bytes, expected) << ::testing::PrintToString(text);
  }
}

TEST_P(TokenizerFuzzTest, StreamedIdsGiveDecodesText) {
  if (!GetParam().byte_level) GTEST_SKIP() << "SentencePiece: see detokenizer_test";
  for (int64_t i = 0; i < Iterations(); ++i) {
    std::vector<int32_t> ids;
    for (int j = 0, n = Below(40); j < n; ++j) ids.push_back(Below(tokenizer_->vocab_size()));
    for (bool skip : {false, true}) {
      IncrementalDetokenizer detokenizer(*tokenizer_, skip);
      std::string streamed;
      for (int32_t id : ids) streamed += detokenizer.Add(id);
      streamed += detokenizer.Flush();
      ASSERT_EQ(streamed, tokenizer_->Decode(ids, skip))
          << "skip_special_tokens " << skip << ", ids " << ::testing::PrintToString(ids);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Vocabs, TokenizerFuzzTest,
    ::testing::Values(Vocab{"SmolLM2", "SmolLM2-135M-Instruct.Q4_1.gguf", true},
                      Vocab{"Llama2", "vocab/ggml-vocab-llama-spm.gguf", false},
                      Vocab{"Qwen2", "vocab/ggml-vocab-qwen2.gguf", true}),
    [](const ::testing::TestParamInfo<Vocab>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace weft
