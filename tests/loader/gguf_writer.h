// Test-only GGUF writer: builds GGUF v2/v3 bytes from a plain description,
// with hooks to break any field so that tests can make malformed files.
// Layout as in runtime/loader/gguf.h; everything is little-endian.
#ifndef WEFT_TESTS_LOADER_GGUF_WRITER_H_
#define WEFT_TESTS_LOADER_GGUF_WRITER_H_

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace weft::gguf_writer {

// GGML tensor type ids.
inline constexpr uint32_t kF32 = 0;
inline constexpr uint32_t kF16 = 1;
inline constexpr uint32_t kQ4_0 = 2;
inline constexpr uint32_t kQ4_1 = 3;
inline constexpr uint32_t kQ8_0 = 8;
inline constexpr uint32_t kBF16 = 30;

// GGUF metadata value type ids.
inline constexpr uint32_t kTypeUint8 = 0;
inline constexpr uint32_t kTypeInt8 = 1;
inline constexpr uint32_t kTypeUint16 = 2;
inline constexpr uint32_t kTypeInt16 = 3;
inline constexpr uint32_t kTypeUint32 = 4;
inline constexpr uint32_t kTypeInt32 = 5;
inline constexpr uint32_t kTypeFloat32 = 6;
inline constexpr uint32_t kTypeBool = 7;
inline constexpr uint32_t kTypeString = 8;
inline constexpr uint32_t kTypeArray = 9;
inline constexpr uint32_t kTypeUint64 = 10;
inline constexpr uint32_t kTypeInt64 = 11;
inline constexpr uint32_t kTypeFloat64 = 12;

template <typename T>
void Append(std::string& out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out.append(bytes, sizeof(T));
}

inline void AppendString(std::string& out, absl::string_view s) {
  Append<uint64_t>(out, s.size());
  out.append(s.data(), s.size());
}

// One metadata value as written after its key: the uint32 type tag, then
// `payload` (for an array: element type, count, elements without tags).
struct Value {
  uint32_t type;
  std::string payload;
};

template <typename T>
Value Scalar(uint32_t type, T v) {
  Value value{type, {}};
  Append(value.payload, v);
  return value;
}
inline Value U8(uint8_t v) { return Scalar(kTypeUint8, v); }
inline Value I8(int8_t v) { return Scalar(kTypeInt8, v); }
inline Value U16(uint16_t v) { return Scalar(kTypeUint16, v); }
inline Value I16(int16_t v) { return Scalar(kTypeInt16, v); }
inline Value U32(uint32_t v) { return Scalar(kTypeUint32, v); }
inline Value I32(int32_t v) { return Scalar(kTypeInt32, v); }
inline Value U64(uint64_t v) { return Scalar(kTypeUint64, v); }
inline Value I64(int64_t v) { return Scalar(kTypeInt64, v); }
inline Value F32(float v) { return Scalar(kTypeFloat32, v); }
inline Value F64(double v) { return Scalar(kTypeFloat64, v); }
inline Value Bool(bool v) { return Scalar(kTypeBool, uint8_t{v}); }
inline Value Str(absl::string_view s) {
  Value value{kTypeString, {}};
  AppendString(value.payload, s);
  return value;
}
// Every element must have type `element_type`.
inline Value Array(uint32_t element_type, const std::vector<Value>& elements) {
  Value value{kTypeArray, {}};
  Append<uint32_t>(value.payload, element_type);
  Append<uint64_t>(value.payload, elements.size());
  for (const Value& e : elements) value.payload += e.payload;
  return value;
}
// An array of strings (a vocabulary's tokens, its merges).
inline Value Strings(const std::vector<std::string>& values) {
  std::vector<Value> elements;
  for (const std::string& v : values) elements.push_back(Str(v));
  return Array(kTypeString, elements);
}
// An array header claiming `count` elements followed by `elements` bytes.
inline Value RawArray(uint32_t element_type, uint64_t count,
                      std::string elements = {}) {
  Value value{kTypeArray, {}};
  Append<uint32_t>(value.payload, element_type);
  Append<uint64_t>(value.payload, count);
  value.payload += elements;
  return value;
}

struct Tensor {
  Tensor(std::string name, std::vector<uint64_t> ne, uint32_t ggml_type,
         std::string data, std::optional<uint64_t> offset = std::nullopt)
      : name(std::move(name)),
        ne(std::move(ne)),
        ggml_type(ggml_type),
        data(std::move(data)),
        offset(offset) {}

  std::string name;
  std::vector<uint64_t> ne;  // innermost first, as GGUF stores it
  uint32_t ggml_type = kF32;
  std::string data;
  // When set, written as the tensor's offset and its data is not written;
  // otherwise the data is placed at the next aligned offset.
  std::optional<uint64_t> offset;
};

struct File {
  uint32_t version = 3;
  std::vector<std::pair<std::string, Value>> metadata;
  std::vector<Tensor> tensors;
  // Data layout alignment; add "general.alignment" to metadata yourself to
  // tell the reader (SetAlignment does both).
  uint64_t alignment = 32;
  std::optional<uint64_t> tensor_count;  // overrides tensors.size()
  std::optional<uint64_t> kv_count;      // overrides metadata.size()
  std::string magic = "GGUF";

  void SetAlignment(uint32_t bytes) {
    alignment = bytes;
    metadata.emplace_back("general.alignment", U32(bytes));
  }
};

struct Serialized {
  std::string bytes;
  uint64_t data_start = 0;             // file offset of the data section
  std::vector<uint64_t> data_offsets;  // per tensor, relative to data_start
};

inline uint64_t AlignUp(uint64_t n, uint64_t alignment) {
  return (n + alignment - 1) / alignment * alignment;
}

inline Serialized Serialize(const File& file) {
  Serialized out;
  std::string& b = out.bytes;
  b += file.magic;
  Append<uint32_t>(b, file.version);
  Append<uint64_t>(b, file.tensor_count.value_or(file.tensors.size()));
  Append<uint64_t>(b, file.kv_count.value_or(file.metadata.size()));
  for (const auto& [key, value] : file.metadata) {
    AppendString(b, key);
    Append<uint32_t>(b, value.type);
    b += value.payload;
  }
  uint64_t next = 0;
  for (const Tensor& t : file.tensors) {
    if (t.offset.has_value()) {
      out.data_offsets.push_back(*t.offset);
    } else {
      out.data_offsets.push_back(next);
      next = AlignUp(next + t.data.size(), file.alignment);
    }
  }
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const Tensor& t = file.tensors[i];
    AppendString(b, t.name);
    Append<uint32_t>(b, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t extent : t.ne) Append<uint64_t>(b, extent);
    Append<uint32_t>(b, t.ggml_type);
    Append<uint64_t>(b, out.data_offsets[i]);
  }
  out.data_start = AlignUp(b.size(), file.alignment);
  b.resize(out.data_start, '\0');
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const Tensor& t = file.tensors[i];
    if (t.offset.has_value()) continue;
    const uint64_t at = out.data_start + out.data_offsets[i];
    if (b.size() < at + t.data.size()) b.resize(at + t.data.size(), '\0');
    b.replace(at, t.data.size(), t.data);
  }
  return out;
}

// `num_bytes` bytes of a recognisable pattern, distinct per `seed`.
inline std::string PatternBytes(size_t num_bytes, int seed) {
  std::string bytes(num_bytes, '\0');
  for (size_t i = 0; i < num_bytes; ++i) {
    bytes[i] = static_cast<char>((i * 7 + seed * 31 + 1) & 0xff);
  }
  return bytes;
}

}  // namespace weft::gguf_writer

#endif  // WEFT_TESTS_LOADER_GGUF_WRITER_H_
