// Hugging Face safetensors reader over read-only mmaps.
//
// A model directory holds either `model.safetensors` or the shards named by
// `model.safetensors.index.json` ({"weight_map": {tensor: shard file}}); when
// both exist the single file wins, as in transformers. Each file is:
//   uint64 little-endian N, N bytes of JSON header, then the data buffer.
//   header = {name: {"dtype": "F32", "shape": [d0, d1, ...],
//                    "data_offsets": [begin, end]}, ...,
//             "__metadata__": {string: string}}   (metadata optional)
// Offsets are relative to the start of the data buffer; shapes are
// outermost first, as HostTensor wants them.
//
// Validation follows the reference implementation: the header length is
// checked against the file size (and a 100 MB cap), duplicate JSON keys are
// rejected, every tensor's byte range must match its shape and dtype, and the
// tensors must tile the data buffer exactly (no overlap, no hole). With an
// index, the model's tensors are exactly those the index lists, each taken
// from its shard; a shard may hold others, which are ignored.
//
// Errors: NotFound for a missing file or shard; Unimplemented for a dtype
// other than F32, F16 and BF16; InvalidArgument for anything malformed. Each
// message names the file and, where there is one, the tensor.
//
// Tensor data is used in place. A writer that does not pad the header to a
// multiple of 8 bytes (the safetensors library does) leaves data unaligned,
// so readers copy elements with memcpy rather than casting the pointer.
#ifndef WEFT_RUNTIME_LOADER_SAFETENSORS_H_
#define WEFT_RUNTIME_LOADER_SAFETENSORS_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/loader/host_tensor.h"
#include "runtime/loader/mapped_file.h"

namespace weft {

class SafetensorsModel {
 public:
  static absl::StatusOr<std::unique_ptr<SafetensorsModel>> Open(
      const std::string& model_dir);

  // Ordered by shard file name, then by position in the shard.
  const std::vector<HostTensor>& tensors() const { return tensors_; }
  // nullptr when absent.
  const HostTensor* FindTensor(absl::string_view name) const;

 private:
  SafetensorsModel() = default;
  absl::Status OpenSingle(const std::string& path);
  absl::Status OpenSharded(const std::string& model_dir,
                           const std::string& index_path);
  absl::Status AddTensor(HostTensor tensor);

  std::vector<std::unique_ptr<MappedFile>> files_;  // one per file, mmapped once
  std::vector<HostTensor> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace weft

#endif  // WEFT_RUNTIME_LOADER_SAFETENSORS_H_
