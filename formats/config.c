/*
 * config.c - Hugging Face config.json for Llama-family models: parsing into
 * marlin_config (marlin_config_parse) and rewriting for a quantized output
 * (marlin_config_rewrite: splice "quantization_config" into the source text,
 * set the dtype keys, keep every other byte).
 *
 * Spec: safetensors.md 9.4(c) (NaN/Infinity tokens in real configs: a
 * token-level pre-pass outside strings), 10.1 (quantization_config, dtype
 * keys); transformers LlamaConfig/MistralConfig/Qwen2Config defaults
 * (rms_norm_eps 1e-6, rope_theta 10000, num_key_value_heads = heads,
 * head_dim = hidden / heads); rope_parameters (transformers 5) or
 * rope_scaling (4.x) with rope_type/type default, linear, llama3, dynamic,
 * yarn. Qwen2 always has q/k/v biases (its modeling code hardcodes
 * bias=True; its config has no attention_bias key).
 *
 * Why rewrite text instead of re-serialising: jansson cannot print NaN and
 * prints reals with 17 digits (1e-05 -> 1.0000000000000001e-05), so a
 * parse/dump round trip would change values' text and drop real configs'
 * NaN fields; splicing keeps the user's file exactly, byte for byte, apart
 * from the keys we own.
 */
#include "formats_util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Sanity caps: far above any real model, low enough that products of two
 * of them (hidden * heads...) cannot overflow int64 in other stages. */
#define CFG_MAX_DIM (1ll << 24)
#define CFG_MAX_LAYERS 65536

/* Families whose tensors follow Llama's names and shapes. */
static const char *const llama_like[] = {"llama", "mistral", "qwen2"};
/* architectures[0] -> model_type, for old configs without model_type. */
static const char *const arch_map[][2] = {
    {"LlamaForCausalLM", "llama"},
    {"MistralForCausalLM", "mistral"},
    {"Qwen2ForCausalLM", "qwen2"},
};

bool marlin_config_is_llama_like(const marlin_config *cfg) {
    if (!cfg || !cfg->present) return false;
    for (size_t i = 0; i < sizeof llama_like / sizeof llama_like[0]; i++)
        if (strcmp(cfg->model_type, llama_like[i]) == 0) return true;
    return false;
}

/* ------------------------------------------------------------- getters */
/* Each getter: a missing key or JSON null gives *present = false; a wrong
 * type or out-of-range value is MARLIN_ERR_FORMAT naming the file, the key
 * (with its parent object when nested) and the rule. */
typedef struct cfg_ctx {
    const char *label;
    marlin_error *err;
} cfg_ctx;

static marlin_status bad(cfg_ctx *c, const char *where, const char *key,
                         const char *what) {
    return marlin_fail(c->err, MARLIN_ERR_FORMAT, "%s: %s%s%s %s", c->label,
                       where, *where ? "." : "", key, what);
}

static marlin_status get_int(cfg_ctx *c, const json_t *obj, const char *where,
                             const char *key, int64_t lo, int64_t hi,
                             int64_t *out, bool *present) {
    const json_t *v = json_object_get(obj, key);
    char msg[160];
    *present = false;
    if (!v || json_is_null(v)) return MARLIN_OK;
    const char *nan = mf_nan_sentinel(v);
    if (nan) {
        snprintf(msg, sizeof msg, "is %s (must be an integer)", nan);
        return bad(c, where, key, msg);
    }
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        /* 4096.0 is an integer written by a sloppy tool; 4096.5 is not. */
        double d = json_real_value(v);
        if (d != floor(d) || fabs(d) > 9e15)
            return bad(c, where, key, "must be an integer");
        x = (int64_t)d;
    } else {
        return bad(c, where, key, "must be an integer");
    }
    if (x < lo || x > hi) {
        snprintf(msg, sizeof msg, "is %lld, outside [%lld, %lld]", (long long)x,
                 (long long)lo, (long long)hi);
        return bad(c, where, key, msg);
    }
    *out = x;
    *present = true;
    return MARLIN_OK;
}

