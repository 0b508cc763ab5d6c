/*
 * llama.c - the marlin_llama object: configuration checks, RoPE frequencies,
 * fp32 loading of blocks / embedding / head through a weight source, and the
 * model's two ends (embedding lookup, final norm + lm_head, next-token NLL).
 *
 * Spec: transformers models/llama/modeling_llama.py (LlamaForCausalLM) and
 * modeling_rope_utils.py (_compute_default_rope_parameters,
 * _compute_linear_scaling_rope_parameters, _compute_llama3_parameters);
 * qwen2 and mistral differ from llama only in which linears carry biases
 * (qwen2: q/k/v) for the configurations we accept.
 */
#include "model_internal.h"

#include <cblas.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ names */

static const char *const k_linear_names[MARLIN_LINEAR_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
    "mlp.down_proj"};

const char *marlin_linear_name(marlin_linear l) {
    if ((int)l < 0 || l >= MARLIN_LINEAR_COUNT) return "?";
    return k_linear_names[l];
}

void marlin_linear_shape(const marlin_llama *m, marlin_linear l, int64_t *n,
                         int64_t *k) {
    int64_t nn = 0, kk = 0;
    switch (l) {
    case MARLIN_Q_PROJ: nn = m->q_dim; kk = m->hidden; break;
    case MARLIN_K_PROJ:
    case MARLIN_V_PROJ: nn = m->kv_dim; kk = m->hidden; break;
    case MARLIN_O_PROJ: nn = m->hidden; kk = m->q_dim; break;
    case MARLIN_GATE_PROJ:
    case MARLIN_UP_PROJ: nn = m->inter; kk = m->hidden; break;
    case MARLIN_DOWN_PROJ: nn = m->hidden; kk = m->inter; break;
    default: break;
    }
    if (n) *n = nn;
    if (k) *k = kk;
}

bool marlin_linear_has_bias(const marlin_llama *m, marlin_linear l) {
    if ((int)l < 0 || l >= MARLIN_LINEAR_COUNT) return false;
    return m->bias[l];
}

const marlin_config *marlin_llama_config(const marlin_llama *m) {
    return &m->cfg;
}

void marlin_llama_set_threads(marlin_llama *m, int threads) {
    m->threads = threads > 0 ? threads : marlin_cpu_count();
}

/* ------------------------------------------------------------------- RoPE */

