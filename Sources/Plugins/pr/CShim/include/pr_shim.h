#ifndef LOCKMGR_PR_SHIM_H
#define LOCKMGR_PR_SHIM_H

/* The pr plugin's system calls that Swift cannot express cleanly: the
 * SG_IO ioctls (sg_io_hdr_t comes from the kernel's <scsi/sg.h>), the
 * block layer's persistent reservation ioctls (<linux/pr.h>: their numbers
 * are _IOW macros) and sendmsg() with an SCM_RIGHTS control message
 * (CMSG_* are macros). */

#include <scsi/sg.h>
#include <stddef.h>
#include <sys/types.h>

/* ioctl(fd, SG_IO, hdr). Returns 0, or -errno. */
int lockmgr_sg_io(int fd, sg_io_hdr_t *hdr);

/* ioctl(fd, SG_GET_VERSION_NUM, version). Returns 0, or -errno. */
int lockmgr_sg_get_version(int fd, int *version);

/* The block layer's PR ioctls (sd, nvme, dm-multipath implement them).
 * type is a <linux/pr.h> enum pr_type (not a SCSI type code); flags are
 * PR_FL_*. Each returns 0 on success, a positive status the device gave
 * (sd: the SCSI result, e.g. 0x18 RESERVATION CONFLICT; since Linux 6.5 a
 * PR_STS_* code), or -errno. */
int lockmgr_pr_register(int fd, unsigned long long old_key, unsigned long long new_key, unsigned flags);
int lockmgr_pr_reserve(int fd, unsigned long long key, unsigned type, unsigned flags);
int lockmgr_pr_release(int fd, unsigned long long key, unsigned type, unsigned flags);
/* abort != 0: IOC_PR_PREEMPT_ABORT. */
int lockmgr_pr_preempt(int fd, unsigned long long old_key, unsigned long long new_key, unsigned type, int abort);
int lockmgr_pr_clear(int fd, unsigned long long key);

/* Linux 6.19's read ioctls (IOC_PR_READ_KEYS, IOC_PR_READ_RESERVATION),
 * defined here when the build machine's headers predate them: the numbers
 * are the kernel's ABI, and an older running kernel answers -ENOTTY.
 * read_keys fills up to capacity keys and sets *num_keys to how many the
 * device has (more than capacity: ask again with more room). type is a
 * <linux/pr.h> enum pr_type, 0 for no reservation. Same returns as above. */
int lockmgr_pr_read_keys(int fd, unsigned *generation, unsigned long long *keys, unsigned capacity, unsigned *num_keys);
int lockmgr_pr_read_reservation(int fd, unsigned long long *key, unsigned *generation, unsigned *type);

/* NVME_IOCTL_ID: the namespace id of an NVMe namespace block device
 * (> 0), or -errno (anything else: -ENOTTY). */
int lockmgr_nvme_namespace_id(int fd);

/* NVME_IOCTL_IO_CMD: one NVMe I/O command through the passthrough ioctl,
 * data_len bytes at data in the direction the opcode implies. Returns the
 * NVMe status (0: success; status code type << 8 | status code, with
 * the DNR/MORE bits), or -errno. */
int lockmgr_nvme_io_command(int fd, unsigned char opcode, unsigned nsid, unsigned cdw10, unsigned cdw11,
                            void *data, unsigned data_len, unsigned timeout_ms);

/* Sends len bytes with passed_fd attached as SCM_RIGHTS, without blocking
 * and without SIGPIPE. Returns the bytes sent (the fd travels with the
 * first byte), or -errno. */
ssize_t lockmgr_send_with_fd(int sock, const void *buf, size_t len, int passed_fd);

#endif
