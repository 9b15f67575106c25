# A lane-level emulation of DecodeAttentionKernel in
# kernels/cuda/decode_attention.cu (its grid: KV head × group chunk per
# query token, the splits, then the split merge): every lane's registers are followed as the kernel computes them (which
# tokens a sub-warp loads from which paged block at which address of the
# [block][kv head][slot][D] cache, skipping out-of-range blocks, the 16-byte slices, the
# shuffle trees, the per-sub-warp online softmax, the shuffle merge of the
# sub-warps, the shared-memory merge of the warps, MergeSplitsKernel) and
# the result is checked against dense softmax attention in float64. It
# checks the index logic on a machine without a GPU, not the CUDA code
# itself: keep the two in step when either changes.
#   python3 tools/decode_attention_sim.py
import numpy as np

WARPS = 4
VEC = 8
rng = np.random.default_rng(7)


def shfl_xor(x, offset):
    # x: [32, ...] one row per lane.
    return x[np.arange(32) ^ offset]


def merge_state(m, l, acc, offset):
    m_o, l_o, a_o = shfl_xor(m, offset), shfl_xor(l, offset), shfl_xor(acc, offset)
    m_new = np.maximum(m, m_o)
    empty = m_new == -np.inf
    with np.errstate(invalid="ignore"):
        s = np.where(empty, 0.0, np.exp(m - np.where(empty, 0, m_new)))
        s_o = np.where(empty, 0.0, np.exp(m_o - np.where(empty, 0, m_new)))
    return m_new, l * s + l_o * s_o, acc * s[:, None] + a_o * s_o[:, None]


