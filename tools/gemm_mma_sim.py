# A lane-level emulation of kernels/cuda/gemm_bf16.cu: the block → tile
# grouping, the cp.async stage ring with its swizzled 16-byte chunks,
# ldmatrix.x4 from each lane's row address, mma.sync m16n8k16 from the PTX
# ISA fragment tables and the epilogue's stores (and that each ldmatrix is
# free of bank conflicts), for every tile
# configuration on shapes with ragged edges; checked against x @ w.T. It
# checks the kernel's index logic on a machine without a GPU (not the CUDA
# code itself: keep the two in step when either changes).
#   python3 tools/gemm_mma_sim.py     (numpy; about a minute)
import numpy as np

K_TILE = 32
CHUNKS = K_TILE // 8
GROUP_ROWS = 8
CONFIGS = {  # name: (block_rows, block_cols, warps_r, warps_c, stages)
    "128x128": (128, 128, 2, 4, 4),
    "128x64": (128, 64, 2, 2, 4),
    "64x128": (64, 128, 2, 2, 4),
    "64x64": (64, 64, 2, 2, 4),
    "128x256": (128, 256, 2, 4, 3),
    "256x128": (256, 128, 4, 2, 3),
}


def swizzle(row, chunk):
    return chunk ^ ((row >> 1) & 3)


def load_stage(stage, src, first, limit, k, k0, rows):
    # stage: [rows * CHUNKS, 8] array of 16-byte chunks
    for c in range(rows * CHUNKS):
        r, ch = divmod(c, CHUNKS)
        gk = k0 + ch * 8
        valid = first + r < limit and gk < k
        stage[r * CHUNKS + swizzle(r, ch)] = src[first + r, gk:gk + 8] if valid else 0


