/*
 * error_channel.h - how a plugin's error message reaches whoever loaded it.
 *
 * A plugin returns -1 and must leave a message somewhere its host will look:
 *  - our host (lockmgr, the test suite) exports lockmgr_host_report_error()
 *    from its executable; plugins find it with dlsym(RTLD_DEFAULT);
 *  - libvirt keeps a thread-local "last error" set by virReportErrorHelper()
 *    in libvirt.so.0, which is how its own plugins report;
 *  - with neither present the message goes to stderr, so it is never lost.
 */
#ifndef LOCKMGR_ERROR_CHANNEL_H
#define LOCKMGR_ERROR_CHANNEL_H

#ifdef __cplusplus
extern "C" {
#endif

/* What went wrong, so hosts can pick an exit code or libvirt error number. */
typedef enum {
    LOCKMGR_ERROR_INTERNAL = 0,     /* a bug or an unexpected condition */
    LOCKMGR_ERROR_CONFLICT = 1,     /* the resource is held by someone else */
    LOCKMGR_ERROR_BACKEND = 2,      /* the lock backend failed or is unreachable */
    LOCKMGR_ERROR_CONFIG = 3,       /* the plugin's configuration is wrong */
    LOCKMGR_ERROR_INVALID = 4,      /* bad arguments: params, flags, state string */
    LOCKMGR_ERROR_UNSUPPORTED = 5,  /* a valid request this plugin cannot honour */
} lockmgr_error_kind;

/* Plugin side: deliver one error to the loading host. */
void lockmgr_plugin_report_error(int kind, const char *message);

/* Host side: the sink plugins look up; exported from host executables. */
void lockmgr_host_report_error(int kind, const char *message);
/* Host side: fetch and clear this thread's pending error; 0 when none. */
int lockmgr_host_take_error(int *kind, char *buffer, unsigned long size);

#ifdef __cplusplus
}
#endif
#endif
