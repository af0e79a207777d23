/*
 * cmd_cluster.c: cetcdctl member, endpoint, alarm, defrag and move-leader commands, with
 * etcdctl 3.4's simple/json/table output (snapshot: cmd_snapshot.c). Per-endpoint commands
 * (endpoint status|health|hashkv, defrag, move-leader) talk to each endpoint on its own, as
 * etcdctl does, and print the endpoint as the user spelled it.
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const alarm_names[] = {"NONE", "NOSPACE", "CORRUPT"};

static int parse_member_id(const char *s, uint64_t *id)
{
    char *end;

    errno = 0;
    *id = strtoull(s, &end, 16);
    if (!*s || *end || errno)
        return ctl_fail(EXIT_BAD_ARGS, "bad member ID arg (strconv.ParseUint: parsing \"%s\": invalid syntax), expecting ID in Hex", s);
    return 0;
}

static void join(char *buf, size_t sz, char *const *v, size_t n, const char *sep)
{
    size_t off = 0;

    buf[0] = 0;
    for (size_t i = 0; i < n && off < sz; i++)
        off += (size_t)snprintf(buf + off, sz - off, "%s%s", i ? sep : "", v[i]);
}

/* ---------------------------------------------------------------- member */

static void ctl_jw_member(struct jw *w, const char *key, const struct cetcd_member *m)
{
    ctl_jw_obj(w, key);
    if (m->id)
        ctl_jw_u64(w, "ID", m->id);
    if (m->name && *m->name)
        ctl_jw_str(w, "name", m->name, strlen(m->name));
    if (m->n_peer_urls) {
        ctl_jw_arr(w, "peerURLs");
        for (size_t i = 0; i < m->n_peer_urls; i++)
            ctl_jw_str(w, NULL, m->peer_urls[i], strlen(m->peer_urls[i]));
        ctl_jw_end_arr(w);
    }
    if (m->n_client_urls) {
        ctl_jw_arr(w, "clientURLs");
        for (size_t i = 0; i < m->n_client_urls; i++)
            ctl_jw_str(w, NULL, m->client_urls[i], strlen(m->client_urls[i]));
        ctl_jw_end_arr(w);
    }
    if (m->is_learner)
        ctl_jw_bool(w, "isLearner", true);
    ctl_jw_end_obj(w);
}

static void member_json(const struct cetcd_member_resp *r, bool with_member)
{
    struct jw w = {stdout, false};

    ctl_jw_obj(&w, NULL);
    ctl_jw_header(&w, &r->header);
    if (with_member)
        ctl_jw_member(&w, "member", &r->member);
    if (r->n_members) {
        ctl_jw_arr(&w, "members");
        for (size_t i = 0; i < r->n_members; i++)
            ctl_jw_member(&w, NULL, &r->members[i]);
        ctl_jw_end_arr(&w);
    }
    ctl_jw_end_obj(&w);
    putchar('\n');
}

static void quoted_line(const char *name, const char *v)
{
    printf("\"%s\" : ", name);
    ctl_go_quote(v, strlen(v));
    putchar('\n');
}

static void member_fields(const struct cetcd_member_resp *r)
{
    ctl_fields_hdr(&r->header);
    for (size_t i = 0; i < r->n_members; i++) {
        const struct cetcd_member *m = &r->members[i];
        printf("\"ID\" : %" PRIu64 "\n", m->id);
        quoted_line("Name", m->name);
        for (size_t k = 0; k < m->n_peer_urls; k++)
            quoted_line("PeerURL", m->peer_urls[k]);
        for (size_t k = 0; k < m->n_client_urls; k++)
            quoted_line("ClientURL", m->client_urls[k]);
        printf("\"IsLearner\" : %s\n\n", m->is_learner ? "true" : "false");
    }
}

