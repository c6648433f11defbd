/* File-system helpers. See ota/fsutil.h. */
#include "ota/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static ota_err
read_fd_bounded(int fd, const char *what, size_t max, unsigned char **buf, size_t *len,
                struct ota_diag *d)
{
    struct stat    st;
    unsigned char *b = NULL;
    size_t         cap, n = 0;
    ota_err        rc = OTA_OK;

    if (fstat(fd, &st) != 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", what);
    if (!S_ISREG(st.st_mode))
        return ota_diag_set(d, OTA_E_FORMAT, "'%s' is not a regular file", what);
    if ((uint64_t)st.st_size > max)
        return ota_diag_set(d, OTA_E_TOO_BIG, "'%s' is larger than %zu bytes", what, max);
    cap = (size_t)st.st_size + 1;
    b = malloc(cap);
    if (b == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory reading '%s'", what);
    for (;;) {
        ssize_t r;
        if (n + 1 == cap) {
            /* The file grew while we read it: allow up to max, no more. */
            unsigned char *nb;
            if (cap - 1 >= max) {
                rc = ota_diag_set(d, OTA_E_TOO_BIG, "'%s' is larger than %zu bytes", what, max);
                goto out;
            }
            cap = cap * 2 > max + 1 ? max + 1 : cap * 2;
            nb = realloc(b, cap);
            if (nb == NULL) {
                rc = ota_diag_set(d, OTA_E_NOMEM, "out of memory reading '%s'", what);
                goto out;
            }
            b = nb;
        }
        r = read(fd, b + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", what);
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    b = NULL;
out:
    free(b);
    return rc;
}

ota_err
ota_read_file(const char *path, size_t max, unsigned char **buf, size_t *len, struct ota_diag *d)
{
    return ota_read_file_at(AT_FDCWD, path, max, buf, len, d);
}

ota_err
ota_read_file_at(int dirfd, const char *name, size_t max, unsigned char **buf, size_t *len,
                 struct ota_diag *d)
{
    int     fd;
    ota_err rc;

    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return ota_diag_sys(d, OTA_E_NOT_FOUND, errno, "cannot open '%s'", name);
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", name);
    }
    rc = read_fd_bounded(fd, name, max, buf, len, d);
    close(fd);
    return rc;
}

ota_err
ota_write_all(int fd, const void *buf, size_t len, struct ota_diag *d)
{
    const unsigned char *p = buf;

    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return ota_diag_sys(d, OTA_E_IO, errno, "write failed");
        if (w == 0)
            return ota_diag_sys(d, OTA_E_IO, ENOSPC, "write failed");
        p += w;
        len -= (size_t)w;
    }
    return OTA_OK;
}

static void
split_dir(const char *path, char *dir, size_t cap)
{
    const char *slash = strrchr(path, '/');
    size_t      n;

    if (slash == NULL) {
        snprintf(dir, cap, ".");
        return;
    }
    n = (size_t)(slash - path);
    if (n == 0)
        n = 1; /* "/file" -> "/" */
    if (n >= cap)
        n = cap - 1;
    memcpy(dir, path, n);
    dir[n] = '\0';
}

ota_err
ota_fsync_dir(const char *path, struct ota_diag *d)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open directory '%s'", path);
    if (fsync(fd) != 0 && errno != EINVAL) {
        int e = errno;
        close(fd);
        return ota_diag_sys(d, OTA_E_IO, e, "cannot fsync directory '%s'", path);
    }
    close(fd);
    return OTA_OK;
}

ota_err
ota_fsync_parent(const char *path, struct ota_diag *d)
{
    char dir[PATH_MAX];

    split_dir(path, dir, sizeof dir);
    return ota_fsync_dir(dir, d);
}

int
ota_tmpfile_beside(const char *path, mode_t mode, char *tmp_out, size_t tmp_cap,
                   struct ota_diag *d)
{
    static const char al[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    unsigned          seed;
    int               tries;

    seed = (unsigned)getpid() ^ (unsigned)time(NULL) ^ (unsigned)(uintptr_t)tmp_out;
    for (tries = 0; tries < 100; tries++) {
        char sfx[7];
        int  fd, i;
        for (i = 0; i < 6; i++) {
            seed = seed * 1103515245u + 12345u + (unsigned)clock();
            sfx[i] = al[(seed >> 16) % (sizeof al - 1)];
        }
        sfx[6] = '\0';
        if (ota_path_fmt(tmp_out, tmp_cap, d, "%s.%s" OTA_TMP_SUFFIX, path, sfx) != OTA_OK)
            return -1;
        fd = open(tmp_out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd >= 0) {
            if (fchmod(fd, mode) != 0) { /* umask must not weaken or widen the mode */
                int e = errno;
                close(fd);
                unlink(tmp_out);
                ota_diag_sys(d, OTA_E_IO, e, "cannot set mode of '%s'", tmp_out);
                return -1;
            }
            return fd;
        }
        if (errno != EEXIST) {
            ota_diag_sys(d, OTA_E_IO, errno, "cannot create '%s'", tmp_out);
            return -1;
        }
    }
    ota_diag_set(d, OTA_E_IO, "cannot create a temp file beside '%s'", path);
    return -1;
}

ota_err
ota_commit_tmpfile(int fd, const char *tmp, const char *path, struct ota_diag *d)
{
    ota_err rc = OTA_OK;

    if (fsync(fd) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot fsync '%s'", tmp);
        close(fd);
        goto fail;
    }
    if (close(fd) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot close '%s'", tmp);
        goto fail;
    }
    if (rename(tmp, path) != 0) {
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot rename '%s' to '%s'", tmp, path);
        goto fail;
    }
    return ota_fsync_parent(path, d);
fail:
    unlink(tmp);
    return rc;
}

ota_err
ota_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode, int excl,
                      struct ota_diag *d)
{
    char    tmp[PATH_MAX];
    int     fd;
    ota_err rc;