marlin_status marlin_rope_inv_freq(const marlin_config *cfg, float *inv_freq,
                                   marlin_error *err) {
    int64_t d = cfg->head_dim;
    if (d < 2 || d % 2 != 0)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "head_dim %lld: RoPE needs an even head_dim >= 2",
                           (long long)d);
    if (!(cfg->rope_theta > 0.0) || !isfinite(cfg->rope_theta))
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "rope_theta %g must be a positive number",
                           cfg->rope_theta);
    switch (cfg->rope_type) {
    case MARLIN_ROPE_DEFAULT:
    case MARLIN_ROPE_LINEAR:
    case MARLIN_ROPE_LLAMA3:
        break;
    case MARLIN_ROPE_DYNAMIC:
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "rope_scaling type 'dynamic' depends on the "
                           "sequence length at run time; only default, "
                           "linear and llama3 are supported");
    case MARLIN_ROPE_YARN:
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "rope_scaling type 'yarn' is not supported (only "
                           "default, linear and llama3)");
    default:
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "rope_scaling type %d is not supported",
                           (int)cfg->rope_type);
    }
    /* _compute_default_rope_parameters, in torch fp32:
     *   inv_freq = 1.0 / (base ** (arange(0, dim, 2).float() / dim))
     * every step is an fp32 op: the exponent 2j/d is an fp32 division and
     * pow is evaluated on fp32 inputs (we use double pow of the fp32 values
     * then round, which is torch's correctly-rounded-or-1-ulp result). */
    float base = (float)cfg->rope_theta;
    for (int64_t j = 0; j < d / 2; j++) {
        float e = (float)(2 * j) / (float)d;
        float p = (float)pow((double)base, (double)e);
        inv_freq[j] = 1.0f / p;
    }
    if (cfg->rope_type == MARLIN_ROPE_LINEAR) {
        float f = (float)cfg->rope_factor;
        if (!(f > 0.0f) || !isfinite(f))
            return marlin_fail(err, MARLIN_ERR_FORMAT,
                               "linear rope_scaling factor %g must be "
                               "positive", cfg->rope_factor);
        for (int64_t j = 0; j < d / 2; j++) inv_freq[j] /= f;
    } else if (cfg->rope_type == MARLIN_ROPE_LLAMA3) {
        float factor = (float)cfg->rope_factor;
        double lo = cfg->rope_low_freq_factor, hi = cfg->rope_high_freq_factor;
        double old = (double)cfg->rope_original_max_position;
        if (!(factor > 0.0f) || !isfinite(factor) || !(lo > 0.0) ||
            !(hi > lo) || !isfinite(hi) || !(old > 0.0))
            return marlin_fail(err, MARLIN_ERR_FORMAT,
                               "llama3 rope_scaling needs factor > 0, "
                               "0 < low_freq_factor < high_freq_factor and "
                               "original_max_position_embeddings > 0 (got "
                               "%g, %g, %g, %lld)", cfg->rope_factor, lo, hi,
                               (long long)cfg->rope_original_max_position);
        /* transformers does this on fp32 tensors with Python-float
         * scalars, and torch rounds each scalar to fp32 at its op; a
         * scalar divided by a tensor is reciprocal(tensor) * scalar
         * (Tensor.__rtruediv__). Each line mirrors one torch op. */
        float low_wavelen = (float)(old / lo), high_wavelen = (float)(old / hi);
        for (int64_t j = 0; j < d / 2; j++) {
            float f = inv_freq[j];
            float wavelen = (1.0f / f) * (float)(2.0 * M_PI);
            /* long wavelengths (low frequencies) are slowed by `factor` */
            float scaled = wavelen > low_wavelen ? f / factor : f;
            bool medium = !(wavelen < high_wavelen) && !(wavelen > low_wavelen);
            if (medium) {
                float smooth = ((1.0f / wavelen) * (float)old - (float)lo) /
                               (float)(hi - lo);
                scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
            }
            inv_freq[j] = scaled;
        }
    }
    return MARLIN_OK;
}

/* ----------------------------------------------------------------- create */

static bool known_family(const char *t, bool *qwen2) {
    *qwen2 = strcmp(t, "qwen2") == 0;
    return strcmp(t, "llama") == 0 || strcmp(t, "mistral") == 0 || *qwen2;
}