def ldmatrix_x4(smem, lane_chunk):
    # lane_chunk[l]: chunk index lane l points at; matrix i's rows come from
    # lanes 8i..8i+7; thread t gets row t // 4, elements 2(t % 4), 2(t % 4)+1.
    regs = [[None] * 4 for _ in range(32)]
    for i in range(4):
        # The swizzle's point: one matrix's 8 rows in 8 different 16-byte
        # bank groups (128 bytes = 8 chunks), so no bank conflict.
        assert len({lane_chunk[8 * i + j] % 8 for j in range(8)}) == 8
        rows = [smem[lane_chunk[8 * i + j]] for j in range(8)]
        for t in range(32):
            regs[t][i] = (rows[t // 4][2 * (t % 4)], rows[t // 4][2 * (t % 4) + 1])
    return regs


def mma(acc, a, b0, b1):
    # acc[lane] = 4 floats; a[lane] = 4 pairs; b0[lane], b1[lane] = pairs.
    A = np.full((16, 16), np.nan)
    B = np.full((16, 8), np.nan)
    C = np.zeros((16, 8))
    for lane in range(32):
        g, c = lane >> 2, lane & 3
        A[g, 2 * c:2 * c + 2] = a[lane][0]
        A[g + 8, 2 * c:2 * c + 2] = a[lane][1]
        A[g, 2 * c + 8:2 * c + 10] = a[lane][2]
        A[g + 8, 2 * c + 8:2 * c + 10] = a[lane][3]
        B[2 * c:2 * c + 2, g] = b0[lane]
        B[2 * c + 8:2 * c + 10, g] = b1[lane]
        C[g, 2 * c:2 * c + 2] = acc[lane][0:2]
        C[g + 8, 2 * c:2 * c + 2] = acc[lane][2:4]
    assert not np.isnan(A).any() and not np.isnan(B).any()
    D = A @ B + C
    for lane in range(32):
        g, c = lane >> 2, lane & 3
        acc[lane] = [D[g, 2 * c], D[g, 2 * c + 1], D[g + 8, 2 * c], D[g + 8, 2 * c + 1]]


def gemm(config, x, w, ldy):
    br, bc, wr, wc, stages = CONFIGS[config]
    n, k = x.shape
    m = w.shape[0]
    warp_rows, warp_cols = br // wr, bc // wc
    frags_r, frags_c = warp_rows // 16, warp_cols // 8
    y = np.full((n, ldy), np.nan)
    tiles_r, tiles_c = -(-n // br), -(-m // bc)
    seen = set()
    for bid in range(tiles_r * tiles_c):
        per_group = GROUP_ROWS * tiles_c
        first_r = bid // per_group * GROUP_ROWS
        group_rows = min(tiles_r - first_r, GROUP_ROWS)
        in_group = bid % per_group
        row0 = (first_r + in_group % group_rows) * br
        col0 = in_group // group_rows * bc
        assert (row0, col0) not in seen
        seen.add((row0, col0))
        num_k_tiles = -(-k // K_TILE)
        sx = np.full((stages, br * CHUNKS, 8), np.nan)
        sw = np.full((stages, bc * CHUNKS, 8), np.nan)
        holds = [None] * stages  # which k tile each stage holds

        def load(stage, kt):
            load_stage(sx[stage], x, row0, n, k, kt * K_TILE, br)
            load_stage(sw[stage], w, col0, m, k, kt * K_TILE, bc)
            holds[stage] = kt

        acc = {(wi, fr, fc): [[0.0] * 4 for _ in range(32)]
               for wi in range(wr * wc) for fr in range(frags_r) for fc in range(frags_c)}
        for s in range(stages - 1):
            if s < num_k_tiles:
                load(s, s)
        for kt in range(num_k_tiles):
            nxt = kt + stages - 1
            if nxt < num_k_tiles:
                assert nxt % stages != kt % stages
                load(nxt % stages, nxt)
            cur = kt % stages
            assert holds[cur] == kt
            for warp in range(wr * wc):
                warp_row0 = warp // wc * warp_rows
                warp_col0 = warp % wc * warp_cols
                for ks in range(K_TILE // 16):
                    a = []
                    for fr in range(frags_r):
                        addr = []
                        for lane in range(32):
                            r = warp_row0 + fr * 16 + (lane & 15)
                            ch = ks * 2 + (lane >> 4)
                            addr.append(r * CHUNKS + swizzle(r, ch))
                        a.append(ldmatrix_x4(sx[cur], addr))
                    b = [None] * frags_c
                    for fc in range(0, frags_c, 2):
                        addr = []
                        for lane in range(32):
                            r = warp_col0 + fc * 8 + (lane & 7) + ((lane >> 4) << 3)
                            ch = ks * 2 + ((lane >> 3) & 1)
                            addr.append(r * CHUNKS + swizzle(r, ch))
                        t = ldmatrix_x4(sw[cur], addr)
                        b[fc] = ([t[l][0] for l in range(32)], [t[l][1] for l in range(32)])
                        b[fc + 1] = ([t[l][2] for l in range(32)], [t[l][3] for l in range(32)])
                    for fr in range(frags_r):
                        for fc in range(frags_c):
                            mma(acc[(warp, fr, fc)], a[fr], b[fc][0], b[fc][1])
        for warp in range(wr * wc):
            warp_row0 = warp // wc * warp_rows
            warp_col0 = warp % wc * warp_cols
            for fr in range(frags_r):
                for fc in range(frags_c):
                    for lane in range(32):
                        g, c = lane >> 2, lane & 3
                        v = acc[(warp, fr, fc)][lane]
                        row = row0 + warp_row0 + fr * 16 + g
                        col = col0 + warp_col0 + fc * 8 + 2 * c
                        for rr, (v0, v1) in ((row, v[0:2]), (row + 8, v[2:4])):
                            if rr < n and col < m:
                                y[rr, col] = v0
                                if col + 1 < m:
                                    y[rr, col + 1] = v1
    assert len(seen) == tiles_r * tiles_c
    return y


def main():
    rng = np.random.default_rng(0)
    shapes = [(1, 64, 64), (7, 33, 40), (130, 200, 8), (257, 129, 72), (70, 136, 96)]
    # Enough row tiles for a partial second group of 8 (grouped order).
    shapes.append((64 * 9 + 5, 70, 32))
    for config in CONFIGS:
        for n, m, k in shapes:
            if n * m * k > 3_000_000 and config != "64x64":
                continue
            x = rng.integers(-4, 5, size=(n, k)).astype(np.float64)
            w = rng.integers(-4, 5, size=(m, k)).astype(np.float64)
            ldy = m + 3
            y = gemm(config, x, w, ldy)
            assert np.isnan(y[:, m:]).all(), "padding written"
            assert np.array_equal(y[:, :m], x @ w.T), (config, n, m, k)
            print(f"ok {config:8s} n={n} m={m} k={k}")


if __name__ == "__main__":
    main()
