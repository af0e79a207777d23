/*
 * exec.c: the exec-command of `cetcdctl watch ... -- cmd args`, run once per event as etcdctl
 * 3.4 runs it (os/exec): the command's name is looked up in $PATH unless it holds a '/', the
 * child shares stdout and stderr, and its environment is ours plus
 *   ETCD_WATCH_REVISION=<the response header's revision>
 *   ETCD_WATCH_EVENT_TYPE="PUT" | "DELETE"
 *   ETCD_WATCH_KEY=<Go %q of the key>      e.g. "a\"b\n"
 *   ETCD_WATCH_VALUE=<Go %q of the value>
 * (earlier variables of the same names are replaced). Failures are reported in Go's words:
 *   command ["cmd" "arg"] error (exit status 3)            non-zero exit
 *   command ["cmd"] error (signal: killed)                   killed by a signal
 *   command ["x"] error (exec: "x": executable file not found in $PATH)
 *   command ["/x"] error (fork/exec /x: no such file or directory)
 * Invariant: stdout is flushed before the child starts, so output keeps its order.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define N_VARS 4
static const char *const var_names[N_VARS] = {"ETCD_WATCH_REVISION=", "ETCD_WATCH_EVENT_TYPE=",
                                              "ETCD_WATCH_KEY=", "ETCD_WATCH_VALUE="};

/* Go's names of the Linux signals (syscall.Signal.String()). */
static const char *const sig_names[] = {
    NULL, "hangup", "interrupt", "quit", "illegal instruction", "trace/breakpoint trap",
    "aborted", "bus error", "floating point exception", "killed", "user defined signal 1",
    "segmentation fault", "user defined signal 2", "broken pipe", "alarm clock", "terminated",
    "stack fault", "child exited", "continued", "stopped (signal)", "stopped",
    "stopped (tty input)", "stopped (tty output)", "urgent I/O condition",
    "CPU time limit exceeded", "file size limit exceeded", "virtual timer expired",
    "profiling timer expired", "window changed", "I/O possible", "power failure",
    "bad system call"};

/* prefix + Go-quoted bytes ("NAME=\"...\""), malloc'd. */
static char *quoted_var(const char *name, const char *s, size_t n)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    if (!f)
        return NULL;
    fputs(name, f);
    ctl_go_quote_f(f, s, n);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    return buf;
}

static bool is_ours(const char *entry)
{
    for (int i = 0; i < N_VARS; i++)
        if (!strncmp(entry, var_names[i], strlen(var_names[i])))
            return true;
    return false;
}

/* The child's environment: ours without the four names, then vars. Only the array is new. */
static char **build_env(char *const *vars)
{
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + N_VARS + 1, sizeof(char *));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (!is_ours(environ[i]))
            env[k++] = environ[i];
    for (int i = 0; i < N_VARS; i++)
        env[k++] = vars[i];
    return env;
}

static bool executable(const char *path)
{
    struct stat st;

    return !stat(path, &st) && !S_ISDIR(st.st_mode) && (st.st_mode & 0111);
}

/* Go's exec.LookPath: a name with '/' as it is, else the first executable in $PATH (an empty
 * element is the current directory). Returns a malloc'd path, or NULL if none. */
static char *look_path(const char *name)
{
    const char *path = getenv("PATH"), *p;

    if (strchr(name, '/'))
        return strdup(name);
    if (!path || !*path)
        return NULL;
    for (p = path; p; p = strchr(p, ':') ? strchr(p, ':') + 1 : NULL) {
        size_t dl = strcspn(p, ":");
        char *cand = NULL;
        if (asprintf(&cand, "%.*s/%s", (int)(dl ? dl : 1), dl ? p : ".", name) < 0)
            return NULL;
        if (executable(cand))
            return cand;
        free(cand);
    }
    return NULL;
}

