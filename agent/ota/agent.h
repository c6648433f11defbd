/* ota-agent: the device side as a library. The CLI (agent/main.c) is a thin shell over it.
 *
 * A device keeps everything under its state directory:
 *   state.db                  releases, active/previous pointers, history, device id
 *   lock                      flock(2): two agents never interleave
 *   metadata/                 trusted TUF metadata
 *   downloads/<sha256>.part   resumable downloads
 *   staging/<version>.<rnd>   extraction in progress (removed by recovery)
 *   bundles/<version>/        verified, extracted, immutable trees
 *   current -> bundles/<v>    what the app runs, swapped by symlink + rename + fsync(dir)
 *
 * Every operation that changes the active release (activate, rollback, the automatic
 * activation and rollback of startup) passes the data gate first (agent/gate.c): it refuses
 * with OTA_E_GATED while the app's outbox holds changes the target release cannot carry.
 *
 * The library never prints and never exits; progress and results go through callbacks and
 * result structures, and errors through ota_err + struct ota_diag. */
#ifndef OTA_AGENT_H
#define OTA_AGENT_H

#include <jansson.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "ota/err.h"
#include "ota/release.h"

/** Version of this agent, compared with a release's min_agent. */
#define OTA_AGENT_VERSION "0.1.0"

/** Default configuration file (overridden by --config or OTA_AGENT_CONFIG). */
#define OTA_AGENT_CONFIG_DEFAULT "/etc/ota/agent.json"

/** Largest configuration file accepted. */
#define OTA_AGENT_CONFIG_MAX (64u << 10)

/** Device configuration (agent.json). Strings are malloc'd and owned by the struct; unset
 * optional strings are NULL. See agent/config.c for the accepted keys and defaults. */
struct ota_agent_config {
    char     *repository_url; /* https://, http:// or file:// base of the repository */
    char     *state_dir;
    char     *app;
    char     *channel;           /* default "stable" */
    char     *runtime_version;   /* native runtime version of this device */
    char     *trusted_root;      /* root metadata shipped with the app */
    long long poll_interval_s;   /* `run`: default 3600 */
    long long max_bundle_bytes;  /* default 1 GiB */
    long long connect_timeout_s; /* default 10 */
    long long low_speed_time_s;  /* default 30 */
    long long check_timeout_s;   /* bound of the check (and of a gate sync) in startup; 20 */
    char     *ca_file;
    long long keep_releases;  /* default 2 (never fewer than active + previous) */
    long long trial_launches; /* default 3 */
    char     *factory_bundle;
    /* Data gate: passed through to the sync code (struct ota_sync_config). */
    char *sync_url;
    char *sync_token;
    char *sync_token_file;
    char *sync_command;
    char *outbox_db;
};

/** Parse a configuration document strictly: unknown keys, wrong types and out-of-range values
 * are OTA_E_FORMAT naming the key; a missing required key (repository_url, state_dir, app,
 * runtime_version, trusted_root) likewise. name is used in messages. On success *out owns its
 * strings (release with ota_agent_config_clear). */
ota_err ota_agent_config_parse(const void *buf, size_t len, const char *name,
                               struct ota_agent_config *out, struct ota_diag *d) OTA_MUST_CHECK;

/** Read (at most OTA_AGENT_CONFIG_MAX bytes) and parse the file at path. */
ota_err ota_agent_config_load(const char *path, struct ota_agent_config *out,
                              struct ota_diag *d) OTA_MUST_CHECK;

/** Free what c owns and zero it; accepts a zeroed struct. */
void ota_agent_config_clear(struct ota_agent_config *c);

/** Longest model name the gate handles (the outbox allows longer names than a release
 * model id; such a model is never carried by any release). */
#define OTA_GATE_MODEL_MAX 128

/** One model's unsynced outbox changes (pending or quarantined: not on the server). */
struct ota_gate_pending {
    char     model[OTA_GATE_MODEL_MAX + 1];
    uint64_t count;
};

/** How the data gate reaches the app's outbox and the sync. All callbacks get ctx.
 * ota_agent_gate_sync_new() makes the implementation over the outbox and sync code. */
struct ota_gate_ops {
    /* Pending changes per model, at most cap entries into out; *n receives the count. */
    ota_err (*pending)(void *ctx, struct ota_gate_pending *out, size_t cap, size_t *n,
                       struct ota_diag *d);
    /* Run one sync: push pending changes and record acknowledgements. */
    ota_err (*sync)(void *ctx, struct ota_diag *d);
    /* Export every pending row to path (a new file), *rows receives how many. */
    ota_err (*export_rows)(void *ctx, const char *path, uint64_t *rows, struct ota_diag *d);
    void *ctx;
};