/* Finite number, > 0 when positive is set. */
static marlin_status get_num(cfg_ctx *c, const json_t *obj, const char *where,
                             const char *key, bool positive, double *out,
                             bool *present) {
    const json_t *v = json_object_get(obj, key);
    char msg[160];
    *present = false;
    if (!v || json_is_null(v)) return MARLIN_OK;
    const char *nan = mf_nan_sentinel(v);
    if (nan) {
        snprintf(msg, sizeof msg, "is %s (must be a finite number)", nan);
        return bad(c, where, key, msg);
    }
    if (!json_is_number(v)) return bad(c, where, key, "must be a number");
    double d = json_number_value(v);
    if (positive && !(d > 0)) {
        snprintf(msg, sizeof msg, "is %g (must be > 0)", d);
        return bad(c, where, key, msg);
    }
    *out = d;
    *present = true;
    return MARLIN_OK;
}

static marlin_status get_bool(cfg_ctx *c, const json_t *obj, const char *key,
                              bool dflt, bool *out) {
    const json_t *v = json_object_get(obj, key);
    *out = dflt;
    if (!v || json_is_null(v)) return MARLIN_OK;
    if (!json_is_boolean(v)) return bad(c, "", key, "must be true or false");
    *out = json_is_true(v);
    return MARLIN_OK;
}

/* A string of at most cap-1 bytes without NUL; absent/null gives "". */
static marlin_status get_str(cfg_ctx *c, const json_t *obj, const char *key,
                             char *out, size_t cap) {
    const json_t *v = json_object_get(obj, key);
    out[0] = '\0';
    if (!v || json_is_null(v)) return MARLIN_OK;
    if (!json_is_string(v) || mf_nan_sentinel(v))
        return bad(c, "", key, "must be a string");
    size_t n = json_string_length(v);
    if (n >= cap || memchr(json_string_value(v), '\0', n)) {
        char msg[96];
        snprintf(msg, sizeof msg, "is not a plausible value (%zu bytes)", n);
        return bad(c, "", key, msg);
    }
    memcpy(out, json_string_value(v), n + 1);
    return MARLIN_OK;
}

/* ---------------------------------------------------------------- rope */
static marlin_status parse_rope(cfg_ctx *c, const json_t *root,
                                marlin_config *cfg) {
    marlin_status st;
    bool have;
    const json_t *rp = json_object_get(root, "rope_parameters");
    const json_t *rs = json_object_get(root, "rope_scaling");
    if (rp && !json_is_null(rp) && !json_is_object(rp))
        return bad(c, "", "rope_parameters", "must be an object");
    if (rs && !json_is_null(rs) && !json_is_object(rs))
        return bad(c, "", "rope_scaling", "must be an object or null");
    /* transformers 5 moved rope_theta and the scaling into
     * rope_parameters; 4.x has rope_theta at the top and rope_scaling. */
    const json_t *sc = json_is_object(rp) ? rp : json_is_object(rs) ? rs : NULL;
    const char *where = sc == rp ? "rope_parameters" : "rope_scaling";
    cfg->rope_theta = 10000.0;
    if ((st = get_num(c, root, "", "rope_theta", true, &cfg->rope_theta, &have)))
        return st;
    if (json_is_object(rp) &&
        (st = get_num(c, rp, "rope_parameters", "rope_theta", true,
                      &cfg->rope_theta, &have)))
        return st;
    cfg->rope_type = MARLIN_ROPE_DEFAULT;
    cfg->rope_factor = 1.0;
    if (!sc) return MARLIN_OK;
    const json_t *tv = json_object_get(sc, "rope_type");
    if (!tv || json_is_null(tv)) tv = json_object_get(sc, "type");
    const char *type = "default";
    if (tv && !json_is_null(tv)) {
        if (!json_is_string(tv) || mf_nan_sentinel(tv))
            return bad(c, where, "rope_type", "must be a string");
        type = json_string_value(tv);
    } else if (json_object_get(sc, "factor")) {
        return bad(c, where, "rope_type", "is missing but a factor is given");
    }
    bool need_factor = true, llama3 = false;
    if (strcmp(type, "default") == 0) {
        need_factor = false;
    } else if (strcmp(type, "linear") == 0) {
        cfg->rope_type = MARLIN_ROPE_LINEAR;
    } else if (strcmp(type, "llama3") == 0) {
        cfg->rope_type = MARLIN_ROPE_LLAMA3;
        llama3 = true;
    } else if (strcmp(type, "dynamic") == 0) {
        cfg->rope_type = MARLIN_ROPE_DYNAMIC;
    } else if (strcmp(type, "yarn") == 0) {
        cfg->rope_type = MARLIN_ROPE_YARN;
    } else {
        char pt[96];
        return marlin_fail(c->err, MARLIN_ERR_UNSUPPORTED,
                           "%s: %s.rope_type '%s' is not supported (default, "
                           "linear, llama3, dynamic, yarn)",
                           c->label, where,
                           mf_printable(type, json_string_length(tv), pt, sizeof pt));
    }
    if (!need_factor) return MARLIN_OK;
    if ((st = get_num(c, sc, where, "factor", true, &cfg->rope_factor, &have)))
        return st;
    if (!have) return bad(c, where, "factor", "is required for this rope_type");
    if ((st = get_int(c, sc, where, "original_max_position_embeddings", 1,
                      1ll << 40, &cfg->rope_original_max_position, &have)))
        return st;
    if (!llama3) return MARLIN_OK;
    if (!have)
        return bad(c, where, "original_max_position_embeddings",
                   "is required for rope_type llama3");
    if ((st = get_num(c, sc, where, "low_freq_factor", true,
                      &cfg->rope_low_freq_factor, &have)))
        return st;
    if (!have) return bad(c, where, "low_freq_factor", "is required for llama3");
    if ((st = get_num(c, sc, where, "high_freq_factor", true,
                      &cfg->rope_high_freq_factor, &have)))
        return st;
    if (!have) return bad(c, where, "high_freq_factor", "is required for llama3");
    /* The llama3 ramp divides by (high - low). */
    if (!(cfg->rope_high_freq_factor > cfg->rope_low_freq_factor))
        return bad(c, where, "high_freq_factor", "must exceed low_freq_factor");
    return MARLIN_OK;
}

