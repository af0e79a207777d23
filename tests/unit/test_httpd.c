/*
 * test_httpd.c: the operator's HTTP endpoint over real sockets on 127.0.0.1 (ephemeral port):
 * the routes and their exact responses, HEAD, query strings, 404/405/400/431, the ready
 * flag, a silent client not blocking others and being dropped after the read timeout,
 * seeded random garbage never killing the server (replay with HTTPD_SEED=<seed>), bad
 * listen addresses, "0" disabling, and stop with connections still open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "runtime/httpd.h"
#include "runtime/metrics.h"

static int64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = {5, 0};

    assert_true(fd >= 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

/* Reads until EOF (or error/timeout) into a malloc'd string. */
static char *read_all(int fd)
{
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    ssize_t n;

    assert_non_null(buf);
    while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
        len += (size_t)n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    buf[len] = '\0';
    return buf;
}

/* Sends raw bytes, returns the whole answer (malloc'd). */
static char *exchange(int port, const char *req, size_t len)
{
    int fd = dial(port);
    char *out;

    assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    out = read_all(fd);
    close(fd);
    return out;
}

static char *get(int port, const char *req) { return exchange(port, req, strlen(req)); }

static void expect(int port, const char *req, const char *want)
{
    char *out = get(port, req);

    assert_string_equal(out, want);
    free(out);
}

#define TEXT "Content-Type: text/plain; charset=utf-8\r\n"
#define CLOSE "Connection: close\r\n\r\n"

