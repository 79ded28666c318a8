#include "dm_shim.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int lockmgr_dm_status(const char *name, char *out, size_t outlen)
{
    /* The answer (dm_target_spec + params per target) follows the header in one buffer. */
    union {
        struct dm_ioctl io;
        char bytes[16384];
    } buf;
    if (strlen(name) >= DM_NAME_LEN || outlen == 0)
        return -EINVAL;
    memset(&buf, 0, sizeof(buf));
    buf.io.version[0] = DM_VERSION_MAJOR;
    buf.io.version[1] = 0;
    buf.io.version[2] = 0;
    buf.io.data_size = sizeof(buf);
    buf.io.data_start = sizeof(struct dm_ioctl);
    strncpy(buf.io.name, name, DM_NAME_LEN - 1);
    int fd = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = ioctl(fd, DM_TABLE_STATUS, &buf.io);
    int saved = errno;
    close(fd);
    if (rc < 0)
        return -saved;
    if (buf.io.flags & DM_BUFFER_FULL_FLAG)
        return -ENOSPC;
    size_t used = 0;
    out[0] = '\0';
    uint32_t at = buf.io.data_start;
    for (uint32_t i = 0; i < buf.io.target_count; i++) {
        if (at + sizeof(struct dm_target_spec) > sizeof(buf))
            return -EPROTO;
        struct dm_target_spec *spec = (struct dm_target_spec *)(buf.bytes + at);
        const char *params = (const char *)(spec + 1);
        size_t room = sizeof(buf) - at - sizeof(*spec);
        int n = snprintf(out + used, outlen - used, "%.*s %.*s\n", (int)sizeof(spec->target_type),
                         spec->target_type, (int)strnlen(params, room), params);
        if (n < 0 || (size_t)n >= outlen - used)
            return -ENOSPC;
        used += (size_t)n;
        /* For DM_TABLE_STATUS, next counts from the first target spec. */
        at = buf.io.data_start + spec->next;
    }
    return 0;
}
