#define _GNU_SOURCE
#include <spawn.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "spawn_options.h"

int lockmgr_spawn_closefrom(posix_spawn_file_actions_t *actions, int from)
{
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

int lockmgr_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}