/* --------------------------------------------------------------- parse */
/* quantization_config / quantize_config.json: the keys loaders (vLLM's
 * GPTQMarlinConfig, transformers' GPTQConfig) read, plus meta.method which
 * marlin-quantize records. Absent or null -> qc->present false. */
static marlin_status parse_quant(cfg_ctx *c, const json_t *q,
                                 marlin_quant_config *qc) {
    marlin_status st;
    bool have;
    memset(qc, 0, sizeof *qc);
    if (!q || json_is_null(q)) return MARLIN_OK;
    if (!json_is_object(q))
        return bad(c, "", "quantization_config", "must be an object");
    qc->present = true;
    qc->sym = true;
    if ((st = get_str(c, q, "quant_method", qc->quant_method, sizeof qc->quant_method)))
        return st;
    if ((st = get_str(c, q, "checkpoint_format", qc->checkpoint_format,
                      sizeof qc->checkpoint_format)))
        return st;
    if ((st = get_int(c, q, "quantization_config", "bits", 1, 64, &qc->bits, &have)))
        return st;
    if ((st = get_int(c, q, "quantization_config", "group_size", -1, 1 << 30,
                      &qc->group_size, &have)))
        return st;
    if ((st = get_bool(c, q, "desc_act", false, &qc->desc_act))) return st;
    if ((st = get_bool(c, q, "sym", true, &qc->sym))) return st;
    if ((st = get_bool(c, q, "lm_head", false, &qc->lm_head))) return st;
    const json_t *meta = json_object_get(q, "meta");
    if (json_is_object(meta) &&
        (st = get_str(c, meta, "method", qc->method, sizeof qc->method)))
        return st;
    if (json_is_object(meta) &&
        (st = get_str(c, meta, "sparsity", qc->sparsity, sizeof qc->sparsity)))
        return st;
    return MARLIN_OK;
}

