/* Running a step in a child process that is stopped at a bound: the check inside startup, the
 * gate's sync inside startup, each check of `run`. Whatever the step waits for (DNS, a stalled
 * server, a slow sync), the caller gets an answer in time; killing the child is a crash, which
 * the state directory, the state database and the outbox are all built to survive. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent_int.h"

#define BOUNDED_OUT_MAX 4096

struct bounded_msg {
    ota_err         rc;
    struct ota_diag d;
    unsigned char   out[BOUNDED_OUT_MAX];
};

int64_t
agent_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
child(struct ota_agent *a, bounded_fn fn, size_t out_len, int fd)
{
    struct bounded_msg *m = calloc(1, sizeof(*m));
    char                db[AGENT_PATH_MAX];
    const char         *p;
    size_t              left;

    if (m == NULL)
        _exit(1);
    /* The parent closed its connection before fork (SQLite state must not cross a fork), so
     * this process opens its own. The flock is shared with the parent, as intended. */
    if (agent_path(a, db, "state.db") != OTA_OK)
        m->rc = ota_diag_set(&m->d, OTA_E_TOO_BIG, "path too long");
    else
        m->rc = state_open(&a->st, db, &m->d);
    if (m->rc == OTA_OK)
        m->rc = fn(a, out_len ? m->out : NULL, &m->d);
    p = (const char *)m;
    left = sizeof(*m);
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        p += n;
        left -= (size_t)n;
    }
    state_close(&a->st);
    _exit(0);
}

ota_err
agent_bounded(struct ota_agent *a, int64_t timeout_ms, volatile sig_atomic_t *stop, bounded_fn fn,
              void *out, size_t out_len, const char *what, struct ota_diag *d)
{
    struct bounded_msg *m = NULL;
    size_t              got = 0;
    int                 pfd[2], status;
    char                db[AGENT_PATH_MAX];
    int64_t             start = agent_mono_ms();
    pid_t               pid;
    ota_err             rc = OTA_OK;

    if (out_len > BOUNDED_OUT_MAX)
        return ota_diag_set(d, OTA_E_INVALID, "bounded step result too large");
    if (agent_path(a, db, "state.db") != OTA_OK)
        return ota_diag_set(d, OTA_E_TOO_BIG, "path too long");
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        return ota_diag_set(d, OTA_E_NOMEM, "out of memory");
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        free(m);
        return ota_diag_sys(d, OTA_E_IO, errno, "cannot create a pipe");
    }
    fflush(NULL);
    state_close(&a->st);
    pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        child(a, fn, out_len, pfd[1]);
    }
    rc = state_open(&a->st, db, d);
    if (pid < 0 || rc != OTA_OK) {
        if (pid < 0)
            rc = ota_diag_sys(d, OTA_E_IO, errno, "cannot fork");
        else
            kill(pid, SIGKILL);
        close(pfd[0]);
        close(pfd[1]);
        if (pid > 0)
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        free(m);
        return rc;
    }
    close(pfd[1]);
    for (;;) {
        struct pollfd pf = {pfd[0], POLLIN, 0};
        int64_t       wait = 200, left = timeout_ms - (agent_mono_ms() - start);
        ssize_t       n;

        if (timeout_ms > 0 && left <= 0) {
            rc = ota_diag_set(d, OTA_E_TIMEOUT, "%s did not finish within %lld s", what,
                              (long long)(timeout_ms / 1000));
            break;
        }
        if (stop != NULL && *stop) {
            rc = ota_diag_set(d, OTA_E_TIMEOUT, "%s stopped", what);
            break;
        }
        if (timeout_ms > 0 && left < wait)
            wait = left;
        if (poll(&pf, 1, (int)wait) <= 0)
            continue;
        n = read(pfd[0], (char *)m + got, sizeof(*m) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = ota_diag_set(d, OTA_E_IO, "%s ended without a result", what);
            break;
        }
        got += (size_t)n;
        if (got == sizeof(*m)) {
            rc = m->rc;
            if (out_len > 0)
                memcpy(out, m->out, out_len);
            if (rc != OTA_OK && d != NULL)
                *d = m->d;
            break;
        }
    }
    close(pfd[0]);
    if (got != sizeof(*m))
        kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    free(m);
    return rc;
}
