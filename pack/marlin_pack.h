/*
 * marlin_pack.h - every packed INT4 weight format of the toolchain, and the
 * exact inverse of each: GPTQ v1, dense Marlin (IST-DASLab/marlin) and
 * Sparse-Marlin 2:4 (IST-DASLab/Sparse-Marlin, as vLLM's marlin_24 utilities
 * compute it).
 *
 * Spec: ../shared/docs/reference/marlin-format.md (section numbers below,
 * written "MF 1.4" etc.) and docs/design.md "Formats". pack/ is pure
 * functions on memory: no file I/O and no quantization algorithm.
 *
 * ------------------------------------------------------------------------
 * Shared conventions (the quantizer produces exactly these; keep them):
 *
 *   n = out_features, k = in_features (nn.Linear.weight is [n, k]).
 *
 *   codes   uint8_t q[n * k], row-major (n, k): q[r * k + c] is the code of
 *           output row r, input column c. Values 0..15; the weight value is
 *           (q - 8) * s (symmetric INT4, fixed zero point 8, MF 1.1).
 *           A pruned 2:4 weight has code 8 (value 0).
 *   scales  uint16_t s[G * n] (fp16 bit patterns), row-major (G, n), natural
 *           column order; s[grp * n + r] scales q[r][c] for c / g == grp.
 *   group   g = the group size along k, or -1 for per-channel scales.
 *           G = k / g groups (G = 1 for -1). g must divide k; each format
 *           adds its own gate (below). g == k also gives G = 1 and is
 *           packed exactly like -1 (every format keys on G > 1, MF 1.6).
 *
 * Packed tensors are little-endian words; they are declared uint32_t /
 * uint16_t here because they are bit patterns, but the checkpoint dtypes
 * are I32 / I16 (same bytes). Counts are int64_t.
 *
 * Threads: every packer/unpacker takes `threads` (<= 0: all online CPUs,
 * 1: the calling thread only) and splits the work over 64-column (GPTQ:
 * 8-column) slices with marlin_parallel_for. Each output word is written
 * by exactly one thread from the same inputs, so the output is
 * byte-identical for every thread count (tested). Small layers run on the
 * calling thread.
 *
 * Errors: MARLIN_ERR_SHAPE names the broken divisibility rule;
 * MARLIN_ERR_INVALID_ARG a code > 15, a non-2:4 group (naming the output row
 * and the group) or a NULL required pointer; MARLIN_ERR_FORMAT/UNSUPPORTED a
 * packed input that is not one of our formats (naming the tensor and the
 * value found). Outputs are unspecified after a failure. When several
 * elements are bad, the one reported is the first in (n, k) row-major order
 * whatever the thread count, so messages are deterministic too.
 * ------------------------------------------------------------------------
 */
#ifndef MARLIN_PACK_H
#define MARLIN_PACK_H

#include "marlin_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The index helpers below are usable from CUDA device code too, so the
 * kernels' CPU references and tests share this one definition (style.md
 * habit 14). */
#if defined(__CUDACC__)
#define MARLIN_PACK_HD __host__ __device__
#else
#define MARLIN_PACK_HD
#endif

/* ====================================================================== */
/* Groups                                                                  */
/* ====================================================================== */

/* Number of scale rows G for a group size: k / g, or 1 for g == -1.
 * Only meaningful for a group accepted by marlin_pack_check_group(). */
static inline MARLIN_PACK_HD int64_t marlin_pack_groups(int64_t k,
                                                        int64_t group) {
    return group == -1 ? 1 : k / group;
}

/* True when the Marlin scale layouts use their grouped permutation (MF 1.6,
 * 4.6; the same rule as vLLM marlin_permute_scales): g < k and g != -1,
 * i.e. G > 1. Otherwise the "single" (per-channel) permutation is used. */
static inline MARLIN_PACK_HD bool marlin_pack_scales_grouped(int64_t k,
                                                             int64_t group) {
    return group != -1 && group < k;
}

