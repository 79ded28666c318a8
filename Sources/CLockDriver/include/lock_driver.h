/*
 * lock_driver.h - the lock driver plugin ABI, layout-identical to libvirt's
 * virLockDriver version 1.0.0 (libvirt keeps its header private, so plugins
 * and hosts outside libvirt need their own declaration).
 *
 * Every plugin exports exactly one data symbol, virLockDriverImpl, a filled
 * in virLockDriver table.  Sizes and offsets are checked at compile time
 * below and again by the test suite.
 */
#ifndef LOCKMGR_LOCK_DRIVER_H
#define LOCKMGR_LOCK_DRIVER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* major * 1,000,000 + minor * 1,000 + micro */
#define VIR_LOCK_MANAGER_VERSION_MAJOR 1
#define VIR_LOCK_MANAGER_VERSION_MINOR 0
#define VIR_LOCK_MANAGER_VERSION_MICRO 0
#define VIR_LOCK_MANAGER_VERSION 1000000

typedef struct _virLockManager virLockManager;
typedef struct _virLockDriver virLockDriver;
typedef struct _virLockManagerParam virLockManagerParam;

typedef enum {
    VIR_LOCK_MANAGER_USES_STATE = (1 << 0), /* produces/consumes state strings */
} virLockDriverFlags;

typedef enum {
    VIR_LOCK_MANAGER_OBJECT_TYPE_DOMAIN = 0,
} virLockManagerObjectType;

typedef enum {
    VIR_LOCK_MANAGER_RESOURCE_TYPE_DISK = 0,   /* name: absolute path */
    VIR_LOCK_MANAGER_RESOURCE_TYPE_LEASE = 1,  /* name: lease key; params path, offset, lockspace */
} virLockManagerResourceType;

typedef enum {
    VIR_LOCK_MANAGER_RESOURCE_READONLY = (1 << 0),
    VIR_LOCK_MANAGER_RESOURCE_SHARED = (1 << 1),
} virLockManagerResourceFlags;

typedef enum {
    VIR_LOCK_MANAGER_ACQUIRE_REGISTER_ONLY = (1 << 0),
    VIR_LOCK_MANAGER_ACQUIRE_RESTRICT = (1 << 1),
} virLockManagerAcquireFlags;

typedef enum {
    VIR_LOCK_MANAGER_NEW_STARTED = (1 << 0),
} virLockManagerNewFlags;

typedef enum {
    VIR_DOMAIN_LOCK_FAILURE_DEFAULT = 0,
    VIR_DOMAIN_LOCK_FAILURE_POWEROFF = 1,
    VIR_DOMAIN_LOCK_FAILURE_RESTART = 2,
    VIR_DOMAIN_LOCK_FAILURE_PAUSE = 3,
    VIR_DOMAIN_LOCK_FAILURE_IGNORE = 4,
} virDomainLockFailureAction;

typedef enum {
    VIR_LOCK_MANAGER_PARAM_TYPE_STRING = 0,
    VIR_LOCK_MANAGER_PARAM_TYPE_CSTRING = 1,
    VIR_LOCK_MANAGER_PARAM_TYPE_INT = 2,
    VIR_LOCK_MANAGER_PARAM_TYPE_LONG = 3,
    VIR_LOCK_MANAGER_PARAM_TYPE_UINT = 4,
    VIR_LOCK_MANAGER_PARAM_TYPE_ULONG = 5,
    VIR_LOCK_MANAGER_PARAM_TYPE_DOUBLE = 6,
    VIR_LOCK_MANAGER_PARAM_TYPE_UUID = 7,
} virLockManagerParamType;

#define VIR_UUID_BUFLEN 16

struct _virLockManagerParam {
    int type;
    const char *key;
    union {
        int iv;
        long long l;
        unsigned int ui;
        unsigned long long ul;
        double d;
        char *str;
        const char *cstr;
        unsigned char uuid[VIR_UUID_BUFLEN];
    } value;
};

typedef int (*virLockDriverInit)(unsigned int version, const char *configFile,
                                 unsigned int flags);
typedef int (*virLockDriverDeinit)(void);
typedef int (*virLockDriverNew)(virLockManager *man, unsigned int type,
                                size_t nparams, virLockManagerParam *params,
                                unsigned int flags);
