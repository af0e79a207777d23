/*
 * main.c: cetcd's entry point. Parses etcd-compatible configuration, opens the member (node:
 * WAL replay, store, Raft), starts the client services and runs the event loop until SIGTERM
 * or SIGINT, then shuts down in reverse order. Exit codes: 0 clean stop, 1 runtime failure
 * (e.g. a corrupt WAL), 2 configuration error.
 */
#include "api/services.h"
#include "api/tls.h"
#include "config.h"
#include "err.h"
#include "evloop.h"
#include "log.h"
#include "node/autocompact.h"
#include "node/node.h"
#include "version.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static evloop *main_loop;

static void on_signal(int sig)
{
    (void)sig;
    if (main_loop)
        evloop_stop(main_loop);
}

static void node_config_from(const config *c, node_config *nc)
{
    memset(nc, 0, sizeof(*nc));
    nc->name = c->name;
    nc->data_dir = c->data_dir;
    nc->wal_dir = c->wal_dir;
    nc->initial_cluster = c->initial_cluster;
    nc->initial_cluster_token = c->initial_cluster_token;
    nc->initial_cluster_new = strcmp(c->initial_cluster_state, "new") == 0;
    nc->bootstrap_dir = c->bootstrap_dir;
    nc->force_new_cluster = c->force_new_cluster;
    nc->advertise_client_urls = (const char *const *)c->advertise_client_urls.list;
    nc->nadvertise_client = c->advertise_client_urls.n;
    nc->advertise_peer_urls = (const char *const *)c->initial_advertise_peer_urls.list;
    nc->nadvertise_peer = c->initial_advertise_peer_urls.n;
    nc->listen_peer_urls = (const char *const *)c->listen_peer_urls.list;
    nc->nlisten_peer = c->listen_peer_urls.n;
    nc->pre_vote = c->pre_vote;
    nc->strict_reconfig_check = c->strict_reconfig_check;
    nc->heartbeat_ms = (uint32_t)c->heartbeat_ms;
    nc->election_ms = (uint32_t)c->election_ms;
    nc->snapshot_count = c->snapshot_count;
    nc->quota_backend_bytes = c->quota_backend_bytes;
    nc->max_txn_ops = (uint32_t)c->max_txn_ops;
    nc->max_request_bytes = (uint32_t)c->max_request_bytes;
    nc->unsafe_no_fsync = c->unsafe_no_fsync;
    nc->auth_token_ttl = (uint32_t)c->auth_token_ttl;
}

/* Auto-compaction (etcd's flags). CETCD_TEST_AUTOCOMPACT_CHECK_MS shortens the revision mode's
 * 5-minute check interval: for tests only. */
static int start_autocompact(const config *c, node *n, autocompact **ac)
{
    const char *env = getenv("CETCD_TEST_AUTOCOMPACT_CHECK_MS");
    uint64_t check_ms = env ? strtoull(env, 0, 10) : 0;

    return autocompact_new(main_loop, n, c->auto_compaction_mode, c->auto_compaction_retention,
                           check_ms, ac);
}

/* Peer TLS (H8) from --peer-* flags: the server side, and the client side made from it (the
 * same certificate, for mutual TLS; an auto-TLS certificate is not verified, as etcd). */
static int peer_tls_from(const config *c, tls_setup *srv, tls_files *cli, node_config *nc)
{
    bool use;
    int rc = tls_setup_from_config(&c->peer_tls, c->data_dir, "peer",
                                   (const char *const *)c->listen_peer_urls.list,
                                   c->listen_peer_urls.n, srv, &use);

    if (rc || !use)
        return rc;
    *cli = srv->files;
    cli->client_cert_auth = false;
    cli->insecure_skip_verify = srv->auto_cert != NULL;
    nc->peer_tls_server = &srv->files;
    nc->peer_tls_client = cli;
    return 0;
}

static void install_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, 0);
    sigaction(SIGINT, &sa, 0);
    signal(SIGPIPE, SIG_IGN);
}

static int serve(const config *cfg)
{
    node_config nc;
    tls_setup peer_srv = {0};
    tls_files peer_cli = {0};
    node *n = 0;
    services *svc = 0;
    autocompact *ac = 0;
    int rc;

    rc = evloop_new(&main_loop);
    if (rc)
        return rc;
    node_config_from(cfg, &nc);
    rc = peer_tls_from(cfg, &peer_srv, &peer_cli, &nc);
    if (rc)
        goto out_loop;
    rc = node_new(&nc, main_loop, &n);
    if (rc)
        goto out_loop;
    rc = services_new(main_loop, n, cfg, &svc);
    if (rc)
        goto out_node;
    rc = node_start(n);
    if (rc)
        goto out_services;
    rc = start_autocompact(cfg, n, &ac);
    if (rc)
        goto out_services;
    install_signals();
    log_info("cetcd %s serving clients on %s (member %s, data %s)", CETCD_VERSION,
             cfg->listen_client_urls.list[0], cfg->name, cfg->data_dir);
    rc = evloop_run(main_loop);
    log_info("cetcd stopping");
    autocompact_free(ac);
out_services:
    services_free(svc);
out_node:
    node_free(n);
out_loop:
    tls_setup_fini(&peer_srv);
    evloop_free(main_loop);
    main_loop = 0;
    return rc;
}

int main(int argc, char **argv)
{
    config cfg;
    enum log_level lvl;
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    if (config_parse(&cfg, argc, argv, environ)) {
        fprintf(stderr, "cetcd: %s\n", cfg.error);
        config_free(&cfg);
        return 2;
    }
    if (cfg.show_help) {
        fputs(config_usage(), stdout);
        config_free(&cfg);
        return 0;
    }
    if (cfg.show_version) {
        printf("cetcd Version: %s\netcd API Version: %s\n", CETCD_VERSION, CETCD_ETCD_API_VERSION);
        config_free(&cfg);
        return 0;
    }
    if (log_parse_level(cfg.log_level, &lvl) == 0)
        log_set_level(lvl);
    rc = serve(&cfg);
    if (rc)
        log_error("cetcd: %s", ce_strerror(rc));
    config_free(&cfg);
    return rc ? 1 : 0;
}
