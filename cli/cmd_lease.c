/*
 * cmd_lease.c: cetcdctl lease grant|revoke|timetolive|list|keep-alive, with etcdctl 3.4's
 * messages. Lease IDs are hexadecimal on the command line and in simple output (%016x); the json
 * format prints clientv3's flattened response structs (header fields at the top level); fields
 * prints etcdctl's printer_fields lines. As in etcdctl, -w table is refused only when a result
 * is to be shown, after the request was made (a lease is granted or revoked all the same).
 */
#include "ctl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int no_table(void)
{
    return ctl_fail(EXIT_BAD_FEATURE, "table not supported as output format");
}

static int parse_id(const char *s, int64_t *id)
{
    char *end;

    errno = 0;
    *id = (int64_t)strtoull(s, &end, 16);
    if (!*s || *end || errno)
        return ctl_fail(EXIT_BAD_ARGS, "bad lease ID arg (strconv.ParseInt: parsing \"%s\": invalid syntax), expecting ID in Hex", s);
    return 0;
}

static int lease_grant(struct ctl *c, cetcd_client *cl)
{
    struct cetcd_lease_grant_resp r;
    struct jw w = {stdout, false};
    char *end;
    int64_t ttl;
    int rc;

    errno = 0;
    ttl = strtoll(c->args[0], &end, 10);
    if (!*c->args[0] || *end || errno)
        return ctl_fail(EXIT_BAD_ARGS, "bad TTL (strconv.ParseInt: parsing \"%s\": invalid syntax)", c->args[0]);
    if ((rc = cetcd_lease_grant(cl, ttl, 0, &r)))
        return ctl_fail_call(cl, rc, "failed to grant lease");
    if (c->fmt == OUT_TABLE) {
        rc = no_table();
    } else if (c->fmt == OUT_FIELDS) {
        ctl_fields_hdr(&r.header);
        printf("\"ID\" : %" PRId64 "\n\"TTL\" : %" PRId64 "\n", r.id, r.ttl);
    } else if (c->fmt == OUT_JSON) {
        ctl_jw_obj(&w, NULL);
        ctl_jw_header_flat(&w, &r.header);
        ctl_jw_i64(&w, "ID", r.id);
        ctl_jw_i64(&w, "TTL", r.ttl);
        ctl_jw_str(&w, "Error", r.error, strlen(r.error));
        ctl_jw_end_obj(&w);
        putchar('\n');
    } else {
        printf("lease %016" PRIx64 " granted with TTL(%" PRId64 "s)\n", (uint64_t)r.id, r.ttl);
    }
    cetcd_lease_grant_resp_free(&r);
    return rc;
}

static int lease_revoke(struct ctl *c, cetcd_client *cl, int64_t id)
{
    struct cetcd_header_resp r;
    struct jw w = {stdout, false};
    int rc;

    if ((rc = cetcd_lease_revoke(cl, id, &r)))
        return ctl_fail_call(cl, rc, "failed to revoke lease");
    if (c->fmt == OUT_TABLE) {
        rc = no_table();
    } else if (c->fmt == OUT_FIELDS) {
        ctl_fields_hdr(&r.header);
    } else if (c->fmt == OUT_JSON) {
        ctl_jw_obj(&w, NULL);
        ctl_jw_header(&w, &r.header);
        ctl_jw_end_obj(&w);
        putchar('\n');
    } else {
        printf("lease %016" PRIx64 " revoked\n", (uint64_t)id);
    }
    cetcd_header_resp_free(&r);
    return rc;
}

static void ttl_simple(const struct cetcd_lease_ttl_resp *r, bool keys)
{
    if (r->granted_ttl == 0 && r->ttl == -1) {
        printf("lease %016" PRIx64 " already expired\n", (uint64_t)r->id);
        return;
    }
    printf("lease %016" PRIx64 " granted with TTL(%" PRId64 "s), remaining(%" PRId64 "s)",
           (uint64_t)r->id, r->granted_ttl, r->ttl);
    if (keys) {
        fputs(", attached keys([", stdout);
        for (size_t i = 0; i < r->n_keys; i++) {
            if (i)
                putchar(' ');
            fwrite(r->keys[i].key, 1, r->keys[i].key_len, stdout);
        }
        fputs("])", stdout);
    }
    putchar('\n');
}

