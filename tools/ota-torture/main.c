/* ota-torture: runs one command the way a power cut would stop it, for the crash torture
 * (tests/torture/torture.sh).
 *
 *   ota-torture run [--kill-after-us N] [--stdout FILE] [--stderr FILE] -- CMD [ARG...]
 *
 * CMD runs in a process group of its own. With --kill-after-us, the whole group (CMD and every
 * process it forked, such as the bounded check of `ota-agent startup`) receives SIGKILL N
 * microseconds after the fork unless CMD has exited by then. Without it, CMD runs to its end,
 * which is how the torture measures an operation's duration. Either way ota-torture returns
 * only when every process of the group has gone (it is their subreaper), so nothing of the
 * killed operation still runs when the recovery starts.
 *
 * Prints one line on stdout: "killed US", "exited STATUS US" or "signal SIG US", where US is
 * the time from the fork to the end of CMD in microseconds. Exit status: 0 when CMD ran (whatever
 * its own status), 1 when it could not be started, 2 usage. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
usage(void)
{
    fputs("usage: ota-torture run [--kill-after-us N] [--stdout FILE] [--stderr FILE] -- CMD "
          "[ARG...]\n",
          stderr);
}

static long long
mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

static int
number(const char *s, long long max, long long *out)
{
    char     *end;
    long long v;

    if (s == NULL || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
redirect(const char *path, int fd)
{
    int f;

    if (path == NULL)
        return 0;
    f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f < 0 || dup2(f, fd) < 0)
        return -1;
    close(f);
    return 0;
}

/* Reap every remaining descendant (orphans are re-parented to us, the subreaper). */
static void
reap_all(void)
{
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
}

int
main(int argc, char **argv)
{
    const char *out = NULL, *err = NULL;
    long long   kill_us = -1, start, end;
    sigset_t    chld, old;
    int         i, status = 0, killed = 0;
    pid_t       pid;

    if (argc < 2 || strcmp(argv[1], "run") != 0) {
        usage();
        return 2;
    }
    for (i = 2; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--kill-after-us") == 0 && number(v, 3600LL * 1000000, &kill_us) == 0)
            i++;
        else if (strcmp(argv[i], "--stdout") == 0 && v != NULL)
            out = argv[++i];
        else if (strcmp(argv[i], "--stderr") == 0 && v != NULL)
            err = argv[++i];
        else {
            usage();
            return 2;
        }
    }
    if (i + 1 >= argc) {
        usage();
        return 2;
    }
    argv += i + 1;

    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        perror("ota-torture: cannot become a subreaper");
        return 1;
    }
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    start = mono_us();
    pid = fork();
    if (pid < 0) {
        perror("ota-torture: fork");
        return 1;
    }
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        setpgid(0, 0);
        if (redirect(out, 1) != 0 || redirect(err, 2) != 0) {
            perror("ota-torture: redirect");
            _exit(127);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "ota-torture: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    /* Both sides set the group, so the kill below finds it even if it comes first. */
    setpgid(pid, pid);

    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (w < 0 && errno != EINTR) {
            perror("ota-torture: waitpid");
            return 1;
        }
        if (kill_us < 0) {
            if (waitpid(pid, &status, 0) == pid)
                break;
            continue;
        }
        long long left = start + kill_us - mono_us();
        if (left <= 0) {
            kill(-pid, SIGKILL);
            killed = 1;
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            break;
        }
        struct timespec ts = {(time_t)(left / 1000000), (long)(left % 1000000) * 1000};
        (void)sigtimedwait(&chld, NULL, &ts); /* a child ended, or the delay is over */
    }
    end = mono_us();
    /* What the command forked dies with it (as at a power cut), or is waited for. */
    if (killed)
        kill(-pid, SIGKILL);
    reap_all();

    if (killed && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        printf("killed %lld\n", end - start);
    else if (WIFSIGNALED(status))
        printf("signal %d %lld\n", WTERMSIG(status), end - start);
    else
        printf("exited %d %lld\n", WEXITSTATUS(status), end - start);
    return 0;
}
