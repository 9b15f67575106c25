#include "runtime/loader/gguf.h"

#include <cstring>
#include <limits>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace weft {
namespace {

// Limits that no real model reaches; a file past them is corrupt or hostile.
constexpr uint64_t kMaxTensors = 1 << 20;
constexpr uint64_t kMaxMetadata = 1 << 20;
constexpr uint64_t kMaxDims = 4;
constexpr uint64_t kMaxArrayDepth = 2;
// Array elements in all metadata together (each held as a GgufValue): a
// Llama 3 vocabulary with its merges is well under 1M.
constexpr uint64_t kMaxMetadataElements = uint64_t{1} << 22;
// Smallest encodings: key length + type + 1-byte value; name length +
// n_dims + one extent + type + offset.
constexpr uint64_t kMinMetadataBytes = 8 + 4 + 1;
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;

// GGML type ids as written in GGUF tensor infos.
absl::StatusOr<DType> DTypeFromGgml(uint32_t ggml_type,
                                    const std::string& tensor) {
  switch (ggml_type) {
    case 0: return DType::kF32;
    case 1: return DType::kF16;
    case 2: return DType::kQ4_0;
    case 3: return DType::kQ4_1;
    case 8: return DType::kQ8_0;
    case 30: return DType::kBF16;
    default: break;
  }
  static constexpr const char* kNames[] = {
      "F32",  "F16",  "Q4_0", "Q4_1", "Q4_2", "Q4_3", "Q5_0", "Q5_1",
      "Q8_0", "Q8_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q8_K"};
  const std::string name =
      ggml_type < std::size(kNames) ? kNames[ggml_type] : "unknown";
  return absl::UnimplementedError(absl::StrCat(
      "tensor '", tensor, "' has GGML type ", ggml_type, " (", name,
      "); weft supports F32, F16, BF16, Q8_0, Q4_0 and Q4_1"));
}

// Bounds-checked little-endian reader over the mapped bytes.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t offset() const { return offset_; }
  size_t remaining() const { return size_ - offset_; }

  template <typename T>
  absl::Status Read(T* out, absl::string_view what) {
    if (remaining() < sizeof(T)) return Truncated(what);
    std::memcpy(out, data_ + offset_, sizeof(T));
    offset_ += sizeof(T);
    return absl::OkStatus();
  }

  absl::Status ReadString(std::string* out, absl::string_view what) {
    uint64_t length = 0;
    if (auto s = Read(&length, what); !s.ok()) return s;
    if (length > remaining()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: ", what, " has length ", length, " but only ", remaining(),
          " bytes remain at offset ", offset_));
    }
    out->assign(reinterpret_cast<const char*>(data_ + offset_), length);
    offset_ += length;
    return absl::OkStatus();
  }

  absl::Status Truncated(absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: file truncated while reading ", what, " at offset ", offset_));
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t offset_ = 0;
};

size_t ScalarSize(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    case GgufValueType::kString: return 8;  // at least the length field
    case GgufValueType::kArray: return 12;  // at least type + count
  }
  return 0;
}