marlin_status marlin_quant_config_parse(const char *text, size_t len,
                                        const char *label, bool nested,
                                        marlin_quant_config *qc,
                                        marlin_error *err) {
    marlin_status st;
    json_t *root = NULL;
    char *clean = NULL;
    size_t clen = 0;
    cfg_ctx c = {label ? label : "quantize_config.json", err};
    memset(qc, 0, sizeof *qc);
    if (!(clean = mf_nan_prepass(text ? text : "", len, &clen)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", c.label);
    st = mf_json_parse(clean, clen, c.label,
                       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &root, err);
    if (st == MARLIN_OK && !json_is_object(root))
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: top level is not a JSON "
                         "object", c.label);
    if (st == MARLIN_OK)
        st = parse_quant(&c, nested ? json_object_get(root, "quantization_config")
                                    : root, qc);
    json_decref(root);
    free(clean);
    return st;
}

marlin_status marlin_config_parse(const char *text, size_t len,
                                  const char *label, marlin_config *cfg,
                                  marlin_error *err) {
    marlin_status st = MARLIN_OK;
    json_t *root = NULL;
    char *clean = NULL;
    size_t clen = 0;
    cfg_ctx c = {label ? label : "config.json", err};
    bool have;
    if (!cfg || (!text && len))
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "config: NULL argument");
    memset(cfg, 0, sizeof *cfg);
    if (!(clean = mf_nan_prepass(text ? text : "", len, &clen)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", c.label);
    st = mf_json_parse(clean, clen, c.label,
                       JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &root, err);
    if (st) goto out;
    if (!json_is_object(root)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: top level is not a JSON "
                         "object", c.label);
        goto out;
    }
    if ((st = get_str(&c, root, "model_type", cfg->model_type,
                      sizeof cfg->model_type)))
        goto out;
    if (!cfg->model_type[0]) {
        const json_t *arch = json_array_get(json_object_get(root, "architectures"), 0);
        for (size_t i = 0; json_is_string(arch) &&
                           i < sizeof arch_map / sizeof arch_map[0]; i++)
            if (strcmp(json_string_value(arch), arch_map[i][0]) == 0)
                snprintf(cfg->model_type, sizeof cfg->model_type, "%s",
                         arch_map[i][1]);
    }
    cfg->present = true;
    bool known = marlin_config_is_llama_like(cfg);

    /* Required for the Llama family; for other families we take what is
     * there and leave the rest 0: they are refused by the stages that need
     * the architecture, with model_type in the message, not here. */
    static const struct { const char *key; size_t off; int64_t hi; } req[] = {
        {"hidden_size", offsetof(marlin_config, hidden_size), CFG_MAX_DIM},
        {"intermediate_size", offsetof(marlin_config, intermediate_size), CFG_MAX_DIM},
        {"num_hidden_layers", offsetof(marlin_config, num_hidden_layers), CFG_MAX_LAYERS},
        {"num_attention_heads", offsetof(marlin_config, num_attention_heads), 65536},
        {"vocab_size", offsetof(marlin_config, vocab_size), CFG_MAX_DIM},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++) {
        int64_t *dst = (int64_t *)((char *)cfg + req[i].off);
        if ((st = get_int(&c, root, "", req[i].key, 1, req[i].hi, dst, &have)))
            goto out;
        if (!have && known) {
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: %s is required for model_type %s", c.label,
                             req[i].key, cfg->model_type);
            goto out;
        }
    }
    int64_t heads = cfg->num_attention_heads;
    if ((st = get_int(&c, root, "", "num_key_value_heads", 1, 65536,
                      &cfg->num_key_value_heads, &have)))
        goto out;
    if (!have) cfg->num_key_value_heads = heads;
    if (have && heads && heads % cfg->num_key_value_heads) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: num_key_value_heads %lld does not divide "
                         "num_attention_heads %lld",
                         c.label, (long long)cfg->num_key_value_heads,
                         (long long)heads);
        goto out;
    }
    if ((st = get_int(&c, root, "", "head_dim", 1, 65536, &cfg->head_dim, &have)))
        goto out;
    if (!have && heads && cfg->hidden_size) {
        if (cfg->hidden_size % heads) {
            st = marlin_fail(err, MARLIN_ERR_FORMAT,
                             "%s: hidden_size %lld is not a multiple of "
                             "num_attention_heads %lld and head_dim is not given",
                             c.label, (long long)cfg->hidden_size, (long long)heads);
            goto out;
        }
        cfg->head_dim = cfg->hidden_size / heads;
    }
    if ((st = get_int(&c, root, "", "max_position_embeddings", 1, 1ll << 40,
                      &cfg->max_position_embeddings, &have)))
        goto out;
    cfg->rms_norm_eps = 1e-6;
    if ((st = get_num(&c, root, "", "rms_norm_eps", true, &cfg->rms_norm_eps, &have)))
        goto out;
    if ((st = parse_rope(&c, root, cfg))) {
        /* A rope variant we cannot represent matters only for the Llama
         * family (the forward pass); other families are refused later by
         * model_type, and must still open (marlin-inspect lists them). */
        if (known || st != MARLIN_ERR_UNSUPPORTED) goto out;
        st = MARLIN_OK;
        marlin_error_clear(err);
        cfg->rope_type = MARLIN_ROPE_DEFAULT;
        cfg->rope_factor = 1.0;
    }
    if ((st = get_bool(&c, root, "tie_word_embeddings", false,
                       &cfg->tie_word_embeddings)))
        goto out;
    if ((st = get_bool(&c, root, "attention_bias", false, &cfg->attention_bias)))
        goto out;
    if (strcmp(cfg->model_type, "qwen2") == 0) cfg->attention_bias = true;
    if ((st = get_bool(&c, root, "mlp_bias", false, &cfg->mlp_bias))) goto out;
    /* transformers 5 writes "dtype", 4.x "torch_dtype"; the new key wins. */
    if ((st = get_str(&c, root, "dtype", cfg->torch_dtype, sizeof cfg->torch_dtype)))
        goto out;
    if (!cfg->torch_dtype[0] &&
        (st = get_str(&c, root, "torch_dtype", cfg->torch_dtype,
                      sizeof cfg->torch_dtype)))
        goto out;
    if ((st = parse_quant(&c, json_object_get(root, "quantization_config"),
                          &cfg->quant)))
        goto out;
