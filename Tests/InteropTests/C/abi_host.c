/*
 * abi_host.c - a minimal C host for lock driver plugins, written the way
 * libvirt's loader works: dlopen(RTLD_NOW|RTLD_LOCAL), dlsym the table,
 * call the callbacks through it, dlclose.  It shares nothing with the
 * Swift host library, so it checks the ABI from the C side.  It exports
 * no error sink and does not load libvirt, so a plugin's error messages
 * must arrive on stderr.
 *
 *   abi_host PLUGIN.so cycle      every callback once, results on stdout
 *   abi_host PLUGIN.so badflags   drvAcquire with an unknown flag
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "domain_params.h"
#include "lock_driver.h"

static const unsigned char uuid[VIR_UUID_BUFLEN] = {
    0xc7, 0xa5, 0xfd, 0xbd, 0xcd, 0xaf, 0x94, 0x55,
    0x92, 0x6a, 0xd6, 0x5c, 0x16, 0xdb, 0x18, 0x09,
};

static void lease_params(virLockManagerParam params[3])
{
    memset(params, 0, 3 * sizeof(params[0]));
    params[0].type = VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
    params[0].key = "path";
    params[0].value.str = (char *)"/var/lib/leases/k1";
    params[1].type = VIR_LOCK_MANAGER_PARAM_TYPE_ULONG;
    params[1].key = "offset";
    params[1].value.ul = 1048576;
    params[2].type = VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
    params[2].key = "lockspace";
    params[2].value.str = (char *)"ls1";
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s PLUGIN.so cycle|badflags\n", argv[0]);
        return 2;
    }
    int badflags = strcmp(argv[2], "badflags") == 0;

    void *handle = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        printf("dlopen failed: %s\n", dlerror());
        return 1;
    }
    virLockDriver *drv = dlsym(handle, "virLockDriverImpl");
    if (!drv) {
        printf("dlsym failed: %s\n", dlerror());
        return 1;
    }
    printf("version %u\n", drv->version);
    printf("flags %u\n", drv->flags);
    printf("init %d\n", drv->drvInit(VIR_LOCK_MANAGER_VERSION, "/nonexistent/qemu-c.conf", 0));

    virLockManager man = { drv, NULL };
    virLockManagerParam params[5];
    domain_params(params, uuid, "vm-c", 7, "qemu:///system");
    printf("new %d\n", drv->drvNew(&man, VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN, 5, params,
                                   VIR_LOCK_MANAGER_NEW_STARTED));
    printf("privateData %s\n", man.privateData ? "set" : "null");

    printf("add disk %d\n", drv->drvAddResource(&man, VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK,
                                                "/var/lib/images/c.img", 0, NULL, 0));
    virLockManagerParam lease[3];
    lease_params(lease);
    printf("add lease %d\n", drv->drvAddResource(&man, VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE,
                                                 "k1", 3, lease, VIR_LOCK_MANAGER_RESOURCE_SHARED));

    int fd = -2;
    unsigned int acquireFlags = badflags ? 0x80 : VIR_LOCK_MANAGER_ACQUIRE_REGISTER_ONLY;
    int rc = drv->drvAcquire(&man, NULL, acquireFlags, VIR_DOMAIN_LOCK_FAILURE_POWEROFF, &fd);
    printf("acquire %d fd %d\n", rc, fd);
    fflush(stdout);

    if (!badflags) {
        char *state = (char *)"untouched";
        rc = drv->drvInquire(&man, &state, 0);
        printf("inquire %d state %s\n", rc, state ? state : "NULL");
        free(rc == 0 ? state : NULL);
        state = (char *)"untouched";
        rc = drv->drvRelease(&man, &state, 0);
        printf("release %d state %s\n", rc, state ? state : "NULL");
        free(rc == 0 ? state : NULL);
    }

    drv->drvFree(&man);
    printf("free privateData %s\n", man.privateData ? "set" : "null");
    printf("deinit %d\n", drv->drvDeinit());
    printf("dlclose %d\n", dlclose(handle));
    return 0;
}
