#ifndef LOCKMGR_DM_SHIM_H
#define LOCKMGR_DM_SHIM_H

/* device-mapper's status ioctl (struct dm_ioctl and its variable-length
 * answer come from <linux/dm-ioctl.h>): what `dmsetup status NAME` prints,
 * which the keeper reads to see which paths of a multipath map are active. */

#include <stddef.h>

/* DM_TABLE_STATUS for the map called name: writes one line per target,
 * "TARGET_TYPE STATUS_PARAMS\n", NUL-terminated, into out. Returns 0, or
 * -errno (-ENOSPC: out too small). */
int lockmgr_dm_status(const char *name, char *out, size_t outlen);

#endif