static int lease_timetolive(struct ctl *c, cetcd_client *cl, int64_t id)
{
    struct cetcd_lease_ttl_resp r;
    struct jw w = {stdout, false};
    bool keys = ctl_bool(c, "keys");
    int rc;

    if ((rc = cetcd_lease_timetolive(cl, id, keys, &r)))
        return ctl_fail_call(cl, rc, NULL);
    if (c->fmt == OUT_TABLE) {
        rc = no_table();
    } else if (c->fmt == OUT_FIELDS) {
        ctl_fields_hdr(&r.header);
        printf("\"ID\" : %" PRId64 "\n\"TTL\" : %" PRId64 "\n\"GrantedTTL\" : %" PRId64 "\n",
               r.id, r.ttl, r.granted_ttl);
        for (size_t i = 0; i < r.n_keys; i++) {
            fputs("\"Key\" : ", stdout);
            ctl_go_quote(r.keys[i].key, r.keys[i].key_len);
            putchar('\n');
        }
    } else if (c->fmt == OUT_JSON) {
        ctl_jw_obj(&w, NULL);
        ctl_jw_header_flat(&w, &r.header);
        ctl_jw_i64(&w, "id", r.id);
        ctl_jw_i64(&w, "ttl", r.ttl);
        ctl_jw_i64(&w, "granted-ttl", r.granted_ttl);
        if (r.n_keys) {
            ctl_jw_arr(&w, "keys");
            for (size_t i = 0; i < r.n_keys; i++)
                ctl_jw_b64(&w, NULL, r.keys[i].key, r.keys[i].key_len);
            ctl_jw_end_arr(&w);
        } else {
            ctl_jw_null(&w, "keys");
        }
        ctl_jw_end_obj(&w);
        putchar('\n');
    } else {
        ttl_simple(&r, keys);
    }
    cetcd_lease_ttl_resp_free(&r);
    return rc;
}

static int lease_list(struct ctl *c, cetcd_client *cl)
{
    struct cetcd_lease_list_resp r;
    struct jw w = {stdout, false};
    int rc;

    if ((rc = cetcd_lease_leases(cl, &r)))
        return ctl_fail_call(cl, rc, "failed to list leases");
    if (c->fmt == OUT_TABLE) {
        rc = no_table();
    } else if (c->fmt == OUT_FIELDS) {
        ctl_fields_hdr(&r.header);
        for (size_t i = 0; i < r.n_ids; i++)
            printf("\"ID\" : %" PRId64 "\n", r.ids[i]);
    } else if (c->fmt == OUT_JSON) {
        ctl_jw_obj(&w, NULL);
        ctl_jw_header_flat(&w, &r.header);
        ctl_jw_arr(&w, "leases");
        for (size_t i = 0; i < r.n_ids; i++) {
            ctl_jw_obj(&w, NULL);
            ctl_jw_i64(&w, "id", r.ids[i]);
            ctl_jw_end_obj(&w);
        }
        ctl_jw_end_arr(&w);
        ctl_jw_end_obj(&w);
        putchar('\n');
    } else {
        printf("found %zu leases\n", r.n_ids);
        for (size_t i = 0; i < r.n_ids; i++)
            printf("%016" PRIx64 "\n", (uint64_t)r.ids[i]);
    }
    cetcd_lease_list_resp_free(&r);
    return rc;
}

/* display.KeepAlive; 0, or EXIT_BAD_FEATURE (reported) for the table format. */
static int keepalive_print(const struct ctl *c, const struct cetcd_lease_ttl_resp *r)
{
    struct jw w = {stdout, false};

    if (c->fmt == OUT_TABLE)
        return no_table();
    if (c->fmt == OUT_FIELDS) {
        ctl_fields_hdr(&r->header);
        printf("\"ID\" : %" PRId64 "\n\"TTL\" : %" PRId64 "\n", r->id, r->ttl);
    } else if (c->fmt == OUT_JSON) {
        ctl_jw_obj(&w, NULL);
        ctl_jw_header_flat(&w, &r->header);
        ctl_jw_i64(&w, "ID", r->id);
        ctl_jw_i64(&w, "TTL", r->ttl);
        ctl_jw_end_obj(&w);
        putchar('\n');
    } else {
        printf("lease %016" PRIx64 " keepalived with TTL(%" PRId64 ")\n", (uint64_t)r->id, r->ttl);
    }
    fflush(stdout);
    return 0;
}

