// Zero-filled anonymous memory aligned to 2 MiB and advised MADV_HUGEPAGE
// (best effort: where transparent huge pages are off it is ordinary
// memory). For the CPU backend's packed weights and KV cache: a decode
// streams every weight once per token and reads each sequence's K/V rows
// from blocks scattered over the cache, and with 4 KiB pages those streams
// miss the TLB every 4 KiB.
#ifndef WEFT_KERNELS_CPU_HUGE_PAGE_BUFFER_H_
#define WEFT_KERNELS_CPU_HUGE_PAGE_BUFFER_H_

#include <sys/mman.h>

#include <cstddef>
#include <cstdint>

namespace weft {

class HugePageBuffer {
 public:
  explicit HugePageBuffer(int64_t bytes) {
    constexpr size_t kHuge = size_t{2} << 20;
    length_ = static_cast<size_t>(bytes) + kHuge;
    void* p = mmap(nullptr, length_, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;  // data() == nullptr
    base_ = static_cast<uint8_t*>(p);
    const uintptr_t addr = reinterpret_cast<uintptr_t>(base_);
    data_ = base_ + ((kHuge - addr % kHuge) % kHuge);
    madvise(data_, static_cast<size_t>(bytes), MADV_HUGEPAGE);
  }
  ~HugePageBuffer() {
    if (base_ != nullptr) munmap(base_, length_);
  }
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  // nullptr when the mapping failed.
  uint8_t* data() const { return data_; }

 private:
  uint8_t* base_ = nullptr;
  uint8_t* data_ = nullptr;
  size_t length_ = 0;
};

}  // namespace weft

#endif  // WEFT_KERNELS_CPU_HUGE_PAGE_BUFFER_H_
