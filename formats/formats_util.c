/*
 * formats_util.c - private helpers of formats/ (see formats_util.h): text
 * buffer, JSON escaping matching serde_json (safetensors.md W3) and Python's
 * json module (index files), shortest float formatting as Python's repr,
 * the NaN/Infinity pre-pass of safetensors.md 9.4(c), durable file I/O.
 */
#include "formats_util.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ text buffer */
void mf_buf_free(mf_buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

static bool buf_reserve(mf_buf *b, size_t extra) {
    if (b->oom) return false;
    if (b->len + extra + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) { b->oom = true; return false; }
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) { b->oom = true; return false; }
    b->p = p;
    b->cap = cap;
    return true;
}

void mf_buf_put(mf_buf *b, const void *data, size_t n) {
    if (!buf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void mf_buf_puts(mf_buf *b, const char *s) { mf_buf_put(b, s, strlen(s)); }

void mf_buf_putc(mf_buf *b, char c) { mf_buf_put(b, &c, 1); }

void mf_buf_printf(mf_buf *b, const char *fmt, ...) {
    char small[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) { b->oom = true; return; }
    if ((size_t)n < sizeof small) { mf_buf_put(b, small, (size_t)n); return; }
    if (!buf_reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *mf_buf_take(mf_buf *b, size_t *len) {
    char *p = NULL;
    if (!b->oom) {
        if (!b->p) buf_reserve(b, 0);
        p = b->oom ? NULL : b->p;
        if (p && len) *len = b->len;
        if (p) b->p = NULL;
    }
    mf_buf_free(b);
    return p;
}

/* --------------------------------------------------------- JSON escaping */
static const char hexdig[] = "0123456789abcdef";

/* The short forms both serde_json and Python use; 0 when there is none. */
static char short_escape(unsigned char c) {
    switch (c) {
    case '"': return '"';
    case '\\': return '\\';
    case '\b': return 'b';
    case '\f': return 'f';
    case '\n': return 'n';
    case '\r': return 'r';
    case '\t': return 't';
    default: return 0;
    }
}

static void put_u4(mf_buf *b, unsigned v) {
    char e[6] = {'\\', 'u', hexdig[(v >> 12) & 15], hexdig[(v >> 8) & 15],
                 hexdig[(v >> 4) & 15], hexdig[v & 15]};
    mf_buf_put(b, e, 6);
}

void mf_json_str_serde(mf_buf *b, const char *s, size_t n) {
    mf_buf_putc(b, '"');
    size_t run = 0; /* bytes copied verbatim in one append */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char sh = short_escape(c);
        if (!sh && c >= 0x20) continue;
        mf_buf_put(b, s + run, i - run);
        run = i + 1;
        if (sh) {
            char e[2] = {'\\', sh};
            mf_buf_put(b, e, 2);
        } else {
            put_u4(b, c);
        }
    }
    mf_buf_put(b, s + run, n - run);
    mf_buf_putc(b, '"');
}

/* Decodes one UTF-8 sequence at s[i] (validated beforehand). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    uint32_t cp;
    int k;
    if (c < 0x80) { (*i)++; return c; }
    if ((c & 0xe0) == 0xc0) { cp = c & 0x1f; k = 1; }
    else if ((c & 0xf0) == 0xe0) { cp = c & 0x0f; k = 2; }
    else { cp = c & 0x07; k = 3; }
    (*i)++;
    for (int j = 0; j < k && *i < n; j++, (*i)++) cp = (cp << 6) | (s[*i] & 0x3f);
    return cp;
}

void mf_json_str_ascii(mf_buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    mf_buf_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = u[i];
        char sh = short_escape(c);
        if (sh) {
            char e[2] = {'\\', sh};
            mf_buf_put(b, e, 2);
            i++;
        } else if (c >= 0x20 && c <= 0x7e) {
            mf_buf_putc(b, (char)c);
            i++;
        } else {
            uint32_t cp = utf8_next(u, n, &i);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                put_u4(b, 0xd800 + (cp >> 10));
                put_u4(b, 0xdc00 + (cp & 0x3ff));
            } else {
                put_u4(b, cp);
            }
        }
    }
    mf_buf_putc(b, '"');
}

void mf_json_double(mf_buf *b, double v) {
    if (!isfinite(v)) { mf_buf_puts(b, "null"); return; }
    if (v == 0.0) { mf_buf_puts(b, signbit(v) ? "-0.0" : "0.0"); return; }
    /* Shortest significand that reads back exactly (what repr() does). */
    char e[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, v);
        if (strtod(e, NULL) == v) break;
    }
    /* e = "[-]d[.ddd]e[+-]XX": split into digits and exponent. */
    const char *q = e;
    bool neg = *q == '-';
    if (neg) q++;
    char digits[24];
    size_t nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q != '.' && nd < sizeof digits - 1) digits[nd++] = *q;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = '\0';
    int ex = atoi(q + 1);
    if (neg) mf_buf_putc(b, '-');
    if (ex >= -4 && ex < 16) {
        if (ex >= 0) {
            for (int i = 0; i <= ex; i++)
                mf_buf_putc(b, (size_t)i < nd ? digits[i] : '0');
            mf_buf_putc(b, '.');
            if ((size_t)ex + 1 < nd) mf_buf_puts(b, digits + ex + 1);
            else mf_buf_putc(b, '0');
        } else {
            mf_buf_puts(b, "0.");
            for (int i = 0; i < -ex - 1; i++) mf_buf_putc(b, '0');
            mf_buf_puts(b, digits);
        }
    } else {
        mf_buf_putc(b, digits[0]);
        if (nd > 1) {
            mf_buf_putc(b, '.');
            mf_buf_puts(b, digits + 1);
        }
        mf_buf_printf(b, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    }
}

bool mf_utf8_valid(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        uint32_t cp, min;
        if (c >= 0xc2 && c <= 0xdf) { k = 1; cp = c & 0x1f; min = 0x80; }
        else if ((c & 0xf0) == 0xe0) { k = 2; cp = c & 0x0f; min = 0x800; }
        else if (c >= 0xf0 && c <= 0xf4) { k = 3; cp = c & 0x07; min = 0x10000; }
        else return false;
        if (n - i <= (size_t)k) return false;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += (size_t)k + 1;
    }
    return true;
}

