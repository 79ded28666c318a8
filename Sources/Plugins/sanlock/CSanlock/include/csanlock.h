/*
 * csanlock.h - libsanlock_client for Swift: the client API headers, and
 * helpers for struct sanlk_resource, whose trailing disks[] array Swift
 * cannot see.
 */
#ifndef LOCKMGR_CSANLOCK_H
#define LOCKMGR_CSANLOCK_H

#include <stddef.h>
#include <stdint.h>   /* sanlock.h uses the fixed-size types without including it */
#include <sanlock.h>
#include <sanlock_resource.h>
#include <sanlock_admin.h>
#include <sanlock_rv.h>

/* A zeroed resource with one disk, from calloc (release with free()).
 * Returns NULL when a string does not fit its field (names: 47 bytes,
 * path: 1023) or on out-of-memory; callers validate lengths first. */
struct sanlk_resource *csanlock_resource_new(const char *lockspace, const char *name,
                                             const char *path, uint64_t offset,
                                             uint32_t flags, uint64_t lver);

/* Frees an array of resources from csanlock_resource_new(). */
void csanlock_resources_free(struct sanlk_resource **resources, int count);

/* Fills a lockspace description; -1 when name or path does not fit. */
int csanlock_lockspace_init(struct sanlk_lockspace *ls, const char *name, uint64_t host_id,
                            const char *path, uint64_t offset);

/* Fills a disk location; -1 when the path does not fit. */
int csanlock_disk_init(struct sanlk_disk *disk, const char *path, uint64_t offset);

/* Sets the owner name sanlock records with a lease (truncated to fit:
 * sanlock only displays it). */
void csanlock_options_set_owner(struct sanlk_options *opt, const char *owner);

/* The file this code was loaded from (the plugin .so), or NULL. */
const char *csanlock_loaded_from(void);

#endif
