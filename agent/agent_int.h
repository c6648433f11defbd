/* Internals of the agent library shared between its modules (not installed). */
#ifndef OTA_AGENT_INT_H
#define OTA_AGENT_INT_H

#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>

#include "ota/agent.h"
#include "ota/err.h"
#include "ota/release.h"

#define AGENT_PATH_MAX 4096
#define AGENT_REASON_MAX 256

/* For best-effort writes (history, notes) whose failure must not fail the operation. */
static inline void
best_effort(ota_err rc)
{
    (void)rc;
}

/* ---- state.c: the SQLite state database ---------------------------------------------- */

enum rel_state {
    REL_STAGED = 0,
    REL_ACTIVE, /* running, not on trial (first install, rollback target) */
    REL_TRIAL,  /* running, waiting for confirm */
    REL_CONFIRMED,
    REL_ROLLED_BACK, /* rolled back from by request: not offered again */
    REL_FAILED,      /* trial ran out of launches: not offered again */
};

const char *rel_state_name(enum rel_state s);
int         rel_state_parse(const char *s, enum rel_state *out);

/* One row of the releases table. */
struct rel {
    char           version[OTA_VERSION_STR_MAX];
    enum rel_state state;
    char           model[OTA_ID_MAX + 1];
    char          *release_json; /* canonical release JSON, malloc'd */
    int            breaking;     /* published with --breaking */
    char           sha256[65];   /* of the bundle ("" for unknown) */
    int64_t        length;
    char           source[16]; /* "repository", "sideload", "factory" */
    int64_t        staged_at;
    int64_t        activated_at; /* 0 = never */
    int64_t        launches;
    int            present; /* bundles/<version> exists */
    char           reason[AGENT_REASON_MAX];
};

void rel_clear(struct rel *r);
/* Parse r->release_json into out (ota_release_clear after). */
ota_err rel_release(const struct rel *r, struct ota_release *out, struct ota_diag *d);

struct state {
    sqlite3      *db;
    sqlite3_stmt *st[16];
    int           in_tx;
};

ota_err state_open(struct state *s, const char *path, struct ota_diag *d) OTA_MUST_CHECK;
void    state_close(struct state *s);
ota_err state_begin(struct state *s, struct ota_diag *d) OTA_MUST_CHECK;
ota_err state_commit(struct state *s, struct ota_diag *d) OTA_MUST_CHECK;
void    state_rollback(struct state *s);

/* meta key/value: "device_id", "active", "previous", "activating", "gate", "last_check". */
ota_err state_meta_get(struct state *s, const char *key, char **val,
                       struct ota_diag *d) OTA_MUST_CHECK; /* *val NULL when unset */
ota_err state_meta_set(struct state *s, const char *key, const char *val,
                       struct ota_diag *d) OTA_MUST_CHECK; /* val NULL deletes */

ota_err state_rel_get(struct state *s, const char *version, struct rel *out,
                      struct ota_diag *d) OTA_MUST_CHECK; /* OTA_E_NOT_FOUND */
ota_err state_rel_put(struct state *s, const struct rel *r, struct ota_diag *d) OTA_MUST_CHECK;
ota_err state_rel_delete(struct state *s, const char *version, struct ota_diag *d) OTA_MUST_CHECK;
/* Every release, highest version first. *out malloc'd array of *n (rel_list_free). */
ota_err state_rel_list(struct state *s, struct rel **out, size_t *n,
                       struct ota_diag *d) OTA_MUST_CHECK;
void    rel_list_free(struct rel *list, size_t n);

ota_err state_history_add(struct state *s, int64_t t, const char *event, const char *version,
                          const char *detail, struct ota_diag *d) OTA_MUST_CHECK;
ota_err state_history_json(struct state *s, size_t max, json_t **out,
                           struct ota_diag *d) OTA_MUST_CHECK;

ota_err state_tuf_set(struct state *s, const char *role, long long version,
                      struct ota_diag *d) OTA_MUST_CHECK;
ota_err state_tuf_json(struct state *s, json_t **out, struct ota_diag *d) OTA_MUST_CHECK;

/* ---- the handle ---------------------------------------------------------------------- */

struct ota_agent {
    const struct ota_agent_config *cfg;
    const struct ota_gate_ops     *gate;
    ota_agent_progress_fn          progress;
    void                          *progress_ctx;
    int64_t                        fixed_now;
    unsigned                       lock_wait_ms;
    struct state                   st;
    int                            lock_fd;                 /* -1 when not held */
    int                            dir_fd;                  /* state_dir, O_DIRECTORY */
    char                           dir[AGENT_PATH_MAX];     /* absolute state_dir */
    char                           current[AGENT_PATH_MAX]; /* dir/current */
    char                           device_id[33];
    /* Test hook: stop an activation after this many steps (0 = never). */
    int crash_after_step;
    /* Bound of the gate's sync (ms; 0 = none): set during startup, which must not hang. */
    int64_t sync_bound_ms;
};

