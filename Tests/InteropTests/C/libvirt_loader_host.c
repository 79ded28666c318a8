/*
 * libvirt_loader_host.c - drives a lock driver plugin through libvirt's
 * OWN loader (lock_manager.c in libvirt.so.0), the code libvirtd runs.
 * Those functions are private to libvirt but exported under
 * LIBVIRT_PRIVATE_9.0.0; their prototypes are not installed, so they are
 * declared here from libvirt 9.0's src/locking/lock_manager.h.
 *
 *   LIBVIRT_LOCK_MANAGER_PLUGIN_DIR=DIR libvirt_loader_host NAME CONFIGDIR DISK
 *
 * Prints one line per step; errors are printed from libvirt's last error.
 */
#include <dlfcn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain_params.h"
#include "lock_driver.h"

/* libvirt 9.0, src/locking/lock_manager.h */
typedef struct _virLockManagerPlugin virLockManagerPlugin;
virLockManagerPlugin *virLockManagerPluginNew(const char *name, const char *driverName,
                                              const char *configDir, unsigned int flags);
void virLockManagerPluginUnref(virLockManagerPlugin *plugin);
const char *virLockManagerPluginGetName(virLockManagerPlugin *plugin);
bool virLockManagerPluginUsesState(virLockManagerPlugin *plugin);
virLockManager *virLockManagerNew(virLockDriver *driver, unsigned int type, size_t nparams,
                                  virLockManagerParam *params, unsigned int flags);
int virLockManagerAddResource(virLockManager *manager, unsigned int type, const char *name,
                              size_t nparams, virLockManagerParam *params, unsigned int flags);
int virLockManagerAcquire(virLockManager *manager, const char *state, unsigned int flags,
                          virDomainLockFailureAction action, int *fd);
int virLockManagerRelease(virLockManager *manager, char **state, unsigned int flags);
int virLockManagerInquire(virLockManager *manager, char **state, unsigned int flags);
int virLockManagerFree(virLockManager *manager);

/* libvirt's public API (libvirt.h / virterror.h). */
int virInitialize(void);
const char *virGetLastErrorMessage(void);
int virGetLastErrorCode(void);
int virGetLastErrorDomain(void);
void virResetLastError(void);

/* virLockManagerPluginGetDriver() is not exported by libvirt 9.0, so the
 * driver is read from the plugin object: lock_manager.c's private struct
 * starts { char *name; virLockDriver *driver; void *handle; int refs; }.
 * The test checks the pointer against the table found by dlsym, so a
 * wrong layout fails loudly instead of passing by accident. */
struct libvirt_plugin_prefix {
    char *name;
    virLockDriver *driver;
};

static void print_error(const char *step, int rc)
{
    printf("%s %d error code=%d domain=%d message=%s\n", step, rc, virGetLastErrorCode(),
           virGetLastErrorDomain(), virGetLastErrorMessage());
    virResetLastError();
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s NAME CONFIGDIR DISK\n", argv[0]);
        return 2;
    }
    const char *name = argv[1], *configDir = argv[2], *disk = argv[3];

    if (virInitialize() < 0) {
        printf("virInitialize failed\n");
        return 1;
    }

    virLockManagerPlugin *plugin = virLockManagerPluginNew(name, "qemu", configDir, 0);
    if (!plugin) {
        print_error("pluginNew", -1);
        return 1;
    }
    printf("plugin %s usesState %d\n", virLockManagerPluginGetName(plugin),
           (int)virLockManagerPluginUsesState(plugin));

    virLockDriver *driver = ((struct libvirt_plugin_prefix *)plugin)->driver;
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s.so", getenv("LIBVIRT_LOCK_MANAGER_PLUGIN_DIR"), name);
    void *ours = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    printf("file %s\n", ours ? "loaded" : "not-loaded");
    printf("table %s\n", ours && dlsym(ours, "virLockDriverImpl") == (void *)driver ? "ours" : "other");
    printf("version %u\n", driver->version);

    static const unsigned char uuid[VIR_UUID_BUFLEN] = {
        0x5a, 0x1d, 0x3c, 0x44, 0x21, 0x9e, 0x4f, 0x10, 0x8b, 0x77, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
    };
    virLockManagerParam params[5];
    domain_params(params, uuid, "vm-libvirt", 1, NULL);

    virLockManager *man = virLockManagerNew(driver, VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN, 5, params,
                                            VIR_LOCK_MANAGER_NEW_STARTED);
    if (!man) {
        print_error("new", -1);
        return 1;
    }
    printf("new 0\n");

    int rc = virLockManagerAddResource(man, VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK, disk, 0, NULL, 0);
    printf("add disk %d\n", rc);

    int fd = -2;
    rc = virLockManagerAcquire(man, NULL, 0, VIR_DOMAIN_LOCK_FAILURE_DEFAULT, &fd);
    printf("acquire %d fd %d\n", rc, fd);

    char *state = (char *)"untouched";
    rc = virLockManagerInquire(man, &state, 0);
    printf("inquire %d state %s\n", rc, state ? state : "NULL");
    /* The caller owns the state string, as libvirt's callers (VIR_FREE). */
    free(rc == 0 ? state : NULL);
    state = (char *)"untouched";
    rc = virLockManagerRelease(man, &state, 0);
    printf("release %d state %s\n", rc, state ? state : "NULL");
    free(rc == 0 ? state : NULL);

    /* Errors raised inside the plugin must become libvirt's last error. */
    virResetLastError();
    rc = virLockManagerAcquire(man, NULL, 0x80, VIR_DOMAIN_LOCK_FAILURE_DEFAULT, &fd);
    print_error("acquire-badflags", rc);

    virLockManagerParam lease[1];
    memset(lease, 0, sizeof(lease));
    lease[0].type = VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
    lease[0].key = "lockspace";
    lease[0].value.str = (char *)"ls1";
    rc = virLockManagerAddResource(man, VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE, "k1", 1, lease, 0);
    print_error("add-lease-nopath", rc);

    printf("free %d\n", virLockManagerFree(man));
    virLockManagerPluginUnref(plugin);
    printf("unref done\n");
    return 0;
}
