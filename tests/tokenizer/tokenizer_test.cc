#include "runtime/tokenizer/tokenizer.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/loader/gguf.h"
#include "runtime/tokenizer/utf8.h"
#include "tests/loader/gguf_writer.h"
#include "tests/test_util.h"

namespace weft {
namespace {

namespace gw = gguf_writer;
using json = nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;

const std::string kFixtures =
    std::string(WEFT_SOURCE_DIR) + "/tests/fixtures/tokenizer";
// Vocabulary-only GGUFs of other families, fetched by tools/fetch_vocabs.sh.
const std::string kVocabs = std::string(WEFT_MODEL_DIR) + "/vocab";
const std::string kDefaultModel =
    std::string(WEFT_MODEL_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

using test::StatusIs;

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadGguf(const std::string& path) {
  absl::StatusOr<std::unique_ptr<GgufFile>> gguf = GgufFile::Open(path);
  if (!gguf.ok()) return gguf.status();
  return Tokenizer::FromGguf(**gguf);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> LoadHfDir(const std::string& dir) {
  const std::string config = dir + "/tokenizer_config.json";
  return Tokenizer::FromHfFiles(dir + "/tokenizer.json",
                                std::filesystem::exists(config) ? config : "");
}

std::string Quoted(const std::string& text) {
  return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string IdList(const std::vector<int32_t>& ids) { return json(ids).dump(); }

EncodeOptions WithSpecials(bool add_special_tokens = false) {
  EncodeOptions options;
  options.parse_special = true;
  options.add_special_tokens = add_special_tokens;
  return options;
}

// --- Reference fixtures (tools/make_tokenizer_refs.py, HF `tokenizers`) -----

struct FixtureCase {
  std::string name;
  std::string jsonl;   // under kFixtures
  std::string gguf;    // a GGUF to load, or
  std::string hf_dir;  // a directory with tokenizer.json
  bool needs_default_model = false;
};

std::ostream& operator<<(std::ostream& os, const FixtureCase& c) {
  return os << c.name;
}

class ReferenceTest : public testing::TestWithParam<FixtureCase> {};

TEST_P(ReferenceTest, MatchesHuggingFaceOnEveryLine) {
  const FixtureCase& c = GetParam();
  if (!c.gguf.empty() && !std::filesystem::exists(c.gguf)) {
    GTEST_SKIP() << c.gguf << " is absent (tools/fetch_model.sh and "
                 << "tools/fetch_vocabs.sh fetch it)";
  }
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      c.gguf.empty() ? LoadHfDir(c.hf_dir) : LoadGguf(c.gguf);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::ifstream in(kFixtures + "/" + c.jsonl);
  ASSERT_TRUE(in.good()) << c.jsonl;

  int lines = 0, encode_failures = 0, decode_failures = 0;
  std::vector<std::string> reports;
  std::string line;
  while (std::getline(in, line)) {
    ++lines;
    const json entry = json::parse(line);
    const std::vector<int32_t> ids = entry["ids"].get<std::vector<int32_t>>();
    if (entry.contains("text")) {
      const std::string text = entry["text"].get<std::string>();
      const std::vector<int32_t> got =
          (*tokenizer)
              ->Encode(text,
                       WithSpecials(entry.value("add_special_tokens", false)));
      if (got != ids) {
        ++encode_failures;
        if (reports.size() < 5) {
          reports.push_back(absl::StrCat(
              "line ", lines, " encode ", Quoted(text), "\n    want ",
              IdList(ids), "\n    got  ", IdList(got)));
        }
      }
    }
    const std::string decoded = entry["decoded"].get<std::string>();
    const std::string decoded_skip = entry.value("decoded_skip", decoded);
    const std::string got = (*tokenizer)->Decode(ids, false);
    const std::string got_skip = (*tokenizer)->Decode(ids, true);
    if (got != decoded || got_skip != decoded_skip) {
      ++decode_failures;
      if (reports.size() < 5) {
        reports.push_back(absl::StrCat(
            "line ", lines, " decode ", IdList(ids), "\n    want ",
            Quoted(decoded), " / skip ", Quoted(decoded_skip), "\n    got  ",
            Quoted(got), " / skip ", Quoted(got_skip)));
      }
    }
  }
  EXPECT_GT(lines, 100);
  EXPECT_EQ(encode_failures, 0) << absl::StrJoin(reports, "\n");
  EXPECT_EQ(decode_failures, 0) << absl::StrJoin(reports, "\n");
}

INSTANTIATE_TEST_SUITE_P(
    Families, ReferenceTest,
    testing::Values(
        FixtureCase{"Smollm2Gguf", "smollm2.jsonl", kDefaultModel, "", true},
        FixtureCase{"Smollm2TokenizerJson", "smollm2.jsonl", "",
                    kFixtures + "/smollm2"},
        FixtureCase{"LlamaSpmGguf", "llama_spm.jsonl",
                    kVocabs + "/ggml-vocab-llama-spm.gguf", ""},
        FixtureCase{"Qwen2Gguf", "qwen2.jsonl",
                    kVocabs + "/ggml-vocab-qwen2.gguf", ""},
        FixtureCase{"Llama3StyleTokenizerJson", "llama3_style.jsonl", "",
                    kFixtures + "/llama3_style"},
        FixtureCase{"SpmMetaspaceTokenizerJson", "spm_metaspace.jsonl", "",
                    kFixtures + "/spm_metaspace"}),
    [](const testing::TestParamInfo<FixtureCase>& info) {
      return info.param.name;
    });

// llama.cpp's test vectors (ggml-vocab-*.gguf.inp/.out), made by llama.cpp
// with the original Hugging Face tokenizers: texts separated by
// "\n__ggml_vocab_test__\n", one line of ids per text.
class LlamaCppVectorsTest : public testing::TestWithParam<std::string> {};

TEST_P(LlamaCppVectorsTest, MatchesEveryVector) {
  const std::string name = "ggml-vocab-" + GetParam() + ".gguf";
  if (!std::filesystem::exists(kVocabs + "/" + name)) {
    GTEST_SKIP() << kVocabs << "/" << name
                 << " is absent (tools/fetch_vocabs.sh fetches it)";
  }
  const std::string base = kFixtures + "/" + name;
  absl::StatusOr<std::unique_ptr<Tokenizer>> tokenizer =
      LoadGguf(kVocabs + "/" + name);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  std::ifstream inp(base + ".inp", std::ios::binary);
  std::ifstream out(base + ".out", std::ios::binary);
  std::stringstream inp_text, out_text;
  inp_text << inp.rdbuf();
  out_text << out.rdbuf();
  std::vector<std::string> texts =
      absl::StrSplit(inp_text.str(), "\n__ggml_vocab_test__\n");
  texts.pop_back();  // after the last separator
  const std::vector<std::string> id_lines =
      absl::StrSplit(out_text.str(), '\n');
  ASSERT_GE(id_lines.size(), texts.size());
  ASSERT_GT(texts.size(), 40u);
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> want;
    for (absl::string_view id :
         absl::StrSplit(id_lines[i], ' ', absl::SkipEmpty())) {
      want.push_back(std::stoi(std::string(id)));
    }
    EXPECT_EQ((*tokenizer)->Encode(texts[i], WithSpecials()), want)
        << Quoted(texts[i]);
  }
}

INSTANTIATE_TEST_SUITE_P(Vocabs, LlamaCppVectorsTest,
                         testing::Values("llama-spm", "qwen2"),
                         [](const testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           name.erase(
                               std::remove(name.begin(), name.end(), '-'),
                               name.end());
                           return name;
                         });

// --- Behaviour, on the SmolLM2 tokenizer.json (always present) -------------

class SmolLm2Test : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadHfDir(kFixtures + "/smollm2");
    ASSERT_TRUE(loaded.ok()) << loaded.status();
    tokenizer_ = loaded->release();
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static Tokenizer* tokenizer_;
};
Tokenizer* SmolLm2Test::tokenizer_ = nullptr;

TEST_F(SmolLm2Test, ParsesSpecialTokensWrittenInTheText) {
  const std::vector<int32_t> ids =
      tokenizer_->Encode("<|im_start|>user\nHi<|im_end|>", WithSpecials());
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.front(), 1);
  EXPECT_EQ(ids.back(), 2);
  EXPECT_TRUE(tokenizer_->IsSpecial(1));
  EXPECT_FALSE(tokenizer_->IsSpecial(ids[1]));
}

TEST_F(SmolLm2Test, LeavesSpecialTokensAsTextWithoutParseSpecial) {
  EncodeOptions options;
  options.parse_special = false;
  const std::vector<int32_t> ids = tokenizer_->Encode("<|im_start|>", options);
  EXPECT_GT(ids.size(), 1u);
  EXPECT_THAT(ids, Not(Contains(1)));
  EXPECT_EQ(tokenizer_->Decode(ids, true), "<|im_start|>");
}

TEST_F(SmolLm2Test, DecodeSkipsSpecialTokensOnlyWhenAsked) {
  const std::vector<int32_t> ids =
      tokenizer_->Encode("<|im_start|>hi<|im_end|>", WithSpecials());
  EXPECT_EQ(tokenizer_->Decode(ids, false), "<|im_start|>hi<|im_end|>");
  EXPECT_EQ(tokenizer_->Decode(ids, true), "hi");
}

TEST_F(SmolLm2Test, SplitsDigitsOneByOne) {
  EXPECT_EQ(tokenizer_->Encode("12345", WithSpecials()).size(), 5u);
}

TEST_F(SmolLm2Test, AddsNoBosBecauseTheModelAsksForNone) {
  EXPECT_EQ(tokenizer_->Encode("Hi", WithSpecials(true)),
            tokenizer_->Encode("Hi", WithSpecials(false)));
}

TEST_F(SmolLm2Test, NamesItsSpecialIds) {
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_THAT(tokenizer_->stop_ids(), Contains(2));
  EXPECT_THAT(tokenizer_->stop_ids(), Contains(0));  // <|endoftext|>
  EXPECT_EQ(tokenizer_->vocab_size(), 49152);
  EXPECT_EQ(tokenizer_->PieceToId("<|im_end|>"), 2);
  EXPECT_EQ(tokenizer_->PieceToId("no such piece"), -1);
  EXPECT_FALSE(tokenizer_->strips_leading_space());
}

TEST_F(SmolLm2Test, TokenBytesMayEndInsideACharacter) {
  const std::string llama = "\xF0\x9F\xA6\x99";  // U+1F999
  const std::vector<int32_t> ids = tokenizer_->Encode(llama, WithSpecials());
  ASSERT_GT(ids.size(), 1u);
  std::string bytes;
  for (int32_t id : ids) bytes += tokenizer_->TokenBytes(id);
  EXPECT_EQ(bytes, llama);
  const std::string first = tokenizer_->TokenBytes(ids[0]);
  EXPECT_LT(first.size(), llama.size());
  EXPECT_EQ(llama.substr(0, first.size()), first);
  // Decoding the partial token alone gives U+FFFD, as HF does.
  EXPECT_EQ(tokenizer_->Decode({ids[0]}, false), "\xEF\xBF\xBD");
}

TEST_F(SmolLm2Test, DecodesInvalidUtf8AsOneReplacementPerMaximalSubpart) {
  // Byte-level tokens for 0xE4 0xB8 (a truncated 3-byte sequence), 'a',
  // then 0x80 (a lone continuation byte).
  const int32_t e4 = tokenizer_->PieceToId("\xC3\xA4");    // 'ä' = byte 0xE4
  const int32_t b8 = tokenizer_->PieceToId("\xC2\xB8");    // '¸' = byte 0xB8
  const int32_t cont = tokenizer_->PieceToId("\xC4\xA2");  // 'Ģ' = byte 0x80
  const int32_t a = tokenizer_->PieceToId("a");
  ASSERT_GE(e4, 0);
  ASSERT_GE(b8, 0);
  ASSERT_GE(cont, 0);
  EXPECT_EQ(tokenizer_->Decode({e4, b8, a, cont}, false),
            "\xEF\xBF\xBD"
            "a"
            "\xEF\xBF\xBD");
}

TEST_F(SmolLm2Test, EncodesInvalidUtf8InputAsReplacementCharacters) {
  EXPECT_EQ(tokenizer_->Encode("a\xFF"
                               "b",
                               WithSpecials()),
            tokenizer_->Encode("a\xEF\xBF\xBD"
                               "b",
                               WithSpecials()));
}

TEST_F(SmolLm2Test, DropsUnknownIdsWhenDecoding) {
  EXPECT_EQ(
      tokenizer_->Decode({-1, 1 << 20, tokenizer_->PieceToId("a")}, false),
      "a");
  EXPECT_EQ(tokenizer_->TokenBytes(-5), "");
}

TEST_F(SmolLm2Test, RoundTripsArbitraryBytesThroughReplacementCharacters) {
  // Byte soup: ASCII, lead and continuation bytes, bytes never valid in
  // UTF-8, and pieces of special tokens.
  const std::vector<std::string> pieces = {
      "a",    " ",     "7",     "\x80",         "\xBF",
      "\xC0", "\xC3",  "\xE2",  "\x82",         "\xED",
      "\xA0", "\xF0",  "\x9F",  "\xF4",         "\x90",
      "\xFF", "<|im_", "end|>", "\xE4\xB8\xAD", "\xF0\x9F\xA6\x99",
      "\n"};
  std::mt19937 rng(1234);
  for (int i = 0; i < 500; ++i) {
    std::string bytes;
    const int length = static_cast<int>(rng() % 24);
    for (int k = 0; k < length; ++k) {
      bytes += pieces[rng() % pieces.size()];
    }
    const std::vector<int32_t> ids = tokenizer_->Encode(bytes, WithSpecials());
    for (int32_t id : ids) {
      ASSERT_GE(id, 0);
      ASSERT_LT(id, tokenizer_->vocab_size());
    }
    EXPECT_EQ(tokenizer_->Decode(ids, false),
              tokenizer_internal::Utf8Lossy(bytes))
        << Quoted(bytes);
  }
}

// --- SentencePiece-style behaviour, on the Llama 2 vocabulary ---------------

class LlamaSpmTest : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto loaded = LoadGguf(kVocabs + "/ggml-vocab-llama-spm.gguf");
    if (loaded.ok()) tokenizer_ = loaded->release();
  }
  void SetUp() override {
    if (tokenizer_ == nullptr) {
      GTEST_SKIP() << kVocabs << "/ggml-vocab-llama-spm.gguf is absent "
                   << "(tools/fetch_vocabs.sh fetches it)";
    }
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    tokenizer_ = nullptr;
  }
  static Tokenizer* tokenizer_;
};
Tokenizer* LlamaSpmTest::tokenizer_ = nullptr;

