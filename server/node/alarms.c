/*
 * alarms.c: cluster-wide alarms (NOSPACE, CORRUPT), as etcd keeps them.
 *
 * An alarm is raised or cleared by an AlarmRequest that goes through Raft, so every member
 * holds the same set; while NOSPACE is active, applying a Put, a Txn with a put or a lease
 * grant fails with "etcdserver: mvcc: database space exceeded"; while CORRUPT is active every
 * write fails with "etcdserver: corrupt cluster". The set is kept in
 * <data-dir>/member/alarms.json, rewritten atomically when it changes:
 *   [{"member":"<hex id>","alarm":1}, ...]          (alarm: etcdserverpb.AlarmType number)
 * Applying the same request twice (after a crash) gives the same set.
 *
 * The quota, as etcd's quota.go: before a member proposes a client's Put, Txn or LeaseGrant it
 * asks its own store for room for the request's estimated cost (a put: key + value + 256
 * bytes; a Txn: its costlier branch; a lease grant: 64 bytes). Without room it raises NOSPACE
 * for itself through Raft and answers "database space exceeded" once that is applied.
 * Applying never looks at the file's size: members' files differ in size (free pages, defrag
 * times), and an entry one member refused while another applied it would split the replicas.
 */
#include "atomicfile.h"
#include "err.h"
#include "log.h"
#include "node_int.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define KV_OVERHEAD 256    /* etcd's per-put estimate of index and page overhead */
#define LEASE_OVERHEAD 64  /* etcd's estimate for storing a lease */

static int save(node *n)
{
    cJSON *arr = cJSON_CreateArray();
    char hex[24], path[1200], *text;
    int rc;

    for (size_t i = 0; arr && i < n->nalarms; i++) {
        cJSON *o = cJSON_CreateObject();
        snprintf(hex, sizeof(hex), "%016llx", (unsigned long long)n->alarms[i].member);
        cJSON_AddStringToObject(o, "member", hex);
        cJSON_AddNumberToObject(o, "alarm", n->alarms[i].type);
        cJSON_AddItemToArray(arr, o);
    }
    text = arr ? cJSON_PrintUnformatted(arr) : 0;
    cJSON_Delete(arr);
    if (!text)
        return CE_NOMEM;
    snprintf(path, sizeof(path), "%s/alarms.json", n->member_dir);
    rc = atomic_write_path(path, text, strlen(text), !n->cfg.unsafe_no_fsync);
    free(text);
    return rc;
}

int node_alarms_load(node *n)
{
    char path[1200], buf[8192];
    cJSON *arr, *o;
    ssize_t len;
    int fd;

    snprintf(path, sizeof(path), "%s/alarms.json", n->member_dir);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : ce_from_errno(errno);
    len = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (len < 0)
        return CE_IO;
    buf[len] = 0;
    arr = cJSON_Parse(buf);
    if (!cJSON_IsArray(arr)) {
        cJSON_Delete(arr);
        log_error("node: %s is not a valid alarm list", path);
        return CE_CORRUPT;
    }
    cJSON_ArrayForEach(o, arr) {
        cJSON *m = cJSON_GetObjectItem(o, "member"), *a = cJSON_GetObjectItem(o, "alarm");
        if (cJSON_IsString(m) && cJSON_IsNumber(a) && n->nalarms < NODE_MAX_ALARMS) {
            n->alarms[n->nalarms].member = strtoull(m->valuestring, 0, 16);
            n->alarms[n->nalarms].type = a->valueint;
            n->nalarms++;
        }
    }
    cJSON_Delete(arr);
    return 0;
}

bool node_alarm_active(const node *n, int type)
{
    for (size_t i = 0; i < n->nalarms; i++)
        if (n->alarms[i].type == type)
            return true;
    return false;
}

static int find(const node *n, uint64_t member, int type)
{
    for (size_t i = 0; i < n->nalarms; i++)
        if (n->alarms[i].member == member && n->alarms[i].type == type)
            return (int)i;
    return -1;
}

static Etcdserverpb__AlarmMember *alarm_member(uint64_t member, int type)
{
    Etcdserverpb__AlarmMember *am = malloc(sizeof(*am));

    if (am) {
        etcdserverpb__alarm_member__init(am);
        am->memberid = member;
        am->alarm = (Etcdserverpb__AlarmType)type;
    }
    return am;
}