absl::Status ReadValue(Reader& reader, GgufValueType type, int depth,
                       const std::string& key, uint64_t* element_budget,
                       GgufValue* value) {
  value->type = type;
  switch (type) {
#define WEFT_GGUF_INT(enum_name, c_type)                       \
  case GgufValueType::enum_name: {                             \
    c_type v = 0;                                                  \
    if (auto s = reader.Read(&v, key); !s.ok()) return s;      \
    value->int_value = static_cast<int64_t>(v);                \
    return absl::OkStatus();                                   \
  }
    WEFT_GGUF_INT(kUint8, uint8_t)
    WEFT_GGUF_INT(kInt8, int8_t)
    WEFT_GGUF_INT(kUint16, uint16_t)
    WEFT_GGUF_INT(kInt16, int16_t)
    WEFT_GGUF_INT(kUint32, uint32_t)
    WEFT_GGUF_INT(kInt32, int32_t)
    WEFT_GGUF_INT(kInt64, int64_t)
#undef WEFT_GGUF_INT
    case GgufValueType::kUint64: {
      uint64_t v = 0;
      if (auto s = reader.Read(&v, key); !s.ok()) return s;
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF: value of '", key, "' is out of range: ", v));
      }
      value->int_value = static_cast<int64_t>(v);
      return absl::OkStatus();
    }
    case GgufValueType::kFloat32: {
      float v = 0;
      if (auto s = reader.Read(&v, key); !s.ok()) return s;
      value->float_value = v;
      return absl::OkStatus();
    }
    case GgufValueType::kFloat64:
      return reader.Read(&value->float_value, key);
    case GgufValueType::kBool: {
      uint8_t v = 0;
      if (auto s = reader.Read(&v, key); !s.ok()) return s;
      if (v > 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "GGUF: bool value of '", key, "' is ", static_cast<int>(v)));
      }
      value->bool_value = v != 0;
      return absl::OkStatus();
    }
    case GgufValueType::kString:
      return reader.ReadString(&value->string_value, key);
    case GgufValueType::kArray: {
      if (depth >= static_cast<int>(kMaxArrayDepth)) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF: arrays nested too deeply in '", key, "'"));
      }
      uint32_t element_type = 0;
      uint64_t count = 0;
      if (auto s = reader.Read(&element_type, key); !s.ok()) return s;
      if (auto s = reader.Read(&count, key); !s.ok()) return s;
      if (element_type > static_cast<uint32_t>(GgufValueType::kFloat64)) {
        return absl::InvalidArgumentError(
            absl::StrCat("GGUF: array '", key, "' has unknown element type ",
                         element_type));
      }
      value->array_type = static_cast<GgufValueType>(element_type);
      // Each element takes at least ScalarSize bytes: a count the remaining
      // file cannot hold is rejected before anything is allocated.
      if (count > reader.remaining() / ScalarSize(value->array_type)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "GGUF: array '", key, "' claims ", count,
            " elements, more than the file can hold"));
      }
      if (count > *element_budget) {
        return absl::InvalidArgumentError(absl::StrCat(
            "GGUF: array '", key, "' of ", count,
            " elements exceeds the metadata limit of ", kMaxMetadataElements,
            " elements"));
      }
      *element_budget -= count;
      value->array.resize(count);
      for (uint64_t i = 0; i < count; ++i) {
        if (auto s = ReadValue(reader, value->array_type, depth + 1, key,
                               element_budget, &value->array[i]);
            !s.ok()) {
          return s;
        }
      }
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "GGUF: key '", key, "' has unknown value type ",
      static_cast<uint32_t>(type)));
}

absl::Status TypeMismatch(absl::string_view key, const GgufValue& value,
                          absl::string_view wanted) {
  return absl::InvalidArgumentError(
      absl::StrCat("GGUF: key '", key, "' is ", GgufValueTypeName(value.type),
                   ", expected ", wanted));
}

}  // namespace

absl::string_view GgufValueTypeName(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8: return "uint8";
    case GgufValueType::kInt8: return "int8";
    case GgufValueType::kUint16: return "uint16";
    case GgufValueType::kInt16: return "int16";
    case GgufValueType::kUint32: return "uint32";
    case GgufValueType::kInt32: return "int32";
    case GgufValueType::kFloat32: return "float32";
    case GgufValueType::kBool: return "bool";
    case GgufValueType::kString: return "string";
    case GgufValueType::kArray: return "array";
    case GgufValueType::kUint64: return "uint64";
    case GgufValueType::kInt64: return "int64";
    case GgufValueType::kFloat64: return "float64";
  }
  return "unknown";
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kUint16:
    case GgufValueType::kInt16:
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kUint64:
    case GgufValueType::kInt64: return true;
    default: return false;
  }
}

absl::StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(
    const std::string& path) {
  auto file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  std::unique_ptr<GgufFile> gguf(new GgufFile(*std::move(file)));
  if (auto s = gguf->Parse(); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat(s.message(), " (", path, ")"));
  }
  return gguf;
}

