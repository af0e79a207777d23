/*
 * node_members.c: cluster membership as etcd's Cluster service sees it, on top of Raft's
 * single-step conf changes.
 *
 * A change (add, add learner, promote, remove, update peer URLs) is checked here with etcd's
 * rules and errors, then proposed as one conf-change entry whose context is a
 * cetcdpb.ConfChangeContext (the proposer's request ID and the member record). Every member
 * applies the entry in log order: Raft's conf state changes (raft_apply_conf_change), the
 * member record list changes, members.json is rewritten atomically, the peer transport learns
 * or forgets the member, and the proposing member answers its client with the new list.
 * A member that applies its own removal stops serving and exits, as etcd does.
 *
 * Invariants: the member records and Raft's conf state change together, in the same applied
 * entry, so they agree after every entry; applying an entry twice (a restart replays conf
 * changes past the last snapshot) leaves the same records.
 *
 * A member also publishes its name and client URLs through the log once it sees a leader
 * (etcd's publish), so MemberList on every member shows every member's client URLs.
 */
#include "err.h"
#include "log.h"
#include "members.h"
#include "node_int.h"
#include "urlcheck.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* etcd allows one learner at a time; a learner may be promoted once its log is within 10%
 * of the leader's (etcd's readyPercent 0.9). */
#define MAX_LEARNERS 1
#define READY_PERCENT 0.9
/* etcd's HealthInterval: a peer counts as connected once its connection is this old. */
#define HEALTH_MS 5000

node_member *node_member_find(node *n, uint64_t id)
{
    for (size_t i = 0; i < n->nmembers; i++)
        if (n->members[i].id == id)
            return &n->members[i];
    return 0;
}

int node_member_delete(node *n, uint64_t id)
{
    for (size_t i = 0; i < n->nmembers; i++) {
        if (n->members[i].id != id)
            continue;
        memmove(&n->members[i], &n->members[i + 1], (n->nmembers - i - 1) * sizeof(n->members[0]));
        n->nmembers--;
        return 0;
    }
    return CE_MEMBER_NOT_FOUND;
}

static int member_append(node *n, const node_member *m)
{
    node_member *v = realloc(n->members, (n->nmembers + 1) * sizeof(*v));

    if (!v)
        return CE_NOMEM;
    n->members = v;
    n->members[n->nmembers++] = *m;
    return 0;
}

/* ---- etcd's checks ------------------------------------------------------------------------- */

static int check_urls(node *n, char **urls, size_t nurls, uint64_t except)
{
    if (nurls == 0 || nurls > NODE_MAX_URLS)
        return CE_MEMBER_BAD_URLS;
    for (size_t i = 0; i < nurls; i++) {
        if (!url_is_http(urls[i], false, 1) || strlen(urls[i]) >= sizeof(n->members[0].peer_urls[0]))
            return CE_MEMBER_BAD_URLS;
        for (size_t j = 0; j < n->nmembers; j++) {
            if (n->members[j].id == except)
                continue;
            for (int k = 0; k < n->members[j].npeer; k++)
                if (!strcmp(n->members[j].peer_urls[k], urls[i]))
                    return CE_PEERURL_EXIST;
        }
    }
    return 0;
}

static size_t count_learners(node *n)
{
    size_t c = 0;

    for (size_t i = 0; i < n->nmembers; i++)
        c += n->members[i].is_learner;
    return c;
}

/* etcd's notion of a started member: it has published its name (maybe_publish below). */
static bool started(const node_member *m)
{
    return m->name[0] != 0;
}

/* Voters other than `except`; *nstarted of them started. */
static size_t count_voters(node *n, uint64_t except, size_t *nstarted)
{
    size_t c = 0;

    *nstarted = 0;
    for (size_t i = 0; i < n->nmembers; i++) {
        const node_member *m = &n->members[i];
        if (m->is_learner || m->id == except)
            continue;
        c++;
        *nstarted += started(m);
    }
    return c;
}