TEST_F(LlamaSpmTest, AddsBosWhenAskedAndStripsTheLeadingSpace) {
  const std::vector<int32_t> ids =
      tokenizer_->Encode("Hello world", WithSpecials(true));
  EXPECT_THAT(ids, ElementsAre(1, 15043, 3186));
  EXPECT_EQ(tokenizer_->Decode(ids, true), "Hello world");
  EXPECT_EQ(tokenizer_->Decode(ids, false), "<s> Hello world");
  EXPECT_TRUE(tokenizer_->strips_leading_space());
  EXPECT_EQ(tokenizer_->TokenBytes(15043), " Hello");
}

TEST_F(LlamaSpmTest, FallsBackToByteTokens) {
  const std::vector<int32_t> ids =
      tokenizer_->Encode("\xF0\x9F\xA6\x99", WithSpecials());
  // "▁" then <0xF0> <0x9F> <0xA6> <0x99> (ids are byte + 3).
  EXPECT_THAT(ids, ElementsAre(29871, 0xF0 + 3, 0x9F + 3, 0xA6 + 3, 0x99 + 3));
  EXPECT_EQ(tokenizer_->TokenBytes(0xF0 + 3), "\xF0");
  EXPECT_EQ(tokenizer_->Decode(ids, false), "\xF0\x9F\xA6\x99");
  // Byte tokens that do not form UTF-8 give one U+FFFD per byte (HF
  // ByteFallback), unlike byte-level vocabularies.
  EXPECT_EQ(tokenizer_->Decode({0xF0 + 3, 0x9F + 3}, false),
            "\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST_F(LlamaSpmTest, NamesItsSpecialIds) {
  EXPECT_EQ(tokenizer_->bos_id(), 1);
  EXPECT_EQ(tokenizer_->eos_id(), 2);
  EXPECT_THAT(tokenizer_->stop_ids(), ElementsAre(2));
  EXPECT_TRUE(tokenizer_->IsSpecial(0));  // <unk>
  EXPECT_FALSE(tokenizer_->IsSpecial(3));
}

// --- Malformed definitions --------------------------------------------------

class MalformedTest : public testing::Test {
 protected:
  void SetUp() override { dir_ = test::MakeScratchDir("weft_tokenizer"); }
  void TearDown() override { test::RemoveScratchDir(dir_); }

  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
    return path;
  }

  absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const gw::File& file) {
    return LoadGguf(Write("vocab.gguf", gw::Serialize(file).bytes));
  }

  absl::StatusOr<std::unique_ptr<Tokenizer>> FromJson(const json& definition) {
    return Tokenizer::FromHfFiles(Write("tokenizer.json", definition.dump()),
                                  "");
  }

  std::filesystem::path dir_;
};