out:
    if (st) memset(cfg, 0, sizeof *cfg);
    json_decref(root);
    free(clean);
    return st;
}

/* ------------------------------------------------------------ rewriting */
/* A top-level member of the source text: byte spans of its key (with the
 * quotes) and of its value. */
typedef struct member {
    size_t key_b, key_e, val_b, val_e;
    char *key; /* decoded */
} member;

static size_t skip_ws(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* End of the string starting at s[i] == '"' (index after the closing
 * quote), or 0 when unterminated. */
static size_t skip_string(const char *s, size_t n, size_t i) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') i++;
        else if (s[i] == '"') return i + 1;
    }
    return 0;
}

/* End of the value starting at s[i]: a string, a nested object/array
 * (strings inside skipped), or a bare token (number, true, NaN...). */
static size_t skip_value(const char *s, size_t n, size_t i) {
    if (i >= n) return 0;
    if (s[i] == '"') return skip_string(s, n, i);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            if (s[i] == '"') {
                size_t e = skip_string(s, n, i);
                if (!e) return 0;
                i = e - 1;
            } else if (s[i] == '{' || s[i] == '[') {
                depth++;
            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return 0;
    }
    size_t b = i;
    while (i < n && !strchr(",}] \t\r\n", s[i])) i++;
    return i > b ? i : 0;
}

static void free_members(member *m, size_t n) {
    for (size_t i = 0; i < n; i++) free(m[i].key);
    free(m);
}

/* Lists the members of the top-level object (text already validated by
 * jansson after the NaN pre-pass). *open is the index after '{' and
 * *close the index of the final '}'. */
