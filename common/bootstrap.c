/*
 * bootstrap.c: the membership entry's text form (format documented in bootstrap.h).
 *
 * Parsing is line by line and strict about values, lenient about layout: spaces and tabs
 * around a line, a key and a value are trimmed and a trailing '\r' is dropped (an entry edited
 * by hand or on another system still reads), but a known key with a bad value, a key given
 * twice, a line without '=' or a NUL byte is refused with the line number, because a member
 * that starts from a misread entry can join the wrong cluster. Values:
 *   initial-cluster-state  exactly "new" or "existing" (required)
 *   initial-cluster        name=http(s)://host:port[,...], names non-empty (required)
 *   joined                 exactly "true" or "false" (absent = false)
 *   member-id              exactly 16 hex digits, not all zero (absent = 0)
 *   data-uid               1..63 printable non-space ASCII characters (absent = NULL)
 *   restore-from           an absolute path, 2..4095 bytes, no control characters, not ending
 *                          in a space (absent = NULL); only in an entry with initial-cluster-state=new (a member
 *                          joining an existing cluster gets its data from the leader)
 * Invariant: whatever bootstrap_entry_format writes, bootstrap_entry_parse reads back equal
 * (format refuses, with CE_INVAL, an entry parse would refuse: no initial-cluster, or a value
 * that breaks the rules above), and formatting is a pure function of the entry: keys in the
 * header's order, member-id omitted when 0, data-uid when NULL or "" (so parse gives NULL
 * back for "") and restore-from when NULL, each line ending in '\n'.
 */
#include "bootstrap.h"
#include "err.h"
#include "urlcheck.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DATA_UID_MAX 63 /* the operator keeps uids in char[64] */
#define RESTORE_PATH_MAX 4095

enum key {
    KEY_STATE, KEY_CLUSTER, KEY_JOINED, KEY_MEMBER_ID, KEY_DATA_UID, KEY_RESTORE_FROM, KEY_COUNT
};

static const char *const key_names[KEY_COUNT] = {
    "initial-cluster-state", "initial-cluster", "joined", "member-id", "data-uid",
    "restore-from",
};

/* A slice of the input. */
struct span {
    const char *p;
    size_t n;
};

static struct span trim(struct span s)
{
    while (s.n && (s.p[0] == ' ' || s.p[0] == '\t'))
        s.p++, s.n--;
    while (s.n && (s.p[s.n - 1] == ' ' || s.p[s.n - 1] == '\t' || s.p[s.n - 1] == '\r'))
        s.n--;
    return s;
}

static bool span_is(struct span s, const char *lit)
{
    return strlen(lit) == s.n && !memcmp(s.p, lit, s.n);
}

static int find_key(struct span k)
{
    for (int i = 0; i < KEY_COUNT; i++)
        if (span_is(k, key_names[i]))
            return i;
    return -1;
}

static bool parse_hex16(struct span v, uint64_t *out)
{
    uint64_t x = 0;

    if (v.n != 16)
        return false;
    for (size_t i = 0; i < 16; i++) {
        char c = v.p[i];
        int d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F')
            d = c - 'A' + 10;
        else
            return false;
        x = (x << 4) | (uint64_t)d;
    }
    *out = x;
    return x != 0;
}

static bool valid_uid(struct span v)
{
    if (v.n == 0 || v.n > DATA_UID_MAX)
        return false;
    for (size_t i = 0; i < v.n; i++)
        if (v.p[i] <= ' ' || v.p[i] > '~')
            return false;
    return true;
}

/* An absolute path without control characters and not ending in a space (which parsing would
 * trim): a file the member will open. */
static bool valid_restore_path(struct span v)
{
    if (v.n < 2 || v.n > RESTORE_PATH_MAX || v.p[0] != '/' || v.p[v.n - 1] == ' ')
        return false;
    for (size_t i = 0; i < v.n; i++)
        if ((unsigned char)v.p[i] < ' ' || v.p[i] == 0x7f)
            return false;
    return true;
}

