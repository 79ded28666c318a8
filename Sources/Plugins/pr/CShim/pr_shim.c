#include "pr_shim.h"

#include <errno.h>
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