static void test_routes(void **state)
{
    metrics *m;
    httpd *h;
    char *out, *text, want[4096];
    size_t len;
    int port;

    (void)state;
    assert_int_equal(metrics_new(&m), 0);
    assert_int_equal(metrics_register(m, METRIC_GAUGE, "g", "A gauge.", NULL, 0), 0);
    assert_int_equal(metrics_gauge_set(m, "g", "a=\"1\"", 7), 0);
    assert_int_equal(httpd_start("127.0.0.1:0", m, &h), 0);
    port = httpd_port(h);
    assert_true(port > 0);

    assert_int_equal(metrics_render_text(m, &text, &len), 0);
    snprintf(want, sizeof(want),
             "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
             "Content-Length: %zu\r\n" CLOSE "%s", len, text);
    assert_string_equal(text, "# HELP g A gauge.\n# TYPE g gauge\ng{a=\"1\"} 7\n");
    free(text);
    out = get(port, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
    assert_string_equal(out, want);
    free(out);

    expect(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE "ok");
    expect(port, "GET /healthz?verbose=1 HTTP/1.0\n\n",
           "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE "ok");
    expect(port, "HEAD /healthz HTTP/1.1\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE);
    expect(port, "GET /readyz HTTP/1.1\r\n\r\n",
           "HTTP/1.1 503 Service Unavailable\r\n" TEXT "Content-Length: 9\r\n" CLOSE "not ready");
    httpd_set_ready(h, true);
    expect(port, "GET /readyz HTTP/1.1\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE "ok");
    httpd_set_ready(h, false);
    expect(port, "GET /readyz HTTP/1.1\r\n\r\n",
           "HTTP/1.1 503 Service Unavailable\r\n" TEXT "Content-Length: 9\r\n" CLOSE "not ready");
    expect(port, "GET /nope HTTP/1.1\r\n\r\n",
           "HTTP/1.1 404 Not Found\r\n" TEXT "Content-Length: 19\r\n" CLOSE "404 page not found\n");
    expect(port, "GET /metricsx HTTP/1.1\r\n\r\n",
           "HTTP/1.1 404 Not Found\r\n" TEXT "Content-Length: 19\r\n" CLOSE "404 page not found\n");
    expect(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 405 Method Not Allowed\r\n" TEXT "Content-Length: 19\r\n"
           "Allow: GET, HEAD\r\n" CLOSE "method not allowed\n");
    expect(port, "GET metrics HTTP/1.1\r\n\r\n",
           "HTTP/1.1 400 Bad Request\r\n" TEXT "Content-Length: 12\r\n" CLOSE "bad request\n");
    expect(port, "GET /healthz HTTP/2.0\r\n\r\n",
           "HTTP/1.1 400 Bad Request\r\n" TEXT "Content-Length: 12\r\n" CLOSE "bad request\n");
    expect(port, "GET /healthz\r\n\r\n",
           "HTTP/1.1 400 Bad Request\r\n" TEXT "Content-Length: 12\r\n" CLOSE "bad request\n");
    expect(port, "GET /a b HTTP/1.1\r\n\r\n",
           "HTTP/1.1 400 Bad Request\r\n" TEXT "Content-Length: 12\r\n" CLOSE "bad request\n");
    out = exchange(port, "GET /\0 HTTP/1.1\r\n\r\n", 20);
    assert_string_equal(out, "HTTP/1.1 400 Bad Request\r\n" TEXT "Content-Length: 12\r\n" CLOSE
                             "bad request\n");
    free(out);
    httpd_stop(h);
    metrics_free(m);
}

static void test_header_limit(void **state)
{
    httpd *h;
    char *req, *out;
    size_t n;

    (void)state;
    assert_int_equal(httpd_start("127.0.0.1:0", NULL, &h), 0);
    req = malloc(9000);
    assert_non_null(req);
    n = (size_t)snprintf(req, 9000, "GET /healthz HTTP/1.1\r\nX-Pad: ");
    memset(req + n, 'a', 9000 - n);
    out = exchange(httpd_port(h), req, 9000);
    assert_string_equal(out, "HTTP/1.1 431 Request Header Fields Too Large\r\n" TEXT
                             "Content-Length: 25\r\n" CLOSE "request header too large\n");
    free(out);
    /* a head just under the limit is fine */
    n = (size_t)snprintf(req, 9000, "GET /healthz HTTP/1.1\r\nX-Pad: ");
    memset(req + n, 'a', 8192 - n - 4);
    memcpy(req + 8192 - 4, "\r\n\r\n", 4);
    out = exchange(httpd_port(h), req, 8192);
    assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
    free(out);
    /* /metrics without a registry: empty body */
    expect(httpd_port(h), "GET /metrics HTTP/1.1\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
           "Content-Length: 0\r\n" CLOSE);
    free(req);
    httpd_stop(h);
}

static void test_slow_client(void **state)
{
    httpd *h;
    int idle, port;
    int64_t t0;
    char buf[16];
    ssize_t n;

    (void)state;
    assert_int_equal(httpd_start("127.0.0.1:0", NULL, &h), 0);
    port = httpd_port(h);
    t0 = mono_ms();
    idle = dial(port);
    assert_int_equal(send(idle, "GET /hea", 8, 0), 8);
    /* others are served while it dawdles */
    for (int i = 0; i < 5; i++)
        expect(port, "GET /healthz HTTP/1.1\r\n\r\n",
               "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE "ok");
    assert_true(mono_ms() - t0 < 1500);
    /* dropped after the 2 s read timeout, without an answer */
    n = recv(idle, buf, sizeof(buf), 0);
    assert_int_equal(n, 0);
    assert_true(mono_ms() - t0 >= 1900);
    assert_true(mono_ms() - t0 < 4500);
    close(idle);
    httpd_stop(h);
}

static void test_random_garbage(void **state)
{
    httpd *h;
    const char *env = getenv("HTTPD_SEED");
    unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
    unsigned rnd = seed;
    char req[600];
    int port;

    (void)state;
    printf("test_httpd garbage seed %u (replay: HTTPD_SEED=%u)\n", seed, seed);
    assert_int_equal(httpd_start("127.0.0.1:0", NULL, &h), 0);
    port = httpd_port(h);
    for (int i = 0; i < 150; i++) {
        size_t len = 1 + rand_r(&rnd) % (sizeof(req) - 4);
        char *out;

        if (i % 3 == 0) /* mutate a valid request */
            len = (size_t)snprintf(req, sizeof(req), "GET /readyz?%u HTTP/1.1\r\nH: v\r\n", i);
        for (size_t j = i % 3 == 0 ? 0 : len; j < len; j++)
            req[j] = (char)rand_r(&rnd);
        for (int j = 0; i % 3 == 0 && j < 3; j++)
            req[rand_r(&rnd) % len] = (char)rand_r(&rnd);
        memcpy(req + len, "\r\n\r\n", 4); /* end the head so the server answers at once */
        out = exchange(port, req, len + 4);
        assert_true(out[0] == '\0' || strncmp(out, "HTTP/1.1 ", 9) == 0);
        free(out);
    }
    expect(port, "GET /healthz HTTP/1.1\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE "ok");
    httpd_stop(h);
}

static void test_addresses(void **state)
{
    httpd *h, *h2;
    char addr[64];

    (void)state;
    assert_int_equal(httpd_start("0", NULL, &h), 0);
    assert_null(h);
    assert_int_equal(httpd_port(h), 0);
    httpd_set_ready(h, true);
    httpd_stop(h);
    assert_int_equal(httpd_start("", NULL, &h), CE_INVAL);
    assert_int_equal(httpd_start("8080", NULL, &h), CE_INVAL);
    assert_int_equal(httpd_start(":abc", NULL, &h), CE_INVAL);
    assert_int_equal(httpd_start("127.0.0.1:", NULL, &h), CE_INVAL);
    assert_int_equal(httpd_start("127.0.0.1:99999", NULL, &h), CE_INVAL);
    assert_int_equal(httpd_start("[::1:0", NULL, &h), CE_INVAL);
    assert_int_equal(httpd_start("127.0.0.1:0", NULL, &h), 0);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", httpd_port(h));
    assert_int_equal(httpd_start(addr, NULL, &h2), CE_IO); /* in use */
    httpd_stop(h);
}

static void test_stop_with_open_connections(void **state)
{
    httpd *h;
    int fds[3];

    (void)state;
    assert_int_equal(httpd_start("127.0.0.1:0", NULL, &h), 0);
    for (int i = 0; i < 3; i++) {
        fds[i] = dial(httpd_port(h));
        assert_int_equal(send(fds[i], "GET", 3, 0), 3);
    }
    expect(httpd_port(h), "GET /healthz HTTP/1.1\r\n\r\n",
           "HTTP/1.1 200 OK\r\n" TEXT "Content-Length: 2\r\n" CLOSE "ok");
    httpd_stop(h); /* joins promptly, closes the three */
    for (int i = 0; i < 3; i++) {
        char buf[8];

        assert_true(recv(fds[i], buf, sizeof(buf), 0) <= 0);
        close(fds[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_header_limit),
        cmocka_unit_test(test_slow_client),
        cmocka_unit_test(test_random_garbage),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_stop_with_open_connections),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