/* Checks that `group` is -1 or a positive divisor of k that is also a
 * multiple of `multiple_of` (1 for no such rule). MARLIN_ERR_SHAPE naming the
 * rule otherwise. `what` names the format in the message. */
marlin_status marlin_pack_check_group(const char *what, int64_t k,
                                      int64_t group, int64_t multiple_of,
                                      marlin_error *err);

/* ====================================================================== */
/* 1. GPTQ v1 (what vLLM gptq_marlin, transformers and TGI load; MF 5.2,    */
/*    5.4 pack_rows, design.md "Formats")                                   */
/* ====================================================================== */
/*
 * Tensors of one linear <p> (source <p>.weight is [n, k]):
 *   qweight  I32 [k/8, n]  word (r, c) holds codes q[c][8r + t] in nibble t
 *                          (bits 4t..4t+3), t = 0..7: lowest k in the
 *                          lowest nibble.
 *   qzeros   I32 [G, n/8]  every word 0x77777777: the symmetric zero point 8
 *                          is stored as 8 - 1 = 7 (the GPTQ "v1" convention;
 *                          dequantization is (q - (z + 1)) * s).
 *   scales   F16 [G, n]    natural order (a copy of s).
 *   g_idx    I32 [k]       g_idx[c] = c / g, the group of input column c
 *                          (per-channel: all 0).
 * Gates: k % 8 == 0 (8 codes per word along k), n % 8 == 0 (8 zero points
 * per qzeros word), group -1 or any g >= 1 dividing k.
 */
#define MARLIN_GPTQ_V1_ZERO_WORD 0x77777777u

marlin_status marlin_pack_gptq_check_shape(int64_t n, int64_t k,
                                           int64_t group, marlin_error *err);

/* Packs codes q (n, k) and scales s (G, n) into the four GPTQ tensors.
 * Any output may be NULL to skip it (s may be NULL when scales is). */
marlin_status marlin_pack_gptq(const uint8_t *q, const uint16_t *s,
                               int64_t n, int64_t k, int64_t group,
                               int threads, uint32_t *qweight,
                               uint32_t *qzeros, uint16_t *scales,
                               int32_t *g_idx, marlin_error *err);

/* Inverse: qweight -> codes q (n, k) in the checkpoint's row order, and
 * scales -> s (a copy; either may be NULL to skip it). qzeros is required
 * and validated: every word must be 0x77777777 (symmetric v1); anything else
 * is MARLIN_ERR_UNSUPPORTED naming the first bad word and what it looks like
 * (0x88888888 = GPTQ v2 zero points, other values = asymmetric sym=false). */
marlin_status marlin_unpack_gptq(const uint32_t *qweight,
                                 const uint32_t *qzeros,
                                 const uint16_t *scales, int64_t n,
                                 int64_t k, int64_t group, int threads,
                                 uint8_t *q, uint16_t *s, marlin_error *err);

/* Analyses a checkpoint's g_idx [k] for group size `group` (-1 or g | k):
 *  - trivial (g_idx[c] == c / g; all 0 per-channel): *act_order = false,
 *    perm (if non-NULL) = identity;
 *  - act-order (desc_act = true, MF 5.2): every value in [0, G) and every
 *    group holding exactly g columns: *act_order = true and perm (if
 *    non-NULL) = the stable argsort of g_idx, i.e. perm[r] is the checkpoint
 *    input column that becomes row r of the sorted weight. After sorting,
 *    group grp is rows [grp*g, (grp+1)*g), so scales need no reordering.
 *    Marlin tiles built from the sorted codes (marlin_pack_permute_k) then
 *    need the activations permuted the same way at run time:
 *    A'[:, r] = A[:, perm[r]] (vLLM g_idx_sort_indices);
 *  - anything else: MARLIN_ERR_FORMAT naming the first bad entry or group.
 * Per-channel with a non-zero g_idx is rejected (there is one group). */
