/*
 * marlin24_ref.c - host side of the 2:4 sparse kernel that needs no GPU:
 * the shape gate, the CPU reference (marlin_gemm24_ref) and, in builds
 * without CUDA, the GPU entry points reporting that CUDA is not built in.
 *
 * The reference decodes the packed tensors only through pack/
 * (marlin_unpack_24), so the layout is defined once (style.md habit 14):
 * a kernel that reads B/meta/s differently from the packer fails its test
 * against this reference. Spec: marlin-format.md section 4.
 */
#include "marlin_dense_tiles.h" /* the wgmma kernel's widths, residency, narrow rule */
#include "marlin_kernels24.h"
#include "marlin_pack.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

marlin_status marlin_gemm24_check_shape(int64_t n, int64_t k, int64_t group,
                                        marlin_error *err) {
    if (n <= 0 || k <= 0 || n % 128 != 0 || k % 128 != 0)
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "2:4 kernel: n = %lld, k = %lld; need n %% 128 == 0 "
                           "and k %% 128 == 0 (the kernel's tiles, MF 4.7)",
                           (long long)n, (long long)k);
    if (group == -1) return MARLIN_OK;
    /* A 32-row dense k block (one warp's step) must lie in one group, and a
     * group must start a pipeline stage (64 or 128 rows) or be whole
     * 32-row blocks inside one: 32, 64, or multiples of 128. */
    if (group <= 0 || k % group != 0 ||
        !(group == 32 || group == 64 || group % 128 == 0))
        return marlin_fail(err, MARLIN_ERR_SHAPE,
                           "2:4 kernel: group size %lld with k = %lld; need -1, "
                           "or 32, 64 or a multiple of 128 that divides k",
                           (long long)group, (long long)k);
    return MARLIN_OK;
}

/* Output rows of W dequantized per sgemm call: bounds the fp32 copy of the
 * weights at 256 * k floats. */
#define REF_ROWS 256

marlin_status marlin_gemm24_ref(const uint16_t *A, const uint32_t *B,
                                const uint16_t *meta, const uint16_t *s,
                                int64_t m, int64_t n, int64_t k,
                                int64_t group, int threads, float *C,
                                marlin_error *err) {
    uint8_t *q = NULL;
    uint16_t *sn = NULL;
    float *af = NULL, *wf = NULL, *cb = NULL;
    marlin_status st = marlin_gemm24_check_shape(n, k, group, err);
    if (st != MARLIN_OK) return st;
    if (m < 0 || !B || !meta || !s || !C || (m > 0 && !A))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_gemm24_ref: m = %lld or a NULL pointer",
                           (long long)m);
    if (m == 0) return MARLIN_OK;
    const int64_t G = marlin_pack_groups(k, group);
    const int64_t gs = group == -1 ? k : group;
    q = malloc((size_t)n * (size_t)k);
    sn = malloc((size_t)G * (size_t)n * sizeof *sn);
    af = malloc((size_t)m * (size_t)k * sizeof *af);
    wf = malloc((size_t)REF_ROWS * (size_t)k * sizeof *wf);
    cb = malloc((size_t)m * REF_ROWS * sizeof *cb);
    if (!q || !sn || !af || !wf || !cb) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM,
                         "marlin_gemm24_ref: out of memory (n = %lld, k = "
                         "%lld, m = %lld)",
                         (long long)n, (long long)k, (long long)m);
        goto out;
    }
    st = marlin_unpack_24(B, meta, s, n, k, group, threads, q, sn, err);
    if (st != MARLIN_OK) goto out;
    marlin_half_to_float_n(A, af, (size_t)m * (size_t)k);
    for (int64_t r0 = 0; r0 < n; r0 += REF_ROWS) {
        const int64_t nr = n - r0 < REF_ROWS ? n - r0 : REF_ROWS;
        for (int64_t r = 0; r < nr; ++r) {
            const uint8_t *qr = q + (size_t)(r0 + r) * (size_t)k;
            float *wr = wf + (size_t)r * (size_t)k;
            for (int64_t c = 0; c < k; ++c) {
                const float sc =
                    marlin_half_to_float(sn[(c / gs) * n + r0 + r]);
                wr[c] = (float)((int)qr[c] - 8) * sc;
            }
        }
        /* cb[m x nr] = A[m x k] * Wrows[nr x k]^T, fp32 accumulation */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)nr,
                    (int)k, 1.0f, af, (int)k, wf, (int)k, 0.0f, cb, (int)nr);
        for (int64_t i = 0; i < m; ++i)
            memcpy(C + (size_t)i * (size_t)n + r0, cb + (size_t)i * (size_t)nr,
                   (size_t)nr * sizeof *C);
    }
out:
    free(q);
    free(sn);
    free(af);
    free(wf);
    free(cb);
    return st;
}

int marlin_gemm24_pick_wgmma(int64_t m, int64_t n, int64_t k, int64_t group, int cc_major,
                             int cc_minor) {
    if (cc_major != 9 || cc_minor != 0 || m <= MARLIN_GEMM24_WGMMA_MIN_ROWS) return 0;
    if (n <= 0 || n % 256 != 0 || k <= 0 || k % 128 != 0) return 0;
    const bool grouped = marlin_pack_scales_grouped(k, group);
    if (grouped && (group < 32 || (group & (group - 1)) != 0)) return 0;
    return 1;
}

