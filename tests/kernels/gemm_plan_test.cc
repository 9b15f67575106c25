// The GEMM autotune's selection logic (kernels/gemm_plan.h), on the CPU: row
// buckets, the choice among timed trials, and the plan's lookups.
#include "kernels/gemm_plan.h"

#include <vector>

#include "gtest/gtest.h"

namespace weft {
namespace {

GemmTrial Trial(GemmKernelId id, double us, bool matches = true,
                absl::Status status = absl::OkStatus()) {
  GemmTrial t;
  t.kernel = id;
  t.median_us = us;
  t.matches = matches;
  t.status = status;
  return t;
}

TEST(ParseGemmPolicyTest, AcceptsTheFourNamesOnly) {
  EXPECT_EQ(*ParseGemmPolicy("autotune"), GemmPolicy::kAutotune);
  EXPECT_EQ(*ParseGemmPolicy("cublas"), GemmPolicy::kCublas);
  EXPECT_EQ(*ParseGemmPolicy("own"), GemmPolicy::kOwn);
  EXPECT_EQ(*ParseGemmPolicy("invariant"), GemmPolicy::kInvariant);
  EXPECT_EQ(ParseGemmPolicy("fast").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// What CudaBackend::GemmKernelFor runs: the policy's kernel where ours can
// run the operands, else cuBLAS.
TEST(PickGemmKernelTest, EachPolicyPicksItsKernelAndFallsBackToCublas) {
  auto all = [](GemmKernelId) { return true; };
  auto none = [](GemmKernelId) { return false; };
  auto no_skinny = [](GemmKernelId id) { return id != GemmKernelId::kSkinny; };
  const GemmKernelId tuned = GemmKernelId::kTiled64x128;
  for (int64_t n : {1, 16, 17, 64, 65, 4096}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kCublas, n, tuned, all), GemmKernelId::kCublas);
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kAutotune, n, tuned, all), tuned);
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kAutotune, n, GemmKernelId::kCublas, all),
              GemmKernelId::kCublas);
    // Batch invariance: one fixed-tile kernel whatever the row count.
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kInvariant, n, tuned, all),
              GemmKernelId::kTiled128x128);
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kInvariant, n, tuned, no_skinny),
              GemmKernelId::kTiled128x128);
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kOwn, n, tuned, all),
              n <= kSkinnyGemmMaxRows ? GemmKernelId::kSkinny
                                      : GemmKernelId::kTiled128x128);
    EXPECT_EQ(PickGemmKernel(GemmPolicy::kOwn, n, tuned, no_skinny),
              GemmKernelId::kTiled128x128);
    for (GemmPolicy policy : {GemmPolicy::kAutotune, GemmPolicy::kOwn,
                              GemmPolicy::kInvariant}) {
      EXPECT_EQ(PickGemmKernel(policy, n, tuned, none), GemmKernelId::kCublas);
    }
  }
}

TEST(W4UsesSlicesTest, UpTo64RowsExceptWhenInvariant) {
  for (GemmPolicy policy : {GemmPolicy::kAutotune, GemmPolicy::kCublas,
                            GemmPolicy::kOwn}) {
    EXPECT_TRUE(W4UsesSlices(policy, 1));
    EXPECT_TRUE(W4UsesSlices(policy, kW4SliceMaxRows));
    EXPECT_FALSE(W4UsesSlices(policy, kW4SliceMaxRows + 1));
  }
  for (int64_t n : {1, 16, 64, 65, 512}) {
    EXPECT_FALSE(W4UsesSlices(GemmPolicy::kInvariant, n)) << n;
  }
}

TEST(GemmRowBucketTest, RoundsUpToAPowerOfTwo) {
  EXPECT_EQ(GemmRowBucket(1), 1);
  EXPECT_EQ(GemmRowBucket(2), 2);
  EXPECT_EQ(GemmRowBucket(3), 4);
  EXPECT_EQ(GemmRowBucket(32), 32);
  EXPECT_EQ(GemmRowBucket(33), 64);
  EXPECT_EQ(GemmRowBucket(8191), 8192);
}

TEST(GemmRowBucketTest, TunedBucketsRunFromOneToTheMaxRowsBucket) {
  EXPECT_EQ(GemmTunedBuckets(64),
            (std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64}));
  EXPECT_EQ(GemmTunedBuckets(50),
            (std::vector<int64_t>{1, 2, 4, 8, 16, 32, 64}));
  EXPECT_EQ(GemmTunedBuckets(1), (std::vector<int64_t>{1}));
  EXPECT_TRUE(GemmTunedBuckets(0).empty());
}

TEST(GemmCandidatesTest, OnlyTheTwoWgmmaKernelsAreHopperOnly) {
  int hopper_only = 0;
  for (GemmKernelId id : kOwnGemmKernels) hopper_only += IsWgmmaGemm(id);
  EXPECT_EQ(hopper_only, 2);
  EXPECT_TRUE(IsWgmmaGemm(GemmKernelId::kWgmma128x256));
  EXPECT_TRUE(IsWgmmaGemm(GemmKernelId::kWgmma128x128));
  EXPECT_FALSE(IsWgmmaGemm(GemmKernelId::kTiled128x256));
  EXPECT_FALSE(IsWgmmaGemm(GemmKernelId::kCublas));
}

