/*
 * err.h: the one error table of cetcd.
 *
 * Every function that can fail returns 0 or a negative CE_* code from this table; predicates
 * return bool. The table carries, for each code, the message etcd itself uses for that failure
 * (clients match on those strings) and the gRPC status code etcd answers with. Mapping to gRPC
 * or HTTP status happens only in server/api/; everything below the API just returns codes.
 */
#ifndef CETCD_ERR_H
#define CETCD_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* X(name, value, grpc_code, message) */
#define CE_ERRORS(X)                                                                          \
    X(CE_NOMEM,            -1, 8,  "etcdserver: out of memory")                               \
    X(CE_IO,               -2, 13, "etcdserver: i/o error")                                   \
    X(CE_CORRUPT,          -3, 15, "etcdserver: corrupt data")                                \
    X(CE_INVAL,            -4, 3,  "etcdserver: invalid argument")                            \
    X(CE_NOTFOUND,         -5, 5,  "etcdserver: not found")                                   \
    X(CE_EXISTS,           -6, 6,  "etcdserver: already exists")                              \
    X(CE_AGAIN,            -7, 14, "etcdserver: try again")                                   \
    X(CE_KEY_EMPTY,        -10, 3, "etcdserver: key is not provided")                         \
    X(CE_VALUE_PROVIDED,   -11, 3, "etcdserver: value is provided")                           \
    X(CE_LEASE_PROVIDED,   -12, 3, "etcdserver: lease is provided")                           \
    X(CE_TOO_MANY_OPS,     -13, 3, "etcdserver: too many operations in txn request")          \
    X(CE_DUP_KEY,          -14, 3, "etcdserver: duplicate key given in txn request")          \
    X(CE_COMPACTED,        -15, 11, "etcdserver: mvcc: required revision has been compacted") \
    X(CE_FUTURE_REV,       -16, 11, "etcdserver: mvcc: required revision is a future revision") \
    X(CE_REQ_TOO_LARGE,    -17, 3, "etcdserver: request is too large")                        \
    X(CE_NO_SPACE,         -18, 8, "etcdserver: mvcc: database space exceeded")               \
    X(CE_LEASE_NOT_FOUND,  -19, 5, "etcdserver: requested lease not found")                   \
    X(CE_KEY_NOT_FOUND,    -22, 3, "etcdserver: key not found")                               \
    X(CE_LEASE_EXISTS,     -20, 9, "etcdserver: lease already exists")                        \
    X(CE_LEASE_TTL_LARGE,  -21, 11, "etcdserver: too large lease TTL")                        \
    X(CE_NO_LEADER,        -30, 14, "etcdserver: no leader")                                  \
    X(CE_NOT_LEADER,       -31, 14, "etcdserver: not leader")                                 \
    X(CE_STOPPED,          -32, 14, "etcdserver: server stopped")                             \
    X(CE_TIMEOUT,          -33, 14, "etcdserver: request timed out")                          \
    X(CE_LEADER_CHANGED,   -34, 14, "etcdserver: leader changed")                             \
    X(CE_TOO_MANY_REQS,    -35, 8, "etcdserver: too many requests")                           \
    X(CE_UNHEALTHY,        -36, 14, "etcdserver: unhealthy cluster")                          \
    X(CE_CORRUPT_ALARM,    -37, 9, "etcdserver: corrupt cluster")                             \
    X(CE_NOT_CAPABLE,      -38, 14, "etcdserver: not capable")                                \
    X(CE_MEMBER_EXIST,     -40, 9, "etcdserver: member ID already exist")                     \
    X(CE_PEERURL_EXIST,    -41, 9, "etcdserver: Peer URLs already exists")                    \
    X(CE_MEMBER_NOT_FOUND, -42, 5, "etcdserver: member not found")                            \
    X(CE_MEMBER_BAD_URLS,  -43, 3, "etcdserver: given member URLs are invalid")               \
    X(CE_MEMBER_NOT_LEARNER, -44, 9, "etcdserver: can only promote a learner member")         \
    X(CE_LEARNER_NOT_READY, -45, 9, "etcdserver: can only promote a learner member which is in sync with leader") \
    X(CE_TOO_MANY_LEARNERS, -46, 9, "etcdserver: too many learner members in cluster")        \
    X(CE_UNSTARTED_UNSAFE, -47, 9, "etcdserver: unsafe to remove unstarted member")           \
    X(CE_NOT_ENOUGH_STARTED, -48, 9, "etcdserver: re-configuration failed due to not enough started members") \
    X(CE_LEARNER_NOT_SUPPORTED, -49, 14, "etcdserver: rpc not supported for learner")         \
    X(CE_BAD_LEADER_TRANSFER, -50, 9, "etcdserver: bad leader transferee")                    \
    X(CE_TIMEOUT_TRANSFER, -51, 14, "etcdserver: request timed out, leader transfer took too long") \
    X(CE_TIMEOUT_LEADER_FAIL, -39, 14, "etcdserver: request timed out, possibly due to previous leader failure") \
    X(CE_MEMBER_REMOVED,   -52, 9, "etcdserver: the member has been permanently removed from the cluster") \
    X(CE_PERMISSION_DENIED, -60, 7, "etcdserver: permission denied")                          \
    X(CE_AUTH_FAILED,      -61, 3, "etcdserver: authentication failed, invalid user ID or password") \
    X(CE_INVALID_TOKEN,    -62, 16, "etcdserver: invalid auth token")                         \
    X(CE_USER_NOT_FOUND,   -63, 9, "etcdserver: user name not found")                         \
    X(CE_ROLE_NOT_FOUND,   -64, 9, "etcdserver: role name not found")                         \
    X(CE_USER_EXISTS,      -65, 9, "etcdserver: user name already exists")                    \
    X(CE_ROLE_EXISTS,      -66, 9, "etcdserver: role name already exists")                    \
    X(CE_USER_EMPTY,       -67, 3, "etcdserver: user name is empty")                          \
    X(CE_ROOT_NOT_EXIST,   -68, 9, "etcdserver: root user does not exist")                    \
    X(CE_AUTH_NOT_ENABLED, -69, 9, "etcdserver: authentication is not enabled")               \
    X(CE_AUTH_STORE_TOKEN, -70, 2, "auth: invalid auth token") /* untranslated (Snapshot) */  \
    X(CE_ROOT_ROLE_NOT_EXIST, -71, 9, "etcdserver: root user does not have root role")     \
    X(CE_INVALID_AUTH_MGMT, -72, 9, "etcdserver: invalid auth management")                  \
    X(CE_ROLE_NOT_GRANTED, -73, 9, "etcdserver: role is not granted to the user")            \
    X(CE_ROLE_EMPTY,       -74, 3, "etcdserver: role name is empty")                          \
    X(CE_PERM_NOT_GRANTED, -75, 9, "etcdserver: permission is not granted to the role")      \
    X(CE_AUTH_STORE_DENIED, -76, 2, "auth: permission denied") /* untranslated (Maintenance) */ \
    X(CE_BAD_PROTO,        -80, 13, "grpc: error unmarshalling request")                      \
    X(CE_BAD_JSON,         -81, 3, "invalid JSON request body")                               \
    X(CE_UNIMPLEMENTED,    -82, 12, "unknown method")                                         \
    X(CE_UNSUPPORTED,      -83, 12, "etcdserver: not supported")                              \
    X(CE_UNREACHABLE,      -90, 14, "client: no endpoint reachable")                          \
    X(CE_MSG_TOO_LARGE,    -91, 8, "client: received message larger than the limit")      \
    X(CE_K8S_CONFLICT,     -100, 10, "kubernetes: the object has been modified (409 Conflict)") \
    X(CE_K8S_GONE,         -101, 11, "kubernetes: resource version too old (410 Gone)")   \
    X(CE_K8S_FORBIDDEN,    -102, 7, "kubernetes: forbidden (401/403)")                      \
    X(CE_K8S_INVALID,      -103, 3, "kubernetes: invalid object (422)")                     \
    X(CE_K8S_HTTP,         -104, 14, "kubernetes: API server error")                        \
    X(CE_K8S_CONFIG,       -105, 3, "kubernetes: bad client configuration")

enum ce_error {
    CE_OK = 0,
#define CE_ENUM_(name, value, grpc, msg) name = (value),
    CE_ERRORS(CE_ENUM_)
#undef CE_ENUM_
};

/* etcd's message for err ("etcdserver: ..."); "unknown error" for a code not in the table. */
const char *ce_strerror(int err);
/* The gRPC status code etcd answers with for err (0 for CE_OK, 2 UNKNOWN if not in the table). */
int ce_grpc_code(int err);
/* CE_IO or CE_NOMEM etc. from an errno value, for system-call failures. */
int ce_from_errno(int errnum);
/* For functions that explain a failure in a caller's buffer: formats the message into
 * err[0..errsz) (nothing when err is NULL or errsz 0; cut to fit) and returns rc, so that
 * `return ce_errf(err, errsz, CE_CORRUPT, "page %u is ...", n);` reports both at once. */
int ce_errf(char *err, size_t errsz, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
int ce_verrf(char *err, size_t errsz, int rc, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

#endif