static int member_list_out(const struct ctl *c, const struct cetcd_member_resp *r)
{
    static const char *const hdr[] = {"ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS",
                                      "IS LEARNER"};
    struct table t;
    char id[20], peers[2048], clients[2048];

    if (c->fmt == OUT_JSON) {
        member_json(r, false);
        return 0;
    }
    if (c->fmt == OUT_FIELDS) {
        member_fields(r);
        return 0;
    }
    ctl_table_init(&t, hdr, 6);
    for (size_t i = 0; i < r->n_members; i++) {
        const struct cetcd_member *m = &r->members[i];
        snprintf(id, sizeof(id), "%" PRIx64, m->id);
        join(peers, sizeof(peers), m->peer_urls, m->n_peer_urls, ",");
        join(clients, sizeof(clients), m->client_urls, m->n_client_urls, ",");
        const char *cells[] = {id, *m->name ? "started" : "unstarted", m->name, peers, clients,
                               m->is_learner ? "true" : "false"};
        if (c->fmt == OUT_TABLE)
            ctl_table_add(&t, cells);
        else
            printf("%s, %s, %s, %s, %s, %s\n", cells[0], cells[1], cells[2], cells[3], cells[4],
                   cells[5]);
    }
    if (c->fmt == OUT_TABLE)
        ctl_table_print(&t, stdout);
    ctl_table_free(&t);
    return 0;
}

/* Splits --peer-urls into up to 16 URLs inside buf. */
static size_t split_urls(char *buf, const char **urls)
{
    size_t n = 0;
    char *save = NULL;

    for (char *t = strtok_r(buf, ",", &save); t && n < 16; t = strtok_r(NULL, ",", &save))
        urls[n++] = t;
    return n;
}

/* Prints `NAME="value"` with value quoted as Go's %q. */
static void env_line(const char *name, const char *value)
{
    printf("%s=", name);
    ctl_go_quote(value, strlen(value));
    putchar('\n');
}

static void member_add_simple(const struct cetcd_member_resp *r, const char *name,
                              const char *peer_flag)
{
    char cluster[8192];
    size_t off = 0;

    cluster[0] = 0;
    printf("Member %16" PRIx64 " added to cluster %16" PRIx64 "\n\n", r->member.id,
           r->header.cluster_id);
    for (size_t i = 0; i < r->n_members; i++) {
        const struct cetcd_member *m = &r->members[i];
        const char *n = m->id == r->member.id ? name : m->name;
        for (size_t k = 0; k < m->n_peer_urls && off < sizeof(cluster); k++)
            off += (size_t)snprintf(cluster + off, sizeof(cluster) - off, "%s%s=%s",
                                    off ? "," : "", n, m->peer_urls[k]);
    }
    env_line("ETCD_NAME", name);
    env_line("ETCD_INITIAL_CLUSTER", cluster);
    env_line("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer_flag);
    puts("ETCD_INITIAL_CLUSTER_STATE=\"existing\"");
}

static int member_change(struct ctl *c, cetcd_client *cl, const char *sub)
{
    struct cetcd_member_resp r;
    const char *peer_flag = ctl_flag(c, "peer-urls"), *urls[16];
    char buf[4096];
    uint64_t id = 0;
    size_t n = 0;
    int rc;

    if (c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, !strcmp(sub, "add") ? "member name not provided"
                                                           : "member ID is not provided");
    if (strcmp(sub, "add") && (rc = parse_member_id(c->args[0], &id)))
        return rc;
    if ((!strcmp(sub, "add") || !strcmp(sub, "update")) && (!peer_flag || !*peer_flag))
        return ctl_fail(EXIT_BAD_ARGS, "member peer urls not provided");
    if (peer_flag) {
        snprintf(buf, sizeof(buf), "%s", peer_flag);
        n = split_urls(buf, urls);
    }
    if (!strcmp(sub, "add"))
        rc = cetcd_member_add(cl, urls, n, ctl_bool(c, "learner"), &r);
    else if (!strcmp(sub, "remove"))
        rc = cetcd_member_remove(cl, id, &r);
    else if (!strcmp(sub, "update"))
        rc = cetcd_member_update(cl, id, urls, n, &r);
    else
        rc = cetcd_member_promote(cl, id, &r);
    if (rc)
        return ctl_fail_call(cl, rc, NULL);
    if (c->fmt == OUT_JSON)
        member_json(&r, !strcmp(sub, "add"));
    else if (!strcmp(sub, "add"))
        member_add_simple(&r, c->args[0], peer_flag);
    else
        printf("Member %16" PRIx64 " %s cluster %16" PRIx64 "\n", id,
               !strcmp(sub, "remove") ? "removed from"
               : !strcmp(sub, "update") ? "updated in" : "promoted in",
               r.header.cluster_id);
    cetcd_member_resp_free(&r);
    return 0;
}

int ctl_cmd_member(struct ctl *c, const char *sub)
{
    struct cetcd_member_resp r;
    cetcd_client *cl;
    int rc;

    if ((c->fmt == OUT_FIELDS || c->fmt == OUT_TABLE) && strcmp(sub, "list"))
        return ctl_fail(EXIT_BAD_FEATURE, "%s not supported as output format",
                        c->fmt == OUT_TABLE ? "table" : "fields");
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    if (strcmp(sub, "list")) {
        rc = member_change(c, cl, sub);
    } else if ((rc = cetcd_member_list(cl, &r))) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        rc = member_list_out(c, &r);
        cetcd_member_resp_free(&r);
    }
    cetcd_client_free(cl);
    return rc;
}

