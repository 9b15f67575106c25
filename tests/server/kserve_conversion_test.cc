// KServe v2 tensors ↔ runtime requests: decoding typed and raw contents,
// the TensorRT-LLM tensor names, the errors each bad tensor gets, and the
// responses' output tensors.
#include "server/kserve_conversion.h"

#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"
#include "tests/server/tiny_served_model.h"

namespace weft::kserve {
namespace {

using ::weft::test::StatusIs;
using Input = inference::ModelInferRequest::InferInputTensor;

template <typename T>
std::string Raw(std::initializer_list<T> values) {
  std::string out;
  for (T v : values) out.append(reinterpret_cast<const char*>(&v), sizeof(T));
  return out;
}

class KServeConversionTest : public test::TinyServedTest {
 protected:
  // A raw input, as tritonclient sends every input.
  static void AddRaw(inference::ModelInferRequest* r, const std::string& name,
                     const std::string& datatype, std::vector<int64_t> shape,
                     std::string raw) {
    Input* input = r->add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    input->mutable_shape()->Add(shape.begin(), shape.end());
    r->add_raw_input_contents(std::move(raw));
  }

  // A typed input with its contents left for the caller to fill.
  static Input* AddTyped(inference::ModelInferRequest* r, const std::string& name,
                         const std::string& datatype, std::vector<int64_t> shape) {
    Input* input = r->add_inputs();
    input->set_name(name);
    input->set_datatype(datatype);
    input->mutable_shape()->Add(shape.begin(), shape.end());
    return input;
  }

  static inference::ModelInferRequest RawPrompt(const std::string& text) {
    inference::ModelInferRequest r;
    r.set_model_name("ensemble");
    AddRaw(&r, "text_input", "BYTES", {1, 1}, SerializeBytes({text}));
    return r;
  }

  absl::StatusOr<ConvertedRequest> Convert(const inference::ModelInferRequest& r) {
    return FromInferRequest(r, model_, "tenant/kserve-0");
  }

