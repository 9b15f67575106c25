# A lane-level emulation of kernels/cuda/prefill_attention.cu: for each
# thread block of a query tile, every lane's registers are built as the
# kernel builds them: the (token, head) row packing of a GQA group, Q
# fragments read straight from fp32 and rounded to bf16, the cp.async
# gather of K/V rows from their paged blocks into the swizzled two-stage
# shared memory (zero-filled past the block's last position), ldmatrix.x4
# (plain for K, .trans for V) as the PTX ISA defines it, mma.sync
# m16n8k16 from its fragment tables, the masked-tile test, the exp2 online
# softmax and the output rows. The result is checked against dense causal
# attention (float64) over bf16 K, V and Q. It checks the kernel's index and
# fragment logic on a machine without a GPU, not the CUDA code itself: keep
# the two in step when either changes.
#   python3 tools/prefill_mma_sim.py     (numpy; about a minute)
import numpy as np

rng = np.random.default_rng(0)
WARPS, ROWS, KEYS, STAGES, TILE_TOKENS = 4, 64, 64, 2, 64
LOG2E = 1.4426950408889634
LANE = np.arange(32)
G_, C_ = LANE >> 2, LANE & 3


def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32).astype(np.float64)


def mma(a, b0, b1, acc):
    # a: [32, 4, 2] (a0a1, a2a3, a4a5, a6a7), b0/b1: [32, 2], acc: [32, 4].
    A = np.full((16, 16), np.nan)
    B = np.full((16, 8), np.nan)
    C = np.zeros((16, 8))
    for e in range(2):
        A[G_, 2 * C_ + e] = a[:, 0, e]
        A[G_ + 8, 2 * C_ + e] = a[:, 1, e]
        A[G_, 2 * C_ + 8 + e] = a[:, 2, e]
        A[G_ + 8, 2 * C_ + 8 + e] = a[:, 3, e]
        B[2 * C_ + e, G_] = b0[:, e]
        B[2 * C_ + 8 + e, G_] = b1[:, e]
        C[G_, 2 * C_ + e] = acc[:, e]
        C[G_ + 8, 2 * C_ + e] = acc[:, 2 + e]
    assert not np.isnan(A).any() and not np.isnan(B).any()
    Dm = A @ B + C
    return np.stack([Dm[G_, 2 * C_], Dm[G_, 2 * C_ + 1],
                     Dm[G_ + 8, 2 * C_], Dm[G_ + 8, 2 * C_ + 1]], axis=1)


def ldmatrix_x4(smem, chunk_of_lane, trans):
    # smem: [chunks, 8] values; lane i gives the chunk of row i % 8 of
    # matrix i / 8. Returns r[32, 4, 2]: register j of each lane.
    rows = smem[chunk_of_lane]  # [32, 8]
    r = np.zeros((32, 4, 2))
    for j in range(4):
        mtx = rows[8 * j:8 * j + 8]  # [row, col]
        if trans:
            r[:, j, 0] = mtx[2 * C_, G_]
            r[:, j, 1] = mtx[2 * C_ + 1, G_]
        else:
            r[:, j, 0] = mtx[G_, 2 * C_]
            r[:, j, 1] = mtx[G_, 2 * C_ + 1]
    return r


def swizzle(row, chunk):
    return chunk ^ (row & 7)


