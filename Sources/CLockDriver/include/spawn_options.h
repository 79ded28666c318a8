/*
 * spawn_options.h - a posix_spawn option glibc keeps behind _GNU_SOURCE,
 * which Swift cannot see: closing every fd from `from` up in the child.
 */
#ifndef LOCKMGR_SPAWN_OPTIONS_H
#define LOCKMGR_SPAWN_OPTIONS_H

#include <spawn.h>

int lockmgr_spawn_closefrom(posix_spawn_file_actions_t *actions, int from);

#endif