  // A word that the tokenizer encodes as exactly one token.
  std::pair<std::string, int32_t> SingleTokenWord() const {
    for (int32_t id = 100; id < model_.vocab_size; ++id) {
      const std::string text = tokenizer_->Decode({id}, true);
      if (!text.empty() && tokenizer_->Encode(text, EncodeOptions{}) ==
                               std::vector<int32_t>{id}) {
        return {text, id};
      }
    }
    ADD_FAILURE() << "no single-token word in the vocabulary";
    return {"", -1};
  }

};

TEST_F(KServeConversionTest, DecodesRawBytesBoolIntAndFloatTensors) {
  inference::ModelInferRequest r;
  AddRaw(&r, "stop_words", "BYTES", {1, 2}, SerializeBytes({"ab", ""}));
  AddRaw(&r, "stream", "BOOL", {1, 1}, std::string("\x01", 1));
  AddRaw(&r, "max_tokens", "INT32", {1}, Raw<int32_t>({-7}));
  AddRaw(&r, "random_seed", "UINT64", {1}, Raw<uint64_t>({~uint64_t{0}}));
  AddRaw(&r, "top_p", "FP32", {1}, Raw<float>({0.25f}));
  auto tensors = DecodeInputs(r);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  ASSERT_EQ(tensors->size(), 5u);
  EXPECT_EQ((*tensors)[0].bytes, (std::vector<std::string>{"ab", ""}));
  EXPECT_EQ((*tensors)[0].shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ((*tensors)[1].bools, std::vector<bool>{true});
  EXPECT_EQ((*tensors)[2].ints, std::vector<int64_t>{-7});
  EXPECT_EQ((*tensors)[3].uints, std::vector<uint64_t>{~uint64_t{0}});
  EXPECT_EQ((*tensors)[4].floats, std::vector<double>{0.25});
}

TEST_F(KServeConversionTest, DecodesTypedContentsLikeRaw) {
  inference::ModelInferRequest r;
  AddTyped(&r, "text_input", "BYTES", {1, 1})->mutable_contents()->add_bytes_contents("hi");
  AddTyped(&r, "stream", "BOOL", {1})->mutable_contents()->add_bool_contents(true);
  AddTyped(&r, "max_tokens", "INT32", {1})->mutable_contents()->add_int_contents(9);
  AddTyped(&r, "top_k", "UINT32", {1})->mutable_contents()->add_uint_contents(4);
  AddTyped(&r, "random_seed", "UINT64", {1})->mutable_contents()->add_uint64_contents(5);
  AddTyped(&r, "temperature", "FP32", {1})->mutable_contents()->add_fp32_contents(0.5f);
  auto tensors = DecodeInputs(r);
  ASSERT_TRUE(tensors.ok()) << tensors.status();
  EXPECT_EQ((*tensors)[0].bytes, std::vector<std::string>{"hi"});
  EXPECT_EQ((*tensors)[1].bools, std::vector<bool>{true});
  EXPECT_EQ((*tensors)[2].ints, std::vector<int64_t>{9});
  EXPECT_EQ((*tensors)[3].uints, std::vector<uint64_t>{4});
  EXPECT_EQ((*tensors)[4].uints, std::vector<uint64_t>{5});
  EXPECT_EQ((*tensors)[5].floats, std::vector<double>{0.5});
}

TEST_F(KServeConversionTest, RawBytesElementRunningPastItsEntryIsRefused) {
  inference::ModelInferRequest r;
  std::string raw = Raw<uint32_t>({10}) + "short";
  AddRaw(&r, "text_input", "BYTES", {1}, raw);
  EXPECT_THAT(DecodeInputs(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                        "text_input: raw BYTES element 0 is 10 bytes"));
}

TEST_F(KServeConversionTest, RawBytesWithTrailingDataIsRefused) {
  inference::ModelInferRequest r;
  AddRaw(&r, "text_input", "BYTES", {1}, SerializeBytes({"a", "b"}));
  EXPECT_THAT(DecodeInputs(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                        "text_input: raw BYTES data has 5 bytes after"));
}

TEST_F(KServeConversionTest, RawSizeThatDoesNotMatchTheShapeIsRefused) {
  inference::ModelInferRequest r = RawPrompt("x");
  AddRaw(&r, "max_tokens", "INT32", {1, 1}, Raw<int64_t>({8}));
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "max_tokens: raw data is 8 bytes; INT32 shape [1, 1] needs 4"));
}

TEST_F(KServeConversionTest, TypedCountThatDoesNotMatchTheShapeIsRefused) {
  inference::ModelInferRequest r;
  Input* input = AddTyped(&r, "max_tokens", "INT32", {1});
  input->mutable_contents()->add_int_contents(1);
  input->mutable_contents()->add_int_contents(2);
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "max_tokens: contents.int_contents holds 2 values; INT32 "
                       "shape [1] needs 1"));
}

TEST_F(KServeConversionTest, MixingRawAndTypedContentsIsRefused) {
  inference::ModelInferRequest r = RawPrompt("x");
  r.mutable_inputs(0)->mutable_contents()->add_bytes_contents("y");
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "text_input: sets contents while the request uses "
                       "raw_input_contents"));
}

TEST_F(KServeConversionTest, RawEntriesMustMatchTheInputsOneToOne) {
  inference::ModelInferRequest r = RawPrompt("x");
  r.add_raw_input_contents("extra");
  EXPECT_THAT(DecodeInputs(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                        "raw_input_contents has 2 entries for 1 inputs"));
}

TEST_F(KServeConversionTest, NegativeDimensionAndUnknownDatatypeAreRefused) {
  inference::ModelInferRequest negative;
  AddTyped(&negative, "text_input", "BYTES", {-1});
  EXPECT_THAT(DecodeInputs(negative),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "text_input: shape [-1] has a negative dimension"));
  inference::ModelInferRequest half = RawPrompt("x");
  AddRaw(&half, "temperature", "FP16", {1}, "ab");
  EXPECT_THAT(DecodeInputs(half),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "temperature: datatype 'FP16' is not supported by weft"));
}

