# A lane-level emulation of kernels/cuda/prefill_attention.cu (one thread
# block): each lane's registers are built exactly as the kernel builds them,
# mma.sync m16n8k16 is emulated from the PTX ISA fragment tables, and the
# result is checked against dense causal attention. It checks the kernel's
# index and fragment logic on a machine without a GPU (it cannot check the
# CUDA code itself; keep the two in step when either changes).
#   python3 tools/prefill_mma_sim.py     (numpy; a few minutes)
import numpy as np
rng = np.random.default_rng(0)

def bf16(x):
    x = np.asarray(x, dtype=np.float32)
    u = x.view(np.uint32).astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16
    return u.astype(np.uint32).view(np.float32)

def mma(a_regs, b_regs, c_regs):
    # a_regs[lane] = [(a0,a1),(a2,a3),(a4,a5),(a6,a7)], b_regs[lane]=[(b0,b1),(b2,b3)], c_regs[lane]=[c0..c3]
    A = np.full((16, 16), np.nan); B = np.full((16, 8), np.nan); C = np.zeros((16, 8))
    for lane in range(32):
        g, c = lane >> 2, lane & 3
        a = a_regs[lane]
        A[g, 2*c:2*c+2] = a[0]; A[g+8, 2*c:2*c+2] = a[1]
        A[g, 2*c+8:2*c+10] = a[2]; A[g+8, 2*c+8:2*c+10] = a[3]
        b = b_regs[lane]
        B[2*c:2*c+2, g] = b[0]; B[2*c+8:2*c+10, g] = b[1]
        C[g, 2*c:2*c+2] = c_regs[lane][0:2]; C[g+8, 2*c:2*c+2] = c_regs[lane][2:4]
    assert not np.isnan(A).any() and not np.isnan(B).any()
    Dm = A @ B + C
    out = []
    for lane in range(32):
        g, c = lane >> 2, lane & 3
        out.append([Dm[g, 2*c], Dm[g, 2*c+1], Dm[g+8, 2*c], Dm[g+8, 2*c+1]])
    return out

