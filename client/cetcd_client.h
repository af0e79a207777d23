/*
 * cetcd_client.h: C client library for etcd's v3 HTTP/JSON gateway (cetcd or etcd 3.4).
 *
 * A client holds a list of endpoints ("http://host:port" or "https://..."), timeouts, TLS file
 * names and an optional auth token. Every operation sends one `POST /v3/<service>/<method>` to the
 * current endpoint; on a connection failure (refused, unresolvable, connect timeout) it moves on
 * to the next endpoint, at most once round the list. Results come back as typed structs. Watch
 * streams (see "Watch" below) run on transfers of their own and are retried for as long as they
 * last.
 *
 * Invariants and ownership:
 * - Functions return 0 or a negative CE_* code (common/err.h). A server error is mapped to the
 *   CE_* whose message equals the server's message, else to a code chosen from the gRPC status;
 *   the server's own text stays readable through cetcd_client_errmsg() until the next call.
 *   Transport failures: CE_UNREACHABLE (no endpoint gave any HTTP answer), CE_TIMEOUT (the
 *   command timeout ran out), CE_IO (an answer was cut short); errmsg then holds curl's text.
 * - Every response struct owns its memory through its `mem` member and is released with the
 *   matching *_free() (safe on a zeroed struct and after a failed call). Byte strings in results
 *   are NUL-terminated for convenience and carry their length (they may hold NUL bytes).
 * - Request structs are borrowed: the library never keeps pointers into them after the call.
 * - No printing, no exit, no global state except curl_global_init() run once (thread-safe).
 *   One client handle must not be used by two threads at once.
 */
#ifndef CETCD_CLIENT_H
#define CETCD_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

typedef struct cetcd_client cetcd_client;
struct cetcd_mem; /* arena holding everything a response points to */

struct cetcd_client_opts {
    const char *const *endpoints; /* "host:port", "http://host:port" or "https://host:port" */
    size_t n_endpoints;
    long dial_timeout_ms;    /* connect timeout; 0 = 2000 */
    long command_timeout_ms; /* whole request; 0 = 5000; the snapshot stream has no limit */
    const char *cacert;      /* CA bundle (CURLOPT_CAINFO), NULL = system default */
    const char *cert;        /* client certificate (CURLOPT_SSLCERT) */
    const char *key;         /* client key (CURLOPT_SSLKEY) */
    /* The same three as PEM text in memory (a Secret's data), instead of files: copied. */
    const char *cacert_pem, *cert_pem, *key_pem;
    bool insecure_skip_verify;
    bool use_tls;            /* https:// for scheme-less endpoints; implied by any of the above */
    const char *token;       /* sent as "Authorization: <token>" */
};

/* ---- client handle ---- */
int cetcd_client_new(const struct cetcd_client_opts *opts, cetcd_client **out);
void cetcd_client_free(cetcd_client *c);
/* The server's (or transport's) message for the last failed call; "" after a success. */
const char *cetcd_client_errmsg(const cetcd_client *c);
/* gRPC status code of the last server error (0 if none or a transport failure). */
int cetcd_client_grpc_code(const cetcd_client *c);
/* Replaces the token (NULL clears it). */
int cetcd_client_set_token(cetcd_client *c, const char *token);
/* The token in use (after cetcd_authenticate), or NULL. */
const char *cetcd_client_token(const cetcd_client *c);
/* Normalized endpoint URLs ("http://..."), in the order given. */
size_t cetcd_client_endpoint_count(const cetcd_client *c);
const char *cetcd_client_endpoint(const cetcd_client *c, size_t i);
/* Writes "http://" + ep into out unless ep already has a scheme; CE_INVAL if it does not fit. */
int cetcd_endpoint_normalize(const char *ep, bool tls, char *out, size_t outsz);

/* ---- common result pieces ---- */
struct cetcd_header {
    bool present; /* false when the server sent no header (e.g. etcd's AlarmResponse) */
    uint64_t cluster_id, member_id;
    int64_t revision;
    uint64_t raft_term;
};

struct cetcd_kv {
    char *key;
    size_t key_len;
    int64_t create_revision, mod_revision, version;
    char *value;
    size_t value_len;
    int64_t lease;
};

/* ---- KV ---- */
enum cetcd_sort_order { CETCD_SORT_NONE = 0, CETCD_SORT_ASCEND, CETCD_SORT_DESCEND };
enum cetcd_sort_target {
    CETCD_SORT_KEY = 0, CETCD_SORT_VERSION, CETCD_SORT_CREATE, CETCD_SORT_MOD, CETCD_SORT_VALUE
};

