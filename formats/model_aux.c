/*
 * model_aux.c - copies a checkpoint's non-weight files into a quantized
 * output folder (marlin_model_copy_aux).
 *
 * Spec: safetensors.md 10.2. An allow-list, so that weights
 * (*.safetensors, pytorch_model*.bin, consolidated*), their indexes,
 * Mistral-native params.json, training leftovers (training_args.bin,
 * optimizer.*, scheduler.pt, rng_state*) and another method's
 * quantize_config.json are never carried over: tokenizer files
 * (transformers tokenization_utils_base.py names), generation_config.json,
 * chat templates (chat_template.jinja/.json, additional_chat_templates/
 * *.jinja), multimodal processor configs, remote code (*.py modules named
 * in auto_map of config.json or tokenizer_config.json), licence files and
 * README.md (with a note that the weights are quantized). Every source file
 * obeys the model folder's symlink rule (case 85).
 */
#include "formats_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const aux_files[] = {
    "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "added_tokens.json", "tokenizer.model", "spiece.model", "vocab.json",
    "merges.txt", "vocab.txt",
    "chat_template.jinja", "chat_template.json",
    "preprocessor_config.json", "processor_config.json",
    "video_preprocessor_config.json",
    "LICENSE", "LICENSE.txt", "LICENSE.md", "NOTICE", "NOTICE.txt",
    "NOTICE.md", "USE_POLICY.md",
};

/* Inserted after README.md's YAML front matter (the hub reads model-card
 * metadata from there, so it must stay first). */
static const char readme_note[] =
    "> **Quantized copy.** The weights in this folder are INT4 (GPTQ-style, "
    "4-bit, group-wise) quantized by the marlin toolchain; see "
    "`quantization_config` in config.json. The text below describes the "
    "original model.\n\n";

/* Streams src into out_dir/name atomically (temp, fsync, rename). */
static marlin_status copy_file(const char *src, const char *out_dir,
                               const char *name, const char *prefix,
                               size_t prefix_at, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    int in = -1, fd = -1;
    char *tmp = NULL, *final = NULL;
    char *buf = NULL;
    const size_t cap = 1u << 20;
    in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot open: %s", src,
                           strerror(errno));
    if (!(buf = malloc(cap))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    if ((st = mf_create_temp(out_dir, name, &fd, &tmp, err))) goto out;
    uint64_t off = 0, in_off = 0;
    bool note_due = prefix != NULL;
    for (;;) {
        /* The note goes in once the first prefix_at bytes are copied (or
         * at the end of a file shorter than that). */
        size_t want = cap;
        if (note_due && prefix_at - in_off < want) want = prefix_at - in_off;
        ssize_t r = 0;
        if (want) {
            r = read(in, buf, want);
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                st = marlin_fail(err, MARLIN_ERR_IO, "%s: read: %s", src,
                                 strerror(errno));
                goto out;
            }
        }
        if (r == 0 && note_due) {
            size_t pl = strlen(prefix);
            if ((st = mf_pwrite_all(fd, prefix, pl, off, tmp, err))) goto out;
            off += pl;
            note_due = false;
            continue;
        }
        if (r == 0) break;
        if ((st = mf_pwrite_all(fd, buf, (uint64_t)r, off, tmp, err))) goto out;
        off += (uint64_t)r;
        in_off += (uint64_t)r;
    }
    if (fsync(fd) != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: fsync: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: close: %s", tmp, strerror(errno));
        goto out;
    }
    if (!(final = mf_path_join(out_dir, name))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (rename(tmp, final) != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "rename %s -> %s: %s", tmp, final,
                         strerror(errno));
        goto out;
    }
    MARLIN_FREE(tmp);
out:
    if (in >= 0) close(in);
    if (fd >= 0) close(fd);
    if (tmp) unlink(tmp);
    free(tmp);
    free(final);
    free(buf);
    return st;
}

/* 0: absent (skip); 1: a regular file inside the model folder; errors for
 * a link escaping the folder or a non-file under an expected name. */
static marlin_status source_ok(const marlin_model *m, const char *p,
                               bool *present, marlin_error *err) {
    struct stat sb;
    *present = false;
    if (lstat(p, &sb) != 0) return MARLIN_OK;
    if (stat(p, &sb) != 0)
        return marlin_fail(err, MARLIN_ERR_FORMAT, "%s: broken symlink", p);
    if (!S_ISREG(sb.st_mode))
        return marlin_fail(err, MARLIN_ERR_FORMAT, "%s: not a regular file", p);
    marlin_status st = mf_model_check_inside(m, p, err);
    if (st) return st;
    *present = true;
    return MARLIN_OK;
}

static marlin_status copy_named(const marlin_model *m, const char *out_dir,
                                const char *name, marlin_error *err) {
    bool present;
    char *p = mf_path_join(marlin_model_dir(m), name);
    if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    marlin_status st = source_ok(m, p, &present, err);
    if (!st && present) st = copy_file(p, out_dir, name, NULL, 0, err);
    free(p);
    return st;
}

