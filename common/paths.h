/*
 * paths.h: small path helpers shared by the server's modules (WAL, node start-up, auto-TLS
 * fixtures): joining a directory and a name, and `mkdir -p`.
 */
#ifndef CETCD_PATHS_H
#define CETCD_PATHS_H

/* "dir/name", malloc'd (the caller frees); NULL when out of memory. */
char *path_join(const char *dir, const char *name);
/* Creates dir and its missing parents (mode 0700); existing ones are fine. Syncs nothing.
 * 0 or CE_* (CE_NOMEM, or the first mkdir's errno). */
int path_mkdirs(const char *dir);

#endif