/* etcd's isConnectedSince: this member, or a peer connected for at least HEALTH_MS. */
static bool connected_long_enough(node *n, uint64_t id)
{
    uint64_t since;

    if (id == n->member_id)
        return true;
    since = node_peer_since_ms(n, id);
    return since && evloop_now_ms() - since >= HEALTH_MS;
}

static size_t voters_connected(node *n)
{
    size_t c = 0;

    for (size_t i = 0; i < n->nmembers; i++)
        if (!n->members[i].is_learner)
            c += connected_long_enough(n, n->members[i].id);
    return c;
}

/*
 * --strict-reconfig-check, etcd's rules. Adding a voter: the started voters must make a
 * quorum of the grown cluster (one started member may add a second: the restore case).
 * Adding any member: this member must have been connected to every voter for HEALTH_MS.
 * Promoting: the same quorum rule, counting the learner as started; no connection rule.
 */
static int may_add(node *n, bool learner, bool promote)
{
    size_t nstarted, nvoters = count_voters(n, 0, &nstarted) + 1;

    if (!n->cfg.strict_reconfig_check)
        return 0;
    nstarted += promote;
    if (!learner && !(nstarted == 1 && nvoters == 2) && nstarted < nvoters / 2 + 1)
        return CE_NOT_ENOUGH_STARTED;
    if (!promote && voters_connected(n) < nvoters - 1)
        return CE_UNHEALTHY;
    return 0;
}

/* Removing voter id: the remaining started voters must make their quorum; a member that is
 * down may always go; otherwise the connected voters minus it must make that quorum. */
static int may_remove_voter(node *n, uint64_t id)
{
    size_t nstarted, nvoters = count_voters(n, id, &nstarted), all = nvoters + 1;

    if (!n->cfg.strict_reconfig_check)
        return 0;
    if (nstarted < nvoters / 2 + 1)
        return CE_NOT_ENOUGH_STARTED;
    if (id != n->member_id && !node_peer_since_ms(n, id))
        return 0;
    return voters_connected(n) - 1 < 1 + (all - 1) / 2 ? CE_UNHEALTHY : 0;
}

/* The leader's view of whether learner id is close enough to be promoted. */
static int learner_ready(node *n, uint64_t id)
{
    raft_progress_info self, learner;

    if (raft_progress(n->raft, n->member_id, &self) || raft_progress(n->raft, id, &learner))
        return CE_LEARNER_NOT_READY;
    return (double)learner.match >= (double)self.match * READY_PERCENT ? 0 : CE_LEARNER_NOT_READY;
}

/* ---- proposing ---------------------------------------------------------------------------- */

