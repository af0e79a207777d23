/*
 * test_failpoint.c: failpoints fire (_exit 42, with a log line) only when named exactly in
 * CETCD_OPERATOR_FAILPOINT, and with CETCD_OPERATOR_FAILPOINT_FILE only once: the first firing
 * creates the file, later hits return. Each hit runs in a forked child.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/failpoint.h"
#include "runtime/olog.h"

/* Runs failpoint_hit(name) in a child whose log goes to log_fd; its exit status (0 = returned). */
static int hit_in_child(const char *name, int log_fd)
{
    pid_t pid = fork();
    int status;

    assert_true(pid >= 0);
    if (pid == 0) {
        olog_set_fd(log_fd);
        failpoint_hit(name);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int tmp_log(void)
{
    char path[] = "/tmp/test_failpoint.XXXXXX";
    int fd = mkstemp(path);

    assert_true(fd >= 0);
    unlink(path);
    return fd;
}

static void test_armed_matching(void **state)
{
    (void)state;
    unsetenv("CETCD_OPERATOR_FAILPOINT");
    assert_false(failpoint_armed("after-member-add"));
    setenv("CETCD_OPERATOR_FAILPOINT", "before-promote, after-member-add ,x", 1);
    assert_true(failpoint_armed("after-member-add"));
    assert_true(failpoint_armed("before-promote"));
    assert_true(failpoint_armed("x"));
    assert_false(failpoint_armed("after-member"));
    assert_false(failpoint_armed("member-add"));
    assert_false(failpoint_armed(""));
    setenv("CETCD_OPERATOR_FAILPOINT", "", 1);
    assert_false(failpoint_armed("x"));
    unsetenv("CETCD_OPERATOR_FAILPOINT");
}

static void test_fires_without_file(void **state)
{
    int fd = tmp_log();
    char buf[512] = {0};

    (void)state;
    unsetenv("CETCD_OPERATOR_FAILPOINT_FILE");
    setenv("CETCD_OPERATOR_FAILPOINT", "after-sts-scale", 1);
    assert_int_equal(hit_in_child("after-member-remove", fd), 0);
    assert_int_equal(hit_in_child("after-sts-scale", fd), 42);
    assert_int_equal(hit_in_child("after-sts-scale", fd), 42); /* no file: every time */
    assert_true(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
    assert_non_null(strstr(buf, "\"msg\":\"failpoint: exiting\",\"failpoint\":\"after-sts-scale\""));
    unsetenv("CETCD_OPERATOR_FAILPOINT");
    close(fd);
}

static void test_fires_once_with_file(void **state)
{
    char dir[] = "/tmp/test_failpoint.d.XXXXXX";
    char file[64], content[64] = {0};
    int fd = tmp_log(), mfd;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(file, sizeof(file), "%s/fired", dir);
    setenv("CETCD_OPERATOR_FAILPOINT", "before-promote", 1);
    setenv("CETCD_OPERATOR_FAILPOINT_FILE", file, 1);
    assert_int_equal(hit_in_child("after-member-add", fd), 0);
    assert_int_equal(access(file, F_OK), -1); /* not armed: no file */
    assert_int_equal(hit_in_child("before-promote", fd), 42);
    mfd = open(file, O_RDONLY);
    assert_true(mfd >= 0);
    assert_true(read(mfd, content, sizeof(content) - 1) > 0);
    assert_string_equal(content, "before-promote");
    close(mfd);
    assert_int_equal(hit_in_child("before-promote", fd), 0); /* already fired */
    assert_int_equal(hit_in_child("before-promote", fd), 0);
    unlink(file);
    rmdir(dir);
    unsetenv("CETCD_OPERATOR_FAILPOINT");
    unsetenv("CETCD_OPERATOR_FAILPOINT_FILE");
    close(fd);
}

static void test_unwritable_file_does_not_fire(void **state)
{
    int fd = tmp_log();

    (void)state;
    setenv("CETCD_OPERATOR_FAILPOINT", "before-promote", 1);
    setenv("CETCD_OPERATOR_FAILPOINT_FILE", "/nonexistent-dir-for-test/fired", 1);
    assert_int_equal(hit_in_child("before-promote", fd), 0);
    unsetenv("CETCD_OPERATOR_FAILPOINT");
    unsetenv("CETCD_OPERATOR_FAILPOINT_FILE");
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_armed_matching),
        cmocka_unit_test(test_fires_without_file),
        cmocka_unit_test(test_fires_once_with_file),
        cmocka_unit_test(test_unwritable_file_does_not_fire),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