absl::Status GgufFile::Parse() {
  Reader reader(file_->data(), file_->size());
  uint32_t magic = 0;
  if (auto s = reader.Read(&magic, "magic"); !s.ok()) return s;
  if (std::memcmp(&magic, "GGUF", 4) != 0) {
    return absl::InvalidArgumentError("GGUF: bad magic, not a GGUF file");
  }
  if (auto s = reader.Read(&version_, "version"); !s.ok()) return s;
  if (version_ != 2 && version_ != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GGUF: unsupported version ", version_, " (weft reads 2 and 3)"));
  }
  uint64_t tensor_count = 0, kv_count = 0;
  if (auto s = reader.Read(&tensor_count, "tensor count"); !s.ok()) return s;
  if (auto s = reader.Read(&kv_count, "metadata count"); !s.ok()) return s;
  if (tensor_count > kMaxTensors) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: absurd tensor count ", tensor_count));
  }
  if (kv_count > kMaxMetadata) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: absurd metadata count ", kv_count));
  }
  if (kv_count > reader.remaining() / kMinMetadataBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: file truncated: ", kv_count,
                     " metadata entries cannot fit in the remaining ",
                     reader.remaining(), " bytes"));
  }
  uint64_t element_budget = kMaxMetadataElements;

  for (uint64_t i = 0; i < kv_count; ++i) {
    std::string key;
    if (auto s = reader.ReadString(&key, "metadata key"); !s.ok()) return s;
    uint32_t type = 0;
    if (auto s = reader.Read(&type, key); !s.ok()) return s;
    if (type > static_cast<uint32_t>(GgufValueType::kFloat64)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: key '", key, "' has unknown value type ", type));
    }
    GgufValue value;
    if (auto s = ReadValue(reader, static_cast<GgufValueType>(type), 0, key,
                           &element_budget, &value);
        !s.ok()) {
      return s;
    }
    if (!metadata_.emplace(key, std::move(value)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: duplicate metadata key '", key, "'"));
    }
  }

  if (const GgufValue* a = Find("general.alignment"); a != nullptr) {
    if (!a->is_integer() || a->int_value <= 0 || a->int_value > (1 << 20) ||
        (a->int_value & (a->int_value - 1)) != 0) {
      return absl::InvalidArgumentError(
          "GGUF: general.alignment must be a power of two integer");
    }
    alignment_ = static_cast<uint64_t>(a->int_value);
  }

  if (tensor_count > reader.remaining() / kMinTensorInfoBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("GGUF: file truncated: ", tensor_count,
                     " tensor infos cannot fit in the remaining ",
                     reader.remaining(), " bytes"));
  }
  struct RawInfo {
    uint64_t offset = 0;
  };
  std::vector<RawInfo> raw(tensor_count);
  tensors_.resize(tensor_count);
  for (uint64_t i = 0; i < tensor_count; ++i) {
    HostTensor& t = tensors_[i];
    if (auto s = reader.ReadString(&t.name, "tensor name"); !s.ok()) return s;
    uint32_t n_dims = 0;
    if (auto s = reader.Read(&n_dims, t.name); !s.ok()) return s;
    if (n_dims == 0 || n_dims > kMaxDims) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: tensor '", t.name, "' has ", n_dims, " dimensions"));
    }
    std::vector<int64_t> ne(n_dims);
    uint64_t num_elements = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t extent = 0;
      if (auto s = reader.Read(&extent, t.name); !s.ok()) return s;
      if (extent == 0 || extent > (uint64_t{1} << 40) ||
          num_elements > (uint64_t{1} << 48) / extent) {
        return absl::InvalidArgumentError(absl::StrCat(
            "GGUF: tensor '", t.name, "' has absurd dimension ", extent));
      }
      num_elements *= extent;
      ne[d] = static_cast<int64_t>(extent);
    }
    uint32_t ggml_type = 0;
    if (auto s = reader.Read(&ggml_type, t.name); !s.ok()) return s;
    auto dtype = DTypeFromGgml(ggml_type, t.name);
    if (!dtype.ok()) return dtype.status();
    t.dtype = *dtype;
    if (ne[0] % DTypeBlockElements(t.dtype) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: tensor '", t.name, "' row of ", ne[0],
          " elements is not a whole number of ", DTypeName(t.dtype),
          " blocks"));
    }
    t.num_bytes = static_cast<size_t>(num_elements /
                                      DTypeBlockElements(t.dtype) *
                                      DTypeBlockBytes(t.dtype));
    t.shape.assign(ne.rbegin(), ne.rend());
    if (auto s = reader.Read(&raw[i].offset, t.name); !s.ok()) return s;
    if (raw[i].offset % alignment_ != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: tensor '", t.name, "' offset ", raw[i].offset,
                       " is not aligned to ", alignment_));
    }
    if (!tensor_index_.emplace(t.name, i).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("GGUF: duplicate tensor '", t.name, "'"));
    }
  }

  const uint64_t data_start =
      (reader.offset() + alignment_ - 1) / alignment_ * alignment_;
  for (uint64_t i = 0; i < tensor_count; ++i) {
    HostTensor& t = tensors_[i];
    const uint64_t begin = data_start + raw[i].offset;
    if (begin < data_start || begin > file_->size() ||
        t.num_bytes > file_->size() - begin) {
      return absl::InvalidArgumentError(absl::StrCat(
          "GGUF: tensor '", t.name, "' (", t.num_bytes, " bytes at offset ",
          begin, ") extends past the end of the file (", file_->size(),
          " bytes)"));
    }
    t.data = file_->data() + begin;
  }
  return absl::OkStatus();
}

