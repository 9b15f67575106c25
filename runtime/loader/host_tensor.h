// A tensor as it lies in a mapped model file (GGUF or safetensors).
#ifndef WEFT_RUNTIME_LOADER_HOST_TENSOR_H_
#define WEFT_RUNTIME_LOADER_HOST_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/dtype.h"

namespace weft {

struct HostTensor {
  std::string name;
  DType dtype = DType::kF32;
  // Outermost dimension first (PyTorch order); the last dimension is
  // contiguous. A GGUF tensor's ne[] is stored innermost first and is
  // reversed into this order when the file is read.
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into a mapping owned by the file object
  size_t num_bytes = 0;

  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

}  // namespace weft

#endif  // WEFT_RUNTIME_LOADER_HOST_TENSOR_H_
