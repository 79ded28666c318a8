#include "pr_shim.h"

#include <errno.h>
#include <linux/nvme_ioctl.h>
#include <linux/pr.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

int lockmgr_sg_io(int fd, sg_io_hdr_t *hdr)
{
    return ioctl(fd, SG_IO, hdr) < 0 ? -errno : 0;
}

int lockmgr_sg_get_version(int fd, int *version)
{
    return ioctl(fd, SG_GET_VERSION_NUM, version) < 0 ? -errno : 0;
}

static int pr_ioctl(int fd, unsigned long request, void *arg)
{
    int rc = ioctl(fd, request, arg);
    return rc < 0 ? -errno : rc;
}

int lockmgr_pr_register(int fd, unsigned long long old_key, unsigned long long new_key, unsigned flags)
{
    struct pr_registration r = { .old_key = old_key, .new_key = new_key, .flags = flags };
    return pr_ioctl(fd, IOC_PR_REGISTER, &r);
}

int lockmgr_pr_reserve(int fd, unsigned long long key, unsigned type, unsigned flags)
{
    struct pr_reservation r = { .key = key, .type = type, .flags = flags };
    return pr_ioctl(fd, IOC_PR_RESERVE, &r);
}

int lockmgr_pr_release(int fd, unsigned long long key, unsigned type, unsigned flags)
{
    struct pr_reservation r = { .key = key, .type = type, .flags = flags };
    return pr_ioctl(fd, IOC_PR_RELEASE, &r);
}

int lockmgr_pr_preempt(int fd, unsigned long long old_key, unsigned long long new_key, unsigned type, int abort)
{
    struct pr_preempt p = { .old_key = old_key, .new_key = new_key, .type = type };
    return pr_ioctl(fd, abort ? IOC_PR_PREEMPT_ABORT : IOC_PR_PREEMPT, &p);
}

int lockmgr_pr_clear(int fd, unsigned long long key)
{
    struct pr_clear c = { .key = key };
    return pr_ioctl(fd, IOC_PR_CLEAR, &c);
}

#ifndef IOC_PR_READ_KEYS
struct pr_read_keys {
    __u32 generation;
    __u32 num_keys;
    __u64 keys_ptr;
};
#define IOC_PR_READ_KEYS _IOWR('p', 206, struct pr_read_keys)
#endif
#ifndef IOC_PR_READ_RESERVATION
struct pr_read_reservation {
    __u64 key;
    __u32 generation;
    __u32 type;
};
#define IOC_PR_READ_RESERVATION _IOR('p', 207, struct pr_read_reservation)
#endif

int lockmgr_pr_read_keys(int fd, unsigned *generation, unsigned long long *keys, unsigned capacity, unsigned *num_keys)
{
    struct pr_read_keys r = { .num_keys = capacity, .keys_ptr = (__u64)(uintptr_t)keys };
    int rc = pr_ioctl(fd, IOC_PR_READ_KEYS, &r);
    if (rc == 0) {
        *generation = r.generation;
        *num_keys = r.num_keys;
    }
    return rc;
}

int lockmgr_pr_read_reservation(int fd, unsigned long long *key, unsigned *generation, unsigned *type)
{
    struct pr_read_reservation r = { 0 };
    int rc = pr_ioctl(fd, IOC_PR_READ_RESERVATION, &r);
    if (rc == 0) {
        *key = r.key;
        *generation = r.generation;
        *type = r.type;
    }
    return rc;
}

int lockmgr_nvme_namespace_id(int fd)
{
    int rc = ioctl(fd, NVME_IOCTL_ID);
    return rc < 0 ? -errno : rc;
}

int lockmgr_nvme_io_command(int fd, unsigned char opcode, unsigned nsid, unsigned cdw10, unsigned cdw11,
                            void *data, unsigned data_len, unsigned timeout_ms)
{
    struct nvme_passthru_cmd cmd = {
        .opcode = opcode,
        .nsid = nsid,
        .addr = (__u64)(uintptr_t)data,
        .data_len = data_len,
        .cdw10 = cdw10,
        .cdw11 = cdw11,
        .timeout_ms = timeout_ms,
    };
    return pr_ioctl(fd, NVME_IOCTL_IO_CMD, &cmd);
}

ssize_t lockmgr_send_with_fd(int sock, const void *buf, size_t len, int passed_fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg = {
        .msg_iov = &iov,
        .msg_iovlen = 1,
        .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    memset(control.buf, 0, sizeof(control.buf));
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cmsg), &passed_fd, sizeof(int));

    ssize_t sent = sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    return sent < 0 ? -errno : sent;
}