/* ---------------------------------------------------------------- endpoint lists */

struct eplist {
    const char *eps[CTL_MAX_EPS];
    size_t n;
    char *strs[CTL_MAX_EPS]; /* owned copies for --cluster */
};

static void eplist_free(struct eplist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->strs[i]);
}

/* The user's endpoints, or with --cluster every member's client URLs. */
static int eplist_get(struct ctl *c, struct eplist *l)
{
    struct cetcd_member_resp r;
    cetcd_client *cl;
    int rc;

    memset(l, 0, sizeof(*l));
    if (!ctl_bool(c, "cluster")) {
        for (size_t i = 0; i < c->n_endpoints; i++)
            l->eps[l->n++] = c->endpoints[i];
        return 0;
    }
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    rc = cetcd_member_list(cl, &r);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
        cetcd_client_free(cl);
        return rc;
    }
    for (size_t i = 0; i < r.n_members; i++)
        for (size_t k = 0; k < r.members[i].n_client_urls && l->n < CTL_MAX_EPS; k++) {
            l->strs[l->n] = strdup(r.members[i].client_urls[k]);
            l->eps[l->n] = l->strs[l->n];
            if (l->eps[l->n])
                l->n++;
        }
    cetcd_member_resp_free(&r);
    cetcd_client_free(cl);
    return 0;
}

/* ---------------------------------------------------------------- endpoint status */

struct ep_status {
    const char *ep;
    struct cetcd_status_resp r;
};

static void status_json(const struct ep_status *s, size_t n)
{
    struct jw w = {stdout, false};

    ctl_jw_arr(&w, NULL);
    for (size_t i = 0; i < n; i++) {
        const struct cetcd_status_resp *r = &s[i].r;
        ctl_jw_obj(&w, NULL);
        ctl_jw_str(&w, "Endpoint", s[i].ep, strlen(s[i].ep));
        ctl_jw_obj(&w, "Status");
        ctl_jw_header(&w, &r->header);
        if (*r->version)
            ctl_jw_str(&w, "version", r->version, strlen(r->version));
        if (r->db_size)
            ctl_jw_i64(&w, "dbSize", r->db_size);
        if (r->leader)
            ctl_jw_u64(&w, "leader", r->leader);
        if (r->raft_index)
            ctl_jw_u64(&w, "raftIndex", r->raft_index);
        if (r->raft_term)
            ctl_jw_u64(&w, "raftTerm", r->raft_term);
        if (r->raft_applied_index)
            ctl_jw_u64(&w, "raftAppliedIndex", r->raft_applied_index);
        if (r->n_errors) {
            ctl_jw_arr(&w, "errors");
            for (size_t k = 0; k < r->n_errors; k++)
                ctl_jw_str(&w, NULL, r->errors[k], strlen(r->errors[k]));
            ctl_jw_end_arr(&w);
        }
        if (r->db_size_in_use)
            ctl_jw_i64(&w, "dbSizeInUse", r->db_size_in_use);
        if (r->is_learner)
            ctl_jw_bool(&w, "isLearner", true);
        ctl_jw_end_obj(&w);
        ctl_jw_end_obj(&w);
    }
    ctl_jw_end_arr(&w);
    putchar('\n');
}