static uint64_t new_member_id(node *n, char **urls, size_t nurls)
{
    struct timespec ts;
    uint64_t h = 0xcbf29ce484222325ull ^ n->member_id;

    clock_gettime(CLOCK_REALTIME, &ts);
    h ^= (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    for (size_t i = 0; i < nurls; i++)
        for (const char *p = urls[i]; *p; p++)
            h = (h ^ (uint8_t)*p) * 0x100000001b3ull;
    /* splitmix64 finaliser: spread the bits */
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    h ^= h >> 31;
    while (!h || node_member_find(n, h))
        h++;
    return h;
}

static int propose_change(node *n, raft_conf_change_type type, uint64_t id, char **urls,
                          size_t nurls, node_write_cb cb, void *ctx, uint64_t *handle)
{
    Cetcdpb__ConfChangeContext cx = CETCDPB__CONF_CHANGE_CONTEXT__INIT;
    Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
    raft_conf_change cc = {type, id, 0, 0};
    uint8_t *buf;
    pending *p;
    int rc;

    cx.request_id = node_next_id(n);
    if (urls) {
        m.id = id;
        m.n_peerurls = nurls;
        m.peerurls = urls;
        m.islearner = type == RAFT_CC_ADD_LEARNER;
        cx.member = &m;
    }
    cc.context_len = protobuf_c_message_get_packed_size(&cx.base);
    buf = malloc(cc.context_len ? cc.context_len : 1);
    if (!buf)
        return CE_NOMEM;
    protobuf_c_message_pack(&cx.base, buf);
    cc.context = buf;
    rc = raft_propose_conf_change(n->raft, &cc);
    free(buf);
    if (rc == CE_AGAIN)
        rc = CE_TIMEOUT; /* etcd serialises changes and answers a queued one late or times out */
    if (rc)
        return rc;
    rc = pending_add(&n->waiting, cx.request_id, cb, 0, ctx, &p);
    if (rc)
        return rc;
    p->since_ms = evloop_now_ms();
    n->proposals_pending++;
    *handle = cx.request_id;
    return 0;
}

int node_member_add(node *n, char **peer_urls, size_t nurls, bool learner, node_write_cb cb,
                    void *ctx, uint64_t *handle)
{
    int rc = check_urls(n, peer_urls, nurls, 0);

    if (!rc && learner && count_learners(n) >= MAX_LEARNERS)
        rc = CE_TOO_MANY_LEARNERS;
    if (!rc)
        rc = may_add(n, learner, false);
    if (rc)
        return rc;
    return propose_change(n, learner ? RAFT_CC_ADD_LEARNER : RAFT_CC_ADD_VOTER,
                          new_member_id(n, peer_urls, nurls), peer_urls, nurls, cb, ctx, handle);
}

int node_member_remove(node *n, uint64_t id, node_write_cb cb, void *ctx, uint64_t *handle)
{
    const node_member *m = node_member_find(n, id);
    int rc;

    if (!m)
        return CE_MEMBER_NOT_FOUND;
    if (!m->is_learner) {
        rc = may_remove_voter(n, id);
        if (rc)
            return rc;
    }
    return propose_change(n, RAFT_CC_REMOVE, id, 0, 0, cb, ctx, handle);
}

int node_member_update(node *n, uint64_t id, char **peer_urls, size_t nurls, node_write_cb cb,
                       void *ctx, uint64_t *handle)
{
    int rc;

    if (!node_member_find(n, id))
        return CE_MEMBER_NOT_FOUND;
    rc = check_urls(n, peer_urls, nurls, id);
    if (rc)
        return rc;
    return propose_change(n, RAFT_CC_UPDATE, id, peer_urls, nurls, cb, ctx, handle);
}

int node_member_promote(node *n, uint64_t id, node_write_cb cb, void *ctx, uint64_t *handle)
{
    const node_member *m = node_member_find(n, id);
    int rc;

    if (!m)
        return CE_MEMBER_NOT_FOUND;
    if (!m->is_learner)
        return CE_MEMBER_NOT_LEARNER;
    /* The readiness check needs the leader's progress; a follower's proposal is checked by
     * the leader when it arrives (node_promote_refused). */
    if (raft_get_role(n->raft) == RAFT_LEADER) {
        rc = learner_ready(n, id);
        if (!rc)
            rc = may_add(n, false, true);
        if (rc)
            return rc;
    }
    return propose_change(n, RAFT_CC_PROMOTE, id, 0, 0, cb, ctx, handle);
}

bool node_is_learner(node *n)
{
    return raft_is_learner(n->raft);
}

/* Answers a forwarded promote of a learner that is not in sync through the log: the
 * proposer's request ID with etcd's error, so its client hears why. True if m was handled. */
bool node_promote_refused(node *n, const raft_msg *m)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Cetcdpb__Refusal ref = CETCDPB__REFUSAL__INIT;
    Cetcdpb__ConfChangeContext *cx;
    raft_conf_change cc;
    uint8_t buf[64];

    if (m->type != RAFT_MSG_PROP || m->n_entries != 1 ||
        m->entries[0].type != RAFT_ENTRY_CONF_CHANGE || raft_get_role(n->raft) != RAFT_LEADER)
        return false;
    if (raft_conf_change_decode(m->entries[0].data, m->entries[0].len, &cc) ||
        cc.type != RAFT_CC_PROMOTE)
        return false;
    ref.code = learner_ready(n, cc.node_id);
    if (!ref.code)
        ref.code = may_add(n, false, true);
    if (!ref.code)
        return false;
    cx = cetcdpb__conf_change_context__unpack(0, cc.context_len, cc.context);
    if (!cx)
        return true; /* malformed: dropped */
    ir.id = cx->request_id;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_REFUSAL;
    ir.refusal = &ref;
    cetcdpb__conf_change_context__free_unpacked(cx, 0);
    if (protobuf_c_message_get_packed_size(&ir.base) <= sizeof(buf)) {
        protobuf_c_message_pack(&ir.base, buf);
        raft_propose(n->raft, buf, protobuf_c_message_get_packed_size(&ir.base));
    }
    return true;
}