def block(D, G, num_g, q, cache_k, cache_v, blocks, block_size, begin, end,
          kv_head, num_kv_heads, num_blocks):
    """One thread block: q [num_g, D] pre-scaled; cache_k/v flat bf16 arrays
    in the paged layout [block][kv_head][slot][D]; returns (out, lse)."""
    lanes = D // VEC
    tokens = 32 // lanes
    unroll = 4
    step = WARPS * tokens * unroll
    lane = np.arange(32)
    sub = lane // lanes
    dim0 = (lane % lanes) * VEC
    warp_states = []
    for warp in range(WARPS):
        qv = np.zeros((G, 32, VEC))
        for g in range(num_g):
            for e in range(VEC):
                qv[g, :, e] = q[g, dim0 + e]
        m = np.full((G, 32), -np.inf)
        l = np.zeros((G, 32))
        acc = np.zeros((G, 32, VEC))
        j0 = begin + warp * tokens + sub  # per lane
        while j0[0] - sub[0] < end:
            assert np.all(j0 - sub == j0[0])  # warp-uniform loop condition
            k = np.zeros((unroll, 32, VEC))
            v = np.zeros((unroll, 32, VEC))
            valid = np.zeros((unroll, 32), dtype=bool)
            for u in range(unroll):
                j = j0 + u * WARPS * tokens
                for ln in range(32):
                    blk = blocks[j[ln] // block_size] if j[ln] < end else -1
                    valid[u, ln] = 0 <= blk < num_blocks
                    if valid[u, ln]:
                        base = ((blk * num_kv_heads + kv_head) * block_size +
                                j[ln] % block_size) * D + dim0[ln]
                        k[u, ln] = cache_k[base:base + VEC]
                        v[u, ln] = cache_v[base:base + VEC]
                # a sub-warp's lanes agree on validity
                for s in range(tokens):
                    assert len(set(valid[u, sub == s])) == 1
            dot = np.zeros((G, unroll, 32))
            for u in range(unroll):
                for g in range(G):
                    d = (qv[g] * k[u]).sum(axis=1)
                    off = lanes // 2
                    while off > 0:
                        d = d + shfl_xor(d, off)
                        off >>= 1
                    dot[g, u] = np.where(valid[u], d, -np.inf)
            for g in range(G):
                m_new = np.maximum(m[g], dot[g].max(axis=0))
                live = (m_new != -np.inf) & (g < num_g)
                safe = np.where(live, m_new, 0.0)
                corr = np.where(live, np.exp(m[g] - safe), 1.0)
                p = np.where(live, np.exp(dot[g] - safe), 0.0)  # [unroll, 32]
                l[g] = np.where(live, l[g] * corr + p.sum(axis=0), l[g])
                new_acc = acc[g] * corr[:, None] + np.einsum("ul,ule->le", p, v)
                acc[g] = np.where(live[:, None], new_acc, acc[g])
                m[g] = np.where(live, m_new, m[g])
            j0 = j0 + step
        for g in range(G):
            off = lanes
            while off < 32:
                m[g], l[g], acc[g] = merge_state(m[g], l[g], acc[g], off)
                off <<= 1
        # sub-warp 0 writes; the other sub-warps hold the same merged state
        for g in range(num_g):
            for ln in range(32):
                assert m[g][ln] == m[g][ln % lanes] and l[g][ln] == l[g][ln % lanes]
                assert np.array_equal(acc[g][ln], acc[g][ln % lanes])
        state_m = np.zeros(G)
        state_l = np.zeros(G)
        state_acc = np.zeros((G, D))
        for g in range(num_g):
            state_m[g] = m[g][0]
            state_l[g] = l[g][0]
            for ln in range(lanes):
                state_acc[g, dim0[ln]:dim0[ln] + VEC] = acc[g][ln]
        warp_states.append((state_m, state_l, state_acc))
    out = np.zeros((num_g, D))
    lse = np.zeros(num_g)
    for g in range(num_g):
        ms = np.array([w[0][g] for w in warp_states])
        max_all = ms.max()
        if max_all == -np.inf:
            out[g], lse[g] = 0, -np.inf
            continue
        sc = np.exp(ms - max_all)
        s = sum(w[1][g] * sc[i] for i, w in enumerate(warp_states))
        o = sum(w[2][g] * sc[i] for i, w in enumerate(warp_states))
        out[g] = o / s
        lse[g] = max_all + np.log(s)
    return out, lse


def num_splits(visible, split_chunk, max_splits):
    if split_chunk <= 0 or visible <= split_chunk:
        return 1
    return min(-(-visible // split_chunk), max_splits)


def case(D, G, group, num_kv_heads, context_len, q_len, block_size,
         split_chunk, max_splits, bad_block=None):
    """One sequence whose last q_len tokens are queries; every query token
    t and KV head runs the kernel's grid (KV head × group chunk, splits).
    bad_block: a position whose block index is set out of range (its key
    must be skipped, as the kernel skips it)."""
    nblk = -(-context_len // block_size)
    pool = 3 * nblk + 5
    blocks = rng.permutation(pool)[:nblk]
    if bad_block is not None:
        blocks[bad_block // block_size] = pool + 7  # ≥ num_blocks
    cache_k = rng.standard_normal(pool * num_kv_heads * block_size * D)
    cache_v = rng.standard_normal(pool * num_kv_heads * block_size * D)
    shaped_k = cache_k.reshape(pool, num_kv_heads, block_size, D)
    shaped_v = cache_v.reshape(pool, num_kv_heads, block_size, D)
    num_q_heads = group * num_kv_heads
    q = rng.standard_normal((q_len, num_q_heads, D)) * 0.3
    grid_splits = max_splits if split_chunk > 0 else 1
    chunks_per_head = -(-group // G)
    worst = 0.0
    for i in range(q_len):  # the kernel's `visible` for query token i
        visible = context_len - q_len + i + 1
        ns = num_splits(visible, split_chunk, max_splits)
        chunk = -(-visible // ns)
        for bx in range(num_kv_heads * chunks_per_head):  # blockIdx.x
            kv_head = bx // chunks_per_head
            first_g = (bx % chunks_per_head) * G
            num_g = min(G, group - first_g)
            heads = [kv_head * group + first_g + g for g in range(num_g)]
            parts = []
            for split in range(grid_splits):
                begin = split * chunk if split < ns else visible
                end = min(visible, begin + chunk)
                if begin >= end and grid_splits > 1:
                    # An empty split writes only lse = -inf; its output
                    # slots keep whatever they held (NaN here).
                    parts.append((np.full((num_g, D), np.nan), np.full(num_g, -np.inf)))
                    continue
                parts.append(block(D, G, num_g, q[i, heads], cache_k, cache_v,
                                   blocks, block_size, begin, end, kv_head,
                                   num_kv_heads, pool))
            if grid_splits == 1:
                out = parts[0][0]
            else:  # MergeSplitsKernel
                lses = np.array([p[1] for p in parts])  # [splits, num_g]
                mx = lses.max(axis=0)
                w = np.where(lses == -np.inf, 0.0, np.exp(lses - mx))
                # The merge skips a split whose lse is -inf (never reads it).
                out = sum(np.where((lses[s] == -np.inf)[:, None], 0.0,
                                   w[s][:, None] * parts[s][0])
                          for s in range(grid_splits)) / w.sum(axis=0)[:, None]
            keep = [p for p in range(visible)
                    if bad_block is None or p // block_size != bad_block // block_size]
            for g, h in enumerate(heads):
                ref_k = np.array([shaped_k[blocks[p // block_size], kv_head, p % block_size] for p in keep])
                ref_v = np.array([shaped_v[blocks[p // block_size], kv_head, p % block_size] for p in keep])
                sc = ref_k @ q[i, h]
                p = np.exp(sc - sc.max())
                ref = p @ ref_v / p.sum()
                worst = max(worst, np.abs(out[g] - ref).max())
    return worst


def main():
    cases = [  # D, G, group, kv heads, context, queries, block, split_chunk, max_splits
        (128, 4, 4, 2, 1, 1, 16, 0, 1),
        (128, 4, 4, 2, 37, 1, 16, 0, 1),
        (128, 4, 4, 1, 300, 2, 16, 64, 8),  # 5 splits in a grid of 8
        (128, 8, 7, 2, 65, 1, 16, 0, 1),    # G 8, group 7: one idle head
        (128, 2, 2, 3, 129, 1, 32, 32, 3),  # more than max_splits chunks
        (128, 1, 1, 2, 33, 3, 1, 0, 1),     # one-token blocks, 3 queries
        (64, 4, 3, 2, 70, 1, 16, 0, 1),
        (64, 8, 9, 1, 250, 1, 16, 100, 4),  # two group chunks, one of 1 head
        (64, 1, 1, 1, 5, 1, 16, 2, 2),
    ]
    ok = True
    bad = {1: 40, 6: 20}  # case index → position in an out-of-range block
    for i, c in enumerate(cases):
        err = case(*c, bad_block=bad.get(i))
        good = err < 1e-9
        ok &= good
        print(f"D={c[0]} G={c[1]} group={c[2]} kv_heads={c[3]} context={c[4]} "
              f"queries={c[5]} block={c[6]} split_chunk={c[7]} max_splits={c[8]}"
              f"{' bad block' if i in bad else ''}: max |err| {err:.2e} "
              f"{'ok' if good else 'FAIL'}")
    print("all ok" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