static void status_fields(const struct ep_status *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct cetcd_status_resp *r = &s[i].r;
        ctl_fields_hdr(&r->header);
        quoted_line("Version", r->version);
        printf("\"DBSize\" : %" PRId64 "\n\"Leader\" : %" PRIu64 "\n\"IsLearner\" : %s\n"
               "\"RaftIndex\" : %" PRIu64 "\n\"RaftTerm\" : %" PRIu64 "\n"
               "\"RaftAppliedIndex\" : %" PRIu64 "\n\"Errors\" : [",
               r->db_size, r->leader, r->is_learner ? "true" : "false", r->raft_index,
               r->raft_term, r->raft_applied_index);
        for (size_t k = 0; k < r->n_errors; k++)
            printf("%s%s", k ? " " : "", r->errors[k]);
        puts("]");
        quoted_line("Endpoint", s[i].ep);
        putchar('\n');
    }
}

static void status_text(const struct ctl *c, const struct ep_status *s, size_t n)
{
    static const char *const hdr[] = {"ENDPOINT", "ID", "VERSION", "DB SIZE", "IS LEADER",
                                      "IS LEARNER", "RAFT TERM", "RAFT INDEX",
                                      "RAFT APPLIED INDEX", "ERRORS"};
    struct table t;

    ctl_table_init(&t, hdr, 10);
    for (size_t i = 0; i < n; i++) {
        const struct cetcd_status_resp *r = &s[i].r;
        char id[20], size[32], term[24], idx[24], applied[24], errs[2048];
        snprintf(id, sizeof(id), "%" PRIx64, r->header.member_id);
        ctl_out_human_bytes((uint64_t)r->db_size, size, sizeof(size));
        snprintf(term, sizeof(term), "%" PRIu64, r->raft_term);
        snprintf(idx, sizeof(idx), "%" PRIu64, r->raft_index);
        snprintf(applied, sizeof(applied), "%" PRIu64, r->raft_applied_index);
        join(errs, sizeof(errs), r->errors, r->n_errors, ", ");
        const char *cells[] = {s[i].ep, id, r->version,
                               r->leader == r->header.member_id ? "true" : "false",
                               r->is_learner ? "true" : "false", term, idx, applied, errs};
        const char *row[] = {cells[0], cells[1], cells[2], size, cells[3], cells[4],
                             cells[5], cells[6], cells[7], cells[8]};
        if (c->fmt == OUT_TABLE)
            ctl_table_add(&t, row);
        else
            printf("%s, %s, %s, %s, %s, %s, %s, %s, %s, %s\n", row[0], row[1], row[2], row[3],
                   row[4], row[5], row[6], row[7], row[8], row[9]);
    }
    if (c->fmt == OUT_TABLE)
        ctl_table_print(&t, stdout);
    ctl_table_free(&t);
}

static int endpoint_status(struct ctl *c, const struct eplist *l)
{
    static struct ep_status st[CTL_MAX_EPS];
    size_t n = 0;
    int rc = 0;

    for (size_t i = 0; i < l->n; i++) {
        cetcd_client *cl;
        int e = ctl_client(c, &l->eps[i], 1, &cl);
        if (e) {
            rc = EXIT_ERROR;
            continue;
        }
        e = cetcd_status(cl, NULL, &st[n].r);
        if (e) {
            fprintf(stderr, "Failed to get the status of endpoint %s (%s)\n", l->eps[i],
                    e == CE_UNREACHABLE || e == CE_TIMEOUT ? "context deadline exceeded"
                                                          : cetcd_client_errmsg(cl));
            rc = EXIT_ERROR;
        } else {
            st[n++].ep = l->eps[i];
        }
        cetcd_client_free(cl);
    }
    if (c->fmt == OUT_JSON)
        status_json(st, n);
    else if (c->fmt == OUT_FIELDS)
        status_fields(st, n);
    else
        status_text(c, st, n);
    for (size_t i = 0; i < n; i++)
        cetcd_status_resp_free(&st[i].r);
    return rc;
}