TEST_F(KServeConversionTest, HugeShapeIsRefusedBeforeAnyAllocation) {
  inference::ModelInferRequest r;
  AddRaw(&r, "text_input", "BYTES", {1 << 30, 1 << 30}, "");
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument, "holds more than"));
}

TEST_F(KServeConversionTest, ShapeWhoseProductOverflowsIsRefusedWhateverTheData) {
  inference::ModelInferRequest square = RawPrompt("x");
  AddRaw(&square, "max_tokens", "INT32", {4096, 4096}, Raw<int32_t>({1}));
  EXPECT_THAT(DecodeInputs(square),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "max_tokens: shape [4096, 4096] holds more than 1048576"));
  inference::ModelInferRequest words = RawPrompt("x");
  AddRaw(&words, "stop_words", "BYTES", {4096, 4096}, SerializeBytes({"a"}));
  EXPECT_THAT(DecodeInputs(words),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "stop_words: shape [4096, 4096] holds more than"));
  // Zero elements in all, but a dimension no tensor may have.
  inference::ModelInferRequest empty = RawPrompt("x");
  AddRaw(&empty, "stop_words", "BYTES", {0, int64_t{1} << 40}, "");
  EXPECT_THAT(DecodeInputs(empty),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "stop_words: shape [0, 1099511627776] holds more than"));
}

TEST_F(KServeConversionTest, MoreInputsThanWeftAcceptsAreRefusedBeforeAnyIsRead) {
  inference::ModelInferRequest r;
  for (int i = 0; i < 10000; ++i) {
    AddRaw(&r, absl::StrCat("input_", i), "INT32", {1}, Raw<int32_t>({i}));
  }
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "the request has 10000 inputs; weft accepts at most 24"));
}

TEST_F(KServeConversionTest, UnknownInputIsRefusedBeforeItsDataIsRead) {
  inference::ModelInferRequest r = RawPrompt("x");
  AddRaw(&r, "input_ids", "FP16", {1 << 30}, "");  // unsupported, huge, no data
  EXPECT_THAT(DecodeInputs(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                        "unexpected inference input 'input_ids'"));
  // A long name is quoted cut short.
  inference::ModelInferRequest long_name = RawPrompt("x");
  AddRaw(&long_name, std::string(100000, 'n'), "INT32", {1}, Raw<int32_t>({1}));
  auto decoded = DecodeInputs(long_name);
  EXPECT_THAT(decoded, StatusIs(absl::StatusCode::kInvalidArgument,
                                "…' (100000 bytes) for model 'ensemble'"));
  EXPECT_LT(decoded.status().message().size(), 1000u);
}

TEST_F(KServeConversionTest, ScalarElementCountIsCheckedBeforeItsData) {
  inference::ModelInferRequest r = RawPrompt("x");
  AddRaw(&r, "max_tokens", "INT32", {1, 2}, "z");  // 1 byte: neither 1 nor 2 values
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "max_tokens: shape [1, 2] holds 2 values; expected one"));
}

TEST_F(KServeConversionTest, WordListOfMoreThan256ElementsIsRefused) {
  inference::ModelInferRequest r = RawPrompt("x");
  AddRaw(&r, "stop_words", "BYTES", {1, 257},
         SerializeBytes(std::vector<std::string>(257, "")));
  EXPECT_THAT(DecodeInputs(r),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "stop_words: shape [1, 257] holds 257 elements; a word list "
                       "holds at most 256 (padding included)"));
  inference::ModelInferRequest padded = RawPrompt("x");
  AddRaw(&padded, "stop_words", "BYTES", {1, 256},
         SerializeBytes(std::vector<std::string>(256, "")));
  EXPECT_TRUE(DecodeInputs(padded).ok());
}