marlin_status marlin_pack_gptq_g_idx(const int32_t *g_idx, int64_t k,
                                     int64_t group, int32_t *perm,
                                     bool *act_order, marlin_error *err);

/* Gathers input columns: out[r][j] = q[r][perm[j]] for codes (n, k).
 * perm must be a permutation of 0..k-1 (checked: MARLIN_ERR_INVALID_ARG). */
marlin_status marlin_pack_permute_k(const uint8_t *q, int64_t n, int64_t k,
                                    const int32_t *perm, int threads,
                                    uint8_t *out, marlin_error *err);

/* ====================================================================== */
/* 2. Dense Marlin (IST-DASLab/marlin Layer.pack, bit-exact; MF 1.2-1.7)     */
/* ====================================================================== */
/*
 * Tensors:
 *   B  I32 [k/16, 2n]  (k*n/2 bytes): every 16 x 64 tile of the logical
 *                      W[k][n] = q^T becomes 128 consecutive words of one
 *                      B row; element (k, n) is at marlin_pack_dense_loc().
 *   s  F16 [G, n]      each scale row permuted by marlin_pack_dense_scale_col
 *                      (grouped: an 8 x 8 transpose per 64 columns; G = 1:
 *                      the 32-entry "single" permutation).
 * Gates (vLLM gptq_marlin's minimum tile, MF 2.6/7.5): k % 128 == 0,
 * n % 64 == 0, g = -1 or g | k with g % 16 == 0. The B layout does not
 * depend on g at all (only s does, through G > 1); the g % 16 rule is ours:
 * every Marlin kernel reads scales per 16-row k block (group_blocks = g/16).
 * Kernel support is narrower: IST's kernel instantiates g in {-1, 128} and
 * needs n % 256 for batches > 16 (MF 2.3); vLLM's {-1, 32, 64, 128}. The
 * kernel wrapper, not this packer, enforces those.
 */
typedef struct marlin_pack_loc {
    int64_t row;  /* row of the packed tensor */
    int64_t word; /* 32-bit word inside that row */
    int nib;      /* nibble 0..7 of the word: bits 4*nib .. 4*nib+3 */
} marlin_pack_loc;

/* MF 1.4: logical weight element (k, n) -> B[row][word] nibble nib.
 *   kt = k/16, kk = k%16, nn = n%16, j = (n%64)/16,
 *   lane = 4*(nn%8) + (kk%8)/2, word = 128*(n/64) + 4*lane + j,
 *   nib = 4*(kk%2) + 2*(nn/8) + kk/8.
 * Why: lane = the mma.m16n8k16 B-fragment owner of (k, n); word j = the
 * 16-column subtile, so one 16-byte load per lane feeds 4 subtiles, and the
 * nibble order lets one LOP3 mask extract a (k, k+1) half2 (MF 1.5). */
static inline MARLIN_PACK_HD marlin_pack_loc marlin_pack_dense_loc(int64_t k,
                                                                   int64_t n) {
    int64_t kk = k % 16, nn = n % 16;
    int64_t lane = 4 * (nn % 8) + (kk % 8) / 2;
    marlin_pack_loc l;
    l.row = k / 16;
    l.word = 128 * (n / 64) + 4 * lane + (n % 64) / 16;
    l.nib = (int)(4 * (kk % 2) + 2 * (nn / 8) + kk / 8);
    return l;
}

/* MF 1.6: natural scale column x -> its column in the stored scale row.
 * grouped (G > 1): 64*(x/64) + 8*(x%8) + (x%64)/8   (IST scale_perm)
 * single  (G = 1): 32*(x/32) + 8*((x%8)/2) + 2*((x%32)/8) + x%2
 *                  (IST scale_perm_single). */
static inline MARLIN_PACK_HD int64_t marlin_pack_dense_scale_col(int64_t x,
                                                                 bool grouped) {
    if (grouped) return 64 * (x / 64) + 8 * (x % 8) + (x % 64) / 8;
    return 32 * (x / 32) + 8 * ((x % 8) / 2) + 2 * ((x % 32) / 8) + x % 2;
}