/* ------------------------------------------------- lenient config parsing */
char *mf_nan_prepass(const char *text, size_t len, size_t *out_len) {
    static const struct { const char *tok; const char *rep; } subst[] = {
        {"NaN", "\"\\u0000NaN\""},
        {"Infinity", "\"\\u0000Infinity\""},
        {"-Infinity", "\"\\u0000-Infinity\""},
    };
    mf_buf b = {0};
    bool in_str = false;
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\') i++; /* the escaped byte cannot end the string */
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') { in_str = true; continue; }
        if (c != 'N' && c != 'I' && c != '-') continue;
        for (size_t k = 0; k < sizeof subst / sizeof subst[0]; k++) {
            size_t tl = strlen(subst[k].tok);
            if (len - i >= tl && memcmp(text + i, subst[k].tok, tl) == 0) {
                mf_buf_put(&b, text + run, i - run);
                mf_buf_puts(&b, subst[k].rep);
                i += tl - 1;
                run = i + 1;
                break;
            }
        }
    }
    mf_buf_put(&b, text + run, len - run);
    return mf_buf_take(&b, out_len);
}

const char *mf_nan_sentinel(const json_t *v) {
    if (!json_is_string(v)) return NULL;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n < 2 || s[0] != '\0') return NULL;
    return s + 1;
}

marlin_status mf_json_parse(const char *text, size_t len, const char *label,
                            size_t flags, json_t **out, marlin_error *err) {
    json_error_t je;
    /* A raw NUL is invalid anywhere in JSON, but jansson's buffer reader
     * silently drops one between tokens: refuse it ourselves. */
    const char *nul = memchr(text, '\0', len);
    *out = NULL;
    if (nul)
        return marlin_fail(err, MARLIN_ERR_FORMAT,
                           "%s: invalid JSON: raw NUL byte at offset %zu", label,
                           (size_t)(nul - text));
    *out = json_loadb(text, len, flags, &je);
    if (*out) return MARLIN_OK;
    /* jansson quotes the offending token, which may hold raw control
     * bytes (a newline inside a broken string): keep the message one
     * printable line. */
    char clean[sizeof je.text * 4];
    mf_printable(je.text, strlen(je.text), clean, sizeof clean);
    return marlin_fail(err, MARLIN_ERR_FORMAT,
                       "%s: invalid JSON at line %d column %d: %s", label,
                       je.line, je.column, clean);
}

const char *mf_printable(const char *s, size_t n, char *buf, size_t cap) {
    size_t o = 0, i = 0;
    if (cap < 16) {
        if (cap) buf[0] = '\0';
        return buf;
    }
    for (; i < n && o + 8 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            buf[o++] = '\\';
            buf[o++] = 'x';
            buf[o++] = hexdig[c >> 4];
            buf[o++] = hexdig[c & 15];
        } else {
            buf[o++] = (char)c;
        }
    }
    if (i < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
    return buf;
}