TEST_F(KServeConversionTest, BadWordsAreCappedLikeStopStringsBeforeTokenizing) {
  const auto [word, word_id] = SingleTokenWord();
  inference::ModelInferRequest many = RawPrompt("Hello");
  std::vector<std::string> words(17, word);
  words.push_back("");  // padding does not count
  AddRaw(&many, "bad_words", "BYTES", {1, 18}, SerializeBytes(words));
  EXPECT_THAT(Convert(many), StatusIs(absl::StatusCode::kInvalidArgument,
                                      "bad_words: holds more than 16 words"));
  inference::ModelInferRequest sixteen = RawPrompt("Hello");
  AddRaw(&sixteen, "bad_words", "BYTES", {1, 16},
         SerializeBytes(std::vector<std::string>(16, word)));
  EXPECT_TRUE(Convert(sixteen).ok());
  inference::ModelInferRequest long_word = RawPrompt("Hello");
  AddRaw(&long_word, "bad_words", "BYTES", {1, 2},
         SerializeBytes({"", std::string(257, 'a')}));
  EXPECT_THAT(Convert(long_word), StatusIs(absl::StatusCode::kInvalidArgument,
                                           "bad_words[1]: is 257 bytes; at most 256"));
}

TEST_F(KServeConversionTest, IdLongerThan256BytesIsRefused) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  r.set_id(std::string(257, 'i'));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "id: longer than 256 bytes (257)"));
  r.set_id(std::string(256, 'i'));
  EXPECT_TRUE(Convert(r).ok());
}

TEST_F(KServeConversionTest, CarriesEveryTensorRtLlmInputOver) {
  const auto [word, word_id] = SingleTokenWord();
  inference::ModelInferRequest r = RawPrompt("Hello world");
  AddRaw(&r, "max_tokens", "INT32", {1, 1}, Raw<int32_t>({12}));
  AddRaw(&r, "temperature", "FP32", {1, 1}, Raw<float>({0.5f}));
  AddRaw(&r, "top_k", "INT32", {1, 1}, Raw<int32_t>({40}));
  AddRaw(&r, "top_p", "FP32", {1, 1}, Raw<float>({0.75f}));
  AddRaw(&r, "random_seed", "UINT64", {1, 1}, Raw<uint64_t>({1234}));
  AddRaw(&r, "min_length", "INT32", {1, 1}, Raw<int32_t>({2}));
  AddRaw(&r, "end_id", "INT32", {1, 1}, Raw<int32_t>({3}));
  AddRaw(&r, "repetition_penalty", "FP32", {1, 1}, Raw<float>({1.25f}));
  AddRaw(&r, "presence_penalty", "FP32", {1, 1}, Raw<float>({0.5f}));
  AddRaw(&r, "frequency_penalty", "FP32", {1, 1}, Raw<float>({-0.5f}));
  AddRaw(&r, "stop_words", "BYTES", {1, 2}, SerializeBytes({"\n\n", ""}));
  AddRaw(&r, "bad_words", "BYTES", {1, 1}, SerializeBytes({word}));
  AddRaw(&r, "stream", "BOOL", {1, 1}, std::string("\x01", 1));
  AddRaw(&r, "beam_width", "INT32", {1, 1}, Raw<int32_t>({1}));
  AddRaw(&r, "ignore_eos", "BOOL", {1, 1}, std::string("\x01", 1));
  auto c = Convert(r);
  ASSERT_TRUE(c.ok()) << c.status();
  const Request& q = c->request;
  EXPECT_EQ(q.id, "tenant/kserve-0");
  EXPECT_EQ(q.prompt_ids, tokenizer_->Encode("Hello world", EncodeOptions{}));
  EXPECT_EQ(q.stopping.max_tokens, 12);
  EXPECT_EQ(q.sampling.temperature, 0.5f);
  EXPECT_EQ(q.sampling.top_k, 40);
  EXPECT_EQ(q.sampling.top_p, 0.75f);
  EXPECT_EQ(q.sampling.seed, uint64_t{1234});
  EXPECT_EQ(q.stopping.min_tokens, 2);
  EXPECT_EQ(q.stopping.stop_token_ids, std::vector<int32_t>{3});
  EXPECT_EQ(q.sampling.repetition_penalty, 1.25f);
  EXPECT_EQ(q.sampling.presence_penalty, 0.5f);
  EXPECT_EQ(q.sampling.frequency_penalty, -0.5f);
  // The empty word is padding (TensorRT-LLM's clients send it), not a stop.
  EXPECT_EQ(q.stopping.stop, std::vector<std::string>{"\n\n"});
  EXPECT_EQ(q.sampling.logit_bias,
            (std::vector<std::pair<int32_t, float>>{{word_id, -100.0f}}));
  EXPECT_TRUE(q.stopping.ignore_eos);
  EXPECT_TRUE(c->options.stream);
  EXPECT_TRUE(c->options.batched);
  EXPECT_EQ(c->options.prompt, "Hello world");
  EXPECT_TRUE(c->options.text_output);
  EXPECT_FALSE(c->options.cum_log_probs);
  EXPECT_EQ(q.sampling.logprobs, -1);  // none asked for
}

