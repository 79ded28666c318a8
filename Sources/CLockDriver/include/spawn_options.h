/*
 * spawn_options.h - posix_spawn options glibc keeps behind _GNU_SOURCE,
 * which Swift cannot see: POSIX_SPAWN_SETSID, and closing every fd from
 * `from` up in the child.
 */
#ifndef LOCKMGR_SPAWN_OPTIONS_H
#define LOCKMGR_SPAWN_OPTIONS_H

#include <spawn.h>

short lockmgr_spawn_setsid_flag(void);
int lockmgr_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

#endif