// A valid byte-level vocabulary: a, b, ab, and an end token.
gw::File TinyByteLevel() {
  gw::File file;
  file.metadata.emplace_back("tokenizer.ggml.model", gw::Str("gpt2"));
  file.metadata.emplace_back("tokenizer.ggml.pre", gw::Str("gpt-2"));
  file.metadata.emplace_back("tokenizer.ggml.tokens",
                             gw::Strings({"a", "b", "ab", "<|end|>"}));
  file.metadata.emplace_back(
      "tokenizer.ggml.token_type",
      gw::Array(gw::kTypeInt32,
                {gw::I32(1), gw::I32(1), gw::I32(1), gw::I32(3)}));
  file.metadata.emplace_back("tokenizer.ggml.merges", gw::Strings({"a b"}));
  file.metadata.emplace_back("tokenizer.ggml.eos_token_id", gw::U32(3));
  return file;
}

void Replace(gw::File* file, const std::string& key, gw::Value value) {
  for (auto& [k, v] : file->metadata) {
    if (k == key) {
      v = std::move(value);
      return;
    }
  }
  file->metadata.emplace_back(key, std::move(value));
}

TEST_F(MalformedTest, TinyByteLevelVocabularyLoads) {
  auto tokenizer = FromGguf(TinyByteLevel());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT((*tokenizer)->Encode("abab<|end|>", WithSpecials()),
              ElementsAre(2, 2, 3));
  EXPECT_THAT((*tokenizer)->stop_ids(), ElementsAre(3));
}