TEST_F(KServeConversionTest, AbsentOptionalInputsTakeGeneratesDefaults) {
  auto c = Convert(RawPrompt("Hello"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->request.stopping.max_tokens, 16);
  EXPECT_EQ(c->request.sampling.temperature, 1.0f);
  EXPECT_FALSE(c->options.stream);
  EXPECT_FALSE(c->options.exclude_input_in_output);
  EXPECT_FALSE(c->options.empty_final_response);
}

TEST_F(KServeConversionTest, AcceptsAnyIntegerDatatypeForIntegerInputs) {
  for (const auto& [datatype, raw] :
       {std::pair<std::string, std::string>{"UINT32", Raw<uint32_t>({5})},
        {"INT64", Raw<int64_t>({5})},
        {"UINT64", Raw<uint64_t>({5})}}) {
    inference::ModelInferRequest r = RawPrompt("Hello");
    AddRaw(&r, "max_tokens", datatype, {1, 1}, raw);
    auto c = Convert(r);
    ASSERT_TRUE(c.ok()) << datatype << ": " << c.status();
    EXPECT_EQ(c->request.stopping.max_tokens, 5) << datatype;
  }
}

TEST_F(KServeConversionTest, MissingTextInputIsNamed) {
  inference::ModelInferRequest r;
  AddRaw(&r, "max_tokens", "INT32", {1, 1}, Raw<int32_t>({4}));
  EXPECT_THAT(Convert(r),
              StatusIs(absl::StatusCode::kInvalidArgument, "text_input: missing"));
}

TEST_F(KServeConversionTest, WrongDatatypeNamesTheTensorAndWhatToSend) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "max_tokens", "FP32", {1, 1}, Raw<float>({4.0f}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "max_tokens: datatype FP32 is not accepted; send INT32"));
  inference::ModelInferRequest text;
  AddRaw(&text, "text_input", "INT32", {1}, Raw<int32_t>({1}));
  EXPECT_THAT(Convert(text),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "text_input: datatype INT32 is not accepted; send BYTES"));
  inference::ModelInferRequest stream = RawPrompt("Hello");
  AddRaw(&stream, "stream", "INT32", {1}, Raw<int32_t>({1}));
  EXPECT_THAT(Convert(stream),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "stream: datatype INT32 is not accepted; send BOOL"));
}

TEST_F(KServeConversionTest, TwoPromptsInOneRequestAreRefused) {
  inference::ModelInferRequest r;
  AddRaw(&r, "text_input", "BYTES", {2, 1}, SerializeBytes({"a", "b"}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "text_input: shape [2, 1] holds 2 prompts"));
}

TEST_F(KServeConversionTest, ScalarWithTwoValuesIsRefused) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "temperature", "FP32", {2}, Raw<float>({0.1f, 0.2f}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "temperature: shape [2] holds 2 values; expected one"));
}

TEST_F(KServeConversionTest, UnknownInputIsNamedWithTheAcceptedOnes) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "input_ids", "INT32", {1, 1}, Raw<int32_t>({1}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "unexpected inference input 'input_ids' for model "
                                   "'ensemble'; weft accepts text_input, max_tokens"));
}

