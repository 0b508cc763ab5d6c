/*
 * marlin_formats.h - checkpoint I/O: safetensors reader/writer, Hugging Face
 * model folders (config.json, model.safetensors.index.json, shards).
 *
 * safetensors file layout (huggingface/safetensors README; our rules are
 * numbered in ../shared/docs/reference/safetensors.md, sections 1 and 3):
 *
 *   [0, 8)        N, unsigned 64-bit little-endian header length
 *   [8, 8+N)      UTF-8 JSON object, optionally padded with JSON whitespace:
 *                 { "__metadata__": {str: str},               (optional)
 *                   "<name>": {"dtype": "F16", "shape": [..],
 *                              "data_offsets": [BEGIN, END]}, ... }
 *   [8+N, EOF)    data buffer; tensor bytes at [BEGIN, END) relative to it,
 *                 little-endian, row-major, tensors tiling it exactly.
 *
 * The reader is stricter than the reference where safetensors.md says so:
 * duplicate tensor names and duplicate __metadata__ keys are rejected, and
 * ranks above MARLIN_ST_MAX_RANK are rejected. Every failure is one line
 * naming the file, the tensor (if any) and the broken rule.
 */
#ifndef MARLIN_FORMATS_H
#define MARLIN_FORMATS_H

#include "marlin_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ dtypes */
/* In the reference's enum order, which is also the writer's sort key
 * (the writer emits tensors by DEScending dtype, then by name). */
typedef enum marlin_dtype {
    MARLIN_DT_BOOL = 0,
    MARLIN_DT_F4,
    MARLIN_DT_F6_E2M3,
    MARLIN_DT_F6_E3M2,
    MARLIN_DT_U8,
    MARLIN_DT_I8,
    MARLIN_DT_F8_E5M2,
    MARLIN_DT_F8_E4M3,
    MARLIN_DT_F8_E8M0,
    MARLIN_DT_F8_E4M3FNUZ,
    MARLIN_DT_F8_E5M2FNUZ,
    MARLIN_DT_I16,
    MARLIN_DT_U16,
    MARLIN_DT_F16,
    MARLIN_DT_BF16,
    MARLIN_DT_I32,
    MARLIN_DT_U32,
    MARLIN_DT_F32,
    MARLIN_DT_C64,
    MARLIN_DT_F64,
    MARLIN_DT_I64,
    MARLIN_DT_U64,
    MARLIN_DT_COUNT
} marlin_dtype;

/* "F16", "BF16", ... (the header spelling). */
const char *marlin_dtype_name(marlin_dtype dt);
/* Bits per element (4, 6, 8, 16, 32, 64). */
int marlin_dtype_bits(marlin_dtype dt);
/* Parses a header dtype string of length n (case-sensitive). */
bool marlin_dtype_parse(const char *s, size_t n, marlin_dtype *out);

/* --------------------------------------------------------- reader (files) */
#define MARLIN_ST_MAX_HEADER 100000000ull /* inclusive cap on N (R2/V3) */
#define MARLIN_ST_MAX_RANK 64             /* ours; the reference has none */

typedef struct marlin_tensor {
    const char *name;   /* NUL-terminated; may hold embedded NULs: */
    size_t name_len;    /*   name_len is authoritative */
    marlin_dtype dtype;
    int rank;
    const uint64_t *shape; /* rank entries */
    uint64_t numel;        /* product of shape (1 for a scalar) */
    uint64_t nbytes;       /* numel * bits / 8 */
    uint64_t begin, end;   /* relative to the data buffer */
} marlin_tensor;

typedef struct marlin_st_file marlin_st_file; /* opaque */

/* Parses and fully validates a safetensors image held in memory (the
 * fuzzing entry point). `label` names the file in error messages (NULL:
 * "<memory>"). The returned object references `buf`, which must outlive it;
 * free it with marlin_st_close. On failure *out is NULL. Errors:
 * MARLIN_ERR_FORMAT (one line: label, tensor if any, the broken rule),
 * MARLIN_ERR_NOMEM, MARLIN_ERR_INVALID_ARG. */
marlin_status marlin_st_parse(const void *buf, size_t len, const char *label,
                              marlin_st_file **out, marlin_error *err);