/* ---- applying ----------------------------------------------------------------------------- */

static void record_from_context(node_member *rec, uint64_t id, const Etcdserverpb__Member *m)
{
    memset(rec, 0, sizeof(*rec));
    rec->id = id;
    if (!m)
        return;
    for (size_t i = 0; i < m->n_peerurls && rec->npeer < NODE_MAX_URLS; i++)
        snprintf(rec->peer_urls[rec->npeer++], sizeof(rec->peer_urls[0]), "%s", m->peerurls[i]);
    rec->is_learner = m->islearner;
}

static void apply_add(node *n, const raft_conf_change *cc, const Etcdserverpb__Member *m)
{
    node_member *rec = node_member_find(n, cc->node_id), fresh;

    if (!rec) {
        record_from_context(&fresh, cc->node_id, m);
        if (member_append(n, &fresh))
            node_fatal("recording a new member", CE_NOMEM);
        rec = &n->members[n->nmembers - 1];
    }
    rec->is_learner = cc->type == RAFT_CC_ADD_LEARNER;
    if (rec->id != n->member_id)
        node_peer_sync(n, rec);
}

static void apply_update(node *n, const raft_conf_change *cc, const Etcdserverpb__Member *m)
{
    node_member *rec = node_member_find(n, cc->node_id);

    if (!rec || !m)
        return;
    rec->npeer = 0;
    for (size_t i = 0; i < m->n_peerurls && rec->npeer < NODE_MAX_URLS; i++)
        snprintf(rec->peer_urls[rec->npeer++], sizeof(rec->peer_urls[0]), "%s", m->peerurls[i]);
    if (rec->id != n->member_id)
        node_peer_sync(n, rec);
}

/* A removed leader first hands leadership over (Raft keeps it leading until the most
 * up-to-date voter holds its log); the process stops once it no longer leads, or after
 * REMOVED_GRACE_MS at most. */
#define REMOVED_GRACE_MS 5000

static void on_exit_timer(evloop *l, ev_timer *t)
{
    node *n = t->data;

    if (raft_get_role(n->raft) == RAFT_LEADER && evloop_now_ms() < n->removed_at_ms + REMOVED_GRACE_MS) {
        evloop_timer_start(l, t, 100, 0, on_exit_timer, n);
        return;
    }
    node_exit_removed();
}

void node_exit_removed(void)
{
    log_error("node: the member has been permanently removed from the cluster; the data-dir "
              "used by this member must be removed before it can join again");
    exit(0); /* as etcd: a removed member's process ends successfully */
}

static void apply_remove(node *n, const raft_conf_change *cc)
{
    node_member_delete(n, cc->node_id);
    if (cc->node_id != n->member_id) {
        node_peer_drop(n, cc->node_id);
        return;
    }
    /* Answer what is in flight, then stop after etcd's delay (10 ticks), which lets replies
     * and the leader's hand-over leave. */
    n->removed = true;
    n->removed_at_ms = evloop_now_ms();
    evloop_timer_start(n->loop, &n->exit_timer, 10 * (uint64_t)n->cfg.heartbeat_ms, 0,
                       on_exit_timer, n);
}