TEST_F(KServeConversionTest, DuplicateInputIsRefused) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "text_input", "BYTES", {1, 1}, SerializeBytes({"again"}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "text_input: is given more than once"));
}

TEST_F(KServeConversionTest, BeamSearchAndLogitsAreUnimplemented) {
  inference::ModelInferRequest beams = RawPrompt("Hello");
  AddRaw(&beams, "beam_width", "INT32", {1, 1}, Raw<int32_t>({4}));
  EXPECT_THAT(Convert(beams), StatusIs(absl::StatusCode::kUnimplemented,
                                       "beam_width: weft samples one beam; got 4"));
  inference::ModelInferRequest logits = RawPrompt("Hello");
  AddRaw(&logits, "return_generation_logits", "BOOL", {1, 1}, std::string("\x01", 1));
  EXPECT_THAT(Convert(logits), StatusIs(absl::StatusCode::kUnimplemented,
                                        "return_generation_logits"));
}

TEST_F(KServeConversionTest, ValidationErrorsNameTheTensorNotTheWeftField) {
  inference::ModelInferRequest top_p = RawPrompt("Hello");
  AddRaw(&top_p, "top_p", "FP32", {1, 1}, Raw<float>({2.0f}));
  EXPECT_THAT(Convert(top_p), StatusIs(absl::StatusCode::kInvalidArgument,
                                       "top_p must be in (0, 1], got 2"));
  inference::ModelInferRequest temperature = RawPrompt("Hello");
  AddRaw(&temperature, "temperature", "FP32", {1, 1}, Raw<float>({-1.0f}));
  EXPECT_THAT(Convert(temperature), StatusIs(absl::StatusCode::kInvalidArgument,
                                             "temperature must be >= 0"));
  inference::ModelInferRequest zero = RawPrompt("Hello");
  AddRaw(&zero, "max_tokens", "INT32", {1, 1}, Raw<int32_t>({0}));
  EXPECT_THAT(Convert(zero), StatusIs(absl::StatusCode::kInvalidArgument,
                                      "max_tokens must be >= 1, got 0"));
  inference::ModelInferRequest long_output = RawPrompt("Hello");
  AddRaw(&long_output, "max_tokens", "INT32", {1, 1}, Raw<int32_t>({1000}));
  EXPECT_THAT(Convert(long_output),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "max_tokens: the prompt (5 tokens) plus max_tokens (1000) "
                       "exceeds the context of 256 tokens"));
  inference::ModelInferRequest empty = RawPrompt("");
  EXPECT_THAT(Convert(empty),
              StatusIs(absl::StatusCode::kInvalidArgument, "text_input: is empty"));
}

TEST_F(KServeConversionTest, IntegerOutsideInt32IsOutOfRange) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "max_tokens", "INT64", {1, 1}, Raw<int64_t>({int64_t{5} << 32}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "max_tokens: 21474836480 is out of range"));
  inference::ModelInferRequest seed = RawPrompt("Hello");
  AddRaw(&seed, "random_seed", "INT64", {1, 1}, Raw<int64_t>({-1}));
  EXPECT_THAT(Convert(seed), StatusIs(absl::StatusCode::kInvalidArgument,
                                      "random_seed: must be >= 0, got -1"));
}

TEST_F(KServeConversionTest, MultiTokenBadWordIsRefused) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "bad_words", "BYTES", {1, 1},
         SerializeBytes({"a phrase of several tokens"}));
  EXPECT_THAT(Convert(r), StatusIs(absl::StatusCode::kInvalidArgument,
                                   "bad_words[0]: 'a phrase of several tokens' is"));
}

TEST_F(KServeConversionTest, RequestedOutputsSelectWhatIsReturned) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  r.add_outputs()->set_name("cum_log_probs");
  auto c = Convert(r);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->options.text_output);
  EXPECT_TRUE(c->options.cum_log_probs);
  EXPECT_FALSE(c->options.output_log_probs);
  EXPECT_EQ(c->request.sampling.logprobs, 0);  // the sampled token's only

  inference::ModelInferRequest unknown = RawPrompt("Hello");
  unknown.add_outputs()->set_name("context_logits");
  EXPECT_THAT(Convert(unknown),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "unexpected inference output 'context_logits'"));
}

