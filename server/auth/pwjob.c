/*
 * pwjob.c: password hashing and checking on a thread (pwjob.h).
 *
 * A job owns copies of its inputs, an eventfd the loop watches and a joinable thread. The
 * thread computes, stores the result in the job and writes the eventfd; the loop's watcher
 * then joins the thread, calls done and frees the job. Invariant: the job is freed exactly
 * once, by the loop, after the thread was joined (by the watcher or by cancel).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "auth.h"
#include "err.h"
#include "pwjob.h"

struct auth_pwjob {
    evloop *loop;
    ev_io io;
    int efd;
    pthread_t thread;
    bool is_check;
    char *password, *hash;      /* inputs (hash: the stored one for a check) */
    char *out;                  /* a hash job's result */
    int rc;
    auth_pwjob_fn done;
    void *arg;
};

static void job_free(auth_pwjob *j)
{
    evloop_io_stop(j->loop, &j->io);
    close(j->efd);
    if (j->password) {
        memset(j->password, 0, strlen(j->password));
        free(j->password);
    }
    free(j->hash);
    free(j->out);
    free(j);
}

static void *work(void *arg)
{
    auth_pwjob *j = arg;
    uint64_t one = 1;

    if (j->is_check)
        j->rc = auth_password_matches(j->hash, j->password) ? 0 : CE_AUTH_FAILED;
    else
        j->rc = auth_hash_password(j->password, &j->out);
    if (write(j->efd, &one, sizeof(one)) != sizeof(one))
        abort();                /* an eventfd write cannot fail short of a bug */
    return NULL;
}

static void on_done(evloop *l, ev_io *w, int events)
{
    auth_pwjob *j = w->data;
    char *out = j->out;

    (void)l;
    (void)events;
    pthread_join(j->thread, NULL);
    j->out = NULL;
    j->done(j->arg, j->rc, out);
    job_free(j);
}

static int start(evloop *l, bool is_check, const char *hash, const char *password,
                 auth_pwjob_fn done, void *arg, auth_pwjob **out)
{
    auth_pwjob *j = calloc(1, sizeof(*j));
    int rc = CE_NOMEM;

    if (!j)
        return CE_NOMEM;
    j->loop = l;
    j->is_check = is_check;
    j->done = done;
    j->arg = arg;
    j->password = strdup(password ? password : "");
    j->hash = hash ? strdup(hash) : NULL;
    j->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!j->password || (hash && !j->hash) || j->efd < 0)
        goto out_free_job;
    if ((rc = evloop_io_start(l, &j->io, j->efd, EV_READ, on_done, j)) != 0)
        goto out_free_job;
    if (pthread_create(&j->thread, NULL, work, j)) {
        rc = CE_NOMEM;
        goto out_free_job;
    }
    *out = j;
    return 0;
out_free_job:
    job_free(j);
    return rc;
}

int auth_pwjob_hash(evloop *l, const char *password, auth_pwjob_fn done, void *arg,
                    auth_pwjob **out)
{
    return start(l, false, NULL, password, done, arg, out);
}

int auth_pwjob_check(evloop *l, const char *hash, const char *password, auth_pwjob_fn done,
                     void *arg, auth_pwjob **out)
{
    return start(l, true, hash, password, done, arg, out);
}

void auth_pwjob_cancel(auth_pwjob *j)
{
    if (!j)
        return;
    pthread_join(j->thread, NULL);
    job_free(j);
}