TEST(GemmCandidatesTest, SkinnyUpToSixteenRowsTiledAbove) {
  for (int64_t bucket : {1, 2, 4, 8, 16}) {
    ASSERT_EQ(GemmCandidates(bucket).size(), 1u);
    EXPECT_EQ(GemmCandidates(bucket)[0], GemmKernelId::kSkinny);
  }
  for (int64_t bucket : {32, 64, 4096}) {
    EXPECT_EQ(GemmCandidates(bucket).size(), std::size(kOwnGemmKernels));
    for (GemmKernelId id : GemmCandidates(bucket)) {
      EXPECT_NE(id, GemmKernelId::kSkinny);
    }
  }
}

TEST(ChooseGemmKernelTest, PicksTheFastestMatchingKernel) {
  const std::vector<GemmTrial> trials = {
      Trial(GemmKernelId::kCublas, 100), Trial(GemmKernelId::kTiled128x128, 80),
      Trial(GemmKernelId::kTiled128x64, 70), Trial(GemmKernelId::kTiled64x64, 90)};
  EXPECT_EQ(ChooseGemmKernel(trials, 1.03), GemmKernelId::kTiled128x64);
}

TEST(ChooseGemmKernelTest, NeverPicksAKernelWhoseOutputDiffered) {
  const std::vector<GemmTrial> trials = {
      Trial(GemmKernelId::kCublas, 100),
      Trial(GemmKernelId::kTiled128x128, 10, /*matches=*/false),
      Trial(GemmKernelId::kTiled64x64, 90)};
  EXPECT_EQ(ChooseGemmKernel(trials, 1.0), GemmKernelId::kTiled64x64);
}

TEST(ChooseGemmKernelTest, NeverPicksAKernelThatFailed) {
  const std::vector<GemmTrial> trials = {
      Trial(GemmKernelId::kCublas, 100),
      Trial(GemmKernelId::kTiled128x128, 10, true,
            absl::InternalError("launch failed"))};
  EXPECT_EQ(ChooseGemmKernel(trials, 1.0), GemmKernelId::kCublas);
}

TEST(ChooseGemmKernelTest, KeepsCublasUnlessOursIsFasterByTheMargin) {
  const std::vector<GemmTrial> trials = {
      Trial(GemmKernelId::kCublas, 100),
      Trial(GemmKernelId::kTiled128x128, 98)};
  EXPECT_EQ(ChooseGemmKernel(trials, 1.03), GemmKernelId::kCublas);
  EXPECT_EQ(ChooseGemmKernel(trials, 1.0), GemmKernelId::kTiled128x128);
}

TEST(ChooseGemmKernelTest, KeepsCublasWithoutACublasTime) {
  const std::vector<GemmTrial> trials = {
      Trial(GemmKernelId::kCublas, 0, true, absl::InternalError("no")),
      Trial(GemmKernelId::kTiled128x128, 10)};
  EXPECT_EQ(ChooseGemmKernel(trials, 1.0), GemmKernelId::kCublas);
  EXPECT_EQ(ChooseGemmKernel({}, 1.0), GemmKernelId::kCublas);
}

TEST(GemmPlanTest, LooksUpByShapeAndRowBucket) {
  GemmPlan plan;
  EXPECT_TRUE(plan.empty());
  plan.Set(4096, 4096, 64, GemmKernelId::kTiled128x64, 1.1);
  plan.Set(4096, 4096, 128, GemmKernelId::kTiled128x128, 1.2);
  EXPECT_FALSE(plan.empty());
  EXPECT_EQ(plan.Lookup(4096, 4096, 33), GemmKernelId::kTiled128x64);
  EXPECT_EQ(plan.Lookup(4096, 4096, 64), GemmKernelId::kTiled128x64);
  EXPECT_EQ(plan.Lookup(4096, 4096, 65), GemmKernelId::kTiled128x128);
  // Untuned buckets and shapes run on cuBLAS.
  EXPECT_EQ(plan.Lookup(4096, 4096, 16), GemmKernelId::kCublas);
  EXPECT_EQ(plan.Lookup(4096, 4096, 129), GemmKernelId::kCublas);
  EXPECT_EQ(plan.Lookup(1024, 4096, 64), GemmKernelId::kCublas);
}

TEST(GemmPlanTest, SummaryListsEveryShapeInOrderWithSpeedups) {
  GemmPlan plan;
  plan.Set(4096, 4096, 64, GemmKernelId::kTiled128x64, 1.1);
  plan.Set(4096, 4096, 32, GemmKernelId::kCublas, 1.0);
  plan.Set(1024, 4096, 32, GemmKernelId::kTiled64x64, 1.25);
  EXPECT_EQ(plan.Summary(),
            "gemm 1024x4096: 32:64x64(1.25x)\n"
            "gemm 4096x4096: 32:cublas 64:128x64(1.10x)\n");
}

}  // namespace
}  // namespace weft