/** Most models the gate considers at once. */
#define OTA_GATE_MODELS_MAX 64

struct ota_agent; /* opaque */

/** Progress of a long step: phase is "download", "stage" or "install". */
typedef void (*ota_agent_progress_fn)(void *ctx, const char *phase, const char *version,
                                      uint64_t done, uint64_t total);

struct ota_agent_opts {
    const struct ota_agent_config *config; /* borrowed; must outlive the handle */
    /* Data gate implementation. NULL while config->outbox_db is set closes the gate (changes
     * cannot be counted, so none is risked); NULL without outbox_db: no gate. */
    const struct ota_gate_ops *gate;
    int                        read_only;    /* status/history/explain: no lock, no writes */
    unsigned                   lock_wait_ms; /* wait this long for the lock; 0 = fail at once */
    ota_agent_progress_fn      progress;     /* may be NULL */
    void                      *progress_ctx;
    int64_t                    now; /* 0 = ota_now() when needed (tests set it) */
};

/** Open the state directory: create the layout and state.db on first use, take the process
 * lock (unless read_only), generate the device id once. On a first start, copy the trusted
 * root into metadata/. OTA_E_LOCKED when another agent holds the lock. */
ota_err ota_agent_open(const struct ota_agent_opts *o, struct ota_agent **out,
                       struct ota_diag *d) OTA_MUST_CHECK;

/** Release the handle and the lock; accepts NULL. */
void ota_agent_close(struct ota_agent *a);

/** Absolute path of state_dir/current (what the app runs). Borrowed from a. */
const char *ota_agent_current_path(const struct ota_agent *a);

/** 128-bit device id as 32 lowercase hex digits. Borrowed from a. */
const char *ota_agent_device_id(const struct ota_agent *a);

/** Result of a command that may change the active release. */
struct ota_agent_result {
    int      changed;                      /* the active release changed */
    char     version[OTA_VERSION_STR_MAX]; /* the release acted on ("" if none) */
    char     from[OTA_VERSION_STR_MAX];    /* the active release before ("" if none) */
    char     export_path[4096];            /* --force: where pending rows were exported */
    uint64_t exported;                     /* rows exported */
};

/** Recover from a crash (staging leftovers, temp files, a half-done activation, a `current`
 * that disagrees with the database), then crash-safe steps the app relies on. */
ota_err ota_agent_recover(struct ota_agent *a, struct ota_diag *d) OTA_MUST_CHECK;

struct ota_agent_startup {
    char    active[OTA_VERSION_STR_MAX]; /* release to run ("" if none) */
    int     recovered;                   /* recovery repaired something */
    int     rolled_back;                 /* a trial ran out of launches and was rolled back */
    int     activated;                   /* a staged release was activated */
    int     installed;                   /* first start: a release was installed */
    ota_err gate_rc; /* OTA_E_GATED if an activation or rollback was held back */
    char    gate_msg[256];
    ota_err check_rc; /* result of the bounded check (OTA_OK, or why it failed) */
    char    check_msg[256];
    char    staged[OTA_VERSION_STR_MAX]; /* the check staged this release for next start */
};

/** What the app calls at launch: recover, trial bookkeeping (count this launch; after
 * trial_launches launches without confirm, roll back to the previous release), activate a
 * staged release if the gate allows, then a check bounded by check_timeout_s (run in a child
 * process that is killed at the bound, which recovery handles like a crash; a sync the gate
 * runs here has the same bound). On a first start
 * with nothing installed, install factory_bundle or the newest release. Ends with a gc. Returns
 * OTA_OK whenever a release is active, even if the check or the gate failed (see *res);
 * OTA_E_NOT_FOUND when there is nothing to run. */
ota_err ota_agent_startup(struct ota_agent *a, struct ota_agent_startup *res,
                          struct ota_diag *d) OTA_MUST_CHECK;

struct ota_agent_check {
    int      found;                        /* a newer release is offered to this device */
    char     version[OTA_VERSION_STR_MAX]; /* its version */
    int      staged;                       /* it is staged (now or before) */
    int      downloaded_now;               /* bytes were downloaded by this check */
    uint64_t bytes;                        /* bytes transferred by this check */
};

/** Refresh the TUF metadata, choose the release for this device (repo-layout.md), download it
 * (resumable) and stage it (verified, extracted into bundles/<version>). Activates nothing;
 * withdraws a staged release the repository has yanked. *res (may be NULL) is filled in every
 * case: the bytes a failed check transferred are worth reporting. */