marlin_status marlin_pack_dense_check_shape(int64_t n, int64_t k,
                                            int64_t group, marlin_error *err);

/* Packs codes q (n, k) -> B [k/16][2n] and natural scales s (G, n) ->
 * permuted s_out (G, n). s and s_out may both be NULL (codes only). */
marlin_status marlin_pack_dense(const uint8_t *q, const uint16_t *s,
                                int64_t n, int64_t k, int64_t group,
                                int threads, uint32_t *B, uint16_t *s_out,
                                marlin_error *err);

/* Exact inverse: B -> codes q (n, k); permuted s_perm -> natural s (both
 * scale pointers may be NULL). Every 4-bit pattern is a valid code, so this
 * cannot fail on data, only on shape. */
marlin_status marlin_unpack_dense(const uint32_t *B, const uint16_t *s_perm,
                                  int64_t n, int64_t k, int64_t group,
                                  int threads, uint8_t *q, uint16_t *s,
                                  marlin_error *err);

/* Scale layouts alone (G rows of n columns; n % 64 == 0). */
void marlin_pack_dense_scales(const uint16_t *s, int64_t G, int64_t n,
                              bool grouped, uint16_t *s_out);
void marlin_unpack_dense_scales(const uint16_t *s_perm, int64_t G, int64_t n,
                                bool grouped, uint16_t *s);

/* ====================================================================== */
/* 2b. GPTQ v1 -> dense Marlin in one call (what marlin-pack does per layer;  */
/*     the same steps as vLLM gptq_marlin's load-time repack, MF 5.2)        */
/* ====================================================================== */
/* Validates qzeros (marlin_unpack_gptq) and g_idx (marlin_pack_gptq_g_idx;
 * g_idx may be NULL for a checkpoint without one, meaning trivial), sorts
 * act-order columns into contiguous groups, and packs B [k/16][2n] and the
 * permuted scales s_out [G][n] (Marlin's shape gates apply: MARLIN_ERR_SHAPE
 * for a layer that GPTQ can hold but Marlin cannot). *act_order tells
 * whether rows were sorted; perm (k entries, may be NULL) receives the
 * activation gather the kernel then needs, A'[:, r] = A[:, perm[r]]
 * (identity when !*act_order). Temporary memory: n*k bytes (2 n*k with
 * act-order). */
marlin_status marlin_pack_gptq_to_marlin(const uint32_t *qweight,
                                         const uint32_t *qzeros,
                                         const uint16_t *scales,
                                         const int32_t *g_idx, int64_t n,
                                         int64_t k, int64_t group,
                                         int threads, uint32_t *B,
                                         uint16_t *s_out, int32_t *perm,
                                         bool *act_order, marlin_error *err);

