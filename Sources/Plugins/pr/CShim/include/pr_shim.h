#ifndef LOCKMGR_PR_SHIM_H
#define LOCKMGR_PR_SHIM_H

/* The pr plugin's system calls that Swift cannot express cleanly: the
 * SG_IO ioctls (sg_io_hdr_t comes from the kernel's <scsi/sg.h>) and
 * sendmsg() with an SCM_RIGHTS control message (CMSG_* are macros). */

#include <scsi/sg.h>
#include <stddef.h>
#include <sys/types.h>

/* ioctl(fd, SG_IO, hdr). Returns 0, or -errno. */
int lockmgr_sg_io(int fd, sg_io_hdr_t *hdr);

/* ioctl(fd, SG_GET_VERSION_NUM, version). Returns 0, or -errno. */
int lockmgr_sg_get_version(int fd, int *version);

/* Sends len bytes with passed_fd attached as SCM_RIGHTS, without blocking
 * and without SIGPIPE. Returns the bytes sent (the fd travels with the
 * first byte), or -errno. */
ssize_t lockmgr_send_with_fd(int sock, const void *buf, size_t len, int passed_fd);

#endif
