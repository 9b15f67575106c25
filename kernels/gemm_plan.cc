#include "kernels/gemm_plan.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace weft {

absl::string_view GemmKernelName(GemmKernelId id) {
  switch (id) {
    case GemmKernelId::kCublas:
      return "cublas";
    case GemmKernelId::kTiled128x128:
      return "128x128";
    case GemmKernelId::kTiled128x64:
      return "128x64";
    case GemmKernelId::kTiled64x128:
      return "64x128";
    case GemmKernelId::kTiled64x64:
      return "64x64";
    case GemmKernelId::kTiled128x256:
      return "128x256";
    case GemmKernelId::kTiled256x128:
      return "256x128";
    case GemmKernelId::kSkinny:
      return "skinny";
    case GemmKernelId::kWgmma128x256:
      return "wgmma128x256";
    case GemmKernelId::kWgmma128x128:
      return "wgmma128x128";
  }
  return "?";
}

absl::StatusOr<GemmPolicy> ParseGemmPolicy(absl::string_view name) {
  if (name == "autotune") return GemmPolicy::kAutotune;
  if (name == "cublas") return GemmPolicy::kCublas;
  if (name == "own") return GemmPolicy::kOwn;
  if (name == "invariant") return GemmPolicy::kInvariant;
  return absl::InvalidArgumentError(absl::StrCat(
      "--gemm must be autotune, cublas, own or invariant, not '", name, "'"));
}

GemmKernelId PickGemmKernel(GemmPolicy policy, int64_t n, GemmKernelId tuned,
                            absl::FunctionRef<bool(GemmKernelId)> supports) {
  GemmKernelId id = GemmKernelId::kCublas;
  switch (policy) {
    case GemmPolicy::kCublas:
      return GemmKernelId::kCublas;
    case GemmPolicy::kOwn:
      id = n <= kSkinnyGemmMaxRows && supports(GemmKernelId::kSkinny)
               ? GemmKernelId::kSkinny
               : GemmKernelId::kTiled128x128;
      break;
    case GemmPolicy::kAutotune:
      id = tuned;
      break;
    case GemmPolicy::kInvariant:
      id = GemmKernelId::kTiled128x128;
      break;
  }
  return id != GemmKernelId::kCublas && !supports(id) ? GemmKernelId::kCublas
                                                      : id;
}

bool W4UsesSlices(GemmPolicy policy, int64_t n) {
  return n <= kW4SliceMaxRows && policy != GemmPolicy::kInvariant;
}

int64_t GemmRowBucket(int64_t n) {
  int64_t bucket = 1;
  while (bucket < n) bucket *= 2;
  return bucket;
}

std::vector<int64_t> GemmTunedBuckets(int64_t max_rows) {
  std::vector<int64_t> buckets;
  if (max_rows < 1) return buckets;
  const int64_t last = GemmRowBucket(max_rows);
  for (int64_t b = 1; b <= last; b *= 2) buckets.push_back(b);
  return buckets;
}

absl::Span<const GemmKernelId> GemmCandidates(int64_t bucket) {
  static constexpr GemmKernelId kSkinnyOnly[] = {GemmKernelId::kSkinny};
  if (bucket <= kSkinnyGemmMaxRows) return kSkinnyOnly;
  return kOwnGemmKernels;
}

GemmKernelId ChooseGemmKernel(absl::Span<const GemmTrial> trials,
                              double min_speedup) {
  double cublas_us = -1;
  for (const GemmTrial& t : trials) {
    if (t.kernel == GemmKernelId::kCublas && t.status.ok() && t.median_us > 0) {
      cublas_us = t.median_us;
    }
  }
  GemmKernelId best = GemmKernelId::kCublas;
  // Without a cuBLAS time there is nothing to beat: keep cuBLAS, the one
  // every result is checked against.
  if (cublas_us <= 0) return best;
  double best_us = cublas_us / min_speedup;
  for (const GemmTrial& t : trials) {
    if (t.kernel == GemmKernelId::kCublas || !t.status.ok() || !t.matches ||
        t.median_us <= 0) {
      continue;
    }
    if (t.median_us < best_us) {
      best_us = t.median_us;
      best = t.kernel;
    }
  }
  return best;
}

void GemmPlan::Set(int64_t m, int64_t k, int64_t bucket, GemmKernelId kernel,
                   double speedup_vs_cublas) {
  choices_[Key{m, k, bucket}] = Choice{kernel, speedup_vs_cublas};
}

GemmKernelId GemmPlan::Lookup(int64_t m, int64_t k, int64_t n) const {
  auto it = choices_.find(Key{m, k, GemmRowBucket(n)});
  return it == choices_.end() ? GemmKernelId::kCublas : it->second.kernel;
}

std::string GemmPlan::Summary() const {
  // Sorted by shape, then bucket, so the log reads the same every run.
  std::map<std::pair<int64_t, int64_t>, std::map<int64_t, Choice>> by_shape;
  for (const auto& [key, choice] : choices_) {
    by_shape[{key.m, key.k}][key.bucket] = choice;
  }
  std::string out;
  for (const auto& [shape, buckets] : by_shape) {
    absl::StrAppend(&out, "gemm ", shape.first, "x", shape.second, ":");
    for (const auto& [bucket, choice] : buckets) {
      absl::StrAppend(&out, " ", bucket, ":", GemmKernelName(choice.kernel));
      if (choice.kernel != GemmKernelId::kCublas) {
        absl::StrAppend(&out, absl::StrFormat("(%.2fx)", choice.speedup));
      }
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

}  // namespace weft