/* The response lists the alarm activated or deactivated (none if nothing changed). */
int node_alarm_apply(node *n, const Etcdserverpb__AlarmRequest *r, ProtobufCMessage **out)
{
    Etcdserverpb__AlarmResponse *resp = calloc(1, sizeof(*resp));
    bool changed = false;
    int at = find(n, r->memberid, r->alarm);

    if (!resp)
        return CE_NOMEM;
    etcdserverpb__alarm_response__init(resp);
    resp->alarms = calloc(1, sizeof(*resp->alarms));
    if (r->action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__ACTIVATE && r->alarm &&
        at < 0 && n->nalarms < NODE_MAX_ALARMS) {
        n->alarms[n->nalarms].member = r->memberid;
        n->alarms[n->nalarms].type = r->alarm;
        n->nalarms++;
        changed = true;
        log_warn("node: alarm %s raised for member %016llx", r->alarm == 1 ? "NOSPACE" : "CORRUPT",
                 (unsigned long long)r->memberid);
    } else if (r->action == ETCDSERVERPB__ALARM_REQUEST__ALARM_ACTION__DEACTIVATE && at >= 0) {
        n->alarms[at] = n->alarms[--n->nalarms];
        changed = true;
        log_info("node: alarm cleared for member %016llx", (unsigned long long)r->memberid);
    }
    if (changed && resp->alarms && (resp->alarms[0] = alarm_member(r->memberid, r->alarm)))
        resp->n_alarms = 1;
    if (changed && save(n))
        log_error("node: cannot persist the alarm list");
    *out = &resp->base;
    return 0;
}

int node_alarms(node *n, Etcdserverpb__AlarmResponse *resp)
{
    resp->alarms = calloc(n->nalarms + 1, sizeof(*resp->alarms));
    if (!resp->alarms)
        return CE_NOMEM;
    for (size_t i = 0; i < n->nalarms; i++) {
        resp->alarms[i] = alarm_member(n->alarms[i].member, n->alarms[i].type);
        if (!resp->alarms[i])
            return CE_NOMEM;
        resp->n_alarms++;
    }
    return 0;
}

static uint64_t put_cost(const Etcdserverpb__PutRequest *p)
{
    return KV_OVERHEAD + p->key.len + p->value.len;
}

/* A Txn costs its costlier branch; a branch, the puts it holds at any depth. */
static uint64_t txn_cost(const Etcdserverpb__TxnRequest *t)
{
    uint64_t cost[2] = {0, 0};

    for (int b = 0; b < 2; b++) {
        Etcdserverpb__RequestOp **ops = b ? t->failure : t->success;
        size_t nops = b ? t->n_failure : t->n_success;
        for (size_t i = 0; i < nops; i++) {
            if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_PUT)
                cost[b] += put_cost(ops[i]->request_put);
            else if (ops[i]->request_case == ETCDSERVERPB__REQUEST_OP__REQUEST_REQUEST_TXN)
                cost[b] += txn_cost(ops[i]->request_txn);
        }
    }
    return cost[0] > cost[1] ? cost[0] : cost[1];
}

uint64_t node_quota_cost(const Cetcdpb__InternalRequest *req)
{
    switch (req->request_case) {
    case CETCDPB__INTERNAL_REQUEST__REQUEST_PUT:
        return put_cost(req->put);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_TXN:
        return txn_cost(req->txn);
    case CETCDPB__INTERNAL_REQUEST__REQUEST_LEASE_GRANT:
        return LEASE_OVERHEAD;
    default:
        return 0;
    }
}

bool node_alarm_raised_by(const node *n, uint64_t member, int type)
{
    return find(n, member, type) >= 0;
}

int node_alarm_gate(const node *n, const Cetcdpb__InternalRequest *req)
{
    if (!n->nalarms || req->request_case == CETCDPB__INTERNAL_REQUEST__REQUEST_ALARM)
        return 0;
    if (node_alarm_active(n, ETCDSERVERPB__ALARM_TYPE__CORRUPT))
        return CE_CORRUPT_ALARM;
    if (!node_alarm_active(n, ETCDSERVERPB__ALARM_TYPE__NOSPACE))
        return 0;
    return node_quota_cost(req) ? CE_NO_SPACE : 0;
}
