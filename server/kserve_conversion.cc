#include "server/kserve_conversion.h"

#include <bit>
#include <cctype>
#include <iterator>
#include <cstring>
#include <limits>
#include <map>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "runtime/text_stream.h"

namespace weft::kserve {
namespace {

static_assert(std::endian::native == std::endian::little,
              "raw tensor contents are little-endian; this host reads them as-is");

// Elements one tensor may hold: far more than any input weft takes, small
// enough that a forged shape cannot make us allocate much.
constexpr int64_t kMaxElements = int64_t{1} << 20;
// Elements a word list (stop_words, bad_words) may hold, padding included:
// its words are capped at kMaxStopStrings, so more is only padding.
constexpr int64_t kMaxWordListElements = 256;
// Bytes of a client's name (an unknown input or model) quoted in an error.
constexpr size_t kMaxQuotedNameBytes = 64;

absl::Status Invalid(absl::string_view tensor, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(tensor, ": ", what));
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// `name` for an error message, cut short: a client's name may be megabytes.
std::string Quoted(absl::string_view name) {
  if (name.size() <= kMaxQuotedNameBytes) return absl::StrCat("'", name, "'");
  size_t cut = kMaxQuotedNameBytes;  // not inside a UTF-8 sequence
  while (cut > 0 && (static_cast<unsigned char>(name[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat("'", name.substr(0, cut), "…' (", name.size(), " bytes)");
}

// What weft reads from each input it accepts.
enum class Want { kText, kTextList, kInt, kFloat, kBool };

struct InputSpec {
  const char* name;
  Want want;
  const char* datatype;  // the one ModelMetadata reports (TensorRT-LLM's)
  bool optional;
};

constexpr InputSpec kInputs[] = {
    {"text_input", Want::kText, "BYTES", false},
    {"max_tokens", Want::kInt, "INT32", true},
    {"stream", Want::kBool, "BOOL", true},
    {"temperature", Want::kFloat, "FP32", true},
    {"top_k", Want::kInt, "INT32", true},
    {"top_p", Want::kFloat, "FP32", true},
    {"random_seed", Want::kInt, "UINT64", true},
    {"beam_width", Want::kInt, "INT32", true},
    {"min_length", Want::kInt, "INT32", true},
    {"end_id", Want::kInt, "INT32", true},
    {"pad_id", Want::kInt, "INT32", true},
    {"stop_words", Want::kTextList, "BYTES", true},
    {"bad_words", Want::kTextList, "BYTES", true},
    {"repetition_penalty", Want::kFloat, "FP32", true},
    {"presence_penalty", Want::kFloat, "FP32", true},
    {"frequency_penalty", Want::kFloat, "FP32", true},
    {"length_penalty", Want::kFloat, "FP32", true},
    {"return_log_probs", Want::kBool, "BOOL", true},
    {"exclude_input_in_output", Want::kBool, "BOOL", true},
    {"ignore_eos", Want::kBool, "BOOL", true},
    {"return_context_logits", Want::kBool, "BOOL", true},
    {"return_generation_logits", Want::kBool, "BOOL", true},
    // TensorRT-LLM's guided decoding: json, json_schema, regex,
    // ebnf_grammar (structural_tag is refused), and the guide itself.
    {"guided_decoding_guide_type", Want::kText, "BYTES", true},
    {"guided_decoding_guide", Want::kText, "BYTES", true},
};

constexpr const char* kTextOutput = "text_output";
constexpr const char* kCumLogProbs = "cum_log_probs";
constexpr const char* kOutputLogProbs = "output_log_probs";

const InputSpec* FindInput(absl::string_view name) {
  for (const InputSpec& spec : kInputs) {
    if (name == spec.name) return &spec;
  }
  return nullptr;
}

std::string AcceptedInputs() {
  std::vector<std::string> names;
  for (const InputSpec& spec : kInputs) names.push_back(spec.name);
  return absl::StrJoin(names, ", ");
}

// Per datatype: how its elements are stored.
struct Datatype {
  const char* name;
  Tensor::Kind kind;
  int bytes;  // per element in raw contents; 0 for BYTES
};

constexpr Datatype kDatatypes[] = {
    {"BYTES", Tensor::Kind::kBytes, 0},   {"BOOL", Tensor::Kind::kBool, 1},
    {"INT8", Tensor::Kind::kInt, 1},      {"INT16", Tensor::Kind::kInt, 2},
    {"INT32", Tensor::Kind::kInt, 4},     {"INT64", Tensor::Kind::kInt, 8},
    {"UINT8", Tensor::Kind::kUnsigned, 1}, {"UINT16", Tensor::Kind::kUnsigned, 2},
    {"UINT32", Tensor::Kind::kUnsigned, 4}, {"UINT64", Tensor::Kind::kUnsigned, 8},
    {"FP32", Tensor::Kind::kFloat, 4},    {"FP64", Tensor::Kind::kFloat, 8},
};

const Datatype* FindDatatype(absl::string_view name) {
  for (const Datatype& d : kDatatypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

template <typename T>
T ReadLittleEndian(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

absl::Status DecodeRaw(const Datatype& type, int64_t count, const std::string& raw,
                       Tensor* t) {
  if (type.kind == Tensor::Kind::kBytes) {
    size_t offset = 0;
    for (int64_t i = 0; i < count; ++i) {
      if (raw.size() - offset < 4) {
        return Invalid(t->name, absl::StrCat("raw BYTES data ends before element ",
                                             i, " of ", count));
      }
      const uint32_t length = ReadLittleEndian<uint32_t>(raw.data() + offset);
      offset += 4;
      if (raw.size() - offset < length) {
        return Invalid(t->name, absl::StrCat("raw BYTES element ", i, " is ",
                                             length, " bytes long but only ",
                                             raw.size() - offset, " remain"));
      }
      t->bytes.emplace_back(raw.data() + offset, length);
      offset += length;
    }
    if (offset != raw.size()) {
      return Invalid(t->name, absl::StrCat("raw BYTES data has ", raw.size() - offset,
                                           " bytes after its ", count, " elements"));
    }
    return absl::OkStatus();
  }
  if (raw.size() != static_cast<size_t>(count * type.bytes)) {
    return Invalid(t->name, absl::StrCat("raw data is ", raw.size(), " bytes; ",
                                         type.name, " shape ", ShapeString(t->shape),
                                         " needs ", count * type.bytes));
  }
  for (int64_t i = 0; i < count; ++i) {
    const char* p = raw.data() + i * type.bytes;
    switch (type.kind) {
      case Tensor::Kind::kBool: t->bools.push_back(*p != 0); break;
      case Tensor::Kind::kInt:
        switch (type.bytes) {
          case 1: t->ints.push_back(ReadLittleEndian<int8_t>(p)); break;
          case 2: t->ints.push_back(ReadLittleEndian<int16_t>(p)); break;
          case 4: t->ints.push_back(ReadLittleEndian<int32_t>(p)); break;
          default: t->ints.push_back(ReadLittleEndian<int64_t>(p));
        }
        break;
      case Tensor::Kind::kUnsigned:
        switch (type.bytes) {
          case 1: t->uints.push_back(ReadLittleEndian<uint8_t>(p)); break;
          case 2: t->uints.push_back(ReadLittleEndian<uint16_t>(p)); break;
          case 4: t->uints.push_back(ReadLittleEndian<uint32_t>(p)); break;
          default: t->uints.push_back(ReadLittleEndian<uint64_t>(p));
        }
        break;
      case Tensor::Kind::kFloat:
        t->floats.push_back(type.bytes == 4 ? ReadLittleEndian<float>(p)
                                            : ReadLittleEndian<double>(p));
        break;
      case Tensor::Kind::kBytes: break;
    }
  }
  return absl::OkStatus();
}

// The typed field `type` is stored in, and how many values it holds.
absl::Status DecodeTyped(const Datatype& type, int64_t count,
                         const inference::InferTensorContents& c, Tensor* t) {
  const absl::string_view name = type.name;
  int64_t held = 0;
  const char* field = "";
  if (type.kind == Tensor::Kind::kBytes) {
    field = "bytes_contents";
    held = c.bytes_contents_size();
    t->bytes.assign(c.bytes_contents().begin(), c.bytes_contents().end());
  } else if (type.kind == Tensor::Kind::kBool) {
    field = "bool_contents";
    held = c.bool_contents_size();
    t->bools.assign(c.bool_contents().begin(), c.bool_contents().end());
  } else if (name == "INT64") {
    field = "int64_contents";
    held = c.int64_contents_size();
    t->ints.assign(c.int64_contents().begin(), c.int64_contents().end());
  } else if (type.kind == Tensor::Kind::kInt) {
    field = "int_contents";
    held = c.int_contents_size();
    t->ints.assign(c.int_contents().begin(), c.int_contents().end());
  } else if (name == "UINT64") {
    field = "uint64_contents";
    held = c.uint64_contents_size();
    t->uints.assign(c.uint64_contents().begin(), c.uint64_contents().end());
  } else if (type.kind == Tensor::Kind::kUnsigned) {
    field = "uint_contents";
    held = c.uint_contents_size();
    t->uints.assign(c.uint_contents().begin(), c.uint_contents().end());
  } else if (name == "FP32") {
    field = "fp32_contents";
    held = c.fp32_contents_size();
    t->floats.assign(c.fp32_contents().begin(), c.fp32_contents().end());
  } else {
    field = "fp64_contents";
    held = c.fp64_contents_size();
    t->floats.assign(c.fp64_contents().begin(), c.fp64_contents().end());
  }
  if (held != count) {
    return Invalid(t->name, absl::StrCat("contents.", field, " holds ", held,
                                         " values; ", type.name, " shape ",
                                         ShapeString(t->shape), " needs ", count));
  }
  return absl::OkStatus();
}

absl::Status CheckDatatype(const Tensor& t, const InputSpec& spec) {
  bool ok = false;
  const char* send = "";
  switch (spec.want) {
    case Want::kText:
    case Want::kTextList:
      ok = t.kind == Tensor::Kind::kBytes;
      send = "BYTES";
      break;
    case Want::kInt:
      ok = t.kind == Tensor::Kind::kInt || t.kind == Tensor::Kind::kUnsigned;
      send = spec.datatype;
      break;
    case Want::kFloat:
      ok = t.kind == Tensor::Kind::kFloat;
      send = "FP32 (or FP64)";
      break;
    case Want::kBool:
      ok = t.kind == Tensor::Kind::kBool;
      send = "BOOL";
      break;
  }
  if (ok) return absl::OkStatus();
  return Invalid(t.name, absl::StrCat(
      "datatype ", t.datatype, " is not accepted; send ", send,
      spec.want == Want::kInt ? " (any integer datatype is accepted)" : ""));
}

// Scalars and the prompt hold one element; word lists at most
// kMaxWordListElements. Checked on the shape, before any data is read.
absl::Status CheckCount(const Tensor& t, const InputSpec& spec, int64_t n) {
  if (spec.want == Want::kTextList) {
    if (n <= kMaxWordListElements) return absl::OkStatus();
    return Invalid(t.name, absl::StrCat("shape ", ShapeString(t.shape), " holds ", n,
                                        " elements; a word list holds at most ",
                                        kMaxWordListElements, " (padding included)"));
  }
  if (n == 1) return absl::OkStatus();
  if (spec.want == Want::kText && n > 1) {
    return Invalid(t.name, absl::StrCat("shape ", ShapeString(t.shape), " holds ", n,
                                        " prompts; weft takes one prompt per request "
                                        "(send each as its own request)"));
  }
  return Invalid(t.name, absl::StrCat("shape ", ShapeString(t.shape), " holds ", n,
                                      " values; expected one (shape [1] or [1, 1])"));
}

}  // namespace

absl::Status CheckModel(absl::string_view name, absl::string_view version,
                        const ServedModel& model) {
  bool known = name == model.name;
  for (const char* alias : kModelAliases) known = known || name == alias;
  if (!known) {
    return absl::NotFoundError(absl::StrCat(
        "model ", Quoted(name), " is not served here (this server serves '", model.name,
        "', also reachable as 'ensemble' and 'tensorrt_llm_bls')"));
  }
  if (!version.empty() && version != kModelVersion) {
    return absl::NotFoundError(absl::StrCat("model '", name, "' has no version ",
                                            Quoted(version), " (only version ",
                                            kModelVersion, ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Tensor>> DecodeInputs(
    const inference::ModelInferRequest& request) {
  // Names are checked against the accepted ones before any data is read,
  // so a request costs at most one decode per accepted input.
  constexpr int kNumInputs = static_cast<int>(std::size(kInputs));
  if (request.inputs_size() > kNumInputs) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request has ", request.inputs_size(), " inputs; weft accepts at most ",
        kNumInputs, " (", AcceptedInputs(), ")"));
  }
  const bool raw = request.raw_input_contents_size() > 0;
  if (raw && request.raw_input_contents_size() != request.inputs_size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "raw_input_contents has ", request.raw_input_contents_size(),
        " entries for ", request.inputs_size(), " inputs (one per input, in order)"));
  }
  bool given[kNumInputs] = {};  // by index in kInputs
  std::vector<Tensor> tensors;
  tensors.reserve(request.inputs_size());
  for (int i = 0; i < request.inputs_size(); ++i) {
    const auto& input = request.inputs(i);
    const InputSpec* spec = FindInput(input.name());
    if (spec == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "unexpected inference input ", Quoted(input.name()), " for model ",
          Quoted(request.model_name()), "; weft accepts ", AcceptedInputs()));
    }
    if (given[spec - kInputs]) return Invalid(spec->name, "is given more than once");
    given[spec - kInputs] = true;
    Tensor t;
    t.name = input.name();
    t.datatype = input.datatype();
    t.shape.assign(input.shape().begin(), input.shape().end());
    const Datatype* type = FindDatatype(t.datatype);
    if (type == nullptr) {
      return Invalid(t.name, absl::StrCat("datatype ", Quoted(t.datatype),
                                          " is not supported by weft"));
    }
    t.kind = type->kind;
    if (auto s = CheckDatatype(t, *spec); !s.ok()) return s;
    int64_t count = 1;
    for (int64_t dim : t.shape) {
      if (dim < 0) {
        return Invalid(t.name, absl::StrCat("shape ", ShapeString(t.shape),
                                            " has a negative dimension"));
      }
      // dim <= kMaxElements first, so count * dim cannot overflow.
      if (dim > kMaxElements || count * dim > kMaxElements) {
        return Invalid(t.name, absl::StrCat("shape ", ShapeString(t.shape),
                                            " holds more than ", kMaxElements,
                                            " elements"));
      }
      count *= dim;
    }
    if (auto s = CheckCount(t, *spec, count); !s.ok()) return s;
    absl::Status decoded;
    if (raw) {
      if (input.has_contents()) {
        return Invalid(t.name,
                       "sets contents while the request uses raw_input_contents");
      }
      decoded = DecodeRaw(*type, count, request.raw_input_contents(i), &t);
    } else {
      decoded = DecodeTyped(*type, count, input.contents(), &t);
    }
    if (!decoded.ok()) return decoded;
    tensors.push_back(std::move(t));
  }
  return tensors;
}

namespace {

// The tensor's single integer, range-checked into [lo, hi].
absl::StatusOr<int64_t> IntValue(const Tensor& t, int64_t lo, int64_t hi) {
  if (t.kind == Tensor::Kind::kUnsigned) {
    if (t.uints[0] > static_cast<uint64_t>(hi)) {
      return Invalid(t.name, absl::StrCat(t.uints[0], " is out of range [", lo, ", ",
                                          hi, "]"));
    }
    return static_cast<int64_t>(t.uints[0]);
  }
  if (t.ints[0] < lo || t.ints[0] > hi) {
    return Invalid(t.name,
                   absl::StrCat(t.ints[0], " is out of range [", lo, ", ", hi, "]"));
  }
  return t.ints[0];
}

// At most kMaxStopStrings words of at most kMaxStopStringBytes each, the
// limits Generate puts on stop strings; empty elements are padding.
absl::Status CheckBadWords(const Tensor& t) {
  int words = 0;
  for (size_t i = 0; i < t.bytes.size(); ++i) {
    if (t.bytes[i].empty()) continue;
    if (++words > kMaxStopStrings) {
      return Invalid(t.name, absl::StrCat("holds more than ", kMaxStopStrings,
                                          " words; weft bans at most ",
                                          kMaxStopStrings));
    }
    if (t.bytes[i].size() > static_cast<size_t>(kMaxStopStringBytes)) {
      return Invalid(absl::StrCat(t.name, "[", i, "]"),
                     absl::StrCat("is ", t.bytes[i].size(), " bytes; at most ",
                                  kMaxStopStringBytes));
    }
  }
  return absl::OkStatus();
}

// TensorRT-LLM's guided_decoding_guide_type and guided_decoding_guide as
// a weft.v1 StructuredOutput (left empty for no guide or type "none").
absl::Status SetGuide(const std::optional<std::string>& type,
                      const std::optional<std::string>& guide,
                      v1::StructuredOutput* out) {
  // An empty element counts as absent: ensembles forward empty defaults.
  const bool has_guide = guide.has_value() && !guide->empty();
  if (!type || type->empty() || *type == "none") {
    if (has_guide) {
      return Invalid("guided_decoding_guide", "needs guided_decoding_guide_type");
    }
    return absl::OkStatus();
  }
  if (*type == "json") {
    if (has_guide) return Invalid("guided_decoding_guide", "is not used by type json");
    out->set_any_json(true);
    return absl::OkStatus();
  }
  if (*type != "json_schema" && *type != "regex" && *type != "ebnf_grammar") {
    return Invalid("guided_decoding_guide_type",
                   absl::StrCat("must be json, json_schema, regex or ebnf_grammar, got ",
                                Quoted(*type)));
  }
  if (!has_guide) {
    return Invalid("guided_decoding_guide", absl::StrCat("is required with type ", *type));
  }
  if (*type == "json_schema") out->set_json_schema(*guide);
  if (*type == "regex") out->set_regex(*guide);
  if (*type == "ebnf_grammar") out->set_grammar(*guide);
  return absl::OkStatus();
}

// Runtime validation messages start with the weft.v1 field path; rename it
// to the tensor that carried the value.
absl::Status RenameField(const absl::Status& status) {
  static const auto* kFields = new std::vector<std::pair<std::string, std::string>>{
      {"prompt.text", "text_input"},
      {"sampling.temperature", "temperature"},
      {"sampling.top_p", "top_p"},
      {"sampling.top_k", "top_k"},
      {"sampling.seed", "random_seed"},
      {"sampling.repetition_penalty", "repetition_penalty"},
      {"sampling.presence_penalty", "presence_penalty"},
      {"sampling.frequency_penalty", "frequency_penalty"},
      {"sampling.logit_bias", "bad_words"},
      {"stopping.max_tokens", "max_tokens"},
      {"stopping.min_tokens", "min_length"},
      {"stopping.stop_token_ids", "end_id"},
      {"stopping.stop", "stop_words"},
      {"structured_output", "guided_decoding_guide"},
  };
  const absl::string_view message = status.message();
  for (const auto& [field, tensor] : *kFields) {
    if (!absl::StartsWith(message, field)) continue;
    const char next = message.size() > field.size() ? message[field.size()] : ' ';
    if (next == '_' || std::isalnum(static_cast<unsigned char>(next))) continue;
    return absl::Status(status.code(),
                        absl::StrCat(tensor, message.substr(field.size())));
  }
  return status;
}

}  // namespace

absl::StatusOr<ConvertedRequest> FromInferRequest(
    const inference::ModelInferRequest& proto, const ServedModel& model,
    const std::string& id) {
  if (proto.id().size() > static_cast<size_t>(kMaxRequestIdBytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "id: longer than ", kMaxRequestIdBytes, " bytes (", proto.id().size(), ")"));
  }
  auto tensors = DecodeInputs(proto);
  if (!tensors.ok()) return tensors.status();

  ConvertedRequest out;
  v1::GenerateRequest generate;
  v1::SamplingParams* sampling = generate.mutable_sampling();
  v1::StoppingParams* stopping = generate.mutable_stopping();
  bool have_text = false;
  bool return_log_probs = false;
  std::optional<std::string> guide_type, guide;
  for (const Tensor& t : *tensors) {
    // DecodeInputs checked the name, the datatype and the element count.
    const InputSpec* spec = FindInput(t.name);
    const absl::string_view name = t.name;
    constexpr int64_t kInt32Max = std::numeric_limits<int32_t>::max();
    constexpr int64_t kInt32Min = std::numeric_limits<int32_t>::min();
    if (name == "guided_decoding_guide_type") {
      guide_type = t.bytes[0];
    } else if (name == "guided_decoding_guide") {
      guide = t.bytes[0];
    } else if (name == "text_input") {
      have_text = true;
      out.options.prompt = t.bytes[0];
      out.options.batched = t.shape.size() >= 2;
      generate.set_text(t.bytes[0]);
    } else if (spec->want == Want::kBool) {
      const bool value = t.bools[0];
      if (name == "stream") out.options.stream = value;
      if (name == "exclude_input_in_output") out.options.exclude_input_in_output = value;
      if (name == "return_log_probs") return_log_probs = value;
      if (name == "ignore_eos") stopping->set_ignore_eos(value);
      if ((name == "return_context_logits" || name == "return_generation_logits") &&
          value) {
        return absl::UnimplementedError(
            absl::StrCat(name, ": weft does not return logits"));
      }
    } else if (spec->want == Want::kFloat) {
      const float value = static_cast<float>(t.floats[0]);
      if (name == "temperature") sampling->set_temperature(value);
      if (name == "top_p") sampling->set_top_p(value);
      if (name == "repetition_penalty") sampling->set_repetition_penalty(value);
      if (name == "presence_penalty") sampling->set_presence_penalty(value);
      if (name == "frequency_penalty") sampling->set_frequency_penalty(value);
      // length_penalty weighs beams; with one beam it changes nothing.
    } else if (name == "random_seed") {
      if (t.kind == Tensor::Kind::kInt && t.ints[0] < 0) {
        return Invalid(name, absl::StrCat("must be >= 0, got ", t.ints[0]));
      }
      sampling->set_seed(t.kind == Tensor::Kind::kInt ? static_cast<uint64_t>(t.ints[0])
                                                      : t.uints[0]);
    } else if (spec->want == Want::kInt) {
      auto value = IntValue(t, kInt32Min, kInt32Max);
      if (!value.ok()) return value.status();
      const int32_t v = static_cast<int32_t>(*value);
      if (name == "max_tokens") stopping->set_max_tokens(v);
      if (name == "top_k") sampling->set_top_k(v);
      if (name == "min_length") stopping->set_min_tokens(v);
      if (name == "end_id") stopping->add_stop_token_ids(v);
      // pad_id pads batched outputs; a request here is never padded.
      if (name == "beam_width" && v != 1) {
        return absl::UnimplementedError(
            absl::StrCat("beam_width: weft samples one beam; got ", v));
      }
    } else if (name == "stop_words") {
      for (const std::string& word : t.bytes) {
        if (!word.empty()) stopping->add_stop(word);  // TRT-LLM clients pad with ""
      }
    } else if (name == "bad_words") {
      if (auto s = CheckBadWords(t); !s.ok()) return s;  // before any tokenizing
      for (size_t i = 0; i < t.bytes.size(); ++i) {
        if (t.bytes[i].empty()) continue;
        const std::vector<int32_t> ids =
            model.tokenizer->Encode(t.bytes[i], EncodeOptions{});
        if (ids.size() != 1) {
          return Invalid(absl::StrCat("bad_words[", i, "]"),
                         absl::StrCat("'", t.bytes[i], "' is ", ids.size(),
                                      " tokens; weft bans single-token words only"));
        }
        (*sampling->mutable_logit_bias())[ids[0]] = -100.0f;
      }
    }
  }
  if (!have_text) {
    return absl::InvalidArgumentError(
        "text_input: missing; send the prompt as a BYTES tensor of shape [1, 1]");
  }
  if (auto s = SetGuide(guide_type, guide, generate.mutable_structured_output());
      !s.ok()) {
    return s;
  }
  if (generate.structured_output().kind_case() == v1::StructuredOutput::KIND_NOT_SET) {
    generate.clear_structured_output();
  }

  // Which outputs to return: those asked for, or text_output (and the
  // log-probs when return_log_probs is set).
  ResponseOptions& options = out.options;
  bool cum = return_log_probs;
  bool per_token = return_log_probs;
  if (proto.outputs_size() > 0) {
    options.text_output = cum = per_token = false;
    for (const auto& output : proto.outputs()) {
      if (output.name() == kTextOutput) {
        options.text_output = true;
      } else if (output.name() == kCumLogProbs) {
        cum = true;
      } else if (output.name() == kOutputLogProbs) {
        per_token = true;
      } else {
        return absl::InvalidArgumentError(absl::StrCat(
            "unexpected inference output '", output.name(), "' for model '",
            proto.model_name(), "'; weft returns ", kTextOutput, ", ",
            kCumLogProbs, ", ", kOutputLogProbs));
      }
    }
  }
  options.cum_log_probs = cum;
  options.output_log_probs = per_token;
  if (cum || per_token) sampling->set_logprobs(0);
  const auto empty_final = proto.parameters().find("triton_enable_empty_final_response");
  options.empty_final_response = empty_final != proto.parameters().end() &&
                                 empty_final->second.bool_param();

  auto request = ToRuntimeRequest(generate, model, id);
  if (!request.ok()) return RenameField(request.status());
  out.request = *std::move(request);
  return out;
}

std::string SerializeBytes(const std::vector<std::string>& elements) {
  std::string out;
  for (const std::string& e : elements) {
    const uint32_t length = static_cast<uint32_t>(e.size());
    out.append(reinterpret_cast<const char*>(&length), 4);
    out.append(e);
  }
  return out;
}

void BuildResponse(const inference::ModelInferRequest& request,
                   const ResponseOptions& options, const OutputChunk& chunk,
                   inference::ModelInferResponse* out) {
  out->set_model_name(request.model_name());
  out->set_model_version(kModelVersion);
  out->set_id(request.id());
  // Shapes: [batch = 1, beam = 1, ...] when the prompt came batched.
  auto add = [&](const char* name, const char* datatype, std::vector<int64_t> shape,
                 std::string raw) {
    if (options.batched) shape.insert(shape.begin(), 1);
    auto* tensor = out->add_outputs();
    tensor->set_name(name);
    tensor->set_datatype(datatype);
    tensor->mutable_shape()->Add(shape.begin(), shape.end());
    out->add_raw_output_contents(std::move(raw));
  };
  if (options.text_output) add(kTextOutput, "BYTES", {1}, SerializeBytes({chunk.text}));
  if (options.cum_log_probs) {
    const float cumulative = static_cast<float>(chunk.cumulative_logprob);
    add(kCumLogProbs, "FP32", {1},
        std::string(reinterpret_cast<const char*>(&cumulative), sizeof(float)));
  }
  if (options.output_log_probs) {
    add(kOutputLogProbs, "FP32", {1, static_cast<int64_t>(chunk.token_logprobs.size())},
        std::string(reinterpret_cast<const char*>(chunk.token_logprobs.data()),
                    chunk.token_logprobs.size() * sizeof(float)));
  }
}

void SetFinalFlag(bool final, inference::ModelInferResponse* out) {
  (*out->mutable_parameters())["triton_final_response"].set_bool_param(final);
}

void FillModelMetadata(absl::string_view name, inference::ModelMetadataResponse* out) {
  out->set_name(std::string(name));
  out->add_versions(std::string(kModelVersion));
  out->set_platform("weft");
  // A leading -1: the batch dimension (each request holds a batch of 1).
  for (const InputSpec& spec : kInputs) {
    auto* input = out->add_inputs();
    input->set_name(spec.name);
    input->set_datatype(spec.datatype);
    input->add_shape(-1);
    input->add_shape(spec.want == Want::kTextList ? -1 : 1);
  }
  const std::pair<const char*, int> outputs[] = {
      {kTextOutput, 2}, {kCumLogProbs, 2}, {kOutputLogProbs, 3}};
  for (const auto& [output_name, rank] : outputs) {
    auto* output = out->add_outputs();
    output->set_name(output_name);
    output->set_datatype(output_name == kTextOutput ? "BYTES" : "FP32");
    for (int i = 0; i < rank; ++i) output->add_shape(-1);
  }
}

void FillModelConfig(absl::string_view name, inference::ModelConfig* out) {
  static const auto* kTypes = new std::map<std::string, inference::DataType>{
      {"BYTES", inference::TYPE_STRING}, {"BOOL", inference::TYPE_BOOL},
      {"INT32", inference::TYPE_INT32},  {"UINT64", inference::TYPE_UINT64},
      {"FP32", inference::TYPE_FP32}};
  out->set_name(std::string(name));
  out->set_platform("weft");
  out->set_backend("weft");
  out->set_max_batch_size(1);
  for (const InputSpec& spec : kInputs) {
    auto* input = out->add_input();
    input->set_name(spec.name);
    input->set_data_type(kTypes->at(spec.datatype));
    input->add_dims(spec.want == Want::kTextList ? -1 : 1);
    input->set_optional(spec.optional);
  }
  auto* text = out->add_output();
  text->set_name(kTextOutput);
  text->set_data_type(inference::TYPE_STRING);
  text->add_dims(-1);
  auto* cum = out->add_output();
  cum->set_name(kCumLogProbs);
  cum->set_data_type(inference::TYPE_FP32);
  cum->add_dims(-1);
  auto* per_token = out->add_output();
  per_token->set_name(kOutputLogProbs);
  per_token->set_data_type(inference::TYPE_FP32);
  per_token->add_dims(-1);
  per_token->add_dims(-1);
  out->mutable_model_transaction_policy()->set_decoupled(true);
}

}  // namespace weft::kserve