/* A key range: [key, range_end) if range_end is set; prefix / from_key compute range_end. */
struct cetcd_range_req {
    const char *key;
    size_t key_len;
    const char *range_end; /* NULL: one key (unless prefix or from_key) */
    size_t range_end_len;
    bool prefix, from_key;
    int64_t limit, revision;
    enum cetcd_sort_order sort_order;
    enum cetcd_sort_target sort_target;
    bool serializable, keys_only, count_only;
    int64_t min_mod_revision, max_mod_revision, min_create_revision, max_create_revision;
};

struct cetcd_range_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    struct cetcd_kv *kvs;
    size_t n_kvs;
    bool more;
    int64_t count;
};

struct cetcd_put_req {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
    int64_t lease;
    bool prev_kv, ignore_value, ignore_lease;
};

struct cetcd_put_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    struct cetcd_kv *prev_kv; /* NULL unless asked for and the key existed */
};

struct cetcd_delete_req {
    const char *key;
    size_t key_len;
    const char *range_end;
    size_t range_end_len;
    bool prefix, from_key, prev_kv;
};

struct cetcd_delete_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    int64_t deleted;
    struct cetcd_kv *prev_kvs;
    size_t n_prev_kvs;
};

/* ---- Txn ---- */
enum cetcd_cmp_result {
    CETCD_CMP_EQUAL = 0,
    CETCD_CMP_GREATER,
    CETCD_CMP_LESS,
    CETCD_CMP_NOT_EQUAL
};
enum cetcd_cmp_target {
    CETCD_CMP_VERSION = 0, CETCD_CMP_CREATE, CETCD_CMP_MOD, CETCD_CMP_VALUE, CETCD_CMP_LEASE
};

struct cetcd_compare {
    enum cetcd_cmp_result result;
    enum cetcd_cmp_target target;
    const char *key;
    size_t key_len;
    const char *range_end;
    size_t range_end_len;
    int64_t number;    /* version, create/mod revision or lease, by target */
    const char *value; /* target VALUE */
    size_t value_len;
};

enum cetcd_op_type { CETCD_OP_RANGE = 0, CETCD_OP_PUT, CETCD_OP_DELETE, CETCD_OP_TXN };

struct cetcd_txn_req;
struct cetcd_op {
    enum cetcd_op_type type;
    union {
        struct cetcd_range_req range;
        struct cetcd_put_req put;
        struct cetcd_delete_req del;
        const struct cetcd_txn_req *txn;
    } u;
};

struct cetcd_txn_req {
    const struct cetcd_compare *compare;
    size_t n_compare;
    const struct cetcd_op *success;
    size_t n_success;
    const struct cetcd_op *failure;
    size_t n_failure;
};

struct cetcd_txn_resp;
struct cetcd_op_resp {
    enum cetcd_op_type type;
    union {
        struct cetcd_range_resp range; /* nested: mem is NULL, the txn owns it */
        struct cetcd_put_resp put;
        struct cetcd_delete_resp del;
        struct cetcd_txn_resp *txn;
    } u;
};

struct cetcd_txn_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    bool succeeded;
    struct cetcd_op_resp *responses;
    size_t n_responses;
};

struct cetcd_header_resp { /* compact, defragment, move-leader, lease revoke */
    struct cetcd_mem *mem;
    struct cetcd_header header;
};

int cetcd_range(cetcd_client *c, const struct cetcd_range_req *req, struct cetcd_range_resp *out);
int cetcd_put(cetcd_client *c, const struct cetcd_put_req *req, struct cetcd_put_resp *out);
int cetcd_delete(cetcd_client *c, const struct cetcd_delete_req *req,
                 struct cetcd_delete_resp *out);
int cetcd_txn(cetcd_client *c, const struct cetcd_txn_req *req, struct cetcd_txn_resp *out);
int cetcd_compact(cetcd_client *c, int64_t revision, bool physical, struct cetcd_header_resp *out);

/* ---- Lease ---- */
struct cetcd_lease_grant_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    int64_t id, ttl;
    char *error; /* never NULL after success */
};
struct cetcd_lease_ttl_resp { /* timetolive and keepalive-once */
    struct cetcd_mem *mem;
    struct cetcd_header header;
    int64_t id, ttl, granted_ttl;
    struct cetcd_kv *keys; /* only key/key_len set */
    size_t n_keys;
};
struct cetcd_lease_list_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    int64_t *ids;
    size_t n_ids;
};