def run(D, ctx, q_len, q_first, scale):
    kRows, kKeys = 64, 32
    K = bf16(rng.standard_normal((ctx, D))); V = bf16(rng.standard_normal((ctx, D)))
    Q = rng.standard_normal((q_len, D)).astype(np.float32)
    rows = min(kRows, q_len - q_first)
    first_pos = ctx - q_len + q_first
    kv_end = first_pos + rows
    s_q = np.zeros((kRows, D), np.float32)
    s_q[:rows] = bf16(Q[q_first:q_first+rows])
    out = np.full((rows, D), np.nan)
    for warp in range(4):
        st = {}
        for lane in range(32):
            g, c = lane >> 2, lane & 3
            row0 = warp*16 + g; row1 = row0 + 8
            qf = [[(s_q[row0, kk*16+2*c], s_q[row0, kk*16+2*c+1]),
                   (s_q[row1, kk*16+2*c], s_q[row1, kk*16+2*c+1]),
                   (s_q[row0, kk*16+2*c+8], s_q[row0, kk*16+2*c+9]),
                   (s_q[row1, kk*16+2*c+8], s_q[row1, kk*16+2*c+9])] for kk in range(D//16)]
            st[lane] = dict(row0=row0, row1=row1, pos0=first_pos+row0, pos1=first_pos+row1,
                            qf=qf, o=[[0.0]*4 for _ in range(D//8)], m0=-np.inf, m1=-np.inf, l0=0.0, l1=0.0)
        for kv0 in range(0, kv_end, kKeys):
            s_k = np.zeros((kKeys, D), np.float32); s_vt = np.zeros((D, kKeys), np.float32)
            for key in range(kKeys):
                j = kv0 + key
                if j < kv_end:
                    s_k[key] = K[j]; s_vt[:, key] = V[j]
            s = {lane: [[0.0]*4 for _ in range(kKeys//8)] for lane in range(32)}
            for nt in range(kKeys//8):
                for kk in range(D//16):
                    a = [st[l]['qf'][kk] for l in range(32)]
                    b = []
                    for l in range(32):
                        g, c = l >> 2, l & 3
                        krow = s_k[nt*8+g]
                        b.append([(krow[kk*16+2*c], krow[kk*16+2*c+1]), (krow[kk*16+2*c+8], krow[kk*16+2*c+9])])
                    res = mma(a, b, [s[l][nt] for l in range(32)])
                    for l in range(32): s[l][nt] = res[l]
            tm0 = {}; tm1 = {}
            for l in range(32):
                g, c = l >> 2, l & 3
                t0 = -np.inf; t1 = -np.inf
                for nt in range(kKeys//8):
                    for i in range(4):
                        j = kv0 + nt*8 + 2*c + (i & 1)
                        pos = st[l]['pos0'] if i < 2 else st[l]['pos1']
                        vis = j <= pos and j < kv_end
                        s[l][nt][i] = s[l][nt][i]*scale if vis else -np.inf
                    t0 = max(t0, s[l][nt][0], s[l][nt][1]); t1 = max(t1, s[l][nt][2], s[l][nt][3])
                tm0[l] = t0; tm1[l] = t1
            for l in range(32):  # quad reduce
                q = l & ~3
                st[l]['t0'] = max(tm0[q+i] for i in range(4)); st[l]['t1'] = max(tm1[q+i] for i in range(4))
            p = {}
            for l in range(32):
                S = st[l]
                n0 = max(S['m0'], S['t0']); n1 = max(S['m1'], S['t1'])
                u0 = 0.0 if n0 == -np.inf else n0; u1 = 0.0 if n1 == -np.inf else n1
                c0 = np.exp(S['m0'] - u0); c1 = np.exp(S['m1'] - u1)
                S['m0'], S['m1'] = n0, n1
                S['l0'] *= c0; S['l1'] *= c1
                for dt in range(D//8):
                    S['o'][dt][0] *= c0; S['o'][dt][1] *= c0; S['o'][dt][2] *= c1; S['o'][dt][3] *= c1
                for nt in range(kKeys//8):
                    s[l][nt] = [np.exp(s[l][nt][0]-u0), np.exp(s[l][nt][1]-u0), np.exp(s[l][nt][2]-u1), np.exp(s[l][nt][3]-u1)]
                    S['l0'] += s[l][nt][0] + s[l][nt][1]; S['l1'] += s[l][nt][2] + s[l][nt][3]
            for kc in range(kKeys//16):
                a = []
                for l in range(32):
                    sl = s[l]
                    a.append([tuple(bf16([sl[2*kc][0], sl[2*kc][1]])), tuple(bf16([sl[2*kc][2], sl[2*kc][3]])),
                              tuple(bf16([sl[2*kc+1][0], sl[2*kc+1][1]])), tuple(bf16([sl[2*kc+1][2], sl[2*kc+1][3]]))])
                for dt in range(D//8):
                    b = []
                    for l in range(32):
                        g, c = l >> 2, l & 3
                        vcol = s_vt[dt*8+g]
                        b.append([(vcol[kc*16+2*c], vcol[kc*16+2*c+1]), (vcol[kc*16+2*c+8], vcol[kc*16+2*c+9])])
                    res = mma(a, b, [st[l]['o'][dt] for l in range(32)])
                    for l in range(32): st[l]['o'][dt] = res[l]
        for l in range(32):
            q = l & ~3
            L0 = sum(st[q+i]['l0'] for i in range(4)); L1 = sum(st[q+i]['l1'] for i in range(4))
            g, c = l >> 2, l & 3
            S = st[l]
            for dt in range(D//8):
                d = dt*8 + 2*c
                if S['row0'] < rows: out[S['row0'], d:d+2] = np.array(S['o'][dt][0:2]) / L0
                if S['row1'] < rows: out[S['row1'], d:d+2] = np.array(S['o'][dt][2:4]) / L1
    # reference
    ref = np.zeros((rows, D))
    for r in range(rows):
        pos = first_pos + r
        sc = (Q[q_first + r].astype(np.float64) @ K[:pos+1].T.astype(np.float64)) * scale
        w = np.exp(sc - sc.max()); w /= w.sum()
        ref[r] = w @ V[:pos+1]
    err = np.abs(out - ref).max()
    print(f"D={D} ctx={ctx} q_len={q_len} q_first={q_first}: max err {err:.2e}, nan {np.isnan(out).any()}")
    assert not np.isnan(out).any() and err < 1.5e-2

run(64, 40, 40, 0, 1/8)
run(64, 100, 70, 64, 1/8)
run(128, 33, 5, 0, 128**-0.5)
run(64, 130, 70, 0, 1/8)
