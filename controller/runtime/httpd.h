/*
 * httpd.h: the operator's small HTTP/1.1 server for Prometheus scrapes and kubelet probes.
 *
 * Routes (GET or HEAD; the query string is ignored):
 *   /metrics  200, Content-Type "text/plain; version=0.0.4; charset=utf-8", metrics_render_text()
 *   /healthz  200 "ok"
 *   /readyz   200 "ok" while the ready flag (httpd_set_ready) is true, else 503 "not ready"
 *   other     404 "404 page not found"; other methods 405; a malformed request 400;
 *             a request head over 8 KiB 431.
 * One request per connection: every response carries Content-Length and "Connection: close"
 * and the server closes after writing it. A connection that has not sent its whole request
 * head within 2 s, or not taken the whole response within 5 s, is closed. Up to 64
 * connections are served at once (poll loop, one thread); more wait in the listen backlog.
 * Bad input never crashes the server; it only ends that connection.
 */
#ifndef CETCD_HTTPD_H
#define CETCD_HTTPD_H

#include <stdbool.h>

#include "runtime/metrics.h"

typedef struct httpd httpd;

/*
 * Starts the server thread listening on addr: ":8080" (all IPv4 interfaces),
 * "127.0.0.1:8080", "[::1]:8080", "host:0" (an ephemeral port, see httpd_port), or "0" to
 * disable (then 0 is returned with *out = NULL, and every call below accepts NULL).
 * m may be NULL (then /metrics answers an empty body). The ready flag starts false.
 * 0, CE_INVAL (bad address), CE_IO (socket/bind/listen failed; the log says why) or CE_NOMEM.
 */
int httpd_start(const char *addr, metrics *m, httpd **out);
/* The bound TCP port (0 for NULL). */
int httpd_port(const httpd *h);
void httpd_set_ready(httpd *h, bool ready);
/* Stops the thread (joins it), closes every socket and frees h. */
void httpd_stop(httpd *h);

#endif