int cetcd_lease_grant(cetcd_client *c, int64_t ttl, int64_t id, struct cetcd_lease_grant_resp *out);
int cetcd_lease_revoke(cetcd_client *c, int64_t id, struct cetcd_header_resp *out);
int cetcd_lease_timetolive(cetcd_client *c, int64_t id, bool keys,
                           struct cetcd_lease_ttl_resp *out);
int cetcd_lease_leases(cetcd_client *c, struct cetcd_lease_list_resp *out);
/* One keepalive round trip on /v3/lease/keepalive; ttl <= 0 in the result means expired. */
int cetcd_lease_keepalive_once(cetcd_client *c, int64_t id, struct cetcd_lease_ttl_resp *out);

/* ---- Watch ---- */
/*
 * A watch stream is `POST /v3/watch` with {"create_request":{...}} answered by a chunked stream
 * of {"result":<WatchResponse>} objects. Streams are kept going as etcd's clientv3 keeps its
 * own: when the connection fails or the server ends the answer without cancelling the watch
 * (a restart, "etcdserver: server stopped", any Unavailable or Internal error but "no leader"),
 * the stream is opened again on the next endpoint after a backoff (100 ms doubling to 5 s),
 * resuming after the last revision delivered; the repeated "created" answer is not delivered.
 * A stream ends for good with a canceled response (from the server, e.g. a compacted start
 * revision, or made up by the library for an error retrying cannot cure), or when its callback
 * returns non-zero. Nothing is printed and no signal is touched; the caller drives the streams
 * with cetcd_watchset_poll() (curl's multi interface), so stdin or a signal pipe can be watched
 * on the same poll.
 */
struct cetcd_watch_req {
    const char *key;
    size_t key_len;
    const char *range_end; /* NULL: one key (unless prefix or from_key) */
    size_t range_end_len;
    bool prefix, from_key;
    int64_t start_revision; /* 0: from the next change */
    bool prev_kv, progress_notify, no_put, no_delete;
    bool require_leader; /* fail with "etcdserver: no leader" rather than wait (etcdctl sets it) */
};

enum cetcd_event_type { CETCD_EVENT_PUT = 0, CETCD_EVENT_DELETE = 1 };

struct cetcd_event {
    enum cetcd_event_type type;
    struct cetcd_kv kv;
    struct cetcd_kv *prev_kv; /* NULL unless asked for and the key existed */
};

struct cetcd_watch_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    int64_t watch_id;
    bool created, canceled, fragment;
    int64_t compact_revision;
    char *cancel_reason; /* never NULL */
    struct cetcd_event *events;
    size_t n_events;
    /* CE_* when the library ended the stream on an error: then canceled is set, header absent,
     * events NULL and cancel_reason holds the server's (or transport's) message. */
    int error;
};

/* Gets every response of one stream; it (and what it points to) is valid during the call only.
 * Non-zero closes that stream (no more calls); a negative value is also what the running
 * cetcd_watchset_poll() returns. Must not call cetcd_watchset_* itself. */
typedef int (*cetcd_watch_fn)(void *ctx, const struct cetcd_watch_resp *resp);

typedef struct cetcd_watchset cetcd_watchset;
/* A set of streams over c's endpoints and settings (c must outlive it; c's token is read when a
 * stream is opened or reopened). */
int cetcd_watchset_new(cetcd_client *c, cetcd_watchset **out);
/* Closes every stream (no more callbacks) and frees the set. */
void cetcd_watchset_free(cetcd_watchset *ws);
/* Opens one more stream; req is copied. fn gets its responses from cetcd_watchset_poll(). */
int cetcd_watchset_add(cetcd_watchset *ws, const struct cetcd_watch_req *req, cetcd_watch_fn fn,
                       void *ctx);
/* Streams not yet over. */
size_t cetcd_watchset_count(const cetcd_watchset *ws);
/*
 * Moves every stream along (sends, receives, calls back, reconnects) until one of fds becomes
 * readable (*ready = its index; else -1), timeout_ms passes (-1: no limit) or a stream ends
 * (see cetcd_watchset_count()). Returns 0, a callback's negative value, or CE_NOMEM / CE_IO
 * when the machinery itself fails.
 */
int cetcd_watchset_poll(cetcd_watchset *ws, const int *fds, size_t nfds, long timeout_ms,
                        int *ready);