/* Opens a file: requires a regular file, reads the header with pread,
 * validates everything against the fstat size taken at open, then maps the
 * file read-only for zero-copy views. A path that is a symlink to a regular
 * file is fine (the hub cache uses them); where a link may point is the
 * model folder's policy, not this function's.
 * Errors: MARLIN_ERR_FORMAT (malformed content), MARLIN_ERR_IO (open, read,
 * map), MARLIN_ERR_INVALID_ARG (a directory, FIFO, device...).
 * All accessors below are const and thread-safe on an open file. */
marlin_status marlin_st_open(const char *path, marlin_st_file **out,
                             marlin_error *err);

/* Accept NULL. */
void marlin_st_close(marlin_st_file *f);

const char *marlin_st_label(const marlin_st_file *f);
/* Tensors sorted by name (byte order). */
size_t marlin_st_count(const marlin_st_file *f);
const marlin_tensor *marlin_st_at(const marlin_st_file *f, size_t i);
/* NULL when absent (name compared as a NUL-terminated string, so a name
 * with an embedded NUL is reachable only through marlin_st_at). Binary
 * search: O(log n). */
const marlin_tensor *marlin_st_find(const marlin_st_file *f, const char *name);
/* NULL, or one line about accepted oddities (unknown fields in tensor
 * entries: the reference ignores them, so we accept them and say so). */
const char *marlin_st_warning(const marlin_st_file *f);
/* Zero-copy view of the tensor's bytes (not necessarily aligned; NULL for
 * a tensor of another file). For files this points into the read-only
 * mapping: touching it after the file was truncated raises SIGBUS, which
 * marlin_st_read and marlin_st_read_f32 never do. */
const void *marlin_st_data(const marlin_st_file *f, const marlin_tensor *t);
/* Copies bytes [off, off+n) of the tensor into dst with pread when the file
 * was opened from disk (a file truncated after open gives MARLIN_ERR_IO, not
 * SIGBUS), or memcpy for parsed buffers. A range past the tensor's end, or
 * a tensor of another file, gives MARLIN_ERR_INVALID_ARG. */
marlin_status marlin_st_read(const marlin_st_file *f, const marlin_tensor *t,
                             uint64_t off, uint64_t n, void *dst,
                             marlin_error *err);

/* __metadata__ entries (sorted by key); values are strings, valid until
 * marlin_st_close. Out-of-range i gives NULL key and value. */
size_t marlin_st_metadata_count(const marlin_st_file *f);
void marlin_st_metadata_at(const marlin_st_file *f, size_t i,
                           const char **key, const char **value);
const char *marlin_st_metadata_get(const marlin_st_file *f, const char *key);

/* Reads a F16, BF16 or F32 tensor (any shape) as fp32 into dst (numel
 * floats; exact widening, F16C/AVX2 when the CPU has them). Files are read
 * with pread through a cache-sized buffer (truncation after open gives
 * MARLIN_ERR_IO); parsed buffers are converted in place when 2-byte
 * aligned. Other dtypes give MARLIN_ERR_UNSUPPORTED naming the tensor. */
marlin_status marlin_st_read_f32(const marlin_st_file *f,
                                 const marlin_tensor *t, float *dst,
                                 marlin_error *err);

/* ------------------------------------------------------------------ writer */
/* A writer lays out a set of tensors declared up front, then accepts their
 * bytes in any order (pwrite at planned offsets), so tensors can be produced
 * one at a time with bounded memory.
 *
 * Output: one `model.safetensors` when everything fits under shard_limit
 * bytes, else `model-0000i-of-0000N.safetensors` plus
 * `model.safetensors.index.json` (metadata.total_size + weight_map). Inside
 * each file: tensors by descending dtype then name, header compact JSON
 * padded with spaces to a multiple of 8, `__metadata__` {"format":"pt"}:
 * byte-identical to what Python's safetensors writes for the same tensors.
 * Files are written under temporary names in `dir`, fsynced and renamed by
 * marlin_writer_finish(); marlin_writer_free() before finish removes them. */
typedef struct marlin_writer marlin_writer;

#define MARLIN_DEFAULT_SHARD_LIMIT 5000000000ull /* 5 GB, decimal */

marlin_status marlin_writer_create(const char *dir, uint64_t shard_limit,
                                   marlin_writer **out, marlin_error *err);