    if (excl && access(path, F_OK) == 0)
        return ota_diag_set(d, OTA_E_EXISTS, "'%s' already exists", path);
    fd = ota_tmpfile_beside(path, mode, tmp, sizeof tmp, d);
    if (fd < 0)
        return d ? (d->sys_errno ? OTA_E_IO : OTA_E_TOO_BIG) : OTA_E_IO;
    rc = ota_write_all(fd, buf, len, d);
    if (rc != OTA_OK) {
        ota_diag_prefix(d, "writing '%s'", path);
        close(fd);
        unlink(tmp);
        return rc;
    }
    if (excl) {
        /* link() fails if path appeared meanwhile: no overwrite even in a race. */
        if (fsync(fd) != 0 || close(fd) != 0) {
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot write '%s'", tmp);
            unlink(tmp);
            return rc;
        }
        if (link(tmp, path) != 0) {
            int e = errno;
            unlink(tmp);
            if (e == EEXIST)
                return ota_diag_set(d, OTA_E_EXISTS, "'%s' already exists", path);
            return ota_diag_sys(d, OTA_E_IO, e, "cannot create '%s'", path);
        }
        unlink(tmp);
        return ota_fsync_parent(path, d);
    }
    return ota_commit_tmpfile(fd, tmp, path, d);
}

ota_err
ota_mkdir_p(const char *path, mode_t mode, struct ota_diag *d)
{
    char   buf[PATH_MAX];
    size_t n = strlen(path), i;

    if (n == 0 || n >= sizeof buf)
        return ota_diag_set(d, OTA_E_INVALID, "bad directory path '%s'", path);
    memcpy(buf, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (buf[i] == '/' || buf[i] == '\0') {
            char c = buf[i];
            buf[i] = '\0';
            if (mkdir(buf, mode) != 0 && errno != EEXIST)
                return ota_diag_sys(d, OTA_E_IO, errno, "cannot create directory '%s'", buf);
            buf[i] = c;
        }
    }
    {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            return ota_diag_set(d, OTA_E_IO, "'%s' is not a directory", path);
    }
    return OTA_OK;
}

static ota_err
rm_rf_at(int pfd, const char *name, int depth, struct ota_diag *d)
{
    struct stat st;
    int         fd;
    DIR        *dir;
    struct dirent *e;
    ota_err     rc = OTA_OK;

    if (depth > 256)
        return ota_diag_set(d, OTA_E_TOO_BIG, "directory tree too deep at '%s'", name);
    if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return OTA_OK;
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot stat '%s'", name);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(pfd, name, 0) != 0 && errno != ENOENT)
            return ota_diag_sys(d, OTA_E_IO, errno, "cannot remove '%s'", name);
        return OTA_OK;
    }
    fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot open '%s'", name);
    dir = fdopendir(fd);
    if (dir == NULL) {
        close(fd);
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot read '%s'", name);
    }
    while ((e = readdir(dir)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = rm_rf_at(dirfd(dir), e->d_name, depth + 1, d);
        if (rc != OTA_OK)
            break;
    }
    closedir(dir);
    if (rc == OTA_OK && unlinkat(pfd, name, AT_REMOVEDIR) != 0 && errno != ENOENT)
        rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot remove '%s'", name);
    return rc;
}

ota_err
ota_rm_rf(const char *path, struct ota_diag *d)
{
    return rm_rf_at(AT_FDCWD, path, 0, d);
}

void
ota_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char hx[] = "0123456789abcdef";
    size_t            i;

    for (i = 0; i < len; i++) {
        out[2 * i] = hx[in[i] >> 4];
        out[2 * i + 1] = hx[in[i] & 15];
    }
    out[2 * len] = '\0';
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ota_err
ota_hex_decode(const char *hex, unsigned char *out, size_t outlen)
{
    size_t i;

    if (strlen(hex) != 2 * outlen)
        return OTA_E_FORMAT;
    for (i = 0; i < outlen; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return OTA_E_FORMAT;
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    return OTA_OK;
}

ota_err
ota_path_fmt(char *buf, size_t cap, struct ota_diag *d, const char *fmt, ...)
{
    va_list ap;
    int     n;

    va_start(ap, fmt);
    n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    return OTA_OK;
}

int64_t
ota_now(void)
{
    return (int64_t)time(NULL);
}

void
ota_time_format(int64_t t, char out[21])
{
    time_t    tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

ota_err
ota_time_parse(const char *s, int64_t *out)
{
    struct tm tm;
    int       i;
    static const char pat[] = "dddd-dd-ddTdd:dd:ddZ";

    if (strlen(s) != sizeof pat - 1)
        return OTA_E_FORMAT;
    for (i = 0; pat[i]; i++) {
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return OTA_E_FORMAT;
    }
    memset(&tm, 0, sizeof tm);
    tm.tm_year = atoi(s) - 1900;
    tm.tm_mon = atoi(s + 5) - 1;
    tm.tm_mday = atoi(s + 8);
    tm.tm_hour = atoi(s + 11);
    tm.tm_min = atoi(s + 14);
    tm.tm_sec = atoi(s + 17);
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
        return OTA_E_FORMAT;
    *out = (int64_t)timegm(&tm);
    return OTA_OK;
}

/* Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF. */
int
ota_utf8_valid(const void *buf, size_t len)
{
    const unsigned char *p = buf;
    size_t i = 0;

    while (i < len) {
        unsigned char c = p[i];
        size_t        n, k;
        uint32_t      cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += n + 1;
    }
    return 1;
}