/*
 * etcd 3.4's progress request, for every stream that has been created: each gets a response
 * with the server's header and no events. The gateway cannot carry a second request on an open
 * stream, so the revision is asked on a stream of its own ({"progress_request":{}}); as with
 * etcd 3.4 it is the server's current revision, not a promise about events still in flight.
 * Returns 0 (also when no stream is created) or the request's CE_* error.
 */
int cetcd_watchset_progress(cetcd_watchset *ws);
/* One stream, run until it is over or stop_fd (-1: none) becomes readable. */
int cetcd_watch(cetcd_client *c, const struct cetcd_watch_req *req, cetcd_watch_fn fn, void *ctx,
                int stop_fd);

/* ---- Cluster ---- */
struct cetcd_member {
    uint64_t id;
    char *name;
    char **peer_urls;
    size_t n_peer_urls;
    char **client_urls;
    size_t n_client_urls;
    bool is_learner;
};
struct cetcd_member_resp { /* list, add, remove, update, promote */
    struct cetcd_mem *mem;
    struct cetcd_header header;
    struct cetcd_member member; /* add only: the new member */
    struct cetcd_member *members;
    size_t n_members;
};

int cetcd_member_list(cetcd_client *c, struct cetcd_member_resp *out);
int cetcd_member_add(cetcd_client *c, const char *const *peer_urls, size_t n, bool learner,
                     struct cetcd_member_resp *out);
int cetcd_member_remove(cetcd_client *c, uint64_t id, struct cetcd_member_resp *out);
int cetcd_member_update(cetcd_client *c, uint64_t id, const char *const *peer_urls, size_t n,
                        struct cetcd_member_resp *out);
int cetcd_member_promote(cetcd_client *c, uint64_t id, struct cetcd_member_resp *out);

/* ---- Maintenance (endpoint: a URL from the list or any URL; NULL = usual failover) ---- */
struct cetcd_status_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    char *version;
    int64_t db_size;
    uint64_t leader, raft_index, raft_term, raft_applied_index;
    char **errors;
    size_t n_errors;
    int64_t db_size_in_use;
    bool is_learner;
};
enum cetcd_alarm_type { CETCD_ALARM_NONE = 0, CETCD_ALARM_NOSPACE, CETCD_ALARM_CORRUPT };
struct cetcd_alarm {
    uint64_t member_id;
    enum cetcd_alarm_type alarm;
};
struct cetcd_alarm_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    struct cetcd_alarm *alarms;
    size_t n_alarms;
};
struct cetcd_hash_kv_resp {
    struct cetcd_mem *mem;
    struct cetcd_header header;
    uint32_t hash;
    int64_t compact_revision;
};

int cetcd_status(cetcd_client *c, const char *endpoint, struct cetcd_status_resp *out);
int cetcd_alarm_list(cetcd_client *c, struct cetcd_alarm_resp *out);
/* Disarms one alarm; member_id 0 and alarm NONE disarm all (as etcdctl alarm disarm). */
int cetcd_alarm_disarm(cetcd_client *c, uint64_t member_id, enum cetcd_alarm_type alarm,
                       struct cetcd_alarm_resp *out);
int cetcd_defragment(cetcd_client *c, const char *endpoint, struct cetcd_header_resp *out);
int cetcd_hash_kv(cetcd_client *c, const char *endpoint, int64_t revision,
                  struct cetcd_hash_kv_resp *out);
int cetcd_move_leader(cetcd_client *c, const char *endpoint, uint64_t target_id,
                      struct cetcd_header_resp *out);
/* Streams the backend snapshot: blob pieces in order to sink (return non-zero to abort with that
 * code). The last 32 bytes of the whole stream are a SHA-256 of everything before them. */
typedef int (*cetcd_blob_sink)(void *ctx, const void *data, size_t len);
int cetcd_snapshot(cetcd_client *c, const char *endpoint, cetcd_blob_sink sink, void *ctx);

/* ---- Auth ---- */
/* Authenticates and installs the returned token on the client. */
int cetcd_authenticate(cetcd_client *c, const char *user, const char *password);
/* The Auth service (client/auth.c), each one request; results live in an arena (free with
 * cetcd_names_free / cetcd_role_perms_free). Permission types: 0 READ, 1 WRITE, 2 READWRITE;
 * end_len 0 = the key alone, end "\0" (length 1) = every key from key on. */