/* "name=url[,name=url...]": every name non-empty and free of '=', every URL http(s)://h:p. */
static bool valid_cluster(struct span v)
{
    char url[512];
    size_t i = 0;

    if (v.n == 0)
        return false;
    while (i <= v.n) {
        size_t start = i, eq = 0, end;
        while (i < v.n && v.p[i] != ',')
            i++;
        end = i++;
        for (size_t j = start; j < end && !eq; j++)
            if (v.p[j] == '=')
                eq = j;
        if (!eq || eq == start || end - eq - 1 >= sizeof(url))
            return false;
        memcpy(url, v.p + eq + 1, end - eq - 1);
        url[end - eq - 1] = 0;
        if (memchr(url, '=', end - eq - 1) || !url_is_http(url, false, 1))
            return false;
    }
    return true;
}

static int set_string(char **field, struct span v)
{
    *field = strndup(v.p, v.n);
    return *field ? 0 : CE_NOMEM;
}

/* Stores value v of key k in e; CE_INVAL if v is not a valid value for k. */
static int set_value(struct bootstrap_entry *e, enum key k, struct span v)
{
    switch (k) {
    case KEY_STATE:
        if (!span_is(v, "new") && !span_is(v, "existing"))
            return CE_INVAL;
        e->state_new = span_is(v, "new");
        return 0;
    case KEY_CLUSTER:
        return valid_cluster(v) ? set_string(&e->initial_cluster, v) : CE_INVAL;
    case KEY_JOINED:
        if (!span_is(v, "true") && !span_is(v, "false"))
            return CE_INVAL;
        e->joined = span_is(v, "true");
        return 0;
    case KEY_MEMBER_ID:
        return parse_hex16(v, &e->member_id) ? 0 : CE_INVAL;
    case KEY_DATA_UID:
        return valid_uid(v) ? set_string(&e->data_uid, v) : CE_INVAL;
    case KEY_RESTORE_FROM:
        return valid_restore_path(v) ? set_string(&e->restore_from, v) : CE_INVAL;
    case KEY_COUNT:
        break;
    }
    return CE_INVAL;
}

static const char *value_hint(enum key k)
{
    switch (k) {
    case KEY_STATE:
        return "want \"new\" or \"existing\"";
    case KEY_CLUSTER:
        return "want name=http(s)://host:port[,name=url...]";
    case KEY_JOINED:
        return "want \"true\" or \"false\"";
    case KEY_MEMBER_ID:
        return "want 16 hex digits, not all zero";
    case KEY_DATA_UID:
        return "want 1..63 printable characters without spaces";
    case KEY_RESTORE_FROM:
        return "want an absolute path to a snapshot file";
    case KEY_COUNT:
        break;
    }
    return "bad value";
}

/* One non-blank, non-comment line (already trimmed); seen[] records the line of each key found
 * so far (0 = not yet). */
static int parse_line(struct bootstrap_entry *e, struct span line, int lineno, int seen[],
                      char *err, size_t errsz)
{
    const char *eq = memchr(line.p, '=', line.n);
    struct span k, v;
    int key, rc;

    if (memchr(line.p, 0, line.n))
        return ce_errf(err, errsz, CE_INVAL, "line %d: contains a NUL byte", lineno);
    if (!eq)
        return ce_errf(err, errsz, CE_INVAL, "line %d: \"%.*s\": want key=value", lineno,
                       (int)line.n, line.p);
    k = trim((struct span){line.p, (size_t)(eq - line.p)});
    v = trim((struct span){eq + 1, line.n - (size_t)(eq - line.p) - 1});
    key = find_key(k);
    if (key < 0)
        return 0; /* a key from a newer writer */
    if (seen[key])
        return ce_errf(err, errsz, CE_INVAL, "line %d: %s given twice", lineno, key_names[key]);
    seen[key] = lineno;
    rc = set_value(e, (enum key)key, v);
    if (rc == CE_INVAL)
        return ce_errf(err, errsz, rc, "line %d: invalid %s \"%.*s\": %s", lineno,
                       key_names[key], (int)(v.n > 200 ? 200 : v.n), v.p,
                       value_hint((enum key)key));
    if (rc)
        return ce_errf(err, errsz, rc, "line %d: %s", lineno, ce_strerror(rc));
    return 0;
}