/* Declares a tensor (before begin). The name `__metadata__`, duplicates and
 * overflowing shapes are rejected. */
marlin_status marlin_writer_add(marlin_writer *w, const char *name,
                                marlin_dtype dt, int rank,
                                const uint64_t *shape, marlin_error *err);
/* Plans shards and offsets, creates the temporary files and writes headers. */
marlin_status marlin_writer_begin(marlin_writer *w, marlin_error *err);
/* Writes a declared tensor's bytes (exactly its size), once. */
marlin_status marlin_writer_put(marlin_writer *w, const char *name,
                                const void *data, uint64_t nbytes,
                                marlin_error *err);
/* Checks every tensor was written, fsyncs, renames into place, writes the
 * index (when sharded) and fsyncs the folder. */
marlin_status marlin_writer_finish(marlin_writer *w, marlin_error *err);
/* Accept NULL. Removes temporary files of an unfinished writer. */
void marlin_writer_free(marlin_writer *w);
/* Appends the next nbytes of a declared tensor (streaming a tensor larger
 * than one buffer); the parts must add up to exactly its size. Do not mix
 * with marlin_writer_put() for the same tensor. */
marlin_status marlin_writer_put_part(marlin_writer *w, const char *name,
                                     const void *data, uint64_t nbytes,
                                     marlin_error *err);
/* Adds a __metadata__ entry to every shard (before begin; keys sorted in the
 * header; "format" is always "pt" and cannot be set). */
marlin_status marlin_writer_set_metadata(marlin_writer *w, const char *key,
                                         const char *value, marlin_error *err);
/* Number of files planned by begin() (0 before). */
size_t marlin_writer_shard_count(const marlin_writer *w);
/* Notes on the writer:
 *  1. shard_limit 0 means MARLIN_DEFAULT_SHARD_LIMIT. Shards are filled in
 *     declaration order (huggingface_hub's algorithm): a tensor larger than
 *     the limit gets a shard of its own.
 *  2. begin() refuses (MARLIN_ERR_EXISTS) a folder that already holds a
 *     *.safetensors file or an index: loaders would mix them with ours.
 *  3. Calls on one writer must not run concurrently.
 *  4. Names must be valid UTF-8 and not "__metadata__"; a header above
 *     MARLIN_ST_MAX_HEADER bytes is refused, as the reference does. */

/* The same for a path "dir/name" (or a bare name: the current folder). */
marlin_status marlin_write_path_atomic(const char *path, const void *data,
                                       size_t len, marlin_error *err);

/* Writes <dir>/<name> atomically: temporary file in dir, fsync, rename over
 * any existing file, fsync of dir. */
marlin_status marlin_write_file_atomic(const char *dir, const char *name,
                                       const void *data, size_t len,
                                       marlin_error *err);

/* Output folders are built under a temporary sibling name and renamed at the
 * end, so a crash never leaves a half checkpoint at `final_path`.
 * begin: fails with MARLIN_ERR_EXISTS if final_path exists and !force;
 * creates `<final_path>.tmp-XXXXXX` and returns it (malloc'ed) in *tmp_path.
 * commit: fsyncs and renames tmp to final (replacing an existing final when
 * force). abort: removes the temporary folder.
 * Notes: 1. force replaces only a folder that is empty or holds config.json
 * or *.safetensors (never a regular file, never e.g. a home folder given by
 * mistake): MARLIN_ERR_EXISTS otherwise. 2. commit publishes with
 * renameat2(RENAME_NOREPLACE), so a folder that appeared at final_path
 * meanwhile is not replaced without force; with force the swap is one
 * RENAME_EXCHANGE, then the old tree is removed. 3. abort only removes a
 * path named like begin() names them. 4. The caller must not pass its own
 * input folder as final_path with force. */
marlin_status marlin_outdir_begin(const char *final_path, bool force,
                                  char **tmp_path, marlin_error *err);
marlin_status marlin_outdir_commit(const char *tmp_path,
                                   const char *final_path, bool force,
                                   marlin_error *err);
void marlin_outdir_abort(const char *tmp_path);

/* ------------------------------------------------------------ model folder */
typedef enum marlin_rope_type {
    MARLIN_ROPE_DEFAULT = 0,
    MARLIN_ROPE_LINEAR,
    MARLIN_ROPE_LLAMA3,
    MARLIN_ROPE_DYNAMIC, /* parsed; forward rejects it (not offline-static) */
    MARLIN_ROPE_YARN     /* parsed; forward rejects it */
} marlin_rope_type;

