/*
 * pwjob.h: password work off the event loop. Hashing a password (auth_hash_password) or
 * checking one against a stored hash (auth_password_matches) costs tens of milliseconds by
 * design; a job runs it on a thread of its own and reports on the loop, so no client waits
 * behind another's Authenticate or UserAdd.
 *
 * Callback rule (libuv's): when a start function returns an error, done is never called; else
 * done is called exactly once, on the loop, unless auth_pwjob_cancel comes first. After done
 * returns the job is freed (the callback must not keep the pointer).
 */
#ifndef CETCD_AUTH_PWJOB_H
#define CETCD_AUTH_PWJOB_H

#include "evloop.h"

typedef struct auth_pwjob auth_pwjob;

/* rc: 0 or CE_*; for a hash job hash is the new hash string (the callback owns it, else
 * NULL); for a check job rc is 0 when the password matches, CE_AUTH_FAILED otherwise. */
typedef void (*auth_pwjob_fn)(void *arg, int rc, char *hash);

int auth_pwjob_hash(evloop *l, const char *password, auth_pwjob_fn done, void *arg,
                    auth_pwjob **out);
int auth_pwjob_check(evloop *l, const char *hash, const char *password, auth_pwjob_fn done,
                     void *arg, auth_pwjob **out);
/* done will not be called: waits for the thread (at most one hash) and frees the job. */
void auth_pwjob_cancel(auth_pwjob *j);

#endif