struct cetcd_names {
    struct cetcd_mem *mem;
    char **names;
    size_t n;
};
struct cetcd_perm {
    int type;
    char *key, *end;
    size_t key_len, end_len;
};
struct cetcd_role_perms {
    struct cetcd_mem *mem;
    struct cetcd_perm *perms;
    size_t n;
};
int cetcd_auth_enable(cetcd_client *c);
int cetcd_auth_disable(cetcd_client *c);
int cetcd_user_add(cetcd_client *c, const char *name, const char *password, bool no_password);
int cetcd_user_delete(cetcd_client *c, const char *name);
int cetcd_user_passwd(cetcd_client *c, const char *name, const char *password);
int cetcd_user_grant_role(cetcd_client *c, const char *user, const char *role);
int cetcd_user_revoke_role(cetcd_client *c, const char *user, const char *role);
int cetcd_user_get(cetcd_client *c, const char *name, struct cetcd_names *roles);
int cetcd_user_list(cetcd_client *c, struct cetcd_names *out);
int cetcd_role_add(cetcd_client *c, const char *name);
int cetcd_role_delete(cetcd_client *c, const char *name);
int cetcd_role_grant(cetcd_client *c, const char *role, const struct cetcd_perm *p);
int cetcd_role_revoke(cetcd_client *c, const char *role, const char *key, size_t klen,
                      const char *end, size_t elen);
int cetcd_role_get(cetcd_client *c, const char *role, struct cetcd_role_perms *out);
int cetcd_role_list(cetcd_client *c, struct cetcd_names *out);
void cetcd_names_free(struct cetcd_names *r);
void cetcd_role_perms_free(struct cetcd_role_perms *r);

/* ---- Freeing results (each safe on a zeroed struct; leaves it zeroed) ---- */
void cetcd_range_resp_free(struct cetcd_range_resp *r);
void cetcd_put_resp_free(struct cetcd_put_resp *r);
void cetcd_delete_resp_free(struct cetcd_delete_resp *r);
void cetcd_txn_resp_free(struct cetcd_txn_resp *r);
void cetcd_header_resp_free(struct cetcd_header_resp *r);
void cetcd_lease_grant_resp_free(struct cetcd_lease_grant_resp *r);
void cetcd_lease_ttl_resp_free(struct cetcd_lease_ttl_resp *r);
void cetcd_lease_list_resp_free(struct cetcd_lease_list_resp *r);
void cetcd_member_resp_free(struct cetcd_member_resp *r);
void cetcd_status_resp_free(struct cetcd_status_resp *r);
void cetcd_alarm_resp_free(struct cetcd_alarm_resp *r);
void cetcd_hash_kv_resp_free(struct cetcd_hash_kv_resp *r);

/* ---- etcdctl txn syntax (shared by cetcdctl and tests) ---- */
/*
 * Parses one compare line of etcdctl's interactive txn form, e.g. `mod("k") > "0"`,
 * `value("k") = "v"`, `ver("k") != "2"`, `lease("k") = "694d5e7f6a2a8c22"`. Target words:
 * ver|version, c|create, m|mod, val|value, lease. The key and value strings point into a copy
 * allocated in *mem (created if NULL). Returns 0 or CE_INVAL.
 */
int cetcd_txn_parse_compare(const char *line, struct cetcd_mem **mem, struct cetcd_compare *out);
/*
 * Parses one request line: `put [--prev-kv] [--lease=ID] [--ignore-value] [--ignore-lease] k v`,
 * `get [--prefix|--from-key|--limit=N|--rev=N|--keys-only|...] k [end]`, `del [--prefix|--from-key|
 * --prev-kv] k [end]`. Arguments are split on spaces; double-quoted arguments may contain spaces
 * and Go-style escapes. Returns 0 or CE_INVAL.
 */
int cetcd_txn_parse_op(const char *line, struct cetcd_mem **mem, struct cetcd_op *out);
/*
 * Splits a line into words as etcdctl's argify does: words are separated by blanks; a word
 * starting with ' runs to the next ' (taken as is), one starting with " is a Go-quoted string
 * (escapes decoded, may hold NUL: see lens). At most max words go to argv, their strings
 * (NUL-terminated) allocated in *mem; lens (may be NULL) gets their lengths. Returns the number
 * of words, or CE_INVAL (unterminated quote, bad escape, more than max words) or CE_NOMEM.
 */
int cetcd_argify(const char *line, struct cetcd_mem **mem, char **argv, size_t *lens, size_t max);
void cetcd_mem_free(struct cetcd_mem *mem);

/* range_end for "every key with this prefix" into buf (at least max(len, 1) bytes); returns
 * its length. An empty or all-0xff prefix yields the single byte "\0" (every key from here). */
size_t cetcd_prefix_end(const char *key, size_t len, char *buf);

#endif