/* A quantization_config object (config.json) or quantize_config.json. */
typedef struct marlin_quant_config {
    bool present;
    char quant_method[32];      /* "gptq", "marlin", ... */
    char checkpoint_format[32]; /* "gptq", "marlin_24", "" */
    int64_t bits;               /* 0 when absent */
    int64_t group_size;         /* 0 when absent */
    bool desc_act;
    bool sym;                   /* default true when absent */
    bool lm_head;
    char method[16];            /* meta.method written by marlin-quantize */
    char sparsity[8];           /* meta.sparsity ("2:4") or "" */
} marlin_quant_config;

/* Parses a quantization config object. When `nested` is set, text is a
 * whole config.json and the object is its "quantization_config" member
 * (absent -> qc->present false); otherwise text is the object itself
 * (quantize_config.json). */
marlin_status marlin_quant_config_parse(const char *text, size_t len,
                                        const char *label, bool nested,
                                        marlin_quant_config *qc,
                                        marlin_error *err);

/* The fields of config.json the toolchain uses (Llama family: llama,
 * mistral, qwen2). */
typedef struct marlin_config {
    bool present;            /* a config.json was found and parsed */
    char model_type[64];     /* "llama", "mistral", "qwen2", ... */
    int64_t hidden_size;
    int64_t intermediate_size;
    int64_t num_hidden_layers;
    int64_t num_attention_heads;
    int64_t num_key_value_heads; /* = num_attention_heads when absent */
    int64_t head_dim;            /* = hidden / heads when absent */
    int64_t vocab_size;
    int64_t max_position_embeddings;
    double rms_norm_eps;
    double rope_theta;       /* top level, or rope_parameters.rope_theta */
    marlin_rope_type rope_type;
    double rope_factor;
    double rope_low_freq_factor;
    double rope_high_freq_factor;
    int64_t rope_original_max_position;
    bool tie_word_embeddings;
    bool attention_bias;     /* q/k/v biases (qwen2: true) */
    bool mlp_bias;
    char torch_dtype[16];    /* "float16", "bfloat16", "" */
    marlin_quant_config quant; /* quantization_config, if any */
} marlin_config;

/* A checkpoint: one .safetensors file (with or without a config.json beside
 * it) or a folder (single model.safetensors, or shards + index; also a hub
 * cache snapshot whose files are symlinks into ../../blobs/).
 *
 * marlin_model_open(path) accepts: a .safetensors file (any name: the user
 * chose it); a *.index.json file (its folder, sharded); a folder holding
 * model.safetensors.index.json or model.safetensors; a hub repo folder
 * (models--org--name: the snapshot refs/main names, or the only one).
 * Policies (safetensors.md 4 and 6, cases 84-93):
 *  - every shard is a regular file after following links, and inside the
 *    model's repository root (the folder, or for snapshots/<rev> the repo
 *    folder holding blobs/): a link resolving elsewhere is an error;
 *  - the index and the shards must agree both ways; a tensor is in one
 *    shard only; total_size disagreeing with the headers is a warning;
 *  - model.safetensors beside an index is an ERROR (loaders disagree on
 *    which wins); stray *.safetensors not listed in the index are
 *    warnings and are never opened;
 *  - a folder with neither file is an error naming what it does hold;
 *  - config.json is optional; when present it must parse
 *    (marlin_config_parse) and obey the link rule.
 * Every error is one line naming the file, the tensor and the rule; open is
 * all-or-nothing. */
typedef struct marlin_model marlin_model;

marlin_status marlin_model_open(const char *path, marlin_model **out,
                                marlin_error *err);
void marlin_model_close(marlin_model *m); /* accepts NULL */

const marlin_config *marlin_model_config(const marlin_model *m);
/* Folder holding the checkpoint (for config.json, tokenizer files). */
const char *marlin_model_dir(const marlin_model *m);
/* All tensors of all shards, sorted by name. */
size_t marlin_model_count(const marlin_model *m);
const marlin_tensor *marlin_model_at(const marlin_model *m, size_t i,
                                     const marlin_st_file **shard);
