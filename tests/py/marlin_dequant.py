#!/usr/bin/env python3
"""Independent dequantizer for the packed INT4 formats of the marlin toolchain.

Written from the format facts only (docs/reference/marlin-format.md, "MF"),
with numpy, and deliberately NOT from the C closed forms: the Marlin layouts
are undone by rebuilding the reference permutations the way IST-DASLab's
_get_perms / _get_perms_2_4 construct them (MF 1.3, 4.4) and inverting the
tile transpose + gather; the 2:4 metadata through the CUTLASS reorder
written in its arithmetic form (MF 4.5); GPTQ through its general formula
(q - (zero + 1)) * scale[g_idx] (MF 5.2), which also covers act-order.

Functions (all return W [n, k] float32, i.e. nn.Linear.weight layout):
    dequant_gptq(qweight, qzeros, scales, g_idx)
    dequant_marlin(B, s, k, n, group)
    dequant_marlin24(B, meta, s, k, n, group)

Command line:
    marlin_dequant.py show PATH [--ref REF]
        PATH: a .safetensors file or a checkpoint folder (sharded or not).
        Dequantizes every packed linear (<p>.qweight+qzeros+scales+g_idx,
        <p>.B+<p>.s, <p>.B+<p>.meta+<p>.s) and prints one line per layer;
        with --ref (the original checkpoint), the error against <p>.weight.
    marlin_dequant.py compare A B
        Dequantizes every packed linear of both checkpoints and requires
        bit-identical weights for every prefix they share (e.g. a GPTQ and a
        Marlin export of the same quantization). Exit 1 on any difference.
    marlin_dequant.py selftest DIR
        Reads DIR/manifest.txt ("format name n k group" lines) and raw
        little-endian DIR/<format>_<name>.<tensor>.bin files written by
        tests/test_pack.c, dequantizes, and requires exact equality with
        DIR/<format>_<name>.ref.bin (float32 [n, k] computed by C from the
        codes). Then (with the safetensors module) writes the cases as one
        checkpoint per format and runs compare / show --ref on them: cases
        sharing a name hold the same codes, so they must match exactly.
Exit codes: 0 ok, 1 mismatch or bad input, 2 usage.
"""

import json
import os
import sys

import numpy as np

# ----------------------------------------------------------------- helpers


def _u32(a):
    """Bit pattern of an int32/uint32 array as uint32."""
    a = np.ascontiguousarray(a)
    return a.view(np.uint32) if a.dtype in (np.int32, np.uint32) else a.astype(np.uint32)


def _nibbles(words):
    """(..., W) words -> (..., 8W) codes, nibble t of word w at 8w + t."""
    w = _u32(words)
    shifts = (np.arange(8, dtype=np.uint32) * 4)
    vals = (w[..., None] >> shifts) & np.uint32(0xF)
    return vals.reshape(*w.shape[:-1], w.shape[-1] * 8).astype(np.int32)