int bootstrap_entry_parse(const char *text, size_t len, struct bootstrap_entry *out, char *err,
                          size_t errsz)
{
    int seen[KEY_COUNT] = {0};
    size_t pos = 0;
    int lineno = 0, rc = 0;

    memset(out, 0, sizeof(*out));
    if (err && errsz)
        err[0] = 0;
    while (pos < len && !rc) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        struct span line = trim((struct span){text + pos, end - pos});

        lineno++;
        pos = end + 1;
        if (line.n == 0 || line.p[0] == '#')
            continue;
        rc = parse_line(out, line, lineno, seen, err, errsz);
    }
    if (!rc && (!seen[KEY_STATE] || !seen[KEY_CLUSTER]))
        rc = ce_errf(err, errsz, CE_INVAL, "%s is missing",
                     key_names[seen[KEY_STATE] ? KEY_CLUSTER : KEY_STATE]);
    if (!rc && out->restore_from && !out->state_new)
        rc = ce_errf(err, errsz, CE_INVAL, "line %d: restore-from needs "
                     "initial-cluster-state=new (a member that joins an existing cluster gets "
                     "its data from the leader)", seen[KEY_RESTORE_FROM]);
    if (rc)
        bootstrap_entry_clear(out);
    return rc;
}

/* An empty data-uid is written as none (parse never yields an empty one). */
static bool has_uid(const struct bootstrap_entry *e)
{
    return e->data_uid && e->data_uid[0];
}

/* The checks parse applies, so that whatever format writes reads back. */
static bool entry_is_valid(const struct bootstrap_entry *e)
{
    return e->initial_cluster &&
           valid_cluster((struct span){e->initial_cluster, strlen(e->initial_cluster)}) &&
           (!has_uid(e) || valid_uid((struct span){e->data_uid, strlen(e->data_uid)})) &&
           (!e->restore_from ||
            (e->state_new &&
             valid_restore_path((struct span){e->restore_from, strlen(e->restore_from)})));
}

int bootstrap_entry_format(const struct bootstrap_entry *e, char **out)
{
    char id[40] = "", *buf;
    size_t cap;
    int n;

    *out = NULL;
    if (!entry_is_valid(e))
        return CE_INVAL;
    if (e->member_id)
        snprintf(id, sizeof(id), "member-id=%016" PRIx64 "\n", e->member_id);
    cap = 112 + strlen(id) + strlen(e->initial_cluster) + (has_uid(e) ? strlen(e->data_uid) : 0) +
          (e->restore_from ? strlen(e->restore_from) : 0);
    buf = malloc(cap);
    if (!buf)
        return CE_NOMEM;
    n = snprintf(buf, cap, "initial-cluster-state=%s\ninitial-cluster=%s\njoined=%s\n%s%s%s%s%s%s%s",
                 e->state_new ? "new" : "existing", e->initial_cluster,
                 e->joined ? "true" : "false", id, has_uid(e) ? "data-uid=" : "",
                 has_uid(e) ? e->data_uid : "", has_uid(e) ? "\n" : "",
                 e->restore_from ? "restore-from=" : "", e->restore_from ? e->restore_from : "",
                 e->restore_from ? "\n" : "");
    if (n < 0 || (size_t)n >= cap) {
        free(buf);
        return CE_INVAL;
    }
    *out = buf;
    return 0;
}

void bootstrap_entry_clear(struct bootstrap_entry *e)
{
    free(e->initial_cluster);
    free(e->data_uid);
    free(e->restore_from);
    memset(e, 0, sizeof(*e));
}
