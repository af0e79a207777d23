/*
 * ctl.h: shared pieces of cetcdctl, the etcdctl-3.4-compatible command line client.
 *
 * Invariants: commands print results only through out.c (so the simple/json/table formats stay
 * byte-identical with etcdctl 3.4), report failures through ctl_fail() (which prints
 * "Error: <message>" on stderr and returns the exit code), and never call exit() themselves.
 * Exit codes are etcdctl's: 0 ok, 1 error, 2 bad connection, 3 invalid input, 4 bad feature,
 * 5 interrupted (a watch canceled by the server), 128 bad arguments.
 */
#ifndef CETCD_CTL_H
#define CETCD_CTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "client/cetcd_client.h"

enum {
    EXIT_OK = 0,
    EXIT_ERROR = 1,
    EXIT_BAD_CONN = 2,
    EXIT_INVALID_INPUT = 3,
    EXIT_BAD_FEATURE = 4,
    EXIT_INTERRUPTED = 5,
    EXIT_BAD_ARGS = 128,
};

enum out_format { OUT_SIMPLE, OUT_JSON, OUT_TABLE, OUT_FIELDS };

#define CTL_MAX_FLAGS 48
#define CTL_MAX_ARGS 64
#define CTL_MAX_EPS 32

struct ctl_flag {
    const char *name; /* long name, without dashes */
    const char *value;
};

struct ctl {
    /* parsed command line */
    struct ctl_flag flags[CTL_MAX_FLAGS];
    int n_flags;
    const char *args[CTL_MAX_ARGS]; /* positionals after the command words */
    int n_args;
    int dashdash; /* args[dashdash] is the first positional after "--"; -1 if no "--" */
    /* global settings */
    const char *endpoints[CTL_MAX_EPS];
    size_t n_endpoints;
    char *endpoints_buf;
    enum out_format fmt;
    bool hex;
    long dial_ms, cmd_ms;
    const char *cacert, *cert, *key, *user, *password;
    bool insecure_skip_verify;
};

/* flags */
const char *ctl_flag(const struct ctl *c, const char *name); /* NULL if not given */
bool ctl_bool(const struct ctl *c, const char *name);
int ctl_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Error exit for a failed client call: "Error: <server message>" (prefix optional). */
int ctl_fail_call(cetcd_client *cl, int rc, const char *prefix);
/* A failed call's error as etcdctl prints it: "context deadline exceeded" when no server
 * answered, etcdserver's own message as is (clientv3 translates those), any other server
 * message as grpc-go's "rpc error: code = <Name> desc = <message>". In buf, or static. */
const char *ctl_err_text(cetcd_client *cl, int rc, char *buf, size_t n);

/* A client over the given endpoints (all of ctl's when eps NULL), authenticated if --user. */
int ctl_client(struct ctl *c, const char *const *eps, size_t n, cetcd_client **out);

/* commands */
int ctl_cmd_put(struct ctl *c);
int ctl_cmd_get(struct ctl *c);
int ctl_cmd_del(struct ctl *c);
int ctl_cmd_txn(struct ctl *c);
int ctl_cmd_compaction(struct ctl *c);
int ctl_cmd_lease(struct ctl *c, const char *sub);
int ctl_cmd_member(struct ctl *c, const char *sub);
int ctl_cmd_endpoint(struct ctl *c, const char *sub);
int ctl_cmd_alarm(struct ctl *c, const char *sub);
int ctl_cmd_defrag(struct ctl *c);
int ctl_cmd_move_leader(struct ctl *c);
int ctl_cmd_snapshot(struct ctl *c, const char *sub);     /* save, status (cmd_snapshot.c) */
int ctl_cmd_snapshot_restore(struct ctl *c);              /* restore (cmd_restore.c) */
int ctl_cmd_watch(struct ctl *c);
int ctl_cmd_auth(struct ctl *c, const char *sub);     /* enable, disable (cmd_auth.c) */
int ctl_cmd_user(struct ctl *c, const char *sub);
int ctl_cmd_role(struct ctl *c, const char *sub);

