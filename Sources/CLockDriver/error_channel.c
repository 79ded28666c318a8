#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "error_channel.h"

/* ---- host side ------------------------------------------------------- */

static __thread int pending;
static __thread int pending_kind;
static __thread char pending_message[4096];

void lockmgr_host_report_error(int kind, const char *message)
{
    /* Keep the first error of a call: later ones are usually consequences. */
    if (pending)
        return;
    pending = 1;
    pending_kind = kind;
    snprintf(pending_message, sizeof(pending_message), "%s",
             message ? message : "unknown error");
}

int lockmgr_host_take_error(int *kind, char *buffer, unsigned long size)
{
    if (!pending)
        return 0;
    pending = 0;
    if (kind)
        *kind = pending_kind;
    if (buffer && size)
        snprintf(buffer, size, "%s", pending_message);
    return 1;
}

/* ---- plugin side ----------------------------------------------------- */

/* libvirt's private reporting function (libvirt.so.0, LIBVIRT_PRIVATE_*). */
typedef void (*vir_report_error_helper)(int domain, int code, const char *file,
                                        const char *func, size_t line,
                                        const char *fmt, ...);
typedef void (*host_sink)(int kind, const char *message);

enum { VIR_FROM_LOCKING = 42 };

static int libvirt_error_code(int kind)
{
    switch (kind) {
    case LOCKMGR_ERROR_CONFLICT: return 87;    /* VIR_ERR_RESOURCE_BUSY */
    case LOCKMGR_ERROR_BACKEND: return 9;      /* VIR_ERR_OPERATION_FAILED */
    case LOCKMGR_ERROR_CONFIG: return 67;      /* VIR_ERR_CONFIG_UNSUPPORTED */
    case LOCKMGR_ERROR_INVALID: return 8;      /* VIR_ERR_INVALID_ARG */
    case LOCKMGR_ERROR_UNSUPPORTED: return 84; /* VIR_ERR_OPERATION_UNSUPPORTED */
    default: return 1;                         /* VIR_ERR_INTERNAL_ERROR */
    }
}

void lockmgr_plugin_report_error(int kind, const char *message)
{
    /* Our own copy of lockmgr_host_report_error is hidden by the plugin's
     * version script, so RTLD_DEFAULT only finds a host's exported one. */
    host_sink sink = (host_sink)dlsym(RTLD_DEFAULT, "lockmgr_host_report_error");
    if (sink && sink != lockmgr_host_report_error) {
        sink(kind, message);
        return;
    }

    void *libvirt = dlopen("libvirt.so.0", RTLD_NOW | RTLD_NOLOAD);
    if (libvirt) {
        vir_report_error_helper report =
            (vir_report_error_helper)dlsym(libvirt, "virReportErrorHelper");
        dlclose(libvirt);
        if (report) {
            report(VIR_FROM_LOCKING, libvirt_error_code(kind), __FILE__,
                   __func__, __LINE__, "%s", message);
            return;
        }
    }

    fprintf(stderr, "lock driver error: %s\n", message);
}