/* ====================================================================== */
/* 3. Sparse-Marlin 2:4 (MF 4.2-4.7, 5.3, 5.4; pitfall 7.1)                */
/* ====================================================================== */
/*
 * Input: codes q (n, k) in which every aligned group of 4 consecutive k of
 * one output row, q[r][4i .. 4i+3], has at most 2 non-zero SIGNED values
 * v = q - 8 (pruned weights have code 8). Anything else is rejected
 * (MARLIN_ERR_INVALID_ARG naming the row and group).
 *
 * Compression (MF 4.3, the CUTLASS encoding of
 * sparse_semi_structured_from_dense_cutlass), per row r and group i with
 * flags f_t = (v[r][4i+t] != 0): two indices idx0 < idx1 in 0..3
 * (marlin_pack_24_meta_nibble), compressed codes
 *   qc[2i][r] = v[r][4i+idx0] + 8,  qc[2i+1][r] = v[r][4i+idx1] + 8,
 * qc being the (k/2, n) compressed matrix. The flags come from the signed
 * values, so an index that lands on a pruned slot always decodes to 0, never
 * to -8*s (IST Layer_2_4.pack detects non-zeros on unsigned codes and gets
 * this wrong when a kept weight has code 0, MF 7.1).
 *
 * Tensors:
 *   B     I32 [k/32, 2n]  qc packed like dense Marlin but with the 2:4
 *                         permutation (MF 4.4): marlin_pack_24_loc().
 *   meta  I16 [k/32, 2n]  logical meta (n, k/16): element (r, c) =
 *                         sum_{j<4} nibble(group 4c+j of row r) << 4j,
 *                         stored in CUTLASS ColumnMajorInterleaved<2> order
 *                         with the 2x2 swizzle (MF 4.5):
 *                         marlin_pack_24_meta_pos(). Sparse-Marlin keeps the
 *                         same bytes as (n, k/16); vLLM views them as
 *                         (k/32, 2n).
 *   s     F16 [G, n]      grouped: 8-wide permutation (MF 4.6); G = 1:
 *                         identity. marlin_pack_24_scale_col().
 * Gates: k % 128 == 0, n % 128 == 0 (the kernel's minimum tiles, MF 4.7),
 * g = -1 or g | k with g % 32 == 0. Decision on group sizes: the packed
 * layout is well defined for every such g (B and meta ignore g; s is just G
 * rows with the same 8-wide permutation), and g % 32 keeps a group a whole
 * number of the kernel's 16-row compressed k blocks (group_blocks = g/32).
 * IST's and vLLM's 2:4 kernels instantiate only g in {-1, 128}; 32 and 64
 * are accepted here for our own kernels, and the kernel wrapper rejects
 * what it does not instantiate.
 */

/* MF 4.4: compressed element (kc, n), kc in [0, k/2) -> B[row][word] nib.
 *   kt = kc/16, kk = kc%16, nn = n%16, col = 2*((n%64)/16) + nn/8,
 *   lane = 4*col + (kk%8)/2, word = 128*(n/64) + 4*lane + nn%4,
 *   nib = 4*(kk%2) + 2*((nn%8)/4) + kk/8.
 * Why: the weights are operand A of mma.sp.m16n8k32 (rows = output
 * features), so the lane owner follows the A-fragment layout. */
static inline MARLIN_PACK_HD marlin_pack_loc marlin_pack_24_loc(int64_t kc,
                                                                int64_t n) {
    int64_t kk = kc % 16, nn = n % 16;
    int64_t col = 2 * ((n % 64) / 16) + nn / 8;
    int64_t lane = 4 * col + (kk % 8) / 2;
    marlin_pack_loc l;
    l.row = kc / 16;
    l.word = 128 * (n / 64) + 4 * lane + nn % 4;
    l.nib = (int)(4 * (kk % 2) + 2 * ((nn % 8) / 4) + kk / 8);
    return l;
}

/* MF 4.3: CUTLASS 2-bit index pair for a group of 4 with non-zero flags
 * `flags` (bit t = f_t, t = 0..3): nibble idx0 | idx1 << 2, idx0 < idx1.
 * Exactly-two-non-zero groups give the two positions; groups with fewer
 * non-zeros get the fixed fill-ins of the table (0000/0001/0010/0011 ->
 * 0xE, 0100/0110 -> 0x9, 0101/0111 -> 0xD, 1000/1010 -> 0x8,
 * 1001/1011 -> 0xC, 11xx -> 0x4, written f0 f1 f2 f3). Groups with 3-4
 * non-zeros get CUTLASS's truncation too, but the packer rejects them. */
static inline MARLIN_PACK_HD int marlin_pack_24_meta_nibble(unsigned flags) {
    /* Boolean form of MF 4.3 (Espresso-minimised in the CUTLASS source). */
    unsigned f0 = flags & 1u, f1 = (flags >> 1) & 1u;
    unsigned f3 = (flags >> 3) & 1u;
    unsigned n0 = f0 ^ 1u, n1 = f1 ^ 1u; /* !f0, !f1 */
    unsigned b0 = n0 & f1, b1 = n0 & n1;
    unsigned b2 = (f0 & f1) | (n0 & n1) | f3, b3 = (n0 & f1) | n1;
    return (int)(b0 | b1 << 1 | b2 << 2 | b3 << 3);
}