TEST_F(KServeConversionTest, ReturnLogProbsAddsBothLogProbOutputs) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  AddRaw(&r, "return_log_probs", "BOOL", {1, 1}, std::string("\x01", 1));
  auto c = Convert(r);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->options.text_output);
  EXPECT_TRUE(c->options.cum_log_probs);
  EXPECT_TRUE(c->options.output_log_probs);
}

TEST_F(KServeConversionTest, EmptyFinalResponseParameterIsRead) {
  inference::ModelInferRequest r = RawPrompt("Hello");
  (*r.mutable_parameters())["triton_enable_empty_final_response"].set_bool_param(true);
  auto c = Convert(r);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->options.empty_final_response);
}

TEST_F(KServeConversionTest, ResponseCarriesRawOutputsWithTheBatchDimension) {
  inference::ModelInferRequest request;
  request.set_model_name("ensemble");
  request.set_id("req-7");
  ResponseOptions options;
  options.cum_log_probs = options.output_log_probs = true;
  OutputChunk chunk{"Paris", {-0.5f, -0.25f}, -0.75};
  inference::ModelInferResponse response;
  BuildResponse(request, options, chunk, &response);
  SetFinalFlag(true, &response);
  EXPECT_EQ(response.model_name(), "ensemble");
  EXPECT_EQ(response.model_version(), "1");
  EXPECT_EQ(response.id(), "req-7");
  ASSERT_EQ(response.outputs_size(), 3);
  ASSERT_EQ(response.raw_output_contents_size(), 3);
  EXPECT_EQ(response.outputs(0).name(), "text_output");
  EXPECT_EQ(response.outputs(0).datatype(), "BYTES");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                 response.outputs(0).shape().end()),
            (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(response.raw_output_contents(0), SerializeBytes({"Paris"}));
  EXPECT_EQ(response.outputs(1).name(), "cum_log_probs");
  EXPECT_EQ(response.raw_output_contents(1), Raw<float>({-0.75f}));
  EXPECT_EQ(response.outputs(2).name(), "output_log_probs");
  EXPECT_EQ(std::vector<int64_t>(response.outputs(2).shape().begin(),
                                 response.outputs(2).shape().end()),
            (std::vector<int64_t>{1, 1, 2}));
  EXPECT_EQ(response.raw_output_contents(2), Raw<float>({-0.5f, -0.25f}));
  EXPECT_TRUE(response.parameters().at("triton_final_response").bool_param());
}

TEST_F(KServeConversionTest, UnbatchedPromptGetsUnbatchedOutputs) {
  inference::ModelInferRequest r;
  AddRaw(&r, "text_input", "BYTES", {1}, SerializeBytes({"Hello"}));
  auto c = Convert(r);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->options.batched);
  inference::ModelInferResponse response;
  BuildResponse(r, c->options, OutputChunk{"x", {}, 0}, &response);
  ASSERT_EQ(response.outputs_size(), 1);
  EXPECT_EQ(std::vector<int64_t>(response.outputs(0).shape().begin(),
                                 response.outputs(0).shape().end()),
            std::vector<int64_t>{1});
}

TEST_F(KServeConversionTest, ServedNameAndTensorRtLlmAliasesAreKnownModels) {
  EXPECT_TRUE(CheckModel("tiny", "", model_).ok());
  EXPECT_TRUE(CheckModel("ensemble", "1", model_).ok());
  EXPECT_TRUE(CheckModel("tensorrt_llm_bls", "", model_).ok());
  EXPECT_THAT(CheckModel("tensorrt_llm", "", model_),
              StatusIs(absl::StatusCode::kNotFound,
                       "model 'tensorrt_llm' is not served here"));
  EXPECT_THAT(CheckModel("tiny", "2", model_),
              StatusIs(absl::StatusCode::kNotFound, "has no version '2'"));
}