static marlin_status scan_members(const char *s, size_t n, const char *label,
                                  member **out, size_t *count, size_t *open,
                                  size_t *close, marlin_error *err) {
    member *m = NULL;
    size_t cnt = 0, cap = 0;
    size_t i = skip_ws(s, n, 0);
    if (i >= n || s[i] != '{') goto malformed;
    *open = ++i;
    for (;;) {
        i = skip_ws(s, n, i);
        if (i >= n) goto malformed;
        if (s[i] == '}') break;
        if (cnt && s[i] == ',') i = skip_ws(s, n, i + 1);
        if (i >= n || s[i] != '"') goto malformed;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 32;
            member *nm = realloc(m, cap * sizeof *nm);
            if (!nm) {
                free_members(m, cnt);
                return marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
            }
            m = nm;
        }
        member *e = &m[cnt];
        memset(e, 0, sizeof *e);
        e->key_b = i;
        if (!(e->key_e = skip_string(s, n, i))) goto malformed;
        cnt++;
        json_t *k = json_loadb(s + e->key_b, e->key_e - e->key_b,
                               JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!json_is_string(k) ||
            !(e->key = strndup(json_string_value(k), json_string_length(k)))) {
            json_decref(k);
            goto malformed;
        }
        json_decref(k);
        i = skip_ws(s, n, e->key_e);
        if (i >= n || s[i] != ':') goto malformed;
        e->val_b = skip_ws(s, n, i + 1);
        if (!(e->val_e = skip_value(s, n, e->val_b))) goto malformed;
        i = e->val_e;
    }
    *close = i;
    *out = m;
    *count = cnt;
    return MARLIN_OK;
malformed:
    free_members(m, cnt);
    return marlin_fail(err, MARLIN_ERR_INTERNAL,
                       "%s: top-level scan disagrees with the JSON parser", label);
}

/* Re-indents a JSON text token by token (number and string text kept
 * verbatim) the way Python's json.dumps(indent=...) lays it out: one
 * member per line, `indent` repeated per level, empty containers as {}
 * and []. indent NULL: one line. */
static void reindent(mf_buf *b, const char *s, size_t n, const char *indent,
                     int level, const char *kv_sep) {
    size_t i = skip_ws(s, n, 0);
    int depth = level;
    while (i < n) {
        char ch = s[i];
        if (ch == '"') {
            size_t e = skip_string(s, n, i);
            mf_buf_put(b, s + i, e - i);
            i = e;
        } else if (ch == '{' || ch == '[') {
            size_t j = skip_ws(s, n, i + 1);
            char closer = ch == '{' ? '}' : ']';
            if (j < n && s[j] == closer) {
                mf_buf_putc(b, ch);
                mf_buf_putc(b, closer);
                i = j + 1;
                continue;
            }
            mf_buf_putc(b, ch);
            depth++;
            if (indent) {
                mf_buf_putc(b, '\n');
                for (int d = 0; d < depth; d++) mf_buf_puts(b, indent);
            }
            i++;
        } else if (ch == '}' || ch == ']') {
            depth--;
            if (indent) {
                mf_buf_putc(b, '\n');
                for (int d = 0; d < depth; d++) mf_buf_puts(b, indent);
            }
            mf_buf_putc(b, ch);
            i++;
        } else if (ch == ',') {
            mf_buf_putc(b, ',');
            if (indent) {
                mf_buf_putc(b, '\n');
                for (int d = 0; d < depth; d++) mf_buf_puts(b, indent);
            } else {
                mf_buf_putc(b, ' ');
            }
            i++;
        } else if (ch == ':') {
            mf_buf_puts(b, kv_sep);
            i++;
        } else {
            size_t e = i;
            while (e < n && !strchr(",:{}[]\" \t\r\n", s[e])) e++;
            mf_buf_put(b, s + i, e - i);
            i = e;
        }
        i = skip_ws(s, n, i);
    }
}

typedef struct edit {
    size_t at, end; /* replace [at, end) */
    char *text;
} edit;