static Etcdserverpb__Member *member_msg(const node_member *nm)
{
    Etcdserverpb__Member *m = calloc(1, sizeof(*m));

    if (!m)
        return 0;
    etcdserverpb__member__init(m);
    m->id = nm->id;
    m->name = strdup(nm->name);
    m->peerurls = calloc((size_t)nm->npeer + 1, sizeof(char *));
    m->clienturls = calloc((size_t)nm->nclient + 1, sizeof(char *));
    for (int i = 0; m->peerurls && i < nm->npeer; i++)
        m->peerurls[m->n_peerurls++] = strdup(nm->peer_urls[i]);
    for (int i = 0; m->clienturls && i < nm->nclient; i++)
        m->clienturls[m->n_clienturls++] = strdup(nm->client_urls[i]);
    m->islearner = nm->is_learner;
    return m;
}

Etcdserverpb__Member **node_member_list(node *n, size_t *count)
{
    Etcdserverpb__Member **v = calloc(n->nmembers + 1, sizeof(*v));

    *count = 0;
    for (size_t i = 0; v && i < n->nmembers; i++)
        v[(*count)++] = member_msg(&n->members[i]);
    return v;
}

/* The response the proposer's client gets: etcd's per-operation message. */
/* The response the proposer's client gets: etcd's per-operation message. */
static ProtobufCMessage *change_response(node *n, raft_conf_change_type type, uint64_t id)
{
    Etcdserverpb__MemberAddResponse *add;
    Etcdserverpb__MemberRemoveResponse *rm;
    Etcdserverpb__MemberUpdateResponse *up;
    Etcdserverpb__MemberPromoteResponse *pr;
    const node_member *rec;

    switch (type) {
    case RAFT_CC_ADD_VOTER:
    case RAFT_CC_ADD_LEARNER:
        if (!(add = malloc(sizeof(*add))))
            return 0;
        etcdserverpb__member_add_response__init(add);
        rec = node_member_find(n, id);
        add->member = rec ? member_msg(rec) : 0;
        add->members = node_member_list(n, &add->n_members);
        return &add->base;
    case RAFT_CC_UPDATE:
        if (!(up = malloc(sizeof(*up))))
            return 0;
        etcdserverpb__member_update_response__init(up);
        up->members = node_member_list(n, &up->n_members);
        return &up->base;
    case RAFT_CC_PROMOTE:
        if (!(pr = malloc(sizeof(*pr))))
            return 0;
        etcdserverpb__member_promote_response__init(pr);
        pr->members = node_member_list(n, &pr->n_members);
        return &pr->base;
    default:
        if (!(rm = malloc(sizeof(*rm))))
            return 0;
        etcdserverpb__member_remove_response__init(rm);
        rm->members = node_member_list(n, &rm->n_members);
        return &rm->base;
    }
}

void node_conf_change_apply(node *n, const raft_entry *e, struct batch *b)
{
    Cetcdpb__ConfChangeContext *cx = 0;
    raft_conf_change cc;
    int rc;

    if (raft_conf_change_decode(e->data, e->len, &cc)) {
        log_error("node: conf change entry %llu is corrupt", (unsigned long long)e->index);
        return;
    }
    if (cc.context_len)
        cx = cetcdpb__conf_change_context__unpack(0, cc.context_len, cc.context);
    raft_apply_conf_change(n->raft, &cc, 0);
    if (cc.type == RAFT_CC_ADD_VOTER || cc.type == RAFT_CC_ADD_LEARNER)
        apply_add(n, &cc, cx ? cx->member : 0);
    else if (cc.type == RAFT_CC_PROMOTE && node_member_find(n, cc.node_id))
        node_member_find(n, cc.node_id)->is_learner = false;
    else if (cc.type == RAFT_CC_UPDATE)
        apply_update(n, &cc, cx ? cx->member : 0);
    else if (cc.type == RAFT_CC_REMOVE)
        apply_remove(n, &cc);
    rc = node_save_members(n);
    if (rc)
        node_fatal("saving the member list", rc);
    log_info("node: applied membership change %d for member %016" PRIx64 " at index %" PRIu64
             " (%zu members)", (int)cc.type, cc.node_id, e->index, n->nmembers);
    if (cx && cx->request_id && pending_find(&n->waiting, cx->request_id))
        node_batch_push(b, cx->request_id, 0, change_response(n, cc.type, cc.node_id));
    if (cx)
        cetcdpb__conf_change_context__free_unpacked(cx, 0);
}