/* `command ["a" "b"] error (<why>)` on stderr; returns EXIT_ERROR. */
static int report(char *const *argv, const char *why)
{
    fflush(stdout);
    fputs("command [", stderr);
    for (size_t i = 0; argv[i]; i++) {
        if (i)
            fputc(' ', stderr);
        ctl_go_quote_f(stderr, argv[i], strlen(argv[i]));
    }
    fprintf(stderr, "] error (%s)\n", why);
    return EXIT_ERROR;
}

/* Waits for pid; the exec error the child sent over fd, or its exit, in Go's words. */
static int wait_child(char *const *argv, const char *path, pid_t pid, int fd)
{
    int child_errno = 0, status = 0;
    char why[512], txt[256];
    ssize_t n;

    while ((n = read(fd, &child_errno, sizeof(child_errno))) < 0 && errno == EINTR)
        ;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (n == (ssize_t)sizeof(child_errno)) {
        ctl_go_errno(child_errno, txt, sizeof(txt));
        snprintf(why, sizeof(why), "fork/exec %s: %s", path, txt);
        return report(argv, why);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status)) {
        snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status));
    } else {
        int sig = WTERMSIG(status);
        const char *name = sig > 0 && sig < (int)(sizeof(sig_names) / sizeof(sig_names[0]))
                               ? sig_names[sig] : NULL;
        if (name)
            snprintf(why, sizeof(why), "signal: %s%s", name, WCOREDUMP(status) ? " (core dumped)" : "");
        else
            snprintf(why, sizeof(why), "signal: signal %d%s", sig,
                     WCOREDUMP(status) ? " (core dumped)" : "");
    }
    return report(argv, why);
}

/* Starts path with env; the child writes its exec errno to the close-on-exec pipe. */
static int spawn(char *const *argv, const char *path, char **env)
{
    int p[2], rc;
    pid_t pid;
    char txt[256], why[512];

    if (pipe2(p, O_CLOEXEC)) {
        ctl_go_errno(errno, txt, sizeof(txt));
        snprintf(why, sizeof(why), "pipe: %s", txt);
        return report(argv, why);
    }
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid == 0) {
        close(p[0]);
        execve(path, argv, env);
        int e = errno;
        if (write(p[1], &e, sizeof(e)) < 0)
            _exit(127);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        ctl_go_errno(errno, txt, sizeof(txt));
        close(p[0]);
        snprintf(why, sizeof(why), "fork/exec %s: %s", path, txt);
        return report(argv, why);
    }
    rc = wait_child(argv, path, pid, p[0]);
    close(p[0]);
    return rc;
}

int ctl_exec_event(char *const *argv, int64_t revision, const struct cetcd_event *ev)
{
    char *vars[N_VARS] = {NULL};
    char **env = NULL, *path = look_path(argv[0]), why[512];
    int rc = EXIT_ERROR;

    if (!path) {
        char *q = quoted_var("exec: ", argv[0], strlen(argv[0]));
        snprintf(why, sizeof(why), "%s: executable file not found in $PATH", q ? q : "exec");
        free(q);
        return report(argv, why);
    }
    if (asprintf(&vars[0], "%s%" PRId64, var_names[0], revision) < 0)
        vars[0] = NULL;
    vars[1] = quoted_var(var_names[1], ev->type == CETCD_EVENT_DELETE ? "DELETE" : "PUT",
                         ev->type == CETCD_EVENT_DELETE ? 6 : 3);
    vars[2] = quoted_var(var_names[2], ev->kv.key, ev->kv.key_len);
    vars[3] = quoted_var(var_names[3], ev->kv.value, ev->kv.value_len);
    if (vars[0] && vars[1] && vars[2] && vars[3])
        env = build_env(vars);
    if (env)
        rc = spawn(argv, path, env);
    else
        report(argv, "out of memory");
    free(env);
    for (int i = 0; i < N_VARS; i++)
        free(vars[i]);
    free(path);
    return rc;
}
