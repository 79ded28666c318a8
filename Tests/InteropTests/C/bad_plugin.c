/*
 * bad_plugin.c - deliberately broken lock driver plugins for the loader
 * tests.  Built by the tests with gcc, once per defect:
 *
 *   -DDEFECT_NO_SYMBOL      exports no virLockDriverImpl at all
 *   -DDEFECT_WRONG_MAJOR    table claims ABI 2.0.0
 *   -DDEFECT_NULL_CALLBACK  table has drvAcquire = NULL
 *   -DDEFECT_INIT_FAILS     drvInit reports an error and returns -1
 *   -DDEFECT_NEW_FAILS      drvNew reports an error and returns -1 for
 *                           objects named "refused"; drvFree calls are
 *                           counted in the exported bad_free_calls
 *
 * Every callback that is present succeeds, so the only reason the loader
 * can refuse the file is the one defect it was built with.
 */
#include <stddef.h>
#include <string.h>

#include "error_channel.h"
#include "lock_driver.h"

static int bad_init(unsigned int version, const char *configFile, unsigned int flags)
{
    (void)version; (void)flags;
#ifdef DEFECT_INIT_FAILS
    /* Through the project's own error channel, as a real plugin would. */
    (void)configFile;
    lockmgr_plugin_report_error(LOCKMGR_ERROR_CONFIG,
                                "bad-init: cannot read /nonexistent/bad.conf: no such file");
    return -1;
#else
    (void)configFile;
    return 0;
#endif
}

static int bad_deinit(void) { return 0; }

__attribute__((visibility("default"))) int bad_free_calls;

static int bad_new(virLockManager *m, unsigned int type, size_t n,
                   virLockManagerParam *p, unsigned int flags)
{
    (void)m; (void)type; (void)flags;
#ifdef DEFECT_NEW_FAILS
    for (size_t i = 0; i < n; i++) {
        if (p[i].type == VIR_LOCK_MANAGER_PARAM_TYPE_STRING && p[i].value.str &&
            strcmp(p[i].key, "name") == 0 && strcmp(p[i].value.str, "refused") == 0) {
            lockmgr_plugin_report_error(LOCKMGR_ERROR_INVALID, "bad-new: object 'refused' is refused");
            return -1;
        }
    }
    /* A real plugin would allocate here; drvFree must see it exactly once. */
    m->privateData = m;
#else
    (void)m; (void)n; (void)p;
#endif
    return 0;
}

static void bad_free(virLockManager *m)
{
    bad_free_calls++;
    m->privateData = NULL;
}

static int bad_add(virLockManager *m, unsigned int type, const char *name,
                   size_t n, virLockManagerParam *p, unsigned int flags)
{
    (void)m; (void)type; (void)name; (void)n; (void)p; (void)flags;
    return 0;
}

__attribute__((unused))
static int bad_acquire(virLockManager *m, const char *state, unsigned int flags,
                       virDomainLockFailureAction action, int *fd)
{
    (void)m; (void)state; (void)flags; (void)action;
    if (fd)
        *fd = -1;
    return 0;
}

static int bad_state(virLockManager *m, char **state, unsigned int flags)
{
    (void)m; (void)flags;
    if (state)
        *state = NULL;
    return 0;
}

#ifdef DEFECT_WRONG_MAJOR
#define TABLE_VERSION 2000000
#else
#define TABLE_VERSION VIR_LOCK_MANAGER_VERSION
#endif

#ifdef DEFECT_NULL_CALLBACK
#define ACQUIRE NULL
#else
#define ACQUIRE bad_acquire
#endif

#ifdef DEFECT_NO_SYMBOL
/* Same table under another name: the file is a valid library, just not a plugin. */
#define TABLE_NAME notALockDriver
#else
#define TABLE_NAME virLockDriverImpl
#endif

__attribute__((visibility("default"))) virLockDriver TABLE_NAME = {
    TABLE_VERSION, 0,
    bad_init, bad_deinit, bad_new, bad_free, bad_add, ACQUIRE, bad_state, bad_state,
};