const GgufValue* GgufFile::Find(absl::string_view key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

const HostTensor* GgufFile::FindTensor(absl::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {
absl::StatusOr<const GgufValue*> FindOrNotFound(const GgufFile& file,
                                                absl::string_view key) {
  const GgufValue* value = file.Find(key);
  if (value == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("GGUF: metadata key '", key, "' is missing"));
  }
  return value;
}
}  // namespace

absl::StatusOr<std::string> GgufFile::GetString(absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  if ((*value)->type != GgufValueType::kString) {
    return TypeMismatch(key, **value, "string");
  }
  return (*value)->string_value;
}

absl::StatusOr<int64_t> GgufFile::GetInt(absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  if (!(*value)->is_integer()) return TypeMismatch(key, **value, "an integer");
  return (*value)->int_value;
}

absl::StatusOr<double> GgufFile::GetFloat(absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  if ((*value)->is_float()) return (*value)->float_value;
  if ((*value)->is_integer()) return static_cast<double>((*value)->int_value);
  return TypeMismatch(key, **value, "a number");
}

absl::StatusOr<bool> GgufFile::GetBool(absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  if ((*value)->type != GgufValueType::kBool) {
    return TypeMismatch(key, **value, "bool");
  }
  return (*value)->bool_value;
}

absl::StatusOr<std::vector<std::string>> GgufFile::GetStringArray(
    absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  if ((*value)->type != GgufValueType::kArray ||
      (*value)->array_type != GgufValueType::kString) {
    return TypeMismatch(key, **value, "array of strings");
  }
  std::vector<std::string> out;
  out.reserve((*value)->array.size());
  for (const GgufValue& v : (*value)->array) out.push_back(v.string_value);
  return out;
}

absl::StatusOr<std::vector<int64_t>> GgufFile::GetIntArray(
    absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  GgufValue probe;
  probe.type = (*value)->array_type;
  if ((*value)->type != GgufValueType::kArray || !probe.is_integer()) {
    return TypeMismatch(key, **value, "array of integers");
  }
  std::vector<int64_t> out;
  out.reserve((*value)->array.size());
  for (const GgufValue& v : (*value)->array) out.push_back(v.int_value);
  return out;
}

absl::StatusOr<std::vector<double>> GgufFile::GetFloatArray(
    absl::string_view key) const {
  auto value = FindOrNotFound(*this, key);
  if (!value.ok()) return value.status();
  GgufValue probe;
  probe.type = (*value)->array_type;
  if ((*value)->type != GgufValueType::kArray || !probe.is_float()) {
    return TypeMismatch(key, **value, "array of floats");
  }
  std::vector<double> out;
  out.reserve((*value)->array.size());
  for (const GgufValue& v : (*value)->array) out.push_back(v.float_value);
  return out;
}

}  // namespace weft
