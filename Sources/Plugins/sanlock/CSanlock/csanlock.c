#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "csanlock.h"

/* Copies src into a fixed field, refusing to truncate. */
static int copy_field(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

struct sanlk_resource *csanlock_resource_new(const char *lockspace, const char *name,
                                             const char *path, uint64_t offset,
                                             uint32_t flags, uint64_t lver)
{
    struct sanlk_resource *res = calloc(1, sizeof(*res) + sizeof(struct sanlk_disk));
    if (!res)
        return NULL;
    if (copy_field(res->lockspace_name, SANLK_NAME_LEN, lockspace) < 0 ||
        copy_field(res->name, SANLK_NAME_LEN, name) < 0 ||
        copy_field(res->disks[0].path, SANLK_PATH_LEN, path) < 0) {
        free(res);
        return NULL;
    }
    res->disks[0].offset = offset;
    res->num_disks = 1;
    res->flags = flags;
    res->lver = lver;
    return res;
}

void csanlock_resources_free(struct sanlk_resource **resources, int count)
{
    if (!resources)
        return;
    for (int i = 0; i < count; i++)
        free(resources[i]);
}

int csanlock_lockspace_init(struct sanlk_lockspace *ls, const char *name, uint64_t host_id,
                            const char *path, uint64_t offset)
{
    memset(ls, 0, sizeof(*ls));
    if (copy_field(ls->name, SANLK_NAME_LEN, name) < 0)
        return -1;
    ls->host_id = host_id;
    return csanlock_disk_init(&ls->host_id_disk, path, offset);
}

int csanlock_disk_init(struct sanlk_disk *disk, const char *path, uint64_t offset)
{
    memset(disk, 0, sizeof(*disk));
    if (copy_field(disk->path, SANLK_PATH_LEN, path) < 0)
        return -1;
    disk->offset = offset;
    return 0;
}

void csanlock_options_set_owner(struct sanlk_options *opt, const char *owner)
{
    memset(opt->owner_name, 0, SANLK_NAME_LEN);
    strncpy(opt->owner_name, owner, SANLK_NAME_LEN - 1);
}

const char *csanlock_loaded_from(void)
{
    Dl_info info;
    if (!dladdr((const void *)&csanlock_loaded_from, &info))
        return NULL;
    return info.dli_fname;
}