/* ---------------------------------------------------------- file helpers */
char *mf_path_join(const char *a, const char *b) {
    size_t na = strlen(a), nb = strlen(b);
    char *p = malloc(na + nb + 2);
    if (!p) return NULL;
    memcpy(p, a, na);
    size_t k = na;
    if (na && a[na - 1] != '/') p[k++] = '/';
    memcpy(p + k, b, nb + 1);
    return p;
}

const char *mf_basename(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

char *mf_dirname(const char *path) {
    const char *s = strrchr(path, '/');
    if (!s) return strdup(".");
    if (s == path) return strdup("/");
    return strndup(path, (size_t)(s - path));
}

/* Linux caps one transfer near 2 GiB; 1 GiB pieces keep us well below. */
#define MF_IO_CHUNK (1ull << 30)

marlin_status mf_pwrite_all(int fd, const void *data, uint64_t n, uint64_t off,
                            const char *label, marlin_error *err) {
    const char *p = data;
    while (n > 0) {
        size_t want = n > MF_IO_CHUNK ? (size_t)MF_IO_CHUNK : (size_t)n;
        ssize_t w = pwrite(fd, p, want, (off_t)off);
        if (w < 0) {
            if (errno == EINTR) continue;
            return marlin_fail(err, MARLIN_ERR_IO, "%s: write at offset %llu: %s",
                               label, (unsigned long long)off, strerror(errno));
        }
        if (w == 0)
            return marlin_fail(err, MARLIN_ERR_IO,
                               "%s: write at offset %llu made no progress",
                               label, (unsigned long long)off);
        p += w;
        n -= (uint64_t)w;
        off += (uint64_t)w;
    }
    return MARLIN_OK;
}

marlin_status mf_read_file(const char *path, const char *label, size_t max,
                           char **out, size_t *len, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    char *buf = NULL;
    struct stat sb;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot open: %s", label,
                           strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT, "%s: not a regular file", label);
        goto out;
    }
    if ((uint64_t)sb.st_size > max) {
        st = marlin_fail(err, MARLIN_ERR_FORMAT,
                         "%s: %lld bytes is larger than the %zu-byte limit",
                         label, (long long)sb.st_size, max);
        goto out;
    }
    size_t n = (size_t)sb.st_size;
    buf = malloc(n + 1);
    if (!buf) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "%s: out of memory", label);
        goto out;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            st = marlin_fail(err, MARLIN_ERR_IO, "%s: read failed: %s", label,
                             r < 0 ? strerror(errno) : "file shrank");
            goto out;
        }
        got += (size_t)r;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

marlin_status mf_fsync_dir(const char *dir, marlin_error *err) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot open folder: %s",
                           dir, strerror(errno));
    /* Some file systems refuse fsync on a directory (EINVAL); their names
     * are as durable as they get, so that is not an error. */
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0 && e != EINVAL && e != EROFS)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: fsync of folder: %s", dir,
                           strerror(e));
    return MARLIN_OK;
}

static atomic_uint_fast64_t temp_counter;

marlin_status mf_create_temp(const char *dir, const char *name, int *fd,
                             char **tmp_path, marlin_error *err) {
    *fd = -1;
    *tmp_path = NULL;
    for (int attempt = 0; attempt < 100; attempt++) {
        uint64_t c = atomic_fetch_add(&temp_counter, 1);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t mix = ((uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull) ^ c;
        size_t n = strlen(dir) + strlen(name) + 64;
        char *p = malloc(n);
        if (!p) return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        snprintf(p, n, "%s/.%s.tmp-%ld-%06llx", dir, name, (long)getpid(),
                 (unsigned long long)(mix & 0xffffff));
        int f = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (f >= 0) {
            *fd = f;
            *tmp_path = p;
            return MARLIN_OK;
        }
        int e = errno;
        free(p);
        if (e != EEXIST)
            return marlin_fail(err, MARLIN_ERR_IO,
                               "%s: cannot create a temporary file for %s: %s",
                               dir, name, strerror(e));
    }
    return marlin_fail(err, MARLIN_ERR_IO,
                       "%s: no free temporary name for %s", dir, name);
}

static int rm_one(const char *path, const struct stat *sb, int flag,
                  struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

int mf_rmtree(const char *path) {
    struct stat sb;
    if (lstat(path, &sb) != 0) return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(sb.st_mode)) return unlink(path);
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}