TEST_F(MalformedTest, EmptyVocabularyIsInvalidArgument) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.tokens", gw::Strings({}));
  EXPECT_THAT(FromGguf(file),
              StatusIs(absl::StatusCode::kInvalidArgument, "tokens is empty"));
}

TEST_F(MalformedTest, MergeOfUnknownTokenIsInvalidArgument) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.merges", gw::Strings({"a b", "b zz"}));
  EXPECT_THAT(FromGguf(file),
              StatusIs(absl::StatusCode::kInvalidArgument, "names token 'zz'"));
}

TEST_F(MalformedTest, MergeWithoutOneSpaceIsInvalidArgument) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.merges", gw::Strings({"ab"}));
  EXPECT_THAT(FromGguf(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "tokenizer.ggml.merges[0]"));
}

TEST_F(MalformedTest, TokenIdOutsideVocabularyIsInvalidArgument) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.eos_token_id", gw::U32(4));
  EXPECT_THAT(FromGguf(file),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "tokenizer.ggml.eos_token_id = 4 is outside"));
}

TEST_F(MalformedTest, TokenTypeCountMismatchIsInvalidArgument) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.token_type",
          gw::Array(gw::kTypeInt32, {gw::I32(1)}));
  EXPECT_THAT(FromGguf(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "token_type has 1 entries"));
}

