# A lane-level emulation of kernels/cuda/skinny_gemm.cu: each lane's A and B
# registers are built from the bytes the kernel loads (the permuted K of
# both kernels, the W4 nibble → exact bf16 integer trick, the Σx mma with
# A = 1; the byte_perm/bf16 bit tricks on random words), mma.sync m16n8k16 is emulated from the PTX fragment tables
# (tools/gemm_mma_sim.py), the warps' split of K and the final store are
# followed, and the result is checked against x @ w.T (bf16 weights) and
# against the W4 weights' exact values (d·q + m). It checks the index logic
# on a machine without a GPU, not the CUDA code itself.
#   python3 tools/skinny_mma_sim.py
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from gemm_mma_sim import mma  # noqa: E402

WARPS = 8
ROWS = 16


def pairs(values):
    # 8 consecutive values → the 4 pairs a lane's 16-byte load holds.
    return [(values[2 * i], values[2 * i + 1]) for i in range(4)]


def skinny_bf16(x, w, ldy):
    n, k = x.shape
    m = w.shape[0]
    tiles = 1 if n <= 8 else 2
    y = np.full((n, ldy), np.nan)
    for block in range(-(-m // ROWS)):
        row0 = block * ROWS
        partial = {}
        for warp in range(WARPS):
            acc = {t: [[0.0] * 4 for _ in range(32)] for t in range(tiles)}
            for chunk in range(warp, k // 32, WARPS):
                for t in range(tiles):
                    a0, a1, b0, b1 = [], [], [], []
                    for lane in range(32):
                        g, c = lane >> 2, lane & 3
                        ks = slice(chunk * 32 + 8 * c, chunk * 32 + 8 * c + 8)
                        lo = pairs(w[row0 + g, ks] if row0 + g < m else np.zeros(8))
                        hi = pairs(w[row0 + g + 8, ks] if row0 + g + 8 < m else np.zeros(8))
                        j = t * 8 + g
                        b = pairs(x[j, ks] if j < n else np.zeros(8))
                        a0.append([lo[0], hi[0], lo[1], hi[1]])
                        a1.append([lo[2], hi[2], lo[3], hi[3]])
                        b0.append((b[0], b[1]))
                        b1.append((b[2], b[3]))
                    mma(acc[t], a0, [p[0] for p in b0], [p[1] for p in b0])
                    mma(acc[t], a1, [p[0] for p in b1], [p[1] for p in b1])
            partial[warp] = acc
        store(y, partial, tiles, n, m, row0)
    return y


def store(y, partial, tiles, n, m, row0):
    for t in range(tiles):
        for lane in range(32):
            g, c = lane >> 2, lane & 3
            for i in range(4):
                total = sum(partial[wp][t][lane][i] for wp in range(WARPS))
                x_row = t * 8 + 2 * c + (i & 1)
                w_row = row0 + g + (8 if i >= 2 else 0)
                if x_row < n and w_row < m:
                    y[x_row, w_row] = total


def skinny_w4(x, q, d, mn, ldy):
    # q[m, k] nibble values, d/mn [m, k/32] group scales: w = d q + mn.
    n, k = x.shape
    m = q.shape[0]
    tiles = 1 if n <= 8 else 2
    y = np.full((n, ldy), np.nan)
    ones = [[(1.0, 1.0)] * 4 for _ in range(32)]
    for block in range(-(-m // ROWS)):
        row0 = block * ROWS
        partial = {}
        for warp in range(WARPS):
            acc = {t: [[0.0] * 4 for _ in range(32)] for t in range(tiles)}
            for pair in range(warp, k // 64, WARPS):
                for group in (2 * pair, 2 * pair + 1):
                    base = group * 32
                    for t in range(tiles):
                        a0, a1, b0, b1 = [], [], [], []
                        for lane in range(32):
                            g, c = lane >> 2, lane & 3
                            def nib(row, off):
                                return q[row, base + off] if row < m else 0.0
                            rl, rh = row0 + g, row0 + g + 8
                            # Low nibbles of bytes 4c..4c+3 = k 4c..4c+3,
                            # high nibbles = k 16+4c..16+4c+3.
                            a0.append([(nib(rl, 4*c), nib(rl, 4*c+1)), (nib(rh, 4*c), nib(rh, 4*c+1)),
                                       (nib(rl, 4*c+2), nib(rl, 4*c+3)), (nib(rh, 4*c+2), nib(rh, 4*c+3))])
                            a1.append([(nib(rl, 16+4*c), nib(rl, 17+4*c)), (nib(rh, 16+4*c), nib(rh, 17+4*c)),
                                       (nib(rl, 18+4*c), nib(rl, 19+4*c)), (nib(rh, 18+4*c), nib(rh, 19+4*c))])
                            j = t * 8 + g
                            xv = x[j, base:base + 32] if j < n else np.zeros(32)
                            b0.append((xv[4*c], xv[4*c+1], xv[4*c+2], xv[4*c+3]))
                            b1.append((xv[16+4*c], xv[17+4*c], xv[18+4*c], xv[19+4*c]))
                        qx = [[0.0] * 4 for _ in range(32)]
                        sx = [[0.0] * 4 for _ in range(32)]
                        mma(qx, a0, [b[0:2] for b in b0], [b[2:4] for b in b0])
                        mma(qx, a1, [b[0:2] for b in b1], [b[2:4] for b in b1])
                        mma(sx, ones, [b[0:2] for b in b0], [b[2:4] for b in b0])
                        mma(sx, ones, [b[0:2] for b in b1], [b[2:4] for b in b1])
                        for lane in range(32):
                            g = lane >> 2
                            for i in range(4):
                                row = row0 + g + (8 if i >= 2 else 0)
                                dd = d[row, group] if row < m else 0.0
                                mm = mn[row, group] if row < m else 0.0
                                acc[t][lane][i] += dd * qx[lane][i] + mm * sx[lane][i]
            partial[warp] = acc
        store(y, partial, tiles, n, m, row0)
    return y


def byte_perm(x, y, selector):
    # PTX prmt (default mode): result byte i = byte (selector >> 4i) & 7 of
    # the 8 bytes {x.b0..x.b3, y.b0..y.b3}.
    src = [(x >> (8 * i)) & 0xFF for i in range(4)] + [(y >> (8 * i)) & 0xFF for i in range(4)]
    return sum(src[(selector >> (4 * i)) & 7] << (8 * i) for i in range(4))


def bf16_value(bits):
    return float(np.array([bits << 16], dtype=np.uint32).view(np.float32)[0])


def nibbles_to_bf16(spread, shift):
    # The kernel's NibblesToBf16: (0x4300 | q) is bf16 128 + q; minus 128.
    biased = ((spread >> shift) & 0x000F000F) | 0x43004300
    return (bf16_value(biased & 0xFFFF) - 128.0, bf16_value(biased >> 16) - 128.0)


def check_nibble_unpack(rng):
    for _ in range(1000):
        word = int(rng.integers(0, 2**32))
        b = [(word >> (8 * i)) & 0xFF for i in range(4)]
        assert nibbles_to_bf16(byte_perm(word, 0, 0x4140), 0) == (b[0] & 15, b[1] & 15)
        assert nibbles_to_bf16(byte_perm(word, 0, 0x4342), 0) == (b[2] & 15, b[3] & 15)
        assert nibbles_to_bf16(byte_perm(word, 0, 0x4140), 4) == (b[0] >> 4, b[1] >> 4)
        assert nibbles_to_bf16(byte_perm(word, 0, 0x4342), 4) == (b[2] >> 4, b[3] >> 4)
    print("ok nibble unpack (byte_perm + bf16 magic) on 1000 words")


def main():
    rng = np.random.default_rng(1)
    check_nibble_unpack(rng)
    for n, m, k in [(1, 16, 32), (3, 33, 96), (8, 20, 256), (9, 17, 64), (16, 40, 320)]:
        x = rng.integers(-3, 4, size=(n, k)).astype(np.float64)
        w = rng.integers(-3, 4, size=(m, k)).astype(np.float64)
        y = skinny_bf16(x, w, m + 2)
        assert np.isnan(y[:, m:]).all()
        assert np.array_equal(y[:, :m], x @ w.T), ("bf16", n, m, k)
        print(f"ok bf16 n={n} m={m} k={k}")
    for n, m, k in [(1, 16, 64), (5, 33, 128), (8, 18, 640), (12, 17, 64), (16, 40, 192)]:
        x = rng.integers(-3, 4, size=(n, k)).astype(np.float64)
        q = rng.integers(0, 16, size=(m, k)).astype(np.float64)
        d = rng.integers(1, 4, size=(m, k // 32)).astype(np.float64)
        mn = rng.integers(-8, 1, size=(m, k // 32)).astype(np.float64)
        w = q * np.repeat(d, 32, axis=1) + np.repeat(mn, 32, axis=1)
        y = skinny_w4(x, q, d, mn, m + 1)
        assert np.isnan(y[:, m:]).all()
        assert np.array_equal(y[:, :m], x @ w.T), ("w4", n, m, k)
        print(f"ok w4   n={n} m={m} k={k}")


if __name__ == "__main__":
    main()