marlin_status marlin_llama_create(const marlin_config *cfg,
                                  const marlin_weight_source *src,
                                  marlin_llama **out, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    marlin_llama *m = NULL;
    bool qwen2 = false;
    *out = NULL;
    if (!cfg || !src || !src->read || !src->has)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "marlin_llama_create needs a config and a weight "
                           "source with has() and read()");
    if (!cfg->present)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "no config.json: the forward pass needs the "
                           "model's sizes");
    if (!known_family(cfg->model_type, &qwen2))
        return marlin_fail(err, MARLIN_ERR_UNSUPPORTED,
                           "model_type '%s': the forward pass implements the "
                           "Llama family (llama, mistral, qwen2)",
                           cfg->model_type);
    struct { const char *name; int64_t v; } sizes[] = {
        {"hidden_size", cfg->hidden_size},
        {"intermediate_size", cfg->intermediate_size},
        {"num_hidden_layers", cfg->num_hidden_layers},
        {"num_attention_heads", cfg->num_attention_heads},
        {"num_key_value_heads", cfg->num_key_value_heads},
        {"head_dim", cfg->head_dim},
        {"vocab_size", cfg->vocab_size}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        /* sgemm dimensions are int: every size (and heads*head_dim below)
         * must fit. */
        if (sizes[i].v < 1 || sizes[i].v > INT_MAX)
            return marlin_fail(err, MARLIN_ERR_FORMAT,
                               "config %s = %lld must be in [1, %d]",
                               sizes[i].name, (long long)sizes[i].v, INT_MAX);
    }
    if (cfg->num_attention_heads % cfg->num_key_value_heads != 0)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "num_attention_heads %lld is not a multiple of "
                           "num_key_value_heads %lld",
                           (long long)cfg->num_attention_heads,
                           (long long)cfg->num_key_value_heads);
    if (cfg->num_attention_heads > INT_MAX / cfg->head_dim)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "num_attention_heads * head_dim overflows");
    if (!(cfg->rms_norm_eps >= 0.0) || !isfinite(cfg->rms_norm_eps))
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "rms_norm_eps %g must be a finite number >= 0",
                           cfg->rms_norm_eps);

    m = calloc(1, sizeof *m);
    if (!m) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    m->cfg = *cfg;
    m->src = *src;
    m->threads = marlin_cpu_count();
    m->hidden = cfg->hidden_size;
    m->inter = cfg->intermediate_size;
    m->layers = cfg->num_hidden_layers;
    m->heads = cfg->num_attention_heads;
    m->kv_heads = cfg->num_key_value_heads;
    m->head_dim = cfg->head_dim;
    m->vocab = cfg->vocab_size;
    m->q_dim = m->heads * m->head_dim;
    m->kv_dim = m->kv_heads * m->head_dim;
    m->eps = (float)cfg->rms_norm_eps;
    /* Qwen2Attention: q/k/v always biased, o_proj never, no MLP bias.
     * LlamaAttention: attention_bias on all four; LlamaMLP: mlp_bias. */
    bool attn_b = qwen2 || cfg->attention_bias;
    m->bias[MARLIN_Q_PROJ] = m->bias[MARLIN_K_PROJ] = attn_b;
    m->bias[MARLIN_V_PROJ] = attn_b;
    m->bias[MARLIN_O_PROJ] = !qwen2 && cfg->attention_bias;
    m->bias[MARLIN_GATE_PROJ] = m->bias[MARLIN_UP_PROJ] =
        m->bias[MARLIN_DOWN_PROJ] = !qwen2 && cfg->mlp_bias;

    m->inv_freq = malloc((size_t)(m->head_dim / 2 + 1) * sizeof(float));
    if (!m->inv_freq) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto fail;
    }
    st = marlin_rope_inv_freq(cfg, m->inv_freq, err);
    if (st != MARLIN_OK) goto fail;
    *out = m;
    return MARLIN_OK;
fail:
    marlin_llama_free(m);
    return st;
}

void marlin_llama_free(marlin_llama *m) {
    if (!m) return;
    if (m->lm_head != m->embed) free(m->lm_head);
    free(m->embed);
    free(m->final_norm);
    free(m->inv_freq);
    free(m->ws);
    free(m);
}

/* ---------------------------------------------------------------- loading */

/* Allocates and reads one tensor of `rank` dims (<= 2) through the source. */
static marlin_status load_tensor(const marlin_llama *m, const char *name,
                                 int rank, int64_t d0, int64_t d1,
                                 float **out, marlin_error *err) {
    int64_t shape[2] = {d0, d1};
    uint64_t n = (uint64_t)d0 * (uint64_t)(rank == 2 ? d1 : 1);
    *out = NULL;
    if (n > SIZE_MAX / sizeof(float))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: too large", name);
    float *p = malloc((size_t)n * sizeof(float));
    if (!p)
        return marlin_fail(err, MARLIN_ERR_NOMEM,
                           "%s: cannot allocate %llu floats", name,
                           (unsigned long long)n);
    marlin_status st = m->src.read(m->src.user, name, rank, shape, p, err);
    if (st != MARLIN_OK) {
        free(p);
        return st;
    }
    *out = p;
    return MARLIN_OK;
}

void marlin_block_free(marlin_block *b) {
    if (!b) return;
    free(b->input_norm);
    free(b->post_norm);
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        free(b->w[l]);
        free(b->b[l]);
    }
    free(b);
}

uint64_t marlin_block_bytes(const marlin_llama *m) {
    uint64_t fl = 2 * (uint64_t)m->hidden;
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        int64_t n, k;
        marlin_linear_shape(m, (marlin_linear)l, &n, &k);
        fl += (uint64_t)n * (uint64_t)k + (m->bias[l] ? (uint64_t)n : 0);
    }
    return fl * sizeof(float);
}