def _reference_perm(two24):
    """The 1024-entry permutation as MF 1.3 (dense) / 4.4 (2:4) build it."""
    perm = []
    for i in range(32):
        perm1 = []
        col = i // 4
        rows = [2 * (i % 4), 2 * (i % 4) + 1, 2 * (i % 4 + 4), 2 * (i % 4 + 4) + 1]
        for block in (0, 1):
            for row in rows:
                if two24:
                    perm1.append(16 * row + 256 * (col // 2) + 8 * (col % 2) + 4 * block)
                else:
                    perm1.append(16 * row + col + 8 * block)
        for j in range(4):
            perm.extend(p + (j if two24 else 256 * j) for p in perm1)
    interleave = np.array([0, 2, 4, 6, 1, 3, 5, 7])
    return np.array(perm).reshape(-1, 8)[:, interleave].ravel()


def _untile(B, K, N, perm):
    """Inverse of MF 1.3 steps 3-5: B (K/16, 2N) words -> codes W[K][N]."""
    B = np.asarray(B).reshape(K // 16, 2 * N)
    out = _nibbles(B).reshape(K // 16, -1, 1024)       # gathered chunks
    row = np.empty_like(out)
    row[:, :, perm] = out                               # undo the gather
    # row element e = nt*256 + kk*16 + nn holds W[16kt + kk][16nt + nn]
    row = row.reshape(K // 16, N // 16, 16, 16)
    return row.transpose(0, 2, 1, 3).reshape(K, N)


def _groups(k, group, G):
    g = k if group == -1 else group
    if k % g or k // g != G:
        raise ValueError(f"group {group} does not give {G} scale rows for k={k}")
    return np.arange(k) // g


def _scale_perm(kind, grouped):
    if kind == "marlin":
        if grouped:
            return np.array([i + 8 * j for i in range(8) for j in range(8)])
        return np.array([2 * i + j for i in range(4) for j in (0, 1, 8, 9, 16, 17, 24, 25)])
    if grouped:
        return np.array([8 * i + j for i in range(8) for j in (0, 4, 1, 5, 2, 6, 3, 7)])
    return np.arange(64)


def _natural_scales(s, k, n, group, kind):
    """Stored (G, n) scales -> natural order: out[c + p] = in[c + perm[p]]."""
    s = np.asarray(s).reshape(-1, n)
    grouped = group != -1 and group < k
    perm = _scale_perm(kind, grouped)
    flat = s.reshape(-1, len(perm))
    nat = np.empty_like(flat)
    nat[:, perm] = flat
    return nat.reshape(s.shape)


def _as_f32(s):
    s = np.asarray(s)
    if s.dtype == np.uint16:
        s = s.view(np.float16)
    return s.astype(np.float32)


# ------------------------------------------------------------ dequantizers


def dequant_gptq(qweight, qzeros, scales, g_idx):
    """GPTQ (v1 zero convention): W[c][r] = (q - (z + 1)) * scale, per MF 5.2."""
    qweight = np.asarray(qweight)
    k8, n = qweight.shape
    k = 8 * k8
    q = _nibbles(qweight.T).reshape(n, k)               # q[r][c], c = 8w + t
    G = np.asarray(qzeros).shape[0]
    z = _nibbles(np.asarray(qzeros)).reshape(G, n)      # z[g][r], r = 8w + t
    s = _as_f32(scales).reshape(G, n)
    gi = np.asarray(g_idx).astype(np.int64).reshape(k)
    if gi.min() < 0 or gi.max() >= G:
        raise ValueError("g_idx out of range")
    zz = z[gi, :].T                                     # (n, k)
    ss = s[gi, :].T
    return ((q - (zz + 1)).astype(np.float32) * ss).astype(np.float32)


def dequant_marlin(B, s, k, n, group):
    """Dense Marlin (IST Layer.pack): B (k/16, 2n), s (G, n) permuted."""
    W = _untile(B, k, n, _reference_perm(False))        # codes W[k][n]
    nat = _as_f32(_natural_scales(s, k, n, group, "marlin"))
    rows = _groups(k, group, nat.shape[0])
    return ((W - 8).astype(np.float32) * nat[rows, :]).T.copy()


def _meta_offsets(n, k):
    """Flat int16 offset of logical meta (r, c) (MF 4.5, CUTLASS reorder)."""
    r = np.arange(n)[:, None].repeat(k // 16, 1)
    c = np.arange(k // 16)[None, :].repeat(n, 0)
    R = (r // 64 * 64 + (r % 2) * 2 + (r % 8) // 4
         + ((r % 32) % 4) // 2 * 32 + ((r % 64) // 8) * 4)
    topright = ((R % 2 == 0) & (c % 2 == 1)).astype(np.int64)
    bottomleft = ((R % 2 == 1) & (c % 2 == 0)).astype(np.int64)
    R = R + topright - bottomleft
    c = c - topright + bottomleft
    return (c // 2) * n * 2 + R * 2 + c % 2


def dequant_marlin24(B, meta, s, k, n, group):
    """Sparse-Marlin 2:4: B (k/32, 2n), meta (k/32, 2n) int16, s (G, n)."""
    qc = _untile(B, k // 2, n, _reference_perm(True))    # compressed [k/2][n]
    flat = np.ascontiguousarray(meta).view(np.uint16).reshape(-1).astype(np.int64)
    logical = flat[_meta_offsets(n, k)]                  # (n, k/16)
    nib = (logical[:, :, None] >> (4 * np.arange(4))) & 0xF  # (n, k/16, 4)
    nib = nib.reshape(n, k // 4)                         # group g = 4c + j
    idx0, idx1 = nib & 3, nib >> 2
    if np.any(idx0 >= idx1):
        r, g = np.argwhere(idx0 >= idx1)[0]
        raise ValueError(f"meta nibble {nib[r, g]:#x} at row {r} group {g} "
                         "is not a valid 2:4 index pair")
    v = qc.reshape(k // 4, 2, n) - 8                     # [g][h][r]
    dense = np.zeros((n, k // 4, 4), dtype=np.int64)
    rr = np.arange(n)[:, None]
    gg = np.arange(k // 4)[None, :]
    dense[rr, gg, idx0] = v[:, 0, :].T
    dense[rr, gg, idx1] = v[:, 1, :].T
    dense = dense.reshape(n, k)
    nat = _as_f32(_natural_scales(s, k, n, group, "marlin24"))
    rows = _groups(k, group, nat.shape[0])
    return (dense.astype(np.float32) * nat[rows, :].T).astype(np.float32)


# ---------------------------------------------------------------- selftest


def _bin(d, name, ext, dtype, shape):
    a = np.fromfile(os.path.join(d, f"{name}.{ext}.bin"), dtype=dtype)
    return a.reshape(shape)


def _case_tensors(d, fmt, name, n, k, group):
    """The packed tensors of one manifest case, in checkpoint dtypes."""
    G = 1 if group == -1 else k // group
    f = f"{fmt}_{name}"
    if fmt == "gptq":
        return {"qweight": _bin(d, f, "qweight", "<i4", (k // 8, n)),
                "qzeros": _bin(d, f, "qzeros", "<i4", (G, n // 8)),
                "scales": _bin(d, f, "scales", "<u2", (G, n)).view(np.float16),
                "g_idx": _bin(d, f, "g_idx", "<i4", (k,))}
    t = {"s": _bin(d, f, "s", "<u2", (G, n)).view(np.float16)}
    if fmt == "marlin":
        t["B"] = _bin(d, f, "B", "<i4", (k // 16, 2 * n))
    elif fmt == "marlin24":
        t["B"] = _bin(d, f, "B", "<i4", (k // 32, 2 * n))
        t["meta"] = _bin(d, f, "meta", "<i2", (k // 32, 2 * n))
    else:
        raise ValueError(f"unknown format {fmt}")
    return t


def _dequant_case(t, fmt, n, k, group):
    if fmt == "gptq":
        return dequant_gptq(t["qweight"], t["qzeros"], t["scales"], t["g_idx"])
    if fmt == "marlin":
        return dequant_marlin(t["B"], t["s"], k, n, group)
    return dequant_marlin24(t["B"], t["meta"], t["s"], k, n, group)


def _selftest_checkpoints(d, cases):
    """Writes one safetensors checkpoint per format plus a reference one,
    then checks compare() and show --ref through the checkpoint reader."""
    try:
        from safetensors.numpy import save_file
    except ImportError:
        print("selftest: safetensors module missing: checkpoint checks skipped")
        return 0
    per_fmt, ref = {}, {}
    for fmt, name, n, k, group in cases:
        for t, a in _case_tensors(d, fmt, name, n, k, group).items():
            per_fmt.setdefault(fmt, {})[f"layers.{name}.{t}"] = np.ascontiguousarray(a)
        if fmt == "gptq" or name not in [c[1] for c in cases if c[0] == "gptq"]:
            ref[f"layers.{name}.weight"] = _bin(d, f"{fmt}_{name}", "ref", "<f4", (n, k))
    paths = {}
    for fmt, tensors in per_fmt.items():
        paths[fmt] = os.path.join(d, f"ckpt_{fmt}")
        os.makedirs(paths[fmt], exist_ok=True)
        save_file(tensors, os.path.join(paths[fmt], "model.safetensors"))
    save_file(ref, os.path.join(d, "ref.safetensors"))
    rc = 0
    if compare(paths["gptq"], paths["marlin"]) != 0:
        rc = 1
    if compare(paths["gptq"], paths["marlin24"]) != 0:
        rc = 1
    for fmt, path in paths.items():
        for p, f, W, rel, maxabs in layer_errors(Checkpoint(path),
                                                 Checkpoint(os.path.join(d, "ref.safetensors"))):
            if maxabs != 0:
                print(f"selftest: {fmt} checkpoint {p}: max abs err {maxabs} vs reference",
                      file=sys.stderr)
                rc = 1
    print(f"selftest: checkpoints ({', '.join(sorted(paths))}): "
          f"{'consistent' if rc == 0 else 'INCONSISTENT'}")
    return rc


def selftest(d):
    bad = 0
    cases = []
    with open(os.path.join(d, "manifest.txt")) as fh:
        for line in fh:
            if not line.strip():
                continue
            fmt, name, n, k, group = line.split()
            n, k, group = int(n), int(k), int(group)
            cases.append((fmt, name, n, k, group))
            ref = _bin(d, f"{fmt}_{name}", "ref", "<f4", (n, k))
            W = _dequant_case(_case_tensors(d, fmt, name, n, k, group), fmt, n, k, group)
            if W.shape != ref.shape or not np.array_equal(W, ref):
                diff = np.argwhere(W != ref) if W.shape == ref.shape else [[-1, -1]]
                r, c = diff[0]
                print(f"selftest: {fmt} {name}: {len(diff)} mismatches, first at "
                      f"[{r}][{c}]: python {W[r, c] if r >= 0 else None} "
                      f"C {ref[r, c] if r >= 0 else None}", file=sys.stderr)
                bad += 1
            else:
                print(f"selftest: {fmt} {name} (n={n} k={k} group={group}): exact")
    print(f"selftest: {len(cases) - bad}/{len(cases)} cases exact")
    if bad or not cases:
        return 1
    return _selftest_checkpoints(d, cases)


# -------------------------------------------------------------- checkpoints


class Checkpoint:
    """Tensors of a .safetensors file or a (sharded) checkpoint folder,
    opened lazily with the safetensors package."""

    def __init__(self, path):
        from safetensors import safe_open
        self._open = safe_open
        if os.path.isdir(path):
            idx = os.path.join(path, "model.safetensors.index.json")
            if os.path.exists(idx):
                with open(idx) as fh:
                    files = sorted(set(json.load(fh)["weight_map"].values()))
            else:
                files = sorted(f for f in os.listdir(path) if f.endswith(".safetensors"))
            files = [os.path.join(path, f) for f in files]
        else:
            files = [path]
        if not files:
            raise ValueError(f"{path}: no .safetensors files")
        self.where = {}
        for f in files:
            with safe_open(f, framework="numpy") as fh:
                for name in fh.keys():
                    self.where[name] = f

    def has(self, name):
        return name in self.where

    def get(self, name):
        with self._open(self.where[name], framework="numpy") as fh:
            return fh.get_tensor(name)

    def layers(self):
        """{prefix: format} for every packed linear."""
        out = {}
        for name in self.where:
            if name.endswith(".qweight"):
                out[name[:-8]] = "gptq"
            elif name.endswith(".B") and self.has(name[:-2] + ".s"):
                p = name[:-2]
                out[p] = "marlin24" if self.has(p + ".meta") else "marlin"
        return dict(sorted(out.items()))

    def dequant(self, p, fmt):
        if fmt == "gptq":
            qweight = self.get(p + ".qweight")
            k = 8 * qweight.shape[0]
            g_idx = (self.get(p + ".g_idx") if self.has(p + ".g_idx") else None)
            scales = self.get(p + ".scales")
            if g_idx is None:
                G = scales.shape[0]
                g_idx = np.arange(k) // (k // G)
            return dequant_gptq(qweight, self.get(p + ".qzeros"), scales, g_idx)
        B = self.get(p + ".B")
        s = self.get(p + ".s")
        if fmt == "marlin":
            k, n = 16 * B.shape[0], B.shape[1] // 2
            group = -1 if s.shape[0] == 1 else k // s.shape[0]
            return dequant_marlin(B, s, k, n, group)
        k, n = 32 * B.shape[0], B.shape[1] // 2
        group = -1 if s.shape[0] == 1 else k // s.shape[0]
        return dequant_marlin24(B, self.get(p + ".meta"), s, k, n, group)


def layer_errors(ck, ref):
    """(prefix, format, W, rel.err, max.abs.err) per packed layer of ck that
    has a readable <prefix>.weight in ref (rel/max None otherwise)."""
    for p, fmt in ck.layers().items():
        W = ck.dequant(p, fmt)
        rel = maxabs = None
        if ref is not None and ref.has(p + ".weight"):
            try:
                Wr = ref.get(p + ".weight").astype(np.float32)
            except (TypeError, ValueError):
                Wr = None  # e.g. BF16, which numpy cannot hold
            if Wr is not None:
                if Wr.shape != W.shape:
                    raise ValueError(f"{p}: shape {W.shape} vs reference {Wr.shape}")
                rel = float(np.linalg.norm(W - Wr) / max(np.linalg.norm(Wr), 1e-30))
                maxabs = float(np.abs(W - Wr).max())
        yield p, fmt, W, rel, maxabs


def show(path, ref_path):
    ck = Checkpoint(path)
    ref = Checkpoint(ref_path) if ref_path else None
    if not ck.layers():
        print(f"{path}: no packed layers found", file=sys.stderr)
        return 1
    for p, fmt, W, rel, maxabs in layer_errors(ck, ref):
        line = f"{p}: {fmt} [{W.shape[0]}, {W.shape[1]}] max|W| {np.abs(W).max():.6g}"
        if ref is not None:
            line += (" (no readable reference weight)" if rel is None
                     else f" rel.err {rel:.4g} max.abs.err {maxabs:.4g}")
        print(line)
    return 0


def compare(a, b):
    A, Bk = Checkpoint(a), Checkpoint(b)
    la, lb = A.layers(), Bk.layers()
    common = sorted(set(la) & set(lb))
    if not common:
        print("compare: no packed layer in common", file=sys.stderr)
        return 1
    bad = 0
    for p in common:
        Wa, Wb = A.dequant(p, la[p]), Bk.dequant(p, lb[p])
        same = Wa.shape == Wb.shape and np.array_equal(Wa, Wb)
        print(f"{p}: {la[p]} vs {lb[p]}: {'identical' if same else 'DIFFERENT'}")
        bad += not same
    print(f"compare: {len(common) - bad}/{len(common)} layers identical")
    return 1 if bad else 0


def main(argv):
    if len(argv) >= 2 and argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0
    try:
        if len(argv) == 3 and argv[1] == "selftest":
            return selftest(argv[2])
        if len(argv) in (3, 5) and argv[1] == "show":
            ref = None
            if len(argv) == 5:
                if argv[3] != "--ref":
                    raise SystemExit(2)
                ref = argv[4]
            return show(argv[2], ref)
        if len(argv) == 4 and argv[1] == "compare":
            return compare(argv[2], argv[3])
    except (OSError, ValueError, KeyError) as e:
        print(f"marlin_dequant: {e}", file=sys.stderr)
        return 1
    print("usage: marlin_dequant.py show PATH [--ref REF] | compare A B | selftest DIR",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
