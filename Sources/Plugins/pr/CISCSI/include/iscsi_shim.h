#ifndef LOCKMGR_ISCSI_SHIM_H
#define LOCKMGR_ISCSI_SHIM_H

#include <stddef.h>
#include <stdint.h>

/*
 * A bounded, blocking view of one libiscsi session for the pr plugin.
 *
 * libiscsi's *_sync calls poll without a deadline of their own (its task
 * timeout has one-second granularity and does not cover the TCP connect), so
 * this shim drives the async API from its own poll loop with a deadline in
 * milliseconds: a target that never answers costs at most the timeout.
 * After a timeout or transport error the session is marked broken and every
 * later command fails at once; the caller opens a new one.
 */
typedef struct lockmgr_iscsi_session lockmgr_iscsi_session;

enum lockmgr_iscsi_direction {
    LOCKMGR_ISCSI_NONE = 0,
    LOCKMGR_ISCSI_READ = 1,
    LOCKMGR_ISCSI_WRITE = 2,
};

/* Result of one command that reached the target. */
typedef struct {
    int status;                 /* SAM status byte */
    int has_sense;              /* 1 with CHECK CONDITION: the three fields below are set */
    uint8_t sense_key;          /* libiscsi's parsed sense, passed on as parsed */
    uint8_t asc;
    uint8_t ascq;
    size_t data_len;            /* bytes copied to the caller's buffer */
} lockmgr_iscsi_result;

/*
 * Logs in to `target` at `portal` ("host:port") as `initiator` with the ISID
 * qualifier `isid_qualifier`. Returns NULL and writes a message to `err` on
 * failure (refused, timed out, login rejected).
 */
lockmgr_iscsi_session *lockmgr_iscsi_open(const char *initiator, const char *portal, const char *target,
                                          uint16_t isid_qualifier, int timeout_ms, char *err, size_t err_len);

/*
 * Sends one CDB to `lun`. For READ, up to `data_len` bytes land in `data`;
 * for WRITE, `data_len` bytes of `data` are sent. Returns 0 when the target
 * answered (see `result`), -1 with a message in `err` otherwise.
 */
int lockmgr_iscsi_command(lockmgr_iscsi_session *s, int lun, const uint8_t *cdb, size_t cdb_len,
                          int direction, uint8_t *data, size_t data_len, int timeout_ms,
                          lockmgr_iscsi_result *result, char *err, size_t err_len);

/*
 * One command of a batch: filled by the caller (session, lun, cdb, direction,
 * data), answered by lockmgr_iscsi_batch (rc 0 with `result`, or -1 with a
 * message in `err`).
 */
typedef struct {
    lockmgr_iscsi_session *session;
    int lun;
    uint8_t cdb[16];
    size_t cdb_len;
    int direction;
    uint8_t *data;              /* READ: lands here; WRITE: copied out at once */
    size_t data_len;
    lockmgr_iscsi_result result;
    int rc;
    char err[192];
} lockmgr_iscsi_batch_item;

/*
 * Sends every item at once (each session queues its commands and libiscsi
 * keeps as many in flight as the target's command window allows; items may
 * name different sessions, which are polled together) and waits until all
 * are answered or `timeout_ms` after the call began. A session whose
 * commands time out or fail in transport is marked broken and its remaining
 * items fail with the reason. Items of one session are sent in array order;
 * the target may execute them in any order, so the caller puts at most one
 * command per LU in a batch when order matters. Returns 0 when every item
 * got an answer.
 */
int lockmgr_iscsi_batch(lockmgr_iscsi_batch_item *items, size_t n, int timeout_ms);

/*
 * For a session kept open between operations (pr-sessiond): whether it is
 * still usable, without waiting. Anything the target sent while nobody was
 * listening is handled (a NOP-In is answered); a connection the target
 * closed or reset, or a session already broken, makes it -1 and the caller
 * logs in anew.
 */
int lockmgr_iscsi_check_idle(lockmgr_iscsi_session *s);

/* Logs out (bounded by `timeout_ms`) when the session is healthy, then frees it. */
void lockmgr_iscsi_close(lockmgr_iscsi_session *s, int timeout_ms);

#endif