TEST_F(MalformedTest, UnknownPreTokenizerIsUnimplemented) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.pre", gw::Str("made-up"));
  EXPECT_THAT(FromGguf(file), StatusIs(absl::StatusCode::kUnimplemented,
                                       "tokenizer.ggml.pre 'made-up'"));
}

TEST_F(MalformedTest, UnknownModelTypeIsUnimplemented) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.model", gw::Str("bert"));
  EXPECT_THAT(FromGguf(file), StatusIs(absl::StatusCode::kUnimplemented,
                                       "tokenizer.ggml.model 'bert'"));
}

TEST_F(MalformedTest, MissingTokenizerIsInvalidArgument) {
  gw::File file;
  file.metadata.emplace_back("general.architecture", gw::Str("llama"));
  EXPECT_THAT(FromGguf(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "tokenizer.ggml.model is missing"));
}

TEST_F(MalformedTest, WronglyTypedTokensAreInvalidArgument) {
  gw::File file = TinyByteLevel();
  Replace(&file, "tokenizer.ggml.tokens", gw::U32(7));
  EXPECT_THAT(FromGguf(file), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "tokenizer.ggml.tokens"));
}

json TinyJson() {
  return json::parse(R"({
    "added_tokens": [{"id": 3, "content": "<|end|>", "special": true,
                      "normalized": false, "lstrip": false, "rstrip": false,
                      "single_word": false}],
    "normalizer": null,
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false,
                      "use_regex": true},
    "post_processor": null,
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
              "merges": ["a b"]}
  })");
}