static int cmp_edit(const void *a, const void *b) {
    const edit *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

/* Checks the rewritten text: it parses, quantization_config equals the
 * requested object, the dtype keys say float16, and every other member is
 * unchanged. A failure here is our bug, not the user's input. */
static marlin_status verify_rewrite(const char *src, size_t src_len,
                                    const char *out, size_t out_len,
                                    const json_t *qc, const char *label,
                                    marlin_error *err) {
    marlin_status st = MARLIN_ERR_INTERNAL;
    char *a = NULL, *b = NULL;
    size_t al = 0, bl = 0;
    json_t *ja = NULL, *jb = NULL;
    a = mf_nan_prepass(src, src_len, &al);
    b = mf_nan_prepass(out, out_len, &bl);
    if (!a || !b) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
        goto out;
    }
    ja = json_loadb(a, al, JSON_ALLOW_NUL, NULL);
    jb = json_loadb(b, bl, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    if (!json_is_object(ja) || !json_is_object(jb)) goto bug;
    if (!json_equal(json_object_get(jb, "quantization_config"), (json_t *)qc))
        goto bug;
    json_object_del(jb, "quantization_config");
    json_object_del(ja, "quantization_config");
    bool any_dtype = false;
    static const char *const dkeys[] = {"torch_dtype", "dtype"};
    for (int k = 0; k < 2; k++) {
        const json_t *v = json_object_get(jb, dkeys[k]);
        if (!v) continue;
        any_dtype = true;
        if (!json_is_string(v) || strcmp(json_string_value(v), "float16")) goto bug;
        json_object_del(jb, dkeys[k]);
        json_object_del(ja, dkeys[k]);
    }
    if (!any_dtype || !json_equal(ja, jb)) goto bug;
    st = MARLIN_OK;
    goto out;
bug:
    st = marlin_fail(err, MARLIN_ERR_INTERNAL,
                     "%s: rewritten config does not check out (a bug)", label);
out:
    json_decref(ja);
    json_decref(jb);
    free(a);
    free(b);
    return st;
}

marlin_status marlin_config_rewrite(const char *src, size_t len,
                                    const char *label, const char *qc_json,
                                    char **out, size_t *out_len,
                                    marlin_error *err) {
    marlin_status st = MARLIN_OK;
    char *clean = NULL, *ind = NULL, *kv = NULL, *dst = NULL;
    json_t *root = NULL, *qc = NULL;
    member *m = NULL;
    size_t nm = 0, open = 0, close = 0, ne = 0;
    edit ed[4] = {{0}};
    mf_buf b = {0};
    /* members we may add, in sorted order */
    struct { const char *key; char *val; bool need; } add[2] = {
        {"quantization_config", NULL, false},
        {"torch_dtype", NULL, false},
    };
    label = label ? label : "config.json";
    if (!src || !qc_json || !out)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "config: NULL argument");
    *out = NULL;
    /* The object we splice in must itself be plain JSON. */
    json_error_t je;
    qc = json_loads(qc_json, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(qc)) {
        st = marlin_fail(err, MARLIN_ERR_INVALID_ARG,
                         "quantization_config is not a JSON object%s%s",
                         qc ? "" : ": ", qc ? "" : je.text);
        goto out;
    }
    size_t clen;
    if (!(clean = mf_nan_prepass(src, len, &clen))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
        goto out;
    }
    st = mf_json_parse(clean, clen, label, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                       &root, err);
    if (st) goto out;
    if (!json_is_object(root)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: top level is not a JSON "
                         "object", label);
        goto out;
    }
    st = scan_members(src, len, label, &m, &nm, &open, &close, err);
    if (st) goto out;

    /* Layout of the source: the whitespace before the first key tells the
     * indent unit (pretty-printed) or none (one line); the text between
     * the first key and its value is the key/value separator. */
    const char *nl = NULL;
    if (nm) {
        for (size_t i = open; i < m[0].key_b; i++)
            if (src[i] == '\n') nl = src + i;
        if (nl) ind = strndup(nl + 1, (size_t)(src + m[0].key_b - nl - 1));
        kv = strndup(src + m[0].key_e, m[0].val_b - m[0].key_e);
    } else {
        kv = strdup(": ");
    }
    if (!kv || (nl && !ind)) goto oom;
    const char *indent = ind && *ind ? ind : (nl ? "" : NULL);

    /* Members we own: replace in place where they exist. */
    member *q = NULL, *dt[2] = {NULL, NULL};
    bool sorted = true;
    for (size_t i = 0; i < nm; i++) {
        if (!strcmp(m[i].key, "quantization_config")) q = &m[i];
        if (!strcmp(m[i].key, "torch_dtype")) dt[0] = &m[i];
        if (!strcmp(m[i].key, "dtype")) dt[1] = &m[i];
        if (i && strcmp(m[i - 1].key, m[i].key) > 0) sorted = false;
    }
    mf_buf qtext = {0};
    reindent(&qtext, qc_json, strlen(qc_json), indent, 1, kv);
    if (qtext.oom) { mf_buf_free(&qtext); goto oom; }
    for (int k = 0; k < 2; k++) {
        if (!dt[k]) continue;
        ed[ne].at = dt[k]->val_b;
        ed[ne].end = dt[k]->val_e;
        if (!(ed[ne++].text = strdup("\"float16\""))) { mf_buf_free(&qtext); goto oom; }
    }
    /* New members: at their sorted place when the source keys are sorted
     * (transformers writes them so), else at the end. */
    add[0].need = q == NULL;
    add[1].need = !dt[0] && !dt[1];
    if (q) {
        ed[ne].at = q->val_b;
        ed[ne].end = q->val_e;
        ed[ne++].text = mf_buf_take(&qtext, NULL);
        if (!ed[ne - 1].text) goto oom;
    } else {
        add[0].val = mf_buf_take(&qtext, NULL);
        if (!add[0].val) goto oom;
    }
    mf_buf tail = {0}; /* members appended after the last one */
    size_t ntail = 0;
    for (int k = 0; k < 2; k++) {
        if (!add[k].need) continue;
        const char *val = k == 0 ? add[0].val : "\"float16\"";
        size_t before = nm; /* insert before member `before` */
        if (sorted)
            for (size_t i = 0; i < nm; i++)
                if (strcmp(m[i].key, add[k].key) > 0) { before = i; break; }
        if (before == nm) {
            if (nm || ntail) mf_buf_putc(&tail, ',');
            if (indent) {
                mf_buf_putc(&tail, '\n');
                mf_buf_puts(&tail, indent);
            } else if (nm || ntail) {
                mf_buf_putc(&tail, ' ');
            }
            mf_buf_printf(&tail, "\"%s\"%s%s", add[k].key, kv, val);
            ntail++;
            continue;
        }
        mf_buf t = {0};
        mf_buf_printf(&t, "\"%s\"%s%s,", add[k].key, kv, val);
        if (indent) {
            mf_buf_putc(&t, '\n');
            mf_buf_puts(&t, indent);
        } else {
            mf_buf_putc(&t, ' ');
        }
        ed[ne].at = ed[ne].end = m[before].key_b;
        if (!(ed[ne++].text = mf_buf_take(&t, NULL))) { mf_buf_free(&tail); goto oom; }
    }
    if (ntail) {
        /* An empty source object has no layout to copy: one line. */
        ed[ne].at = ed[ne].end = nm ? m[nm - 1].val_e : open;
        if (!(ed[ne++].text = mf_buf_take(&tail, NULL))) goto oom;
    }
    /* Two insertions at one point keep their order (quantization_config
     * sorts before torch_dtype): a stable sort by position. */
    for (size_t i = 1; i < ne; i++)
        for (size_t j = i; j > 0 && cmp_edit(&ed[j - 1], &ed[j]) > 0; j--) {
            edit t = ed[j];
            ed[j] = ed[j - 1];
            ed[j - 1] = t;
        }
    size_t at = 0;
    for (size_t i = 0; i < ne; i++) {
        mf_buf_put(&b, src + at, ed[i].at - at);
        mf_buf_puts(&b, ed[i].text);
        at = ed[i].end;
    }
    mf_buf_put(&b, src + at, len - at);
    size_t dl = 0;
    if (!(dst = mf_buf_take(&b, &dl))) goto oom;
    st = verify_rewrite(src, len, dst, dl, qc, label, err);
    if (st) goto out;
    *out = dst;
    if (out_len) *out_len = dl;
    dst = NULL;
    goto out;
oom:
    st = marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
out:
    free(add[0].val);
    for (size_t i = 0; i < ne; i++) free(ed[i].text);
    mf_buf_free(&b);
    free_members(m, nm);
    free(dst);
    free(ind);
    free(kv);
    free(clean);
    json_decref(root);
    json_decref(qc);
    return st;
}