/* ---------------------------------------------------------------- endpoint health */

struct ep_health {
    const char *ep;
    bool health;
    char took[32];
    char error[512];
};

static int64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void check_health(struct ctl *c, const char *ep, struct ep_health *h)
{
    struct cetcd_range_req req = {.key = "health", .key_len = 6};
    struct cetcd_range_resp rr;
    cetcd_client *cl;
    int64_t t0 = now_ns();
    int rc;

    h->ep = ep;
    if (ctl_client(c, &ep, 1, &cl)) {
        snprintf(h->error, sizeof(h->error), "failed to create client");
        return;
    }
    rc = cetcd_range(cl, &req, &rr);
    ctl_out_go_duration(now_ns() - t0, h->took, sizeof(h->took));
    if (rc == 0 || rc == CE_PERMISSION_DENIED) {
        h->health = true;
        cetcd_range_resp_free(&rr);
    } else {
        snprintf(h->error, sizeof(h->error), "%s",
                 rc == CE_UNREACHABLE || rc == CE_TIMEOUT ? "context deadline exceeded"
                                                          : cetcd_client_errmsg(cl));
    }
    /* etcdctl 3.4 does not look at alarms here (3.5 does) */
    cetcd_client_free(cl);
}

static void health_print(const struct ctl *c, const struct ep_health *h, size_t n)
{
    static const char *const hdr[] = {"ENDPOINT", "HEALTH", "TOOK", "ERROR"};
    struct jw w = {stdout, false};
    struct table t;

    if (c->fmt == OUT_JSON) {
        ctl_jw_arr(&w, NULL);
        for (size_t i = 0; i < n; i++) {
            ctl_jw_obj(&w, NULL);
            ctl_jw_str(&w, "endpoint", h[i].ep, strlen(h[i].ep));
            ctl_jw_bool(&w, "health", h[i].health);
            ctl_jw_str(&w, "took", h[i].took, strlen(h[i].took));
            if (h[i].error[0])
                ctl_jw_str(&w, "error", h[i].error, strlen(h[i].error));
            ctl_jw_end_obj(&w);
        }
        ctl_jw_end_arr(&w);
        putchar('\n');
        return;
    }
    if (c->fmt == OUT_FIELDS) {
        for (size_t i = 0; i < n; i++) {
            quoted_line("Endpoint", h[i].ep);
            printf("\"Health\" : %s\n\"Took\" : %s\n\"Error\" : %s\n\n",
                   h[i].health ? "true" : "false", h[i].took, h[i].error);
        }
        return;
    }
    if (c->fmt == OUT_TABLE) {
        ctl_table_init(&t, hdr, 4);
        for (size_t i = 0; i < n; i++) {
            const char *cells[] = {h[i].ep, h[i].health ? "true" : "false", h[i].took, h[i].error};
            ctl_table_add(&t, cells);
        }
        ctl_table_print(&t, stdout);
        ctl_table_free(&t);
        return;
    }
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
        if (h[i].health)
            fprintf(stderr, "%s is healthy: successfully committed proposal: took = %s\n",
                    h[i].ep, h[i].took);
        else
            fprintf(stderr, "%s is unhealthy: failed to commit proposal: %s\n", h[i].ep,
                    h[i].error);
    }
}

static int endpoint_health(struct ctl *c, const struct eplist *l)
{
    static struct ep_health h[CTL_MAX_EPS];
    bool all_ok = true;

    for (size_t i = 0; i < l->n; i++) {
        memset(&h[i], 0, sizeof(h[i]));
        check_health(c, l->eps[i], &h[i]);
        all_ok &= h[i].health;
    }
    health_print(c, h, l->n);
    return all_ok ? 0 : ctl_fail(EXIT_ERROR, "unhealthy cluster");
}