int64_t agent_now(const struct ota_agent *a);
ota_err agent_path(const struct ota_agent *a, char *buf, const char *fmt, ...)
    OTA_PRINTF(3, 4) OTA_MUST_CHECK;
ota_err agent_lock(struct ota_agent *a, unsigned wait_ms, struct ota_diag *d) OTA_MUST_CHECK;
void    agent_unlock(struct ota_agent *a);
/* Version the `current` link points to ("" if none or not bundles/<v>). */
void agent_current_target(struct ota_agent *a, char out[OTA_VERSION_STR_MAX]);
/* Active and previous versions from the database ("" if none). */
ota_err agent_pointers(struct ota_agent *a, char active[OTA_VERSION_STR_MAX],
                       char prev[OTA_VERSION_STR_MAX], struct ota_diag *d) OTA_MUST_CHECK;
/* Random lowercase hex of nbytes bytes into out (2*nbytes+1). */
ota_err agent_random_hex(char *out, size_t nbytes, struct ota_diag *d) OTA_MUST_CHECK;

/* ---- layout.c: activation, recovery, gc --------------------------------------------- */

enum change_kind { CHANGE_ACTIVATE, CHANGE_ROLLBACK, CHANGE_AUTO_ROLLBACK, CHANGE_INSTALL };

/* Switch `current` to version (present in bundles/), crash-safely: record "activating" in the
 * database, swap the link, record the result. Does not run the gate (callers do). The
 * previous release becomes `prev` (NULL: the release active before). new_state is the state of
 * the new active release; old_state (or -1 to keep) that of the release it replaces. */
ota_err layout_switch(struct ota_agent *a, const char *version, enum change_kind kind,
                      enum rel_state new_state, int old_state, const char *prev, const char *reason,
                      struct ota_diag *d) OTA_MUST_CHECK;
/* Point `current` at bundles/<version> atomically (no database). */
ota_err layout_swap_link(struct ota_agent *a, const char *version,
                         struct ota_diag *d) OTA_MUST_CHECK;
/* Crash recovery (see ota_agent_recover); *repaired set when something was fixed. */
ota_err layout_recover(struct ota_agent *a, int *repaired, struct ota_diag *d) OTA_MUST_CHECK;
/* Remove everything under staging/ (the caller holds the lock). */
ota_err layout_clean_staging(struct ota_agent *a, struct ota_diag *d) OTA_MUST_CHECK;
/* Move an extracted staging dir into bundles/<version> and fsync bundles/. */
ota_err layout_commit_staging(struct ota_agent *a, const char *staging, const char *version,
                              struct ota_diag *d) OTA_MUST_CHECK;
/* Create a fresh staging/<version>.<random> directory; path into out (AGENT_PATH_MAX). */
ota_err layout_new_staging(struct ota_agent *a, const char *version, char *out,
                           struct ota_diag *d) OTA_MUST_CHECK;
ota_err layout_gc(struct ota_agent *a, unsigned *removed, struct ota_diag *d) OTA_MUST_CHECK;
/* Trial bookkeeping at a launch, before anything else: a release on trial that has had
 * trial_launches launches without confirm is rolled back to the previous release (if the gate
 * allows; *gate_rc and gate_diag say why not). */
ota_err layout_trial_launch(struct ota_agent *a, int *rolled_back, ota_err *gate_rc,
                            struct ota_diag *gate_diag, struct ota_diag *d) OTA_MUST_CHECK;
/* Count this launch for the active release if it is on trial. */
ota_err layout_count_launch(struct ota_agent *a, struct ota_diag *d) OTA_MUST_CHECK;
/* The highest installed release below `below` that may be rolled back to ("" if none). */
ota_err layout_fallback(struct ota_agent *a, const char *below, char out[OTA_VERSION_STR_MAX],
                        struct ota_diag *d) OTA_MUST_CHECK;
/* Activate (gate + switch) or roll back; shared by the commands and startup. */
ota_err agent_change(struct ota_agent *a, const char *version, enum change_kind kind, int force,
                     struct ota_agent_result *res, struct ota_diag *d) OTA_MUST_CHECK;

/* ---- gate.c: the data gate ------------------------------------------------------------ */

struct gate_verdict {
    int      open;                          /* 1: the change may happen */
    char     model[OTA_GATE_MODEL_MAX + 1]; /* first model that holds it back */
    uint64_t count;                         /* its pending changes */
    uint64_t total;                         /* all pending changes that hold it back */
};

/* Decide, without syncing, whether pending changes stop a switch to target. */
ota_err gate_evaluate(struct ota_agent *a, const struct ota_release *target, int breaking,
                      struct gate_verdict *v, struct ota_diag *d) OTA_MUST_CHECK;
