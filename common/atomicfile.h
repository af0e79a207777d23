/*
 * atomicfile.h: replacing a small file so that a crash leaves either the old or the new
 * contents, never a mix: write "<name>.tmp", fsync it, rename it over <name>, fsync the
 * directory (without which the rename itself may not survive a power loss).
 */
#ifndef CETCD_ATOMICFILE_H
#define CETCD_ATOMICFILE_H

#include <stdbool.h>
#include <stddef.h>

/* Writes buf to name in the directory dfd as above; sync false skips both fsyncs
 * (--unsafe-no-fsync). 0 or CE_*; on failure the .tmp file is removed. */
int atomic_write(int dfd, const char *name, const void *buf, size_t size, bool sync);
/* The same for a path, opening its directory. */
int atomic_write_path(const char *path, const void *buf, size_t size, bool sync);
/* fsyncs a directory, making renames and creations in it durable. 0 or CE_*. */
int atomic_sync_dir(const char *dir);

#endif