marlin_block_weights marlin_block_view(const marlin_block *b) {
    marlin_block_weights v;
    v.input_norm = b->input_norm;
    v.post_norm = b->post_norm;
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        v.w[l] = b->w[l];
        v.b[l] = b->b[l];
    }
    return v;
}

marlin_status marlin_block_load(const marlin_llama *m, int64_t layer,
                                marlin_block **out, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    char name[256];
    *out = NULL;
    if (layer < 0 || layer >= m->layers)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "layer %lld out of range [0, %lld)",
                           (long long)layer, (long long)m->layers);
    marlin_block *b = calloc(1, sizeof *b);
    if (!b) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    b->layer = layer;
    snprintf(name, sizeof name, "model.layers.%lld.input_layernorm.weight",
             (long long)layer);
    st = load_tensor(m, name, 1, m->hidden, 0, &b->input_norm, err);
    if (st != MARLIN_OK) goto fail;
    snprintf(name, sizeof name,
             "model.layers.%lld.post_attention_layernorm.weight",
             (long long)layer);
    st = load_tensor(m, name, 1, m->hidden, 0, &b->post_norm, err);
    if (st != MARLIN_OK) goto fail;
    for (int l = 0; l < MARLIN_LINEAR_COUNT; l++) {
        int64_t n, k;
        marlin_linear_shape(m, (marlin_linear)l, &n, &k);
        snprintf(name, sizeof name, "model.layers.%lld.%s.weight",
                 (long long)layer, k_linear_names[l]);
        st = load_tensor(m, name, 2, n, k, &b->w[l], err);
        if (st != MARLIN_OK) goto fail;
        if (!m->bias[l]) continue;
        snprintf(name, sizeof name, "model.layers.%lld.%s.bias",
                 (long long)layer, k_linear_names[l]);
        st = load_tensor(m, name, 1, n, 0, &b->b[l], err);
        if (st != MARLIN_OK) goto fail;
    }
    *out = b;
    return MARLIN_OK;
fail:
    marlin_block_free(b);
    return st;
}

marlin_status marlin_llama_load_embed(marlin_llama *m, marlin_error *err) {
    if (m->embed) return MARLIN_OK;
    return load_tensor(m, "model.embed_tokens.weight", 2, m->vocab, m->hidden,
                       &m->embed, err);
}

marlin_status marlin_llama_load_head(marlin_llama *m, marlin_error *err) {
    marlin_status st;
    if (!m->final_norm) {
        st = load_tensor(m, "model.norm.weight", 1, m->hidden, 0,
                         &m->final_norm, err);
        if (st != MARLIN_OK) return st;
    }
    if (m->lm_head) return MARLIN_OK;
    if (m->cfg.tie_word_embeddings) {
        st = marlin_llama_load_embed(m, err);
        if (st != MARLIN_OK) return st;
        m->lm_head = m->embed;
        return MARLIN_OK;
    }
    return load_tensor(m, "lm_head.weight", 2, m->vocab, m->hidden,
                       &m->lm_head, err);
}

/* ------------------------------------------------------------------- ends */

marlin_status marlin_llama_embed(const marlin_llama *m, const int32_t *ids,
                                 int64_t n, float *out, marlin_error *err) {
    if (!m->embed)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "embedding not loaded (marlin_llama_load_embed)");
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "token %lld: id %" PRId32
                               " outside the vocabulary [0, %lld)",
                               (long long)i, ids[i], (long long)m->vocab);
        memcpy(out + i * m->hidden, m->embed + (int64_t)ids[i] * m->hidden,
               (size_t)m->hidden * sizeof(float));
    }
    return MARLIN_OK;
}