/* ---------------------------------------------------------------- endpoint hashkv */

static int endpoint_hashkv(struct ctl *c, const struct eplist *l)
{
    static const char *const hdr[] = {"ENDPOINT", "HASH"};
    struct jw w = {stdout, false};
    struct table t;
    const char *rev_flag = ctl_flag(c, "rev");
    int64_t rev = rev_flag ? strtoll(rev_flag, NULL, 10) : 0;
    char buf[1200], last_err[1200] = "";
    int rc = 0;

    ctl_table_init(&t, hdr, 2);
    if (c->fmt == OUT_JSON)
        ctl_jw_arr(&w, NULL);
    for (size_t i = 0; i < l->n; i++) {
        struct cetcd_hash_kv_resp r;
        cetcd_client *cl;
        char hash[16];
        if (ctl_client(c, &l->eps[i], 1, &cl)) {
            rc = EXIT_ERROR;
            continue;
        }
        int e = cetcd_hash_kv(cl, NULL, rev, &r);
        if (e) {
            snprintf(last_err, sizeof(last_err), "%s", ctl_err_text(cl, e, buf, sizeof(buf)));
            fprintf(stderr, "Failed to get the hash of endpoint %s (%s)\n", l->eps[i], last_err);
            rc = EXIT_ERROR;
            cetcd_client_free(cl);
            continue;
        }
        snprintf(hash, sizeof(hash), "%" PRIu32, r.hash);
        if (c->fmt == OUT_JSON) {
            ctl_jw_obj(&w, NULL);
            ctl_jw_str(&w, "Endpoint", l->eps[i], strlen(l->eps[i]));
            ctl_jw_obj(&w, "HashKV");
            ctl_jw_header(&w, &r.header);
            if (r.hash)
                ctl_jw_u64(&w, "hash", r.hash);
            if (r.compact_revision)
                ctl_jw_i64(&w, "compact_revision", r.compact_revision);
            ctl_jw_end_obj(&w);
            ctl_jw_end_obj(&w);
        } else if (c->fmt == OUT_TABLE) {
            const char *cells[] = {l->eps[i], hash};
            ctl_table_add(&t, cells);
        } else {
            printf("%s, %s\n", l->eps[i], hash);
        }
        cetcd_hash_kv_resp_free(&r);
        cetcd_client_free(cl);
    }
    if (c->fmt == OUT_JSON) {
        ctl_jw_end_arr(&w);
        putchar('\n');
    } else if (c->fmt == OUT_TABLE) {
        ctl_table_print(&t, stdout);
    }
    ctl_table_free(&t);
    if (last_err[0]) /* as etcdctl: the hashes it got, then the last error */
        return ctl_fail(EXIT_ERROR, "%s", last_err);
    return rc;
}

int ctl_cmd_endpoint(struct ctl *c, const char *sub)
{
    struct eplist l;
    int rc;

    if (c->fmt == OUT_FIELDS && !strcmp(sub, "hashkv"))
        return ctl_fail(EXIT_BAD_FEATURE, "fields not supported as output format");
    if ((rc = eplist_get(c, &l)))
        return rc;
    if (!strcmp(sub, "status"))
        rc = endpoint_status(c, &l);
    else if (!strcmp(sub, "health"))
        rc = endpoint_health(c, &l);
    else
        rc = endpoint_hashkv(c, &l);
    eplist_free(&l);
    return rc;
}

/* ---------------------------------------------------------------- alarm, defrag */