TEST_F(MalformedTest, TinyTokenizerJsonLoads) {
  auto tokenizer = FromJson(TinyJson());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT((*tokenizer)->Encode("ab<|end|>", WithSpecials()),
              ElementsAre(2, 3));
}

TEST_F(MalformedTest, UnsupportedComponentIsUnimplemented) {
  json definition = TinyJson();
  definition["pre_tokenizer"] = {
      {"type", "Sequence"}, {"pretokenizers", {{{"type", "WhitespaceSplit"}}}}};
  EXPECT_THAT(FromJson(definition),
              StatusIs(absl::StatusCode::kUnimplemented,
                       "pre_tokenizer.pretokenizers[0]: pre-tokenizer type "
                       "'WhitespaceSplit'"));
  definition = TinyJson();
  definition["model"]["type"] = "Unigram";
  EXPECT_THAT(FromJson(definition),
              StatusIs(absl::StatusCode::kUnimplemented, "'Unigram'"));
}

TEST_F(MalformedTest, JsonMergeOfUnknownTokenIsInvalidArgument) {
  json definition = TinyJson();
  definition["model"]["merges"] = {"a c"};
  EXPECT_THAT(FromJson(definition),
              StatusIs(absl::StatusCode::kInvalidArgument, "names token 'c'"));
}