/* ---- output (out.c) ---- */
/* JSON writer in Go's encoding/json style (HTML-safe escapes, numbers unquoted). */
struct jw {
    FILE *f;
    bool need_comma;
};
void ctl_jw_obj(struct jw *w, const char *key);   /* key NULL inside arrays / at top */
void ctl_jw_end_obj(struct jw *w);
void ctl_jw_arr(struct jw *w, const char *key);
void ctl_jw_end_arr(struct jw *w);
void ctl_jw_u64(struct jw *w, const char *key, uint64_t v);
void ctl_jw_i64(struct jw *w, const char *key, int64_t v);
void ctl_jw_bool(struct jw *w, const char *key, bool v);
void ctl_jw_str(struct jw *w, const char *key, const char *s, size_t n);
void ctl_jw_b64(struct jw *w, const char *key, const char *s, size_t n);
void ctl_jw_null(struct jw *w, const char *key);
void ctl_jw_header(struct jw *w, const struct cetcd_header *h);      /* "header":{...} if present */
void ctl_jw_header_flat(struct jw *w, const struct cetcd_header *h); /* embedded *ResponseHeader */
void ctl_jw_kv(struct jw *w, const char *key, const struct cetcd_kv *kv);

void ctl_out_kv(const struct ctl *c, const struct cetcd_kv *kv, bool value_only);
void ctl_out_get(const struct ctl *c, const struct cetcd_range_resp *r, bool value_only);
void ctl_out_put(const struct ctl *c, const struct cetcd_put_resp *r);
void ctl_out_del(const struct ctl *c, const struct cetcd_delete_resp *r);
void ctl_out_txn(const struct ctl *c, const struct cetcd_txn_resp *r);
void ctl_jw_range_body(struct jw *w, const struct cetcd_range_resp *r);
void ctl_jw_put_body(struct jw *w, const struct cetcd_put_resp *r);
void ctl_jw_del_body(struct jw *w, const struct cetcd_delete_resp *r);
void ctl_jw_txn_body(struct jw *w, const struct cetcd_txn_resp *r);

/* etcdctl's display.Watch for one response; 0, or EXIT_BAD_FEATURE (reported) for table. */
int ctl_out_watch(const struct ctl *c, const struct cetcd_watch_resp *r);

/* fields format pieces: Go's %q quoting (to stdout, or to f), and the four header lines */
void ctl_go_quote(const char *s, size_t n);
void ctl_go_quote_f(FILE *f, const char *s, size_t n);
/* Go's text for a syscall errno: strerror with a lower-case first letter ("no such file or
 * directory"), into buf */
void ctl_go_errno(int err, char *buf, size_t sz);
void ctl_fields_hdr(const struct cetcd_header *h);

/* ---- watch's exec-command (exec.c) ---- */
/* Runs argv (NULL-terminated) for one event as etcdctl watch does: the environment plus
 * ETCD_WATCH_REVISION=<rev>, ETCD_WATCH_EVENT_TYPE, _KEY and _VALUE (Go-quoted), stdout and
 * stderr shared, waited for. Returns 0, or EXIT_ERROR after printing etcdctl's
 * `command ["a" "b"] error (exit status 1)` line on stderr. */
int ctl_exec_event(char *const *argv, int64_t revision, const struct cetcd_event *ev);

/* humanize.Bytes (SI): "20 kB" */
void ctl_out_human_bytes(uint64_t n, char *buf, size_t sz);
/* Go's time.Duration.String() for a duration in nanoseconds */
void ctl_out_go_duration(int64_t ns, char *buf, size_t sz);

/* Table in etcdctl's style (olekukonko/tablewriter, right-aligned, centred headers). */
struct table {
    int ncols;
    const char *const *headers;
    char ***rows; /* rows[r][c], malloc'd */
    int nrows, cap;
};
void ctl_table_init(struct table *t, const char *const *headers, int ncols);
int ctl_table_add(struct table *t, const char *const *cells);
void ctl_table_print(const struct table *t, FILE *f);
void ctl_table_free(struct table *t);

#endif