/* Where the README note goes: after a leading "---\n...\n---\n" block. */
static size_t front_matter_end(const char *p) {
    size_t len = 0;
    char *text = NULL;
    marlin_error ignore;
    if (mf_read_file(p, p, 1u << 20, &text, &len, &ignore)) {
        /* Larger than 1 MiB (or unreadable here): note at the top. */
        return 0;
    }
    size_t at = 0;
    if (strncmp(text, "---\n", 4) == 0) {
        const char *e = strstr(text + 4, "\n---\n");
        if (e) at = (size_t)(e - text) + 5;
        else if ((e = strstr(text + 4, "\n---")) && e[4] == '\0')
            at = (size_t)(e - text) + 4;
    }
    free(text);
    return at;
}

/* auto_map values: "module.Class", "other/repo--module.Class", or a list
 * of those and nulls (tokenizers: [slow, fast]). Copies each local module
 * file once. */
static marlin_status copy_module(const marlin_model *m, const char *out_dir,
                                 const json_t *v, marlin_error *err) {
    if (json_is_array(v)) {
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            marlin_status st = copy_module(m, out_dir, e, err);
            if (st) return st;
        }
        return MARLIN_OK;
    }
    if (!json_is_string(v)) return MARLIN_OK;
    const char *s = json_string_value(v);
    const char *dot = strrchr(s, '.');
    if (!dot || strstr(s, "--")) return MARLIN_OK; /* code in another repo */
    size_t n = (size_t)(dot - s);
    if (n == 0 || n > 200) return MARLIN_OK;
    char file[220];
    snprintf(file, sizeof file, "%.*s.py", (int)n, s);
    if (strchr(file, '/') || strchr(file, '\\') || strstr(file, "..") ||
        strchr(file, '.') != file + n)
        return MARLIN_OK; /* not a plain module of this folder */
    return copy_named(m, out_dir, file, err);
}

static marlin_status copy_auto_map(const marlin_model *m, const char *out_dir,
                                   const char *text, size_t len,
                                   marlin_error *err) {
    char *clean = NULL;
    size_t cl = 0;
    if (!text) return MARLIN_OK;
    if (!(clean = mf_nan_prepass(text, len, &cl)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    json_t *root = json_loadb(clean, cl, JSON_ALLOW_NUL, NULL);
    free(clean);
    marlin_status st = MARLIN_OK;
    const json_t *am = json_object_get(root, "auto_map");
    if (json_is_object(am)) {
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)am, k, v) {
            if ((st = copy_module(m, out_dir, v, err))) break;
        }
    }
    json_decref(root);
    return st;
}

marlin_status marlin_model_copy_aux(const marlin_model *m, const char *out_dir,
                                    marlin_error *err) {
    marlin_status st = MARLIN_OK;
    char *p = NULL, *sub = NULL, *osub = NULL, *tok = NULL;
    DIR *d = NULL;
    if (!m || !out_dir)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "copy aux: NULL argument");
    const char *dir = marlin_model_dir(m);
    for (size_t i = 0; i < sizeof aux_files / sizeof aux_files[0]; i++)
        if ((st = copy_named(m, out_dir, aux_files[i], err))) goto out;
    /* README.md, with the note after its front matter. */
    bool present;
    if (!(p = mf_path_join(dir, "README.md"))) goto oom;
    if ((st = source_ok(m, p, &present, err))) goto out;
    if (present &&
        (st = copy_file(p, out_dir, "README.md", readme_note,
                        front_matter_end(p), err)))
        goto out;
    /* Remote code named in auto_map (config.json and tokenizer_config.json). */
    size_t cl = 0;
    const char *ctext = mf_model_config_text(m, &cl);
    if ((st = copy_auto_map(m, out_dir, ctext, cl, err))) goto out;
    MARLIN_FREE(p);
    if (!(p = mf_path_join(dir, "tokenizer_config.json"))) goto oom;
    if ((st = source_ok(m, p, &present, err))) goto out;
    if (present) {
        size_t tl = 0;
        if ((st = mf_read_file(p, p, 256u << 20, &tok, &tl, err))) goto out;
        if ((st = copy_auto_map(m, out_dir, tok, tl, err))) goto out;
    }
    /* The .jinja files of additional_chat_templates. */
    struct stat sb;
    if (!(sub = mf_path_join(dir, "additional_chat_templates"))) goto oom;
    if (stat(sub, &sb) != 0 || !S_ISDIR(sb.st_mode)) goto out;
    if ((st = mf_model_check_inside(m, sub, err))) goto out;
    if (!(osub = mf_path_join(out_dir, "additional_chat_templates"))) goto oom;
    if (mkdir(osub, 0777) != 0 && errno != EEXIST) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot create: %s", osub,
                         strerror(errno));
        goto out;
    }
    if (!(d = opendir(sub))) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot list: %s", sub,
                         strerror(errno));
        goto out;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 7 || strcmp(e->d_name + l - 6, ".jinja"))
            continue;
        MARLIN_FREE(p);
        if (!(p = mf_path_join(sub, e->d_name))) goto oom;
        if ((st = source_ok(m, p, &present, err))) goto out;
        if (present && (st = copy_file(p, osub, e->d_name, NULL, 0, err))) goto out;
    }
    st = mf_fsync_dir(osub, err);
    goto out;
oom:
    st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
out:
    if (d) closedir(d);
    free(tok);
    free(osub);
    free(sub);
    free(p);
    if (!st) st = mf_fsync_dir(out_dir, err);
    return st;
}
