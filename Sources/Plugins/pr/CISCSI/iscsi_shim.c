#include "iscsi_shim.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <iscsi/iscsi.h>
#include <iscsi/scsi-lowlevel.h>

struct lockmgr_iscsi_session {
    struct iscsi_context *ctx;
    int broken;
    int connecting; /* connect_cb acts only while opening */
    /* The one operation in flight: callbacks write here, never to a stack
     * frame, because iscsi_destroy_context() may still invoke them. */
    int done;
    int status;
    struct scsi_task *task;
    /* Why the connection went away, seen on the socket before libiscsi
     * tears it down: libiscsi's own text then is stale or says only that
     * it will not reconnect. Empty while the connection is fine. */
    char lost[96];
};

/* Looks at the socket libiscsi is about to service: a refused or reset
 * connection (SO_ERROR) or an orderly close by the target (readable with
 * nothing to read) is remembered in s->lost. */
static void note_connection_loss(lockmgr_iscsi_session *s, int fd, short revents)
{
    if (s->lost[0] || fd < 0)
        return;
    int soerr = 0;
    socklen_t len = sizeof soerr;
    if ((revents & (POLLERR | POLLHUP)) && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 && soerr) {
        snprintf(s->lost, sizeof s->lost, "connection lost: %s", strerror(soerr));
        return;
    }
    char byte;
    if ((revents & (POLLIN | POLLHUP)) && recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
        snprintf(s->lost, sizeof s->lost, "connection closed by the target");
}

/* The best explanation of a failure: the connection loss if one was
 * seen, else libiscsi's error text. */
static const char *failure_text(lockmgr_iscsi_session *s)
{
    return s->lost[0] ? s->lost : iscsi_get_error(s->ctx);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void set_err(char *err, size_t len, const char *what, const char *detail)
{
    if (err && len)
        snprintf(err, len, "%s%s%s", what, detail && *detail ? ": " : "", detail ? detail : "");
}

/* Runs the event loop until the pending operation completes or the
 * deadline passes (`timeout_ms` after the operation began: named in the
 * error, so an operator sees which setting bounded the wait). */
static int wait_done(lockmgr_iscsi_session *s, int64_t deadline, int timeout_ms, const char *what,
                     char *err, size_t err_len)
{
    while (!s->done) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            s->broken = 1;
            char detail[96];
            snprintf(detail, sizeof detail, "no answer from the target within %d ms (timeout_ms)", timeout_ms);
            char msg[96];
            snprintf(msg, sizeof msg, "%s timed out", what);
            set_err(err, err_len, msg, detail);
            return -1;
        }
        struct pollfd pfd = { .fd = iscsi_get_fd(s->ctx), .events = (short)iscsi_which_events(s->ctx) };
        int n = poll(&pfd, 1, (int)(left > 1000 ? 1000 : left));
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s->broken = 1;
            set_err(err, err_len, what, strerror(errno));
            return -1;
        }
        if (n > 0)
            note_connection_loss(s, pfd.fd, pfd.revents);
        if (iscsi_service(s->ctx, n == 0 ? 0 : pfd.revents) < 0) {
            s->broken = 1;
            set_err(err, err_len, what, failure_text(s));
            return -1;
        }
    }
    return 0;
}

static void login_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
    (void)ctx; (void)data;
    lockmgr_iscsi_session *s = priv;
    s->status = status;
    s->done = 1;
}

static void connect_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
    (void)data;
    lockmgr_iscsi_session *s = priv;
    if (!s->connecting || s->done)
        return; /* libiscsi calls again when the connection is torn down */
    if (status != SCSI_STATUS_GOOD || iscsi_login_async(ctx, login_cb, s) != 0) {
        s->status = status == SCSI_STATUS_GOOD ? SCSI_STATUS_ERROR : status;
        s->done = 1;
    }
}

lockmgr_iscsi_session *lockmgr_iscsi_open(const char *initiator, const char *portal, const char *target,
                                          uint16_t isid_qualifier, int timeout_ms, char *err, size_t err_len)
{
    int64_t deadline = now_ms() + timeout_ms;
    lockmgr_iscsi_session *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, err_len, "out of memory", NULL);
        return NULL;
    }
    s->ctx = iscsi_create_context(initiator);
    if (!s->ctx) {
        free(s);
        set_err(err, err_len, "cannot create an iSCSI context", NULL);
        return NULL;
    }
    /* A fixed ISID: the initiator port is the same on every login, so the
     * target sees one initiator per host (libiscsi's default is random). */
    iscsi_set_isid_en(s->ctx, 0x4c4d47 /* "LMG" */, isid_qualifier);
    iscsi_set_noautoreconnect(s->ctx, 1); /* a silent reconnect is a new I_T nexus */
    iscsi_set_targetname(s->ctx, target);
    iscsi_set_session_type(s->ctx, ISCSI_SESSION_NORMAL);
    iscsi_set_header_digest(s->ctx, ISCSI_HEADER_DIGEST_NONE_CRC32C);
    s->connecting = 1;
    if (iscsi_connect_async(s->ctx, portal, connect_cb, s) != 0) {
        set_err(err, err_len, "cannot connect", iscsi_get_error(s->ctx));
        lockmgr_iscsi_close(s, 0);
        return NULL;
    }
    int waited = wait_done(s, deadline, timeout_ms, "login", err, err_len);
    s->connecting = 0;
    if (waited != 0) {
        lockmgr_iscsi_close(s, 0);
        return NULL;
    }
    if (s->status != SCSI_STATUS_GOOD) {
        set_err(err, err_len, "connection or login failed", failure_text(s));
        s->broken = 1;
        lockmgr_iscsi_close(s, 0);
        return NULL;
    }
    return s;
}