marlin_status marlin_llama_logits(const marlin_llama *m, const float *hidden,
                                  int64_t rows, float *logits, float *normed,
                                  marlin_error *err) {
    float *tmp = NULL;
    if (!m->final_norm || !m->lm_head)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "head not loaded (marlin_llama_load_head)");
    if (rows > INT_MAX)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                           "%lld rows exceed the sgemm limit",
                           (long long)rows);
    if (!normed) {
        tmp = malloc((size_t)rows * (size_t)m->hidden * sizeof(float));
        if (!tmp)
            return marlin_fail(err, MARLIN_ERR_NOMEM,
                               "cannot allocate %lld normed rows",
                               (long long)rows);
        normed = tmp;
    }
    marlin_rmsnorm_rows(hidden, m->final_norm, normed, rows, m->hidden, m->eps);
    int prev = marlin_blas_single_begin();
    marlin_linear_fwd(normed, rows, m->hidden, m->lm_head, NULL, m->vocab,
                      logits, m->threads);
    marlin_blas_single_end(prev);
    free(tmp);
    return MARLIN_OK;
}

typedef struct nll_job {
    const float *logits;
    const int32_t *ids; /* all tokens; row g predicts ids[g + 1] */
    int64_t row0, seqlen, vocab;
    double *row_nll;    /* per chunk row; NAN for a sequence's last row */
} nll_job;

static void nll_range(void *arg, int64_t b, int64_t e, int tid) {
    const nll_job *j = arg;
    (void)tid;
    for (int64_t r = b; r < e; r++) {
        int64_t g = j->row0 + r; /* global row */
        if (g % j->seqlen == j->seqlen - 1) { /* no next token */
            j->row_nll[r] = NAN;
            continue;
        }
        const float *l = j->logits + r * j->vocab;
        float mx = l[0];
        for (int64_t c = 1; c < j->vocab; c++) mx = l[c] > mx ? l[c] : mx;
        double s = 0.0;
        for (int64_t c = 0; c < j->vocab; c++) s += exp((double)l[c] - mx);
        /* -log softmax = log(sum exp(l - max)) + max - l[target] */
        j->row_nll[r] = log(s) + (double)mx - (double)l[j->ids[g + 1]];
    }
}

marlin_status marlin_llama_nll(const marlin_llama *m, const float *hidden,
                               const int32_t *ids, int64_t nseq,
                               int64_t seqlen, double *nll_sum,
                               int64_t *count, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    float *logits = NULL, *normed = NULL;
    double *row_nll = NULL;
    const int64_t T = nseq * seqlen;
    for (int64_t i = 0; i < T; i++)
        if (ids[i] < 0 || ids[i] >= m->vocab)
            return marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                               "token %lld: id %" PRId32
                               " outside the vocabulary [0, %lld)",
                               (long long)i, ids[i], (long long)m->vocab);
    /* Chunk so that a chunk's logits stay near 16 MiB (4M floats), and at
     * least 64 rows so lm_head's sgemm keeps its efficiency. */
    int64_t chunk = ((int64_t)1 << 22) / m->vocab;
    if (chunk < 64) chunk = 64;
    if (chunk > T) chunk = T;
    logits = malloc((size_t)chunk * (size_t)m->vocab * sizeof(float));
    normed = malloc((size_t)chunk * (size_t)m->hidden * sizeof(float));
    row_nll = malloc((size_t)chunk * sizeof *row_nll);
    if (!logits || !normed || !row_nll) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM,
                         "cannot allocate %lld rows of logits",
                         (long long)chunk);
        goto out;
    }
    for (int64_t r0 = 0; r0 < T; r0 += chunk) {
        int64_t n = T - r0 < chunk ? T - r0 : chunk;
        st = marlin_llama_logits(m, hidden + r0 * m->hidden, n, logits, normed,
                                 err);
        if (st != MARLIN_OK) goto out;
        nll_job j = {.logits = logits, .ids = ids, .row0 = r0,
                     .seqlen = seqlen, .vocab = m->vocab, .row_nll = row_nll};
        (void)marlin_parallel_for(n, 16, m->threads, nll_range, &j);
        /* summed in row order: the total does not depend on threads */
        for (int64_t r = 0; r < n; r++) {
            if (isnan(row_nll[r]) && (r0 + r) % seqlen == seqlen - 1) continue;
            *nll_sum += row_nll[r];
            *count += 1;
        }
    }
out:
    free(logits);
    free(normed);
    free(row_nll);
    return st;
}
