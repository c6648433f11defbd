/* SQLite helpers shared by the state database (state.c) and the outbox (outbox.c); internal,
 * not installed. */
#ifndef OTA_AGENT_DBUTIL_H
#define OTA_AGENT_DBUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

/* errno of the last failed call on one of the connection's files ("main", or its WAL or
 * rollback journal), 0 if none. */
static inline int
db_file_errno(sqlite3 *db, int journal)
{
    sqlite3_file *f = NULL;
    int           e = 0;

    if (!journal)
        return sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO, &e) == SQLITE_OK ? e : 0;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &f) != SQLITE_OK ||
        f == NULL || f->pMethods == NULL ||
        f->pMethods->xFileControl(f, SQLITE_FCNTL_LAST_ERRNO, &e) != SQLITE_OK)
        return 0;
    return e;
}

/* The system error behind the connection's last failure if it was an I/O one, else 0, so a
 * message can say "No space left on device" and not only SQLite's "disk I/O error".
 * sqlite3_system_errno() misses some (a failed fsync of the WAL), which the file that failed
 * still holds; a short write is SQLITE_FULL without any errno: the disk is full. */
static inline int
db_sys_errno(sqlite3 *db)
{
    int code, e;

    if (db == NULL)
        return 0;
    code = sqlite3_errcode(db) & 0xff;
    if (code != SQLITE_IOERR && code != SQLITE_FULL && code != SQLITE_CANTOPEN &&
        code != SQLITE_PERM && code != SQLITE_READONLY)
        return 0;
    e = sqlite3_system_errno(db);
    if (e == 0)
        e = db_file_errno(db, 1);
    if (e == 0)
        e = db_file_errno(db, 0);
    if (e == 0 && code == SQLITE_FULL)
        e = ENOSPC;
    return e;
}

/* sqlite3_open_v2 for a database the caller writes. SQLite opens a file it cannot open for
 * writing read-only instead, and then every write fails ("attempt to write a readonly
 * database") long after the cause is known; here that is an open failure with the cause's
 * errno (found by opening the file for writing ourselves). A cause that has gone by then gets
 * one more try. On failure *out may hold a handle for sqlite3_errmsg (close it) and *sys_errno
 * the errno (0 if unknown). Returns an SQLite result code. */
static inline int
db_open_rw(const char *path, int flags, sqlite3 **out, int *sys_errno)
{
    int oflags = O_RDWR | O_CLOEXEC | ((flags & SQLITE_OPEN_NOFOLLOW) ? O_NOFOLLOW : 0);

    *sys_errno = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        sqlite3 *db = NULL;
        int      rc, fd;

        rc = sqlite3_open_v2(path, &db, flags, NULL);
        if (rc != SQLITE_OK) {
            *sys_errno = db_sys_errno(db);
            *out = db;
            return rc;
        }
        if (sqlite3_db_readonly(db, "main") != 1) {
            *out = db;
            return SQLITE_OK;
        }
        sqlite3_close(db);
        fd = open(path, oflags);
        if (fd < 0) {
            *sys_errno = errno;
            break;
        }
        close(fd);
    }
    *out = NULL;
    return SQLITE_READONLY;
}

#endif