static void command_cb(struct iscsi_context *ctx, int status, void *data, void *priv)
{
    (void)ctx; (void)data;
    lockmgr_iscsi_session *s = priv;
    s->status = status;
    s->done = 1;
}

static void release_task(lockmgr_iscsi_session *s)
{
    if (s->task && s->done) {
        scsi_free_scsi_task(s->task);
        s->task = NULL;
    }
}

int lockmgr_iscsi_command(lockmgr_iscsi_session *s, int lun, const uint8_t *cdb, size_t cdb_len,
                          int direction, uint8_t *data, size_t data_len, int timeout_ms,
                          lockmgr_iscsi_result *result, char *err, size_t err_len)
{
    memset(result, 0, sizeof *result);
    if (s->broken) {
        set_err(err, err_len, "iSCSI session is broken after an earlier failure", NULL);
        return -1;
    }
    if (cdb_len == 0 || cdb_len > 16 || data_len > 0x10000) {
        set_err(err, err_len, "invalid command size", NULL);
        return -1;
    }
    int64_t deadline = now_ms() + timeout_ms;
    int xfer = direction == LOCKMGR_ISCSI_READ ? SCSI_XFER_READ
             : direction == LOCKMGR_ISCSI_WRITE ? SCSI_XFER_WRITE : SCSI_XFER_NONE;
    uint8_t cdb_copy[16];
    memcpy(cdb_copy, cdb, cdb_len);
    s->task = scsi_create_task((int)cdb_len, cdb_copy, xfer, (int)data_len);
    if (!s->task) {
        set_err(err, err_len, "out of memory", NULL);
        return -1;
    }
    struct iscsi_data out = { .size = data_len, .data = data };
    s->done = 0;
    if (iscsi_scsi_command_async(s->ctx, lun, s->task, command_cb,
                                 direction == LOCKMGR_ISCSI_WRITE ? &out : NULL, s) != 0) {
        set_err(err, err_len, "cannot queue the command", iscsi_get_error(s->ctx));
        s->done = 1;
        release_task(s);
        s->broken = 1;
        return -1;
    }
    if (wait_done(s, deadline, timeout_ms, "SCSI command", err, err_len) != 0)
        return -1; /* the task is freed by close, after libiscsi cancels it */
    int rc = 0;
    if (s->status == SCSI_STATUS_GOOD || s->status == SCSI_STATUS_CHECK_CONDITION
        || s->status == SCSI_STATUS_RESERVATION_CONFLICT || s->status == SCSI_STATUS_BUSY
        || s->status == SCSI_STATUS_TASK_SET_FULL || s->status == SCSI_STATUS_TASK_ABORTED
        || s->status == SCSI_STATUS_ACA_ACTIVE || s->status == SCSI_STATUS_CONDITION_MET) {
        result->status = s->status;
        if (s->status == SCSI_STATUS_CHECK_CONDITION) {
            /* libiscsi keeps the sense parsed; its ascq field holds ASC << 8 | ASCQ. */
            result->has_sense = 1;
            result->sense_key = (uint8_t)(s->task->sense.key & 0x0f);
            result->asc = (uint8_t)((s->task->sense.ascq >> 8) & 0xff);
            result->ascq = (uint8_t)(s->task->sense.ascq & 0xff);
        }
        if (direction == LOCKMGR_ISCSI_READ && s->task->datain.size > 0 && s->task->datain.data) {
            size_t n = (size_t)s->task->datain.size;
            if (n > data_len)
                n = data_len;
            memcpy(data, s->task->datain.data, n);
            result->data_len = n;
        }
    } else {
        s->broken = 1;
        set_err(err, err_len, s->status == SCSI_STATUS_CANCELLED ? "command cancelled"
                              : s->status == SCSI_STATUS_TIMEOUT ? "command timed out" : "transport error",
                failure_text(s));
        rc = -1;
    }
    release_task(s);
    return rc;
}

void lockmgr_iscsi_close(lockmgr_iscsi_session *s, int timeout_ms)
{
    if (!s)
        return;
    if (!s->broken && timeout_ms > 0 && iscsi_is_logged_in(s->ctx)) {
        s->done = 0;
        if (iscsi_logout_async(s->ctx, login_cb, s) == 0)
            (void)wait_done(s, now_ms() + timeout_ms, timeout_ms, "logout", NULL, 0);
    }
    iscsi_destroy_context(s->ctx); /* may run pending callbacks (cancelled) */
    s->done = 1;
    release_task(s);
    free(s);
}