/* The gate every change of the active release passes: evaluate; when closed, sync and
 * evaluate again; still closed: OTA_E_GATED ("waiting for sync: N changes under model M"),
 * recorded for status/explain, unless force, which exports the pending rows first (path in
 * res->export_path) and lets the change through. */
ota_err gate_check(struct ota_agent *a, const struct ota_release *target, int breaking, int force,
                   struct ota_agent_result *res, struct ota_diag *d) OTA_MUST_CHECK;

/* ---- bounded.c: a step in a child process, stopped at a bound ------------------------- */

/* The step: runs in the child with its own database connection; out has the caller's out_len
 * bytes (NULL when 0) and is copied back on completion. */
typedef ota_err (*bounded_fn)(struct ota_agent *a, void *out, struct ota_diag *d);

/* Run fn in a child; the parent's database connection is closed across the fork and reopened.
 * OTA_E_TIMEOUT ("<what> did not finish within N s") after timeout_ms (0: no bound) or when
 * *stop (may be NULL) becomes non-zero; the child is then killed. out_len <= 4096. */
ota_err agent_bounded(struct ota_agent *a, int64_t timeout_ms, volatile sig_atomic_t *stop,
                      bounded_fn fn, void *out, size_t out_len, const char *what,
                      struct ota_diag *d) OTA_MUST_CHECK;
int64_t agent_mono_ms(void);

/* ---- stream.c: a download read while it arrives ---------------------------------------- */

struct ota_fetch_opts;
struct stream;

/* Download progress: bytes arrived (resumed prefix included) and the signed length. */
typedef void (*stream_progress_fn)(void *ctx, uint64_t done, uint64_t total);

struct stream_info {
    uint64_t prefix;   /* bytes resumed from the part file */
    uint64_t received; /* bytes received over the network */
    int      failed;   /* stream_read failed: the transfer or the part file, not the content */
};

/* Open (create) the part file, dropping it if longer than length, and start fetching url from
 * its size in a thread that puts what arrives into a bounded ring. fetch, url and part are
 * borrowed until stream_close. progress (may be NULL) is called by stream_read, on the reading
 * thread. */
ota_err stream_open(const struct ota_fetch_opts *fetch, const char *url, const char *part,
                    uint64_t length, stream_progress_fn progress, void *progress_ctx,
                    struct stream **out, struct ota_diag *d) OTA_MUST_CHECK;
/* ota_read_fn over the stream: the part file's prefix, then the bytes as they arrive, each
 * appended to the part file as it is returned. End of stream after exactly length bytes; a
 * transfer that fails or ends short is an error here (OTA_E_NETWORK, OTA_E_TIMEOUT,
 * OTA_E_NOT_FOUND, OTA_E_LENGTH, ...), as is a failure to write the part file (OTA_E_IO). */
ota_err stream_read(void *ctx, void *buf, size_t cap, size_t *got, struct ota_diag *d);
/* Stop the transfer if it still runs and wait for it; info (may be NULL) says what happened.
 * stream_read must not be called after. */
void stream_stop(struct stream *s, struct stream_info *info);
/* stream_stop, then close the part file, synced first with keep (what arrived serves the next
 * attempt), and free s. Accepts NULL. */
void stream_close(struct stream *s, int keep);

/* ---- check.c ------------------------------------------------------------------------- */

/* newest_staged: the newest present staged release above active ("" if none). */
ota_err agent_newest_staged(struct ota_agent *a, const char *active, char out[OTA_VERSION_STR_MAX],
                            struct ota_diag *d) OTA_MUST_CHECK;
/* Record the result of a check in meta "last_check" for status. */
void agent_record_check(struct ota_agent *a, ota_err rc, const struct ota_agent_check *res,
                        const struct ota_diag *d);

ota_err check_run(struct ota_agent *a, struct ota_agent_check *res,
                  struct ota_diag *d) OTA_MUST_CHECK;
ota_err check_explain(struct ota_agent *a, json_t **out, struct ota_diag *d) OTA_MUST_CHECK;
/* Stage a bundle file (verified with the trusted targets keys); source "sideload"/"factory". */
ota_err check_install_file(struct ota_agent *a, const char *path, const char *source,
                           char version[OTA_VERSION_STR_MAX], struct ota_diag *d) OTA_MUST_CHECK;
/* Startup without the network: recover, trial bookkeeping, activate a staged release if the
 * gate allows, count this launch. s->active receives the release to run. */
ota_err agent_startup_local(struct ota_agent *a, struct ota_agent_startup *s,
                            struct ota_diag *d) OTA_MUST_CHECK;
/* Rollout bucket of this device for app/version (repo-layout.md): 0..99. */
ota_err check_bucket(const char *device_id, const char *app, const char *version,
                     unsigned *out) OTA_MUST_CHECK;

#endif