const marlin_tensor *marlin_model_find(const marlin_model *m, const char *name,
                                       const marlin_st_file **shard);
/* The files opened (one, or the shards in index order: sorted names). */
size_t marlin_model_shard_count(const marlin_model *m);
const marlin_st_file *marlin_model_shard(const marlin_model *m, size_t i);
/* Warnings gathered while opening (stale model.safetensors beside an index,
 * total_size mismatch, odd shard names...). */
size_t marlin_model_warning_count(const marlin_model *m);
const char *marlin_model_warning(const marlin_model *m, size_t i);

/* model.safetensors.index.json, parsed and validated on its own (the
 * fuzzing entry point; marlin_model_open uses it and then checks the
 * shards against it). Rules (safetensors.md 4, cases 86-91): a JSON object
 * without duplicate keys; "metadata" an object whose total_size, when
 * present, is a non-negative integer (absent: a warning); "weight_map" a
 * non-empty object of tensor name -> plain file name (no '/', '\\', "..",
 * NUL, not empty). Shard names off the <name>-00001-of-0000N.safetensors
 * pattern are a warning. `label` names the file in errors. */
typedef struct marlin_index marlin_index;
marlin_status marlin_index_parse(const char *text, size_t len,
                                 const char *label, marlin_index **out,
                                 marlin_error *err);
void marlin_index_free(marlin_index *ix); /* accepts NULL */
/* Tensors sorted by name, each with its shard file name. */
size_t marlin_index_count(const marlin_index *ix);
const char *marlin_index_tensor(const marlin_index *ix, size_t i);
const char *marlin_index_tensor_shard(const marlin_index *ix, size_t i);
/* Shard file name of a tensor; NULL when the index does not list it. */
const char *marlin_index_find(const marlin_index *ix, const char *name);
/* Distinct shard file names, sorted. */
size_t marlin_index_shard_count(const marlin_index *ix);
const char *marlin_index_shard(const marlin_index *ix, size_t i);
/* metadata.total_size; false when the index has none. */
bool marlin_index_total_size(const marlin_index *ix, uint64_t *out);
size_t marlin_index_warning_count(const marlin_index *ix);
const char *marlin_index_warning(const marlin_index *ix, size_t i);

/* Parses config.json text (len bytes). NaN/Infinity tokens outside strings
 * are tolerated (real configs have them in unrelated fields). `label` names
 * the file in errors. */
marlin_status marlin_config_parse(const char *text, size_t len,
                                  const char *label, marlin_config *cfg,
                                  marlin_error *err);

/* True for the families whose tensors follow Llama's names and shapes
 * (model_type llama, mistral, qwen2). Other families parse (fields they
 * lack stay 0); stages that need the architecture refuse them, naming
 * model_type. */
bool marlin_config_is_llama_like(const marlin_config *cfg);

/* The text of marlin_model_write_config: `src` (len bytes, a config.json
 * whose bare NaN/Infinity tokens are tolerated) with the top-level
 * "quantization_config" set to qc_json (a JSON object, re-indented like
 * the source) and "torch_dtype"/"dtype" set to "float16" where present
 * ("torch_dtype" added when neither is). New keys go to their sorted place
 * when the source's keys are sorted, else to the end. Every other byte of
 * the source is kept. *out is malloc'ed (NUL-terminated). */
marlin_status marlin_config_rewrite(const char *src, size_t len,
                                    const char *label, const char *qc_json,
                                    char **out, size_t *out_len,
                                    marlin_error *err);

/* Writes <out_dir>/config.json: the source config.json with
 * "quantization_config" set to the given JSON object text and the dtype keys
 * set to "float16" (a config-less source gets a minimal config). The rest of
 * the source text is kept as is (NaN/Infinity survive). */
marlin_status marlin_model_write_config(const marlin_model *m,
                                        const char *out_dir,
                                        const char *quantization_config_json,
                                        marlin_error *err);
/* Copies the non-weight files of safetensors.md 10.2 (tokenizer,
 * generation_config.json, chat templates, remote code, licence...) from the
 * source folder into out_dir. */
marlin_status marlin_model_copy_aux(const marlin_model *m, const char *out_dir,
                                    marlin_error *err);

#ifdef __cplusplus
}
#endif
#endif /* MARLIN_FORMATS_H */