TEST_F(KServeConversionTest, ConfigDescribesADecoupledModelOfBatchOne) {
  inference::ModelConfig config;
  FillModelConfig("ensemble", &config);
  EXPECT_EQ(config.name(), "ensemble");
  EXPECT_EQ(config.max_batch_size(), 1);
  EXPECT_TRUE(config.model_transaction_policy().decoupled());
  ASSERT_GE(config.input_size(), 3);
  EXPECT_EQ(config.input(0).name(), "text_input");
  EXPECT_EQ(config.input(0).data_type(), inference::TYPE_STRING);
  EXPECT_FALSE(config.input(0).optional());
  EXPECT_EQ(config.input(1).name(), "max_tokens");
  EXPECT_EQ(config.input(1).data_type(), inference::TYPE_INT32);
  EXPECT_EQ(config.output(0).name(), "text_output");
}

}  // namespace
}  // namespace weft::kserve

namespace weft::kserve {
namespace {

// TensorRT-LLM's guided decoding tensors: each guide type compiles into the
// request's grammar; a missing or unused guide, an unknown type and a guide
// that does not compile name their tensor.
class KServeGuidedDecodingTest : public test::TinyServedTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(TinyServedTest::SetUp());
    AddGrammars();
  }

  absl::StatusOr<ConvertedRequest> Convert(const char* type, const char* guide) {
    inference::ModelInferRequest r;
    r.set_model_name("ensemble");
    auto add = [&r](const char* name, const char* value) {
      Input* input = r.add_inputs();
      input->set_name(name);
      input->set_datatype("BYTES");
      input->add_shape(1);
      input->add_shape(1);
      input->mutable_contents()->add_bytes_contents(value);
    };
    add("text_input", "Hello");
    if (type != nullptr) add("guided_decoding_guide_type", type);
    if (guide != nullptr) add("guided_decoding_guide", guide);
    return FromInferRequest(r, model_, "tenant/kserve-0");
  }
};

TEST_F(KServeGuidedDecodingTest, EachGuideTypeCompiles) {
  const std::pair<const char*, const char*> guides[] = {
      {"json", nullptr},
      {"json_schema", R"({"type": "object", "properties": {"a": {"type": "integer"}}})"},
      {"regex", "[0-9]+"},
      {"ebnf_grammar", "root ::= [0-9]+"},
  };
  for (const auto& [type, guide] : guides) {
    auto converted = Convert(type, guide);
    ASSERT_TRUE(converted.ok()) << type << ": " << converted.status();
    EXPECT_NE(converted->request.grammar, nullptr) << type;
  }
  for (const char* none : {"none", ""}) {
    auto converted = Convert(none, nullptr);
    ASSERT_TRUE(converted.ok()) << converted.status();
    EXPECT_EQ(converted->request.grammar, nullptr);
    // An empty guide counts as none (ensembles forward empty defaults).
    converted = Convert(none, "");
    ASSERT_TRUE(converted.ok()) << converted.status();
    EXPECT_EQ(converted->request.grammar, nullptr);
  }
  auto json = Convert("json", "");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_NE(json->request.grammar, nullptr);
}

TEST_F(KServeGuidedDecodingTest, BadGuidesNameTheirTensor) {
  const struct {
    const char* type;
    const char* guide;
    const char* starts;
  } bad[] = {
      {"json", "{}", "guided_decoding_guide:"},
      {nullptr, "[0-9]+", "guided_decoding_guide:"},
      {"regex", nullptr, "guided_decoding_guide:"},
      {"structural_tag", "{}", "guided_decoding_guide_type:"},
      {"yaml", "a", "guided_decoding_guide_type:"},
      {"regex", "(ab", "guided_decoding_guide: is not valid"},
  };
  for (const auto& b : bad) {
    auto converted = Convert(b.type, b.guide);
    ASSERT_FALSE(converted.ok()) << (b.type ? b.type : "-");
    EXPECT_EQ(converted.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StartsWith(converted.status().message(), b.starts))
        << converted.status();
  }
}

}  // namespace
}  // namespace weft::kserve
