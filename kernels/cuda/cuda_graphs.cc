// CudaBackend's CUDA graphs: stream capture of a step's ops on the
// backend's one stream, instantiation, replay. The graph-staged batch (see
// CudaBackend::StageBatchForGraph) is what makes a replay valid for any
// batch of the captured sizes.
#include <cuda_runtime.h>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend.h"
#include "kernels/cuda/cuda_status.h"

namespace weft {

int CudaBackend::NumGraphVariants() const {
  return config_.split_chunk_tokens > 0 && config_.max_decode_splits > 1 ? 2
                                                                          : 1;
}

absl::Status CudaBackend::CheckNoGraphs(absl::string_view what) const {
  if (graphs_.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, " after CUDA graphs were captured would free memory they use"));
}

GraphStagedSizes CudaBackend::StagedSizes() const {
  return GraphStagedSizes{staged_.view.num_tokens, staged_.view.num_seqs,
                          staged_.view.num_logits, staged_.num_decode_items,
                          staged_.num_prefill_tiles};
}

absl::Status CudaBackend::CheckGraphStaged(absl::string_view op) const {
  if (staged_.view.token_ids == nullptr || !staged_.for_graph) {
    return absl::FailedPreconditionError(absl::StrCat(
        op, ": the batch staged last was not staged by StageBatchForGraph"));
  }
  return absl::OkStatus();
}

absl::Status CudaBackend::BeginCapture() {
  if (capturing_) {
    return absl::FailedPreconditionError("BeginCapture: already capturing");
  }
  WEFT_RETURN_IF_ERROR_STATUS(CheckGraphStaged("BeginCapture"));
  WEFT_CUDA_RETURN_IF_ERROR(cudaSetDevice(config_.device));
  // Thread-local mode: an unsafe call (a synchronization, an allocation)
  // made by this thread while capturing fails instead of being recorded.
  WEFT_CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(
      static_cast<cudaStream_t>(stream_), cudaStreamCaptureModeThreadLocal));
  capturing_ = true;
  return absl::OkStatus();
}

absl::Status CudaBackend::EndCapture(int key) {
  if (!capturing_) {
    return absl::FailedPreconditionError("EndCapture without BeginCapture");
  }
  capturing_ = false;
  cudaGraph_t graph = nullptr;
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaStreamEndCapture(static_cast<cudaStream_t>(stream_), &graph));
  if (key < 0) {
    if (graph != nullptr) cudaGraphDestroy(graph);
    return absl::OkStatus();
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  WEFT_CUDA_RETURN_IF_ERROR(instantiated);
  const int slot = key * 2 + staged_variant_;
  if (auto it = graphs_.find(slot); it != graphs_.end()) {
    cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(it->second.exec));
  }
  graphs_[slot] = CapturedGraph{exec, StagedSizes()};
  return absl::OkStatus();
}

absl::Status CudaBackend::Replay(int key) {
  WEFT_RETURN_IF_ERROR_STATUS(CheckGraphStaged("Replay"));
  const int slot = key * 2 + staged_variant_;
  auto it = graphs_.find(slot);
  if (it == graphs_.end()) {
    return absl::NotFoundError(absl::StrCat("no CUDA graph ", key, " variant ",
                                            staged_variant_));
  }
  // The graph's launches cover the sizes it was captured with; on another
  // batch they would read stale staging entries (and write K/V to stale
  // slots, which may belong to live sequences).
  const GraphStagedSizes& captured = it->second.sizes;
  const GraphStagedSizes staged = StagedSizes();
  if (captured != staged) {
    return absl::FailedPreconditionError(absl::StrCat(
        "Replay: CUDA graph ", key, " was captured for ", captured.num_tokens,
        " tokens, ", captured.num_seqs, " sequences, ", captured.num_logits,
        " logits rows, ", captured.num_decode_items, " decode items and ",
        captured.num_prefill_tiles, " prefill tiles; the staged batch has ",
        staged.num_tokens, ", ", staged.num_seqs, ", ", staged.num_logits, ", ",
        staged.num_decode_items, " and ", staged.num_prefill_tiles));
  }
  WEFT_CUDA_RETURN_IF_ERROR(
      cudaGraphLaunch(static_cast<cudaGraphExec_t>(it->second.exec),
                      static_cast<cudaStream_t>(stream_)));
  return absl::OkStatus();
}

}  // namespace weft