def run_block(D, a, tile, y):
    """Emulates block (tile, y); writes a['out'] rows; returns False if idle."""
    chunks = D // 8
    seq, q_first = tile
    group = a["nq"] // a["nkv"]
    kv_head, first_pair = y // group, (y % group) * ROWS
    q_begin = a["qptr"][seq]
    q_len = a["qptr"][seq + 1] - q_begin
    nblk = a["kvptr"][seq + 1] - a["kvptr"][seq]
    ctx = (nblk - 1) * a["bs"] + a["last"][seq]
    tokens = min(TILE_TOKENS, q_len - q_first)
    first_pos = ctx - q_len + q_first
    pairs = tokens * group
    if first_pair >= pairs:
        return False
    last_pair = min(pairs, first_pair + ROWS) - 1
    min_pos = first_pos + first_pair // group
    kv_end = first_pos + last_pair // group + 1
    blocks = a["kvidx"][a["kvptr"][seq]:]
    scale_log2 = a["scale"] * LOG2E

    warps = []
    for w in range(WARPS):
        row_token = np.full((32, 2), -1)
        row_pos = np.full((32, 2), -1)
        row_head = np.zeros((32, 2), dtype=int)
        q = np.zeros((32, 2, D))
        for i in range(2):
            pair = first_pair + w * 16 + G_ + 8 * i
            token = pair // group
            head = kv_head * group + pair % group
            valid = token < tokens
            row_token[:, i] = np.where(valid, token, -1)
            row_pos[:, i] = np.where(valid, first_pos + token, -1)
            row_head[:, i] = head
            for ln in range(32):
                if valid[ln]:
                    q[ln, i] = a["q"][q_begin + q_first + token[ln],
                                      head[ln] * D:(head[ln] + 1) * D]
        qf = np.zeros((D // 16, 32, 4, 2))
        for kk in range(D // 16):
            for half in range(2):
                for i in range(2):
                    base = kk * 16 + half * 8 + 2 * C_
                    qf[kk, :, 2 * half + i, 0] = bf16(q[LANE, i, base])
                    qf[kk, :, 2 * half + i, 1] = bf16(q[LANE, i, base + 1])
        warps.append(dict(row_token=row_token, row_pos=row_pos, row_head=row_head,
                          qf=qf, o=np.zeros((D // 8, 32, 4)),
                          m=np.full((32, 2), -np.inf), l=np.zeros((32, 2))))

    smem = np.full((STAGES, 2, KEYS * chunks, 8), np.nan)

    def load(t):
        st = smem[t % STAGES]
        kv0 = t * KEYS
        for thread in range(WARPS * 32):
            chunk = thread % chunks
            for key in range(thread // chunks, KEYS, WARPS * 32 // chunks):
                j = kv0 + key
                block = blocks[j // a["bs"]] if j < kv_end else -1
                valid = 0 <= block < a["nblocks"]
                at = key * chunks + swizzle(key, chunk)
                for kv, cache in enumerate((a["k"], a["v"])):
                    st[kv, at] = (cache[block, kv_head, j % a["bs"], chunk * 8:chunk * 8 + 8]
                                  if valid else 0.0)

    num_tiles = -(-kv_end // KEYS)
    load(0)
    mat, mat_row = LANE >> 3, LANE & 7
    for t in range(num_tiles):
        if t + 1 < num_tiles:
            load(t + 1)
        s_k, s_v = smem[t % STAGES, 0], smem[t % STAGES, 1]
        kv0 = t * KEYS
        needs_mask = kv0 + KEYS - 1 > min_pos
        for W in warps:
            s = np.zeros((KEYS // 8, 32, 4))
            for kk in range(D // 16):
                for np_ in range(KEYS // 16):
                    key = np_ * 16 + (mat >> 1) * 8 + mat_row
                    kf = ldmatrix_x4(s_k, key * chunks + swizzle(key, kk * 2 + (mat & 1)), False)
                    s[2 * np_] = mma(W["qf"][kk], kf[:, 0], kf[:, 1], s[2 * np_])
                    s[2 * np_ + 1] = mma(W["qf"][kk], kf[:, 2], kf[:, 3], s[2 * np_ + 1])
            for nt in range(KEYS // 8):
                for e in range(4):
                    j = kv0 + nt * 8 + 2 * C_ + (e & 1)
                    visible = (not needs_mask) | (j <= W["row_pos"][:, e >> 1])
                    s[nt, :, e] = np.where(visible, s[nt, :, e] * scale_log2, -np.inf)
            tile_max = np.stack([s[:, :, 0:2].max(axis=(0, 2)), s[:, :, 2:4].max(axis=(0, 2))], axis=1)
            tile_max = np.maximum(tile_max, tile_max[LANE ^ 1])
            tile_max = np.maximum(tile_max, tile_max[LANE ^ 2])
            new_m = np.maximum(W["m"], tile_max)
            use_m = np.where(new_m == -np.inf, 0.0, new_m)
            corr = np.exp2(W["m"] - use_m)
            W["m"] = new_m
            W["l"] = W["l"] * corr
            W["o"][:, :, 0:2] *= corr[None, :, 0:1]
            W["o"][:, :, 2:4] *= corr[None, :, 1:2]
            for e in range(4):
                s[:, :, e] = np.exp2(s[:, :, e] - use_m[None, :, e >> 1])
            W["l"][:, 0] += s[:, :, 0:2].sum(axis=(0, 2))
            W["l"][:, 1] += s[:, :, 2:4].sum(axis=(0, 2))
            for kc in range(KEYS // 16):
                p = np.zeros((32, 4, 2))
                p[:, 0] = bf16(s[2 * kc][:, 0:2])
                p[:, 1] = bf16(s[2 * kc][:, 2:4])
                p[:, 2] = bf16(s[2 * kc + 1][:, 0:2])
                p[:, 3] = bf16(s[2 * kc + 1][:, 2:4])
                key = kc * 16 + (mat & 1) * 8 + mat_row
                for dp in range(D // 16):
                    vf = ldmatrix_x4(s_v, key * chunks + swizzle(key, dp * 2 + (mat >> 1)), True)
                    W["o"][2 * dp] = mma(p, vf[:, 0], vf[:, 1], W["o"][2 * dp])
                    W["o"][2 * dp + 1] = mma(p, vf[:, 2], vf[:, 3], W["o"][2 * dp + 1])
    for W in warps:
        l = W["l"] + W["l"][LANE ^ 1]
        l = l + l[LANE ^ 2]
        for ln in range(32):
            for i in range(2):
                token = W["row_token"][ln, i]
                if token < 0:
                    continue
                inv = 1 / l[ln, i] if l[ln, i] > 0 else 0.0
                head = W["row_head"][ln, i]
                row = q_begin + q_first + token
                for dt in range(D // 8):
                    d = head * D + dt * 8 + 2 * C_[ln]
                    assert np.isnan(a["out"][row, d:d + 2]).all(), "row written twice"
                    a["out"][row, d:d + 2] = W["o"][dt, ln, 2 * i:2 * i + 2] * inv
    return True


def case(D, nq, nkv, bs, seqs):
    """seqs: list of (context_len, q_len) — the last q_len tokens are queries."""
    qptr, kvptr, kvidx, last = [0], [0], [], []
    total_blocks = sum(-(-c // bs) for c, _ in seqs)
    nblocks = total_blocks + 3
    perm = list(rng.permutation(nblocks))
    for c, ql in seqs:
        n = -(-c // bs)
        kvidx += [perm.pop() for _ in range(n)]
        kvptr.append(kvptr[-1] + n)
        qptr.append(qptr[-1] + ql)
        last.append(c - (n - 1) * bs)
    total_q = qptr[-1]
    a = dict(nq=nq, nkv=nkv, bs=bs, nblocks=nblocks, qptr=qptr, kvptr=kvptr,
             kvidx=np.array(kvidx), last=last, scale=D ** -0.5,
             k=bf16(rng.standard_normal((nblocks, nkv, bs, D))),
             v=bf16(rng.standard_normal((nblocks, nkv, bs, D))),
             q=rng.standard_normal((total_q, nq * D)).astype(np.float32),
             out=np.full((total_q, nq * D), np.nan))
    tiles = [(s, f) for s, (_, ql) in enumerate(seqs) for f in range(0, ql, TILE_TOKENS)]
    busy = sum(run_block(D, a, t, y) for t in tiles for y in range(nq))
    assert not np.isnan(a["out"]).any(), "a row was never written"
    group = nq // nkv
    worst = 0.0
    for s, (c, ql) in enumerate(seqs):
        blocks = a["kvidx"][kvptr[s]:kvptr[s + 1]]
        for h in range(nq):
            kvh = h // group
            K = np.concatenate([a["k"][b, kvh] for b in blocks])[:c]
            V = np.concatenate([a["v"][b, kvh] for b in blocks])[:c]
            for i in range(ql):
                pos = c - ql + i
                qv = bf16(a["q"][qptr[s] + i, h * D:(h + 1) * D])
                sc = K[:pos + 1] @ qv * a["scale"]
                w = np.exp(sc - sc.max())
                ref = (w / w.sum()) @ V[:pos + 1]
                worst = max(worst, np.abs(a["out"][qptr[s] + i, h * D:(h + 1) * D] - ref).max())
    ok = worst < 1.5e-2  # P is rounded to bf16 before P·V
    print(f"D={D} heads {nq}/{nkv} block {bs} seqs {seqs}: {busy} busy blocks, "
          f"max |err| {worst:.2e} {'ok' if ok else 'FAIL'}")
    return ok


def main():
    ok = True
    ok &= case(64, 2, 2, 16, [(40, 40)])            # no GQA, one partial tile
    ok &= case(128, 4, 1, 16, [(150, 70)])          # group 4: 16 tokens a block, 2 tiles
    ok &= case(64, 3, 1, 7, [(100, 23), (9, 9)])    # group 3, odd block size
    ok &= case(128, 7, 1, 32, [(200, 65)])          # group 7: heads split across blocks
    ok &= case(64, 4, 2, 1, [(130, 130)])           # one-token blocks, 3 tiles
    print("all ok" if ok else "FAILED")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
