#define _GNU_SOURCE
#include <dlfcn.h>

#include "lock_driver.h"

void lockmgr_pin_plugin(const void *address_in_plugin)
{
    Dl_info info;
    if (!dladdr(address_in_plugin, &info) || !info.dli_fname)
        return;
    /* A second reference with RTLD_NODELETE makes every later dlclose()
     * of this object a no-op; the handle itself is deliberately kept. */
    (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

const char *lockmgr_loaded_file(const void *address)
{
    Dl_info info;
    if (!dladdr(address, &info))
        return NULL;
    return info.dli_fname;
}