/* --once: one renewal; a lease gone is clientv3's ErrLeaseNotFound (ExitBadConnection). */
static int keepalive_once(struct ctl *c, cetcd_client *cl, int64_t id)
{
    struct cetcd_lease_ttl_resp r;
    int rc;

    if ((rc = cetcd_lease_keepalive_once(cl, id, &r)))
        return ctl_fail_call(cl, rc, NULL), EXIT_BAD_CONN;
    if (r.ttl <= 0)
        rc = ctl_fail(EXIT_BAD_CONN, "%s", ce_strerror(CE_LEASE_NOT_FOUND));
    else
        rc = keepalive_print(c, &r);
    cetcd_lease_ttl_resp_free(&r);
    return rc;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(int64_t when_ms)
{
    int64_t now = now_ms();
    struct timespec ts;

    if (when_ms <= now)
        return;
    ts.tv_sec = (when_ms - now) / 1000;
    ts.tv_nsec = (long)((when_ms - now) % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/*
 * clientv3's KeepAlive as etcdctl uses it: a renewal at once, then TTL/3 after each answer,
 * every one printed; failed renewals are retried every 500 ms. The lease counts as gone
 * ("lease ... expired or revoked." in the simple format, exit 0) when the server answers TTL 0,
 * or when no answer came before the deadline: the last TTL after the last answer, or dial
 * timeout + 1 s before the first one.
 */
static int keepalive_loop(struct ctl *c, cetcd_client *cl, int64_t id)
{
    int64_t deadline = now_ms() + c->dial_ms + 1000, next = 0;
    struct cetcd_lease_ttl_resp r;
    int rc;

    for (;;) {
        sleep_until(next);
        if (now_ms() >= deadline)
            break;
        if (cetcd_lease_keepalive_once(cl, id, &r)) {
            next = now_ms() + 500;
            continue;
        }
        if (r.ttl <= 0) {
            cetcd_lease_ttl_resp_free(&r);
            break;
        }
        rc = keepalive_print(c, &r);
        deadline = now_ms() + r.ttl * 1000;
        next = now_ms() + r.ttl * 1000 / 3;
        cetcd_lease_ttl_resp_free(&r);
        if (rc)
            return rc;
    }
    if (c->fmt == OUT_SIMPLE)
        printf("lease %016" PRIx64 " expired or revoked.\n", (uint64_t)id);
    return 0;
}

int ctl_cmd_lease(struct ctl *c, const char *sub)
{
    cetcd_client *cl;
    int64_t id = 0;
    int rc;

    if (!strcmp(sub, "grant") && c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "lease grant command needs TTL argument");
    if (!strcmp(sub, "revoke") && c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "lease revoke command needs 1 argument");
    if (!strcmp(sub, "timetolive") && c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "lease timetolive command needs lease ID as argument");
    if (!strcmp(sub, "keep-alive") && c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "lease keep-alive command needs lease ID as argument");
    if (strcmp(sub, "grant") && strcmp(sub, "list") && (rc = parse_id(c->args[0], &id)))
        return rc;
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    if (!strcmp(sub, "grant"))
        rc = lease_grant(c, cl);
    else if (!strcmp(sub, "revoke"))
        rc = lease_revoke(c, cl, id);
    else if (!strcmp(sub, "timetolive"))
        rc = lease_timetolive(c, cl, id);
    else if (!strcmp(sub, "list"))
        rc = lease_list(c, cl);
    else if (ctl_bool(c, "once"))
        rc = keepalive_once(c, cl, id);
    else
        rc = keepalive_loop(c, cl, id);
    cetcd_client_free(cl);
    return rc;
}