TEST_F(MalformedTest, JsonEmptyVocabularyIsInvalidArgument) {
  json definition = TinyJson();
  definition["model"]["vocab"] = json::object();
  definition["model"]["merges"] = json::array();
  EXPECT_THAT(FromJson(definition), StatusIs(absl::StatusCode::kInvalidArgument,
                                             "vocabulary is empty"));
}

TEST_F(MalformedTest, JsonBadRegexIsInvalidArgument) {
  json definition = TinyJson();
  definition["pre_tokenizer"] = {{"type", "Split"},
                                 {"pattern", {{"Regex", "(unclosed"}}},
                                 {"behavior", "Isolated"}};
  EXPECT_THAT(FromJson(definition),
              StatusIs(absl::StatusCode::kInvalidArgument, "does not compile"));
}

// A SentencePiece vocabulary without merges has them derived from every
// split of every token: "a", "aa", … "a"×3000 (a 4.5 MB file) would have
// taken ~9 GB and minutes. Refused before any split; a small one still
// loads.
TEST_F(MalformedTest, DerivingMergesOfAnAbsurdVocabularyIsRefused) {
  auto spm = [](int longest) {
    gw::File file;
    file.metadata.emplace_back("tokenizer.ggml.model", gw::Str("llama"));
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    for (int n = 1; n <= longest; ++n) tokens.push_back(std::string(n, 'a'));
    file.metadata.emplace_back("tokenizer.ggml.tokens", gw::Strings(tokens));
    std::vector<gw::Value> scores, types;
    for (size_t i = 0; i < tokens.size(); ++i) {
      scores.push_back(gw::F32(0.0f));
      types.push_back(gw::I32(i < 3 ? 3 : 1));
    }
    file.metadata.emplace_back("tokenizer.ggml.scores", gw::Array(gw::kTypeFloat32, scores));
    file.metadata.emplace_back("tokenizer.ggml.token_type", gw::Array(gw::kTypeInt32, types));
    file.metadata.emplace_back("tokenizer.ggml.eos_token_id", gw::U32(2));
    return file;
  };
  const absl::Time start = absl::Now();
  EXPECT_THAT(FromGguf(spm(3000)),
              StatusIs(absl::StatusCode::kInvalidArgument, "deriving merges"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  absl::StatusOr<std::unique_ptr<Tokenizer>> small = FromGguf(spm(8));
  ASSERT_TRUE(small.ok()) << small.status();
  EXPECT_EQ((*small)->Decode((*small)->Encode("aaaa", {}), true), "aaaa");
}

// tokenizer.json nested deeper than any real one (a Sequence of Sequences
// 50,000 deep) is refused before parsing: the parts are built recursively.
TEST_F(MalformedTest, DeeplyNestedTokenizerJsonIsInvalidArgument) {
  std::string nested;
  for (int i = 0; i < 50000; ++i) nested += R"({"type":"Sequence","normalizers":[)";
  for (int i = 0; i < 50000; ++i) nested += "]}";
  const std::string text =
      R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"normalizer":)" + nested + "}";
  EXPECT_THAT(Tokenizer::FromHfFiles(Write("tokenizer.json", text), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, "nests deeper than 64"));
  EXPECT_THAT(Tokenizer::FromHfJsonText(text, "", "test"),
              StatusIs(absl::StatusCode::kInvalidArgument, "nests deeper than 64"));
}

TEST_F(MalformedTest, NotJsonIsInvalidArgumentAndAbsentFileNotFound) {
  EXPECT_THAT(Tokenizer::FromHfFiles(Write("tokenizer.json", "{oops"), ""),
              StatusIs(absl::StatusCode::kInvalidArgument, "bad JSON"));
  EXPECT_THAT(Tokenizer::FromHfFiles((dir_ / "absent.json").string(), ""),
              StatusIs(absl::StatusCode::kNotFound, "absent.json"));
}

}  // namespace
}  // namespace weft