/* Pieces of one tile's k range: as many as fill one wave of resident
 * blocks (two per SM of the 32- and 64-row kernels, one of the 128-row
 * one), each at least 512 deep, at most 16. (Session 4 had them 1024
 * deep: a 2:4 stage carries half the dense bytes, and when the last piece
 * added all partial tiles alone more pieces cost more than they saved.
 * Since every piece adds a share of the tile (session 7), the dense
 * path's 512 wins: run 4's tune, Llama-2-7B o_proj at m = 17 8.2 us in
 * 8 pieces against 10.8 us in 4, down_proj 13.7 us in 16 against 16.9 in
 * 10; Llama-3-8B qkv and o_proj alike.) */
static int wg24_splits(int64_t m, int64_t n, int64_t k, int rows, int sm_count) {
    const int64_t tiles = ((m + rows - 1) / rows) * (n / 256);
    const int64_t slots = (int64_t)sm_count * MARLIN_DENSE_WG_BLOCKS_PER_SM(rows);
    int64_t S = tiles > 0 ? slots / tiles : 1;
    if (S > k / 512) S = k / 512;
    if (S > 16) S = 16;
    if (S < 1) S = 1;
    return (int)S;
}

void marlin_gemm24_wgmma_tile(int64_t m, int64_t n, int64_t k, int sm_count, int *rows,
                              int *splits) {
    if (sm_count < 1) sm_count = 1;
    int r = *rows;
    if (r <= 0) {
        r = MARLIN_DENSE_WG_ROWS(m);
        /* the dense path's narrower tile for small layers
         * (marlin_dense_wg_narrow_pieces): session 7's run 4 tune,
         * Llama-2-7B o_proj at m = 128 13.8 us in 64-row tiles x 4 pieces
         * against 14.2 us in 128-row tiles x 8 and 14.6 us in 64-row tiles
         * x 8 */
        if (r == 128) {
            const int s64 = marlin_dense_wg_narrow_pieces(
                m, n, k, wg24_splits(m, n, k, 128, sm_count), sm_count);
            if (s64 > 0) {
                *rows = 64;
                *splits = s64;
                return;
            }
        }
    }
    *rows = r;
    *splits = wg24_splits(m, n, k, r, sm_count);
}

#ifndef MARLIN_HAVE_CUDA
/* Built without CUDA: the GPU half of the API is a disabled feature. */
int marlin_gemm24_wgmma_built(void) { return 0; }

marlin_status marlin_gemm24_device(marlin24_device_info *info,
                                   marlin_error *err) {
    if (info) memset(info, 0, sizeof *info);
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "2:4 kernel: built without CUDA");
}

marlin_status marlin_gemm24_workspace_size(int64_t m, int64_t n,
                                           size_t *bytes, marlin_error *err) {
    (void)m;
    (void)n;
    if (bytes) *bytes = 0;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "2:4 kernel: built without CUDA");
}

marlin_status marlin_gemm24(const void *A, const void *B, const void *meta,
                            const void *s, void *C, int64_t m, int64_t n,
                            int64_t k, int64_t group, void *workspace,
                            size_t workspace_bytes, void *stream,
                            marlin_error *err) {
    return marlin_gemm24_ex(A, B, meta, s, C, m, n, k, group, workspace,
                            workspace_bytes, stream, NULL, err);
}

marlin_status marlin_gemm24_ex(const void *A, const void *B, const void *meta,
                               const void *s, void *C, int64_t m, int64_t n,
                               int64_t k, int64_t group, void *workspace,
                               size_t workspace_bytes, void *stream,
                               const marlin_gemm24_opts *opts,
                               marlin_error *err) {
    (void)A; (void)B; (void)meta; (void)s; (void)C; (void)m; (void)n;
    (void)k; (void)group; (void)workspace; (void)workspace_bytes;
    (void)stream; (void)opts;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "2:4 kernel: built without CUDA");
}

marlin_status marlin_bench24_fill_meta(void *meta, size_t bytes, uint64_t seed,
                                       void *stream, marlin_error *err) {
    (void)meta; (void)bytes; (void)seed; (void)stream;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "2:4 kernel: built without CUDA");
}

marlin_status marlin_bench24_copy_bandwidth(double *gbps, marlin_error *err) {
    if (gbps) *gbps = 0;
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "2:4 kernel: built without CUDA");
}

marlin_status marlin_bench24_layer(int64_t m, int64_t n, int64_t k,
                                   int64_t group,
                                   const marlin_gemm24_opts *opts,
                                   int batches, int calls, int use_graph,
                                   int with_cublas,
                                   marlin24_bench_result *res,
                                   marlin_error *err) {
    (void)m; (void)n; (void)k; (void)group; (void)opts; (void)batches;
    (void)calls; (void)use_graph; (void)with_cublas;
    if (res) memset(res, 0, sizeof *res);
    return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                       "2:4 kernel: built without CUDA");
}
#endif
