/*
 * failpoint.h: crash injection for the operator's end-to-end tests.
 *
 * The reconciler calls failpoint_hit("after-member-add") (and the other names of the design:
 * after-sts-scale, after-member-remove, before-promote) between the steps of a membership
 * change. A failpoint is armed when the environment variable CETCD_OPERATOR_FAILPOINT, a
 * comma-separated list of names (spaces around names ignored), contains the name exactly.
 * An armed failpoint fires: the process logs {"msg":"failpoint: exiting","failpoint":name}
 * and ends with _exit(42) (no atexit handlers, no cleanup: like a crash).
 *
 * Once only: when CETCD_OPERATOR_FAILPOINT_FILE names a path, a failpoint fires only if that
 * file does not exist, and creates it (contents: the failpoint's name) before exiting, so the
 * restarted operator passes the same point. If the file cannot be created the failpoint does
 * not fire (logged), rather than crash-loop forever.
 */
#ifndef CETCD_FAILPOINT_H
#define CETCD_FAILPOINT_H

#include <stdbool.h>

/* True if name is in CETCD_OPERATOR_FAILPOINT (regardless of the once-only file). */
bool failpoint_armed(const char *name);
/* Returns normally unless the failpoint fires; then it does not return (exit status 42). */
void failpoint_hit(const char *name);

#endif