ota_err ota_agent_check(struct ota_agent *a, struct ota_agent_check *res,
                        struct ota_diag *d) OTA_MUST_CHECK;

/** Activate version (NULL: the newest staged release above the active one). The data gate
 * applies; with force, pending rows are exported first and the gate is passed (no row is
 * deleted). The new release starts its trial. OTA_E_GATED, OTA_E_NOT_FOUND, OTA_E_STATE. */
ota_err ota_agent_activate(struct ota_agent *a, const char *version, int force,
                           struct ota_agent_result *res, struct ota_diag *d) OTA_MUST_CHECK;

/** Mark the active release healthy (ends its trial). OTA_E_NOT_FOUND if nothing is active. */
ota_err ota_agent_confirm(struct ota_agent *a, struct ota_diag *d) OTA_MUST_CHECK;

/** Go back to `to` (NULL: the previous release), which must be installed and older than the
 * active one; the active release is marked rolled_back and not offered again until a newer
 * version appears. The data gate applies (force as for activate). */
ota_err ota_agent_rollback(struct ota_agent *a, const char *to, int force,
                           struct ota_agent_result *res, struct ota_diag *d) OTA_MUST_CHECK;

/** Offline sideload: verify the bundle at path by its embedded manifest signature against the
 * targets keys of the trusted root, refuse it unless it is newer than every installed release
 * and fits this device, stage it and activate it (data gate as for activate). */
ota_err ota_agent_install(struct ota_agent *a, const char *path, int force,
                          struct ota_agent_result *res, struct ota_diag *d) OTA_MUST_CHECK;

/** Remove releases beyond keep_releases (never the active or previous one, never a staged
 * release newer than the active one), obsolete staged releases and stale downloads. */
ota_err ota_agent_gc(struct ota_agent *a, unsigned *removed, struct ota_diag *d) OTA_MUST_CHECK;

/** Status as a JSON object (new reference): device, active, previous, trial, releases, gate,
 * last check, trusted metadata versions. */
ota_err ota_agent_status(struct ota_agent *a, json_t **out, struct ota_diag *d) OTA_MUST_CHECK;

/** History as a JSON array of {time, event, version, detail}, oldest first, at most max
 * entries (the newest ones; 0 = all). */
ota_err ota_agent_history(struct ota_agent *a, size_t max, json_t **out,
                          struct ota_diag *d) OTA_MUST_CHECK;

/** Why the newest release on the channel is (not) running, from the trusted metadata of the
 * last check (no network): {"version", "rules": [{"rule", "ok", "detail"}...]}. Rules:
 * offered, runtime, min_agent, rollout, downloaded, staged, gate, active. OTA_E_NOT_FOUND if
 * the channel has no release for this app. */
ota_err ota_agent_explain(struct ota_agent *a, json_t **out, struct ota_diag *d) OTA_MUST_CHECK;

/** Stay running: check every poll_interval_s (+-10% jitter), back off exponentially on errors
 * (up to one hour), return OTA_OK when *stop becomes non-zero. The lock is taken only around
 * each check, so the app's startup is never blocked for long. on_check (may be NULL) reports
 * each check's result. */
ota_err ota_agent_run(struct ota_agent *a, volatile sig_atomic_t *stop,
                      void (*on_check)(void *ctx, ota_err rc, const struct ota_agent_check *res,
                                       const struct ota_diag *d),
                      void *ctx, struct ota_diag *d) OTA_MUST_CHECK;

/** Data gate implementation over the outbox and sync code (ota/outbox.h, ota/sync.h):
 * pending = ota_outbox_pending (pending + quarantined rows per model; a missing outbox database
 * holds nothing), sync = ota_sync_run over every model (sync_url is the URL template with
 * {model}, or sync_command), export_rows = ota_outbox_export. cfg is borrowed and must outlive
 * the ops. Fills *ops; release with ota_agent_gate_sync_free. */
ota_err ota_agent_gate_sync_new(const struct ota_agent_config *cfg, struct ota_gate_ops *ops,
                                struct ota_diag *d) OTA_MUST_CHECK;

/** Free what ota_agent_gate_sync_new allocated in ops; accepts a zeroed struct. */
void ota_agent_gate_sync_free(struct ota_gate_ops *ops);

struct ota_sync_config;

/** Fill *out (struct ota_sync_config of ota/sync.h, zeroed first) from the sync keys of cfg;
 * its strings borrow from cfg. */
void ota_agent_sync_config(const struct ota_agent_config *cfg, struct ota_sync_config *out);

#endif
