// GGUF (versions 2 and 3) reader over a read-only mmap.
//
// File layout (little-endian):
//   magic "GGUF", uint32 version, uint64 tensor_count, uint64 kv_count
//   kv_count × { string key, uint32 value_type, value }
//   tensor_count × { string name, uint32 n_dims, uint64 ne[n_dims],
//                    uint32 ggml_type, uint64 offset }
//   padding to `general.alignment` (default 32), then the tensor data;
//   each tensor's offset is relative to the start of the data section and
//   a multiple of the alignment.
// A string is uint64 length + bytes (no terminator); an array is uint32
// element type + uint64 count + elements.
//
// Every count, length and offset is checked against the file size before it
// is used, so a truncated or hostile file yields an error naming the
// problem: InvalidArgument for a malformed file, Unimplemented for a tensor
// type weft does not support.
#ifndef WEFT_RUNTIME_LOADER_GGUF_H_
#define WEFT_RUNTIME_LOADER_GGUF_H_

#include <cstdint>
#include <memory>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "runtime/loader/host_tensor.h"
#include "runtime/loader/mapped_file.h"

namespace weft {

enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

absl::string_view GgufValueTypeName(GgufValueType type);

// One metadata value. Integers of every width are held in `int_value`
// (uint64 values above INT64_MAX are rejected when read), floats in
// `float_value`.
struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  int64_t int_value = 0;
  double float_value = 0;
  bool bool_value = false;
  std::string string_value;
  GgufValueType array_type = GgufValueType::kUint8;  // when type == kArray
  std::vector<GgufValue> array;                      // when type == kArray

  bool is_integer() const;
  bool is_float() const {
    return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64;
  }
};

class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(
      const std::string& path);

  uint32_t version() const { return version_; }
  const std::string& path() const { return file_->path(); }
  uint64_t alignment() const { return alignment_; }

  // nullptr when absent.
  const GgufValue* Find(absl::string_view key) const;
  const absl::flat_hash_map<std::string, GgufValue>& metadata() const {
    return metadata_;
  }

  // Typed getters: NotFound when absent, InvalidArgument on a type mismatch
  // (naming the key and both types).
  absl::StatusOr<std::string> GetString(absl::string_view key) const;
  absl::StatusOr<int64_t> GetInt(absl::string_view key) const;  // any int type
  absl::StatusOr<double> GetFloat(absl::string_view key) const;  // f32/f64/int
  absl::StatusOr<bool> GetBool(absl::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(
      absl::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(absl::string_view key) const;
  absl::StatusOr<std::vector<double>> GetFloatArray(
      absl::string_view key) const;

  const std::vector<HostTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const HostTensor* FindTensor(absl::string_view name) const;

 private:
  explicit GgufFile(std::unique_ptr<MappedFile> file)
      : file_(std::move(file)) {}
  absl::Status Parse();

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  absl::flat_hash_map<std::string, GgufValue> metadata_;
  std::vector<HostTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_LOADER_GGUF_H_