int node_member_attr_apply(node *n, const Etcdserverpb__Member *m)
{
    node_member *rec = node_member_find(n, m->id);

    if (!rec)
        return CE_MEMBER_NOT_FOUND;
    snprintf(rec->name, sizeof(rec->name), "%s", m->name ? m->name : "");
    rec->nclient = 0;
    for (size_t i = 0; i < m->n_clienturls && rec->nclient < NODE_MAX_URLS; i++)
        snprintf(rec->client_urls[rec->nclient++], sizeof(rec->client_urls[0]), "%s",
                 m->clienturls[i]);
    if (m->id == n->member_id)
        n->published = true;
    return node_save_members(n);
}

/* ---- housekeeping: publish, timeouts, leader transfer ------------------------------------ */

static void publish_done(void *ctx, int err, ProtobufCMessage *resp)
{
    node *n = ctx;

    n->publishing = false;
    (void)err;
    if (resp)
        protobuf_c_message_free_unpacked(resp, 0);
}

/* etcd's publish: our name and client URLs go through the log once a leader is known. */
void node_maybe_publish(node *n)
{
    Cetcdpb__InternalRequest ir = CETCDPB__INTERNAL_REQUEST__INIT;
    Etcdserverpb__Member m = ETCDSERVERPB__MEMBER__INIT;
    uint64_t handle;

    if (n->published || n->publishing || n->removed || raft_leader(n->raft) == RAFT_NONE ||
        !node_member_find(n, n->member_id))
        return;
    m.id = n->member_id;
    m.name = (char *)n->cfg.name;
    m.n_clienturls = (size_t)n->cfg.nadvertise_client;
    m.clienturls = (char **)n->cfg.advertise_client_urls;
    ir.request_case = CETCDPB__INTERNAL_REQUEST__REQUEST_MEMBER_ATTR;
    ir.member_attr = &m;
    n->publishing = node_propose(n, &ir, publish_done, n, &handle) == 0;
}

void node_check_transfer(node *n)
{
    struct transfer_wait *t = &n->transfer;
    node_read_cb cb = t->cb;
    int err;

    if (!t->id)
        return;
    if (raft_leader(n->raft) == t->target)
        err = 0;
    else if (evloop_now_ms() >= t->deadline_ms)
        err = CE_TIMEOUT_TRANSFER;
    else
        return;
    t->id = 0;
    t->cb = 0;
    cb(t->ctx, err);
}

void node_housekeeping(evloop *l, ev_timer *t)
{
    node *n = t->data;
    uint64_t now = evloop_now_ms();

    (void)l;
    node_maybe_publish(n);
    /* etcd's "request timed out" for requests the cluster never answered */
    node_fail_waiters(n, CE_TIMEOUT, now > n->request_timeout_ms ? now - n->request_timeout_ms : 0);
    node_check_transfer(n);
}

int node_move_leader(node *n, uint64_t target, node_read_cb cb, void *ctx, uint64_t *handle)
{
    const node_member *m = node_member_find(n, target);
    int rc;

    if (raft_get_role(n->raft) != RAFT_LEADER)
        return CE_NOT_LEADER;
    if (!m || m->is_learner)
        return CE_BAD_LEADER_TRANSFER;
    if (n->transfer.id)
        return CE_TIMEOUT_TRANSFER; /* one transfer at a time */
    rc = raft_transfer_leader(n->raft, target);
    if (rc)
        return rc;
    n->transfer.id = node_next_id(n);
    n->transfer.target = target;
    n->transfer.deadline_ms = evloop_now_ms() + n->request_timeout_ms;
    n->transfer.cb = cb;
    n->transfer.ctx = ctx;
    *handle = n->transfer.id;
    return 0;
}
