/*
 * config.h: cetcd's configuration, spelled as etcd's.
 *
 * Sources, in etcd's order of precedence: with --config-file, the YAML file alone (etcd ignores
 * other flags and ETCD_* variables then); otherwise command-line flags, then ETCD_<FLAG>
 * environment variables (upper case, dashes as underscores) for flags not given, then defaults.
 * Unknown flags and bad values are reported in one line naming them (config_parse returns
 * CE_INVAL with that line in cfg->error); main exits 2.
 *
 * Invariant after a successful config_parse: every numeric field is in range, URL lists are
 * non-empty and each URL is http(s)://host:port.
 */
#ifndef CETCD_CONFIG_H
#define CETCD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define CONFIG_MAX_URLS 8

typedef struct config_urls {
    char *list[CONFIG_MAX_URLS];
    int n;
} config_urls;

typedef struct config_tls {
    char *cert_file;
    char *key_file;
    char *trusted_ca_file;
    bool client_cert_auth;
    bool auto_tls;
} config_tls;

typedef struct config {
    char *name;
    char *data_dir;
    char *wal_dir;
    config_urls listen_client_urls;
    config_urls advertise_client_urls;
    config_urls listen_peer_urls;
    config_urls initial_advertise_peer_urls;
    config_urls listen_metrics_urls;
    char *initial_cluster;
    char *initial_cluster_token;
    char *initial_cluster_state;     /* "new" or "existing" */
    char *bootstrap_dir;             /* --bootstrap-dir (cetcd extension); NULL = none */
    bool force_new_cluster;
    uint64_t heartbeat_ms;
    uint64_t election_ms;
    uint64_t snapshot_count;
    uint64_t quota_backend_bytes;
    uint64_t max_request_bytes;
    uint64_t max_txn_ops;
    uint64_t max_snapshots;
    uint64_t max_wals;
    char *log_level;
    char *auto_compaction_mode;      /* "periodic" or "revision" */
    char *auto_compaction_retention;
    bool unsafe_no_fsync;
    bool pre_vote;
    bool strict_reconfig_check;
    uint64_t watch_progress_notify_ms; /* --experimental-watch-progress-notify-interval */
    uint64_t auth_token_ttl;         /* --auth-token-ttl, seconds (simple tokens) */
    config_tls client_tls;
    config_tls peer_tls;
    bool show_version;
    bool show_help;
    char *config_file;
    char error[512];                 /* the one line printed on a configuration error */
} config;

/* Parses argv (argv[0] skipped) and the environment into cfg (zeroed by the caller).
 * Returns 0 or CE_INVAL (cfg->error says why). */
int config_parse(config *cfg, int argc, char **argv, char **envp);
void config_free(config *cfg);
/* The --help text. */
const char *config_usage(void);

#endif