typedef void (*virLockDriverFree)(virLockManager *man);
typedef int (*virLockDriverAddResource)(virLockManager *man, unsigned int type,
                                        const char *name, size_t nparams,
                                        virLockManagerParam *params,
                                        unsigned int flags);
typedef int (*virLockDriverAcquire)(virLockManager *man, const char *state,
                                    unsigned int flags,
                                    virDomainLockFailureAction action, int *fd);
typedef int (*virLockDriverRelease)(virLockManager *man, char **state,
                                    unsigned int flags);
typedef int (*virLockDriverInquire)(virLockManager *man, char **state,
                                    unsigned int flags);

struct _virLockManager {
    virLockDriver *driver;
    void *privateData;
};

struct _virLockDriver {
    unsigned int version;
    unsigned int flags;
    virLockDriverInit drvInit;
    virLockDriverDeinit drvDeinit;
    virLockDriverNew drvNew;
    virLockDriverFree drvFree;
    virLockDriverAddResource drvAddResource;
    virLockDriverAcquire drvAcquire;
    virLockDriverRelease drvRelease;
    virLockDriverInquire drvInquire;
};

/* The layout is the contract: a plugin built from this header must be
 * loadable by libvirt, and libvirt's plugins by our host. */
_Static_assert(sizeof(virLockManagerParam) == 32, "virLockManagerParam is 32 bytes");
_Static_assert(offsetof(virLockManagerParam, key) == 8, "param key at 8");
_Static_assert(offsetof(virLockManagerParam, value) == 16, "param value at 16");
_Static_assert(sizeof(virLockManager) == 16, "virLockManager is 16 bytes");
_Static_assert(sizeof(virLockDriver) == 72, "virLockDriver is 72 bytes");
_Static_assert(offsetof(virLockDriver, drvInit) == 8, "drvInit at 8");
_Static_assert(offsetof(virLockDriver, drvInquire) == 64, "drvInquire at 64");

/*
 * Plugins written with this project's Swift bridge.  The table points at
 * eight generic entry points (Sources/PluginEntry, one copy linked into each
 * plugin), which reach the plugin's own driver through the one function the
 * plugin defines: lockmgr_plugin_bridge(), returning its PluginBridge.
 */
int lockmgr_drvInit(unsigned int version, const char *configFile, unsigned int flags);
int lockmgr_drvDeinit(void);
int lockmgr_drvNew(virLockManager *man, unsigned int type, size_t nparams,
                   virLockManagerParam *params, unsigned int flags);
void lockmgr_drvFree(virLockManager *man);
int lockmgr_drvAddResource(virLockManager *man, unsigned int type, const char *name,
                           size_t nparams, virLockManagerParam *params, unsigned int flags);
int lockmgr_drvAcquire(virLockManager *man, const char *state, unsigned int flags,
                       virDomainLockFailureAction action, int *fd);
int lockmgr_drvRelease(virLockManager *man, char **state, unsigned int flags);
int lockmgr_drvInquire(virLockManager *man, char **state, unsigned int flags);

/* Defined by each plugin (a Swift @_cdecl function): its PluginBridge. */
void *lockmgr_plugin_bridge(void);

/* Keeps the plugin mapped for the life of the process: unloading a .so
 * that carries a Swift runtime leaves dangling runtime registrations. */
void lockmgr_pin_plugin(const void *address_in_plugin);

/* The file (plugin .so or executable) the code at `address` was loaded
 * from, as the loader was given it; NULL if unknown. */
const char *lockmgr_loaded_file(const void *address);

/*
 * LOCKMGR_EXPORT_DRIVER(flags) defines the plugin's exported table and pins
 * the plugin against unloading.  Use it once, in the plugin's own C file.
 */
#define LOCKMGR_EXPORT_DRIVER(driverFlags)                                    \
    __attribute__((visibility("default"))) virLockDriver virLockDriverImpl = { \
        VIR_LOCK_MANAGER_VERSION, (driverFlags),                              \
        lockmgr_drvInit, lockmgr_drvDeinit, lockmgr_drvNew,                   \
        lockmgr_drvFree, lockmgr_drvAddResource, lockmgr_drvAcquire,          \
        lockmgr_drvRelease, lockmgr_drvInquire,                               \
    };                                                                        \
    __attribute__((constructor)) static void lockmgr_pin_this_plugin(void)    \
    {                                                                         \
        lockmgr_pin_plugin(&virLockDriverImpl);                               \
    }

#ifdef __cplusplus
}
#endif
#endif
