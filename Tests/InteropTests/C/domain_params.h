/*
 * domain_params.h - the five drvNew parameters libvirt passes for a domain
 * (uuid UUID, name STRING, id UINT, pid UINT, uri CSTRING), shared by the
 * C hosts of the tests.
 */
#ifndef INTEROP_DOMAIN_PARAMS_H
#define INTEROP_DOMAIN_PARAMS_H

#include <string.h>
#include <unistd.h>

#include "lock_driver.h"

static inline void domain_params(virLockManagerParam params[5], const unsigned char uuid[VIR_UUID_BUFLEN],
                                 const char *name, unsigned int id, const char *uri)
{
    memset(params, 0, 5 * sizeof(params[0]));
    params[0].type = VIR_LOCK_MANAGER_PARAM_TYPE_UUID;
    params[0].key = "uuid";
    memcpy(params[0].value.uuid, uuid, VIR_UUID_BUFLEN);
    params[1].type = VIR_LOCK_MANAGER_PARAM_TYPE_STRING;
    params[1].key = "name";
    params[1].value.str = (char *)name;
    params[2].type = VIR_LOCK_MANAGER_PARAM_TYPE_UINT;
    params[2].key = "id";
    params[2].value.ui = id;
    params[3].type = VIR_LOCK_MANAGER_PARAM_TYPE_UINT;
    params[3].key = "pid";
    params[3].value.ui = (unsigned int)getpid();
    params[4].type = VIR_LOCK_MANAGER_PARAM_TYPE_CSTRING;
    params[4].key = "uri";
    params[4].value.cstr = uri;
}

#endif
