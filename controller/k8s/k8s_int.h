/*
 * k8s_int.h: what the files of controller/k8s/ share; not for other modules.
 *
 * http.c owns the client handle and the request layer (one HTTP exchange on a pooled curl
 * handle, stop flags, the per-thread error message); api.c maps exchanges to Kubernetes verbs
 * and Status errors; cache.c is the informer's "namespace/name" -> object table; informer.c
 * runs list + watch; config.c and yamljson.c load configurations.
 * Invariant: every function here that can fail returns 0 or a negative CE_* code and, on
 * failure, has left a human-readable reason in k8s_errmsg() (per thread).
 */
#ifndef CETCD_K8S_INT_H
#define CETCD_K8S_INT_H

#include <stddef.h>

#include "err.h"
#include "k8s/k8s.h"

/* ---- growable byte buffer (always NUL-terminated once non-empty) ---- */
struct k8s_buf {
    char *p;
    size_t len, cap;
};
int k8s_buf_add(struct k8s_buf *b, const char *s, size_t n);
int k8s_buf_adds(struct k8s_buf *b, const char *s);
/* Appends s percent-encoded (RFC 3986 unreserved characters kept). */
int k8s_buf_add_escaped(struct k8s_buf *b, const char *s);
/* Appends "?key=value" or "&key=value" (value escaped). */
int k8s_buf_query(struct k8s_buf *b, const char *key, const char *value);
void k8s_buf_free(struct k8s_buf *b);

/* ---- per-thread error message ---- */
void k8s_set_errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Returns err after setting the message (for `return k8s_fail(CE_X, "...")`). */
int k8s_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- one HTTP exchange ---- */
/* Stream sink: one complete line of a 2xx body (without '\n', NUL-terminated, writable).
 * Returns 0 to go on or a negative CE_* code to end the transfer with that code. */
typedef int (*k8s_line_fn)(void *ud, char *line, size_t len);

struct k8s_call {
    const char *method;   /* "GET", "POST", "PUT", "PATCH", "DELETE" */
    const char *path;     /* "/api/v1/...?query", appended to the server URL */
    const char *ctype;    /* request Content-Type, or NULL */
    const char *body;     /* request body, or NULL */
    size_t body_len;
    atomic_bool *stop;    /* a stop flag besides the client's, or NULL */
    long timeout_ms;      /* whole exchange; 0 = the client's request timeout; <0 = none */
    k8s_line_fn on_line;  /* stream mode (2xx bodies only), or NULL to collect the body */
    void *ud;
    /* out */
    long status;          /* HTTP status once answered */
    struct k8s_buf resp;  /* collected body (non-stream, or a non-2xx answer) */
    /* private to http.c */
    void *easy;
    int sink_rc;
};
/* 0 once an HTTP answer (any status) was read; CE_UNREACHABLE on transport failure,
 * CE_STOPPED when a stop flag rose, CE_NOMEM, or the sink's code. Free call->resp after. */
int k8s_http_do(k8s_client *c, struct k8s_call *call);
bool k8s_stop_requested(k8s_client *c, atomic_bool *extra);
/* Sleeps ms, in short slices; CE_STOPPED early when a stop flag rises. */
int k8s_sleep_ms(k8s_client *c, atomic_bool *extra, long ms);

/* ---- api.c ---- */
/* "/api/v1[/namespaces/NS]/PLURAL[/NAME[/SUB]]" appended to b. */
int k8s_res_path(struct k8s_buf *b, const struct k8s_res *r, const char *ns, const char *name,
                 const char *sub);
/* 0 for a 2xx status; else the CE_* code for it, with the Status message in k8s_errmsg(). */
int k8s_status_error(const char *method, long status, const struct k8s_buf *body);
/* A full exchange with JSON in and out (body/out may be NULL). */
int k8s_request_json(k8s_client *c, const char *method, const char *path, const char *ctype,
                     const cJSON *body, atomic_bool *stop, cJSON **out);
/* Sets apiVersion and kind on every item of a List that lacks them (List items omit them). */
void k8s_fill_kinds(const struct k8s_res *r, cJSON *list);

/* ---- cache.c: "namespace/name" -> owned cJSON object ---- */
struct k8s_cache;
struct k8s_cache *k8s_cache_new(void);
void k8s_cache_free(struct k8s_cache *t);
/* Takes obj (metadata.name required); *old gets the object it replaced (caller frees) or NULL. */
int k8s_cache_put(struct k8s_cache *t, cJSON *obj, cJSON **old);
/* Removes and returns the object (caller frees), or NULL. */
cJSON *k8s_cache_take(struct k8s_cache *t, const char *ns, const char *name);
const cJSON *k8s_cache_find(const struct k8s_cache *t, const char *ns, const char *name);
size_t k8s_cache_count(const struct k8s_cache *t);
/* Calls fn for every object, in no particular order; the table must not change meanwhile. */
void k8s_cache_each(const struct k8s_cache *t, void (*fn)(void *ud, const cJSON *obj), void *ud);
/* metadata.namespace ("" when absent) and metadata.name (NULL when absent) of obj. */
const char *k8s_obj_ns(const cJSON *obj);
const char *k8s_obj_name(const cJSON *obj);
const char *k8s_obj_rv(const cJSON *obj);

/* ---- yamljson.c ---- */
/* Parses the first YAML document of text into JSON (scalars become strings; an empty document
 * becomes an empty object). CE_K8S_CONFIG with the parser's message on bad YAML. */
int k8s_yaml_to_json(const char *text, size_t len, cJSON **out);

#endif
