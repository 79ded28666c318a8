/*
 * spawn_options.h - what Swift cannot reach on its own around a child
 * process: a posix_spawn option glibc keeps behind _GNU_SOURCE (closing
 * every fd from `from` up in the child), and pidfd_open(2), which glibc
 * 2.36 has no wrapper for.
 */
#ifndef LOCKMGR_SPAWN_OPTIONS_H
#define LOCKMGR_SPAWN_OPTIONS_H

#include <spawn.h>

#include <sys/types.h>

int lockmgr_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

/* A file descriptor that polls readable once `pid` has exited, or -1 with errno. */
int lockmgr_pidfd_open(pid_t pid);

#endif
