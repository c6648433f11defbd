/* Small, careful file-system helpers: bounded reads, atomic writes, directory sync.
 *
 * Every write goes to a temp file in the same directory (O_EXCL), is fsynced, closed with its
 * result checked, renamed over the target and followed by an fsync of the directory, so a crash
 * leaves either the old file or the new one, never a half-written file. */
#ifndef OTA_FSUTIL_H
#define OTA_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "ota/err.h"

/** Suffix of every temp file ota writes; crash recovery removes files that carry it. */
#define OTA_TMP_SUFFIX ".ota-tmp"

/** Read a whole file of at most max bytes. *buf is malloc'd, NUL-terminated (the NUL is not
 * counted in *len); owned by the caller. OTA_E_NOT_FOUND if missing, OTA_E_TOO_BIG over max. */
ota_err ota_read_file(const char *path, size_t max, unsigned char **buf, size_t *len,
                      struct ota_diag *d) OTA_MUST_CHECK;

/** Same as ota_read_file for a name relative to dirfd (opened O_NOFOLLOW). */
ota_err ota_read_file_at(int dirfd, const char *name, size_t max, unsigned char **buf,
                         size_t *len, struct ota_diag *d) OTA_MUST_CHECK;

/** Atomically replace path with buf[0..len) and the given mode (see the header comment).
 * If excl is non-zero, fail with OTA_E_EXISTS when path already exists. */
ota_err ota_write_file_atomic(const char *path, const void *buf, size_t len, mode_t mode,
                              int excl, struct ota_diag *d) OTA_MUST_CHECK;

/** fsync a directory. */
ota_err ota_fsync_dir(const char *path, struct ota_diag *d) OTA_MUST_CHECK;

/** fsync the directory that contains path. */
ota_err ota_fsync_parent(const char *path, struct ota_diag *d) OTA_MUST_CHECK;

/** mkdir -p with the given mode for created directories; existing ones are left alone. */
ota_err ota_mkdir_p(const char *path, mode_t mode, struct ota_diag *d) OTA_MUST_CHECK;

/** Remove a directory tree (does not follow symlinks). Missing path is OK. */
ota_err ota_rm_rf(const char *path, struct ota_diag *d) OTA_MUST_CHECK;

/** Write all of buf to fd, retrying on EINTR and short writes. */
ota_err ota_write_all(int fd, const void *buf, size_t len, struct ota_diag *d) OTA_MUST_CHECK;

/** Create a unique temp file "<path>.XXXXXX.ota-tmp" beside path, O_EXCL|O_CLOEXEC, mode.
 * tmp_out (caller buffer of tmp_cap bytes) receives its name. Returns the fd or -1 with diag. */
int ota_tmpfile_beside(const char *path, mode_t mode, char *tmp_out, size_t tmp_cap,
                       struct ota_diag *d);

/** fsync + checked close of fd, rename tmp over path, fsync the parent directory.
 * Closes fd in every case; removes tmp on failure. */
ota_err ota_commit_tmpfile(int fd, const char *tmp, const char *path,
                           struct ota_diag *d) OTA_MUST_CHECK;

/** Lowercase hex of len bytes into out (2*len+1 bytes). */
void ota_hex_encode(const unsigned char *in, size_t len, char *out);

/** Decode exactly outlen bytes of hex (2*outlen chars, upper or lower case) into out.
 * OTA_E_FORMAT if the length or a character is wrong. */
ota_err ota_hex_decode(const char *hex, unsigned char *out, size_t outlen) OTA_MUST_CHECK;

/** snprintf that reports truncation as OTA_E_TOO_BIG ("path too long"). */
ota_err ota_path_fmt(char *buf, size_t cap, struct ota_diag *d, const char *fmt, ...)
    OTA_PRINTF(4, 5) OTA_MUST_CHECK;

/** 1 if buf[0..len) is strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF;
 * NUL is a valid code point here: callers that forbid it check it), else 0. */
int ota_utf8_valid(const void *buf, size_t len);

/** Wall-clock now in seconds (time(3), so faketime works). */
int64_t ota_now(void);

/** Format t as TUF's UTC "YYYY-MM-DDTHH:MM:SSZ" into out (21 bytes). */
void ota_time_format(int64_t t, char out[21]);

/** Parse "YYYY-MM-DDTHH:MM:SSZ" strictly. */
ota_err ota_time_parse(const char *s, int64_t *out) OTA_MUST_CHECK;

#endif