int ctl_cmd_alarm(struct ctl *c, const char *sub)
{
    struct cetcd_alarm_resp r;
    struct jw w = {stdout, false};
    cetcd_client *cl;
    int rc;

    if (c->fmt == OUT_TABLE || c->fmt == OUT_FIELDS)
        return ctl_fail(EXIT_BAD_FEATURE, "%s not supported as output format",
                        c->fmt == OUT_TABLE ? "table" : "fields");
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    rc = !strcmp(sub, "list") ? cetcd_alarm_list(cl, &r)
                              : cetcd_alarm_disarm(cl, 0, CETCD_ALARM_NONE, &r);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
        goto out_free_client;
    }
    if (c->fmt == OUT_JSON) {
        ctl_jw_obj(&w, NULL);
        ctl_jw_header(&w, &r.header);
        if (r.n_alarms) {
            ctl_jw_arr(&w, "alarms");
            for (size_t i = 0; i < r.n_alarms; i++) {
                ctl_jw_obj(&w, NULL);
                if (r.alarms[i].member_id)
                    ctl_jw_u64(&w, "memberID", r.alarms[i].member_id);
                if (r.alarms[i].alarm)
                    ctl_jw_i64(&w, "alarm", r.alarms[i].alarm);
                ctl_jw_end_obj(&w);
            }
            ctl_jw_end_arr(&w);
        }
        ctl_jw_end_obj(&w);
        putchar('\n');
    } else {
        for (size_t i = 0; i < r.n_alarms; i++)
            printf("memberID:%" PRIu64 " alarm:%s \n", r.alarms[i].member_id,
                   alarm_names[r.alarms[i].alarm]);
    }
    cetcd_alarm_resp_free(&r);
out_free_client:
    cetcd_client_free(cl);
    return rc;
}

int ctl_cmd_defrag(struct ctl *c)
{
    struct eplist l;
    char buf[1200];
    int rc, failed = 0;

    if ((rc = eplist_get(c, &l)))
        return rc;
    for (size_t i = 0; i < l.n; i++) {
        struct cetcd_header_resp r;
        cetcd_client *cl;
        if (ctl_client(c, &l.eps[i], 1, &cl)) {
            failed = 1;
            continue;
        }
        int e = cetcd_defragment(cl, NULL, &r);
        if (e) {
            fflush(stdout);
            fprintf(stderr, "Failed to defragment etcd member[%s] (%s)\n", l.eps[i],
                    ctl_err_text(cl, e, buf, sizeof(buf)));
            failed = 1;
        } else {
            printf("Finished defragmenting etcd member[%s]\n", l.eps[i]);
            cetcd_header_resp_free(&r);
        }
        cetcd_client_free(cl);
    }
    eplist_free(&l);
    return failed ? EXIT_ERROR : 0;
}

/* ---------------------------------------------------------------- move-leader */

int ctl_cmd_move_leader(struct ctl *c)
{
    struct cetcd_status_resp st;
    struct cetcd_header_resp r;
    cetcd_client *cl = NULL;
    uint64_t target, leader = 0;
    char *end;
    int rc;

    if (c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "move-leader command needs 1 argument");
    errno = 0;
    target = strtoull(c->args[0], &end, 16);
    if (!*c->args[0] || *end || errno)
        return ctl_fail(EXIT_BAD_ARGS, "strconv.ParseUint: parsing \"%s\": invalid syntax", c->args[0]);
    for (size_t i = 0; i < c->n_endpoints && !leader; i++) {
        if ((rc = ctl_client(c, &c->endpoints[i], 1, &cl)))
            return rc;
        if ((rc = cetcd_status(cl, NULL, &st))) {
            rc = ctl_fail_call(cl, rc, NULL);
            cetcd_client_free(cl);
            return rc;
        }
        if (st.header.member_id == st.leader)
            leader = st.leader;
        cetcd_status_resp_free(&st);
        if (!leader) {
            cetcd_client_free(cl);
            cl = NULL;
        }
    }
    if (!leader) {
        fflush(stdout);
        fputs("Error: no leader endpoint given at [", stderr);
        for (size_t i = 0; i < c->n_endpoints; i++)
            fprintf(stderr, "%s%s", i ? " " : "", c->endpoints[i]);
        fputs("]\n", stderr);
        return EXIT_BAD_ARGS;
    }
    rc = cetcd_move_leader(cl, NULL, target, &r);
    if (rc) {
        rc = ctl_fail_call(cl, rc, NULL);
    } else {
        printf("Leadership transferred from %" PRIx64 " to %" PRIx64 "\n", leader, target);
        cetcd_header_resp_free(&r);
    }
    cetcd_client_free(cl);
    return rc;
}
