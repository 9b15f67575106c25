// Randomly damaged GGUF files against the loader and the tokenizer built
// from them: small valid files (a SentencePiece and a byte-level
// vocabulary, F32 and Q8_0 tensors) with bytes flipped, runs deleted or
// duplicated, the file cut short or grown. Each must load or be refused
// with a status, never crash or throw; what loads must tokenize into ids
// inside its vocabulary, and its tensors must lie inside the file.
// (gguf_test checks each malformed case by hand; this covers the ones
// nobody listed.) WEFT_FUZZ_ITERATIONS (default 400 a file) and
// WEFT_FUZZ_SEED set the run.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/loader/gguf_writer.h"
#include "tests/test_util.h"

namespace weft {
namespace {

namespace gw = gguf_writer;

gw::Value Ints(const std::vector<int32_t>& values) {
  std::vector<gw::Value> elements;
  for (int32_t v : values) elements.push_back(gw::I32(v));
  return gw::Array(gw::kTypeInt32, elements);
}

void AddTensors(gw::File* file) {
  file->tensors.emplace_back("w.f32", std::vector<uint64_t>{4, 3}, gw::kF32,
                             gw::PatternBytes(4 * 3 * 4, 1));
  file->tensors.emplace_back("w.q8", std::vector<uint64_t>{32, 2}, gw::kQ8_0,
                             gw::PatternBytes(2 * 34, 2));
}

// Llama-style: <unk> <s> </s>, the 256 byte tokens, a few pieces.
std::string SentencePieceFile() {
  gw::File file;
  std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
  std::vector<int32_t> types = {2, 3, 3};
  std::vector<gw::Value> scores = {gw::F32(0), gw::F32(0), gw::F32(0)};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    tokens.push_back(name);
    types.push_back(6);
    scores.push_back(gw::F32(0));
  }
  for (const char* piece :
       {"\xE2\x96\x81", "a", "b", "\xE2\x96\x81" "a", "ab", "\xE2\x96\x81" "ab"}) {
    tokens.push_back(piece);
    types.push_back(1);
    scores.push_back(gw::F32(-static_cast<float>(tokens.size())));
  }
  file.metadata.emplace_back("general.architecture", gw::Str("llama"));
  file.metadata.emplace_back("tokenizer.ggml.model", gw::Str("llama"));
  file.metadata.emplace_back("tokenizer.ggml.tokens", gw::Strings(tokens));
  file.metadata.emplace_back("tokenizer.ggml.scores", gw::Array(gw::kTypeFloat32, scores));
  file.metadata.emplace_back("tokenizer.ggml.token_type", Ints(types));
  file.metadata.emplace_back("tokenizer.ggml.bos_token_id", gw::U32(1));
  file.metadata.emplace_back("tokenizer.ggml.eos_token_id", gw::U32(2));
  file.metadata.emplace_back("tokenizer.ggml.add_bos_token", gw::Bool(true));
  AddTensors(&file);
  return gw::Serialize(file).bytes;
}

// GPT-2 style: a, b, ab, c, an end token, merges.
std::string ByteLevelFile() {
  gw::File file;
  file.metadata.emplace_back("general.architecture", gw::Str("llama"));
  file.metadata.emplace_back("tokenizer.ggml.model", gw::Str("gpt2"));
  file.metadata.emplace_back("tokenizer.ggml.pre", gw::Str("gpt-2"));
  file.metadata.emplace_back("tokenizer.ggml.tokens",
                             gw::Strings({"a", "b", "ab", "c", "\xC4\xA0", "<|end|>"}));
  file.metadata.emplace_back("tokenizer.ggml.token_type", Ints({1, 1, 1, 1, 1, 3}));
  file.metadata.emplace_back("tokenizer.ggml.merges", gw::Strings({"a b"}));
  file.metadata.emplace_back("tokenizer.ggml.eos_token_id", gw::U32(5));
  AddTensors(&file);
  return gw::Serialize(file).bytes;
}

class GgufFuzzTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::MakeScratchDir("weft_gguf_fuzz"); }
  void TearDown() override { test::RemoveScratchDir(dir_); }

  int Below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }

  std::string Damage(std::string bytes) {
    for (int i = 0, n = 1 + Below(3); i < n && !bytes.empty(); ++i) {
      const size_t at = static_cast<size_t>(Below(static_cast<int>(bytes.size())));
      switch (Below(6)) {
        case 0: bytes.resize(at); break;
        case 1: bytes.erase(at, static_cast<size_t>(1 + Below(8))); break;
        case 2: bytes.insert(at, bytes.substr(at, static_cast<size_t>(Below(16)))); break;
        case 3: bytes += std::string(static_cast<size_t>(Below(64)), '\xFF'); break;
        default: {  // flip a byte; counts and lengths are little-endian ints
          static constexpr unsigned char kBytes[] = {0x00, 0x01, 0x7F, 0x80, 0xFF};
          bytes[at] = Below(2) ? static_cast<char>(Below(256))
                               : static_cast<char>(kBytes[Below(5)]);
          break;
        }
      }
    }
    return bytes;
  }

  void Run(const std::string& valid) {
    rng_.seed(static_cast<uint64_t>(test::EnvInt("WEFT_FUZZ_SEED", 1)));
    const std::string path = (dir_ / "model.gguf").string();
    int64_t opened = 0, tokenizers = 0, refused = 0;
    for (int64_t i = 0, n = test::EnvInt("WEFT_FUZZ_ITERATIONS", 400); i <= n; ++i) {
      const std::string bytes = i == 0 ? valid : Damage(valid);  // the first as is
      {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << bytes;
      }
      absl::StatusOr<std::unique_ptr<GgufFile>> gguf;
      try {
        gguf = GgufFile::Open(path);
      } catch (const std::exception& e) {
        FAIL() << "exception " << e.what() << " at iteration " << i;
      }
      if (i == 0) {
        ASSERT_TRUE(gguf.ok()) << gguf.status();
      }
      if (!gguf.ok()) {
        ++refused;
        ASSERT_FALSE(gguf.status().message().empty());
        continue;
      }
      ++opened;
      for (const HostTensor& t : (*gguf)->tensors()) {
        // Inside the file: no larger than it, and both ends readable (a
        // read past the mapping would crash here rather than in a kernel).
        ASSERT_LE(t.num_bytes, bytes.size()) << t.name;
        if (t.num_bytes > 0) {
          volatile uint8_t first = t.data[0];
          volatile uint8_t last = t.data[t.num_bytes - 1];
          (void)first;
          (void)last;
        }
      }
      absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer;
      try {
        tokenizer = Tokenizer::FromGguf(**gguf);
      } catch (const std::exception& e) {
        FAIL() << "exception " << e.what() << " at iteration " << i;
      }
      if (i == 0) {
        ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
      }
      if (!tokenizer.ok()) continue;
      ++tokenizers;
      for (bool special : {false, true}) {
        EncodeOptions options;
        options.parse_special = special;
        options.add_special_tokens = special;
        const std::vector<int32_t> ids =
            (*tokenizer)->Encode("ab a\xE2\x82\xAC c <s></s><|end|>\xFF", options);
        for (int32_t id : ids) {
          ASSERT_TRUE(id >= 0 && id < (*tokenizer)->vocab_size()) << id << " at " << i;
        }
        (*tokenizer)->Decode(ids, special);
      }
    }
    std::cout << opened << " damaged files opened (" << tokenizers
              << " with a tokenizer), " << refused << " refused\n";
    EXPECT_GT(refused, 0);
    EXPECT_GT(tokenizers, 1);  // some damage leaves a usable file
  }

  std::filesystem::path dir_;
  std::mt19937_64 rng_;
};

TEST_F(GgufFuzzTest, DamagedSentencePieceFilesLoadOrAreRefused) { Run(SentencePieceFile()); }

TEST_F(GgufFuzzTest, DamagedByteLevelFilesLoadOrAreRefused) { Run(ByteLevelFile()); }

}  // namespace
}  // namespace weft