/* True for the six nibbles mma.sp accepts for 16-bit data (idx0 < idx1):
 * 0x4, 0x8, 0x9, 0xC, 0xD, 0xE. The unpacker rejects anything else. */
static inline MARLIN_PACK_HD bool marlin_pack_24_meta_nibble_valid(int nib) {
    return (nib & 3) < (nib >> 2);
}

typedef struct marlin_pack_pos {
    int64_t row, col;
} marlin_pack_pos;

/* MF 4.5: logical meta element (r, c) (r = output row 0..n-1, c = 16-row
 * chunk of dense k, 0..k/16-1) -> meta[row][col] of the [k/32, 2n] view.
 *   R = 64*(r/64) + 32*((r>>1)&1) + 4*((r>>3)&7) + 2*(r&1) + ((r>>2)&1)
 *   2x2 swizzle (R even, c odd: R+1, c-1; R odd, c even: R-1, c+1), then
 *   flat offset (c/2)*2n + 2R + c%2, which simplifies to
 *   row = c/2, col = 4*(R/2) + 2*(c%2) + R%2.
 * Why: the order in which ldmatrix hands each thread the 32-bit metadata
 * register that mma.sp expects (CUTLASS ColumnMajorInterleaved<2>). */
static inline MARLIN_PACK_HD int64_t marlin_pack_24_meta_row_perm(int64_t r) {
    return 64 * (r / 64) + 32 * ((r >> 1) & 1) + 4 * ((r >> 3) & 7) +
           2 * (r & 1) + ((r >> 2) & 1);
}
static inline MARLIN_PACK_HD marlin_pack_pos marlin_pack_24_meta_pos(int64_t r,
                                                                     int64_t c) {
    int64_t R = marlin_pack_24_meta_row_perm(r);
    marlin_pack_pos p;
    p.row = c / 2;
    p.col = 4 * (R / 2) + 2 * (c % 2) + R % 2;
    return p;
}

/* MF 4.6: natural scale column x -> stored column.
 * grouped (G > 1): 8*(x/8) + 2*(x%4) + (x%8)/4 (IST scale_perm_2_4,
 * p = [0,4,1,5,2,6,3,7] inside every 8 columns); single (G = 1): x. */
static inline MARLIN_PACK_HD int64_t marlin_pack_24_scale_col(int64_t x,
                                                              bool grouped) {
    return grouped ? 8 * (x / 8) + 2 * (x % 4) + (x % 8) / 4 : x;
}

marlin_status marlin_pack_24_check_shape(int64_t n, int64_t k, int64_t group,
                                         marlin_error *err);

/* Packs 2:4 codes q (n, k) -> B [k/32][2n], meta [k/32][2n] and scales
 * s (G, n) -> s_out (both scale pointers may be NULL). */
marlin_status marlin_pack_24(const uint8_t *q, const uint16_t *s, int64_t n,
                             int64_t k, int64_t group, int threads,
                             uint32_t *B, uint16_t *meta, uint16_t *s_out,
                             marlin_error *err);

/* Exact inverse: dense codes q (n, k) with 8 at every position the metadata
 * does not select, natural scales s (scale pointers may be NULL). A meta
 * nibble that mma.sp would not accept is MARLIN_ERR_FORMAT naming it. */
marlin_status marlin_unpack_24(const uint32_t *B, const uint16_t *meta,
                               const uint16_t *s_perm, int64_t n, int64_t k,
                               int64_t group, int threads, uint8_t *q,
                               uint16_t *s, marlin_error *err);

void marlin_pack_24_scales(const uint16_t *s, int64_t G, int64_t n,
                           bool grouped, uint16_t *s_out);
void marlin_unpack_24_scales(const uint16_t *s_perm, int64_t G, int64_t n,
                             bool grouped, uint16_t *s);

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_PACK_H */
