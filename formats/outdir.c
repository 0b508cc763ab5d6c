/*
 * outdir.c - output folders built under a temporary sibling name and renamed
 * into place at the end (marlin_outdir_*), so a crash, an error or Ctrl-C
 * never leaves a half-written checkpoint at the final path, and an existing
 * folder is never replaced without `force`.
 *
 * Spec: safetensors.md 4 ("Rules for our writer") and 8.3; style.md habit
 * 11 (write atomically, never leave artefacts). Linux renameat2() gives the
 * two primitives we need: RENAME_NOREPLACE (publish only if the final name
 * is still free) and RENAME_EXCHANGE (swap a new folder for an old one in
 * one step, so readers see either the old or the new checkpoint).
 */
#include "formats_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* "<final>" without trailing slashes (malloc'ed). */
static char *trim_slashes(const char *p) {
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    return strndup(p, n);
}

/* With force we delete the old folder: only when it plausibly is an old
 * output (empty, or holding config.json or safetensors files), never a home
 * folder or a source tree given by mistake. */
static marlin_status check_replaceable(const char *final, marlin_error *err) {
    DIR *d = opendir(final);
    if (!d)
        return marlin_fail(err, MARLIN_ERR_IO, "%s: cannot list: %s", final,
                           strerror(errno));
    bool empty = true, looks = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t l = strlen(n);
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0) continue;
        empty = false;
        if (strcmp(n, "config.json") == 0 ||
            (l > 12 && strcmp(n + l - 12, ".safetensors") == 0))
            looks = true;
    }
    closedir(d);
    if (empty || looks) return MARLIN_OK;
    return marlin_fail(err, MARLIN_ERR_EXISTS,
                       "%s: exists and does not look like a checkpoint folder "
                       "(no config.json or .safetensors); not replaced even "
                       "with force",
                       final);
}

marlin_status marlin_outdir_begin(const char *final_path, bool force,
                                  char **tmp_path, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    struct stat sb;
    char *final = NULL, *tmp = NULL;
    *tmp_path = NULL;
    if (!final_path || !*final_path)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "output folder: empty path");
    if (!(final = trim_slashes(final_path)))
        return marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
    if (lstat(final, &sb) == 0) {
        if (!force) {
            st = marlin_fail(err, MARLIN_ERR_EXISTS,
                             "%s: already exists; not overwritten without force",
                             final);
            goto out;
        }
        if (!S_ISDIR(sb.st_mode)) {
            st = marlin_fail(err, MARLIN_ERR_EXISTS,
                             "%s: exists and is not a folder; not replaced", final);
            goto out;
        }
        st = check_replaceable(final, err);
        if (st) goto out;
    } else if (errno != ENOENT) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: %s", final, strerror(errno));
        goto out;
    }
    size_t n = strlen(final) + 32;
    if (!(tmp = malloc(n))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    /* mkdir (not mkdtemp) so the folder gets 0777 & ~umask like any other
     * folder the user creates, instead of mkdtemp's 0700. */
    for (int attempt = 0;; attempt++) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t r = ((uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull) ^
                     ((uint64_t)getpid() << 20) ^ (uint64_t)attempt;
        snprintf(tmp, n, "%s.tmp-%06llx", final,
                 (unsigned long long)((r >> 20) & 0xffffff));
        if (mkdir(tmp, 0777) == 0) break;
        if (errno != EEXIST || attempt >= 100) {
            st = marlin_fail(err, MARLIN_ERR_IO, "%s: cannot create: %s", tmp,
                             strerror(errno));
            goto out;
        }
    }
    *tmp_path = tmp;
    tmp = NULL;
out:
    free(tmp);
    free(final);
    return st;
}

/* fsync every file and folder below the temporary folder. What our own
 * writers produced is already synced (a second fsync of a clean file is
 * cheap); files added by other code may not be. */
static int sync_one(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw) {
    (void)ftw;
    if (flag != FTW_F && flag != FTW_D && flag != FTW_DP) return 0;
    if (!S_ISREG(sb->st_mode) && !S_ISDIR(sb->st_mode)) return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    if (rc != 0 && (errno == EINVAL || errno == EROFS)) rc = 0;
    close(fd);
    return rc;
}

marlin_status marlin_outdir_commit(const char *tmp_path, const char *final_path,
                                   bool force, marlin_error *err) {
    marlin_status st = MARLIN_OK;
    char *final = NULL, *parent = NULL, *old = NULL;
    if (!tmp_path || !final_path)
        return marlin_fail(err, MARLIN_ERR_INVALID_ARG, "output folder: NULL path");
    if (!(final = trim_slashes(final_path)) || !(parent = mf_dirname(final))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (nftw(tmp_path, sync_one, 16, FTW_PHYS | FTW_DEPTH) != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "%s: fsync of the new files: %s",
                         tmp_path, strerror(errno));
        goto out;
    }
    if (renameat2(AT_FDCWD, tmp_path, AT_FDCWD, final, RENAME_NOREPLACE) == 0)
        goto synced;
    int e = errno;
    if (e == EINVAL || e == ENOSYS) {
        /* No RENAME_NOREPLACE on this file system: check, then rename (a
         * narrow race, and rename() refuses a non-empty target anyway). */
        struct stat sb;
        if (lstat(final, &sb) == 0) e = EEXIST;
        else if (rename(tmp_path, final) == 0) goto synced;
        else e = errno;
    }
    if (e != EEXIST && e != ENOTEMPTY) {
        st = marlin_fail(err, MARLIN_ERR_IO, "rename %s -> %s: %s", tmp_path,
                         final, strerror(e));
        goto out;
    }
    if (!force) {
        st = marlin_fail(err, MARLIN_ERR_EXISTS,
                         "%s: appeared while writing; not overwritten without "
                         "force", final);
        goto out;
    }
    st = check_replaceable(final, err);
    if (st) goto out;
    /* Swap in one step; the old checkpoint then sits at tmp_path. */
    if (renameat2(AT_FDCWD, tmp_path, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
        if (mf_rmtree(tmp_path) != 0) {
            st = marlin_fail(err, MARLIN_ERR_IO,
                             "%s: new folder in place, but removing the old "
                             "one (now %s) failed: %s",
                             final, tmp_path, strerror(errno));
            goto out;
        }
        goto synced;
    }
    /* No RENAME_EXCHANGE: move the old folder aside, then publish. */
    size_t n = strlen(final) + 32;
    if (!(old = malloc(n))) {
        st = marlin_fail(err, MARLIN_ERR_NOMEM, "out of memory");
        goto out;
    }
    snprintf(old, n, "%s.old-%ld", final, (long)getpid());
    if (rename(final, old) != 0) {
        st = marlin_fail(err, MARLIN_ERR_IO, "rename %s -> %s: %s", final, old,
                         strerror(errno));
        goto out;
    }
    if (rename(tmp_path, final) != 0) {
        e = errno;
        (void)rename(old, final); /* best effort: put the old one back */
        st = marlin_fail(err, MARLIN_ERR_IO, "rename %s -> %s: %s", tmp_path,
                         final, strerror(e));
        goto out;
    }
    mf_rmtree(old);
synced:
    st = mf_fsync_dir(parent, err);
out:
    free(old);
    free(parent);
    free(final);
    return st;
}

void marlin_outdir_abort(const char *tmp_path) {
    /* Only ever remove a folder named like the ones begin() creates. */
    if (!tmp_path || !strstr(mf_basename(tmp_path), ".tmp-")) return;
    mf_rmtree(tmp_path);
}
