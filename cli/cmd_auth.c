/*
 * cmd_auth.c: cetcdctl auth enable|disable, user add|delete|get|list|passwd|grant-role|
 * revoke-role, role add|delete|get|list|grant-permission|revoke-permission, with etcdctl
 * 3.4's arguments, messages (simple output) and exit codes. As etcdctl, `auth enable` adds the
 * role root and grants it to the user root when the server says root lacks it, then retries.
 * Passwords come from "name:password", else from one line of standard input (prompted on
 * stderr unless --interactive=false). Only the simple output format is implemented.
 */
#include "ctl.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ROOT_ROLE_MISSING "etcdserver: root user does not have root role"

/* Ends a command: reports rc, or prints fmt (a format taking two strings) on success; frees cl. */
static int finish(cetcd_client *cl, int rc, const char *fmt, const char *a, const char *b)
{
    if (rc)
        rc = ctl_fail_call(cl, rc, NULL);
    else
        printf(fmt, a, b);
    cetcd_client_free(cl);
    return rc;
}

static int need_args(const struct ctl *c, int n, const char *msg)
{
    return c->n_args == n ? 0 : ctl_fail(EXIT_BAD_ARGS, "%s", msg);
}

static bool interactive(const struct ctl *c)
{
    const char *v = ctl_flag(c, "interactive");

    return !v || strcmp(v, "false");
}

/* One line of standard input into buf (newline dropped). */
static int read_password(const struct ctl *c, const char *prompt, const char *name, char *buf,
                         size_t len)
{
    if (interactive(c))
        fprintf(stderr, prompt, name);
    if (!fgets(buf, (int)len, stdin))
        return ctl_fail(EXIT_ERROR, "failed to read password");
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

/* ---- auth ------------------------------------------------------------------------------------ */

static int auth_enable(cetcd_client *cl)
{
    int rc = cetcd_auth_enable(cl);

    if (!rc || strcmp(cetcd_client_errmsg(cl), ROOT_ROLE_MISSING))
        return rc;
    rc = cetcd_role_add(cl, "root");
    if (rc && strcmp(cetcd_client_errmsg(cl), "etcdserver: role name already exists"))
        return rc;
    if ((rc = cetcd_user_grant_role(cl, "root", "root")) != 0)
        return rc;
    return cetcd_auth_enable(cl);
}

int ctl_cmd_auth(struct ctl *c, const char *sub)
{
    cetcd_client *cl;
    int rc;

    if (c->n_args != 0)
        return ctl_fail(EXIT_BAD_ARGS, "auth %s command does not accept any arguments", sub);
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    if (!strcmp(sub, "enable"))
        return finish(cl, auth_enable(cl), "Authentication Enabled\n%s%s", "", "");
    return finish(cl, cetcd_auth_disable(cl), "Authentication Disabled\n%s%s", "", "");
}

/* ---- user -------------------------------------------------------------------------------------- */

static int user_add(struct ctl *c, cetcd_client *cl)
{
    char name[256], pw[512] = "";
    const char *colon = strchr(c->args[0], ':');
    bool nopw = ctl_bool(c, "no-password");
    int rc;

    snprintf(name, sizeof(name), "%.*s", colon ? (int)(colon - c->args[0]) : (int)strlen(c->args[0]),
             c->args[0]);
    if (colon)
        snprintf(pw, sizeof(pw), "%s", colon + 1);
    else if (!nopw && (rc = read_password(c, "Password of %s: ", name, pw, sizeof(pw))))
        return rc;
    return finish(cl, cetcd_user_add(cl, name, pw, nopw), "User %s created\n%s", name, "");
}

static int user_get(cetcd_client *cl, const char *name)
{
    struct cetcd_names r;
    int rc = cetcd_user_get(cl, name, &r);

    if (rc)
        return finish(cl, rc, "%s%s", "", "");
    printf("User: %s\nRoles:", name);
    for (size_t i = 0; i < r.n; i++)
        printf(" %s", r.names[i]);
    putchar('\n');
    cetcd_names_free(&r);
    cetcd_client_free(cl);
    return 0;
}

static int print_names(cetcd_client *cl, int rc, struct cetcd_names *r)
{
    if (rc)
        return finish(cl, rc, "%s%s", "", "");
    for (size_t i = 0; i < r->n; i++)
        puts(r->names[i]);
    cetcd_names_free(r);
    cetcd_client_free(cl);
    return 0;
}

static int user_passwd(struct ctl *c, cetcd_client *cl)
{
    char pw[512];
    int rc = read_password(c, "Password of %s: ", c->args[0], pw, sizeof(pw));

    if (rc) {
        cetcd_client_free(cl);
        return rc;
    }
    return finish(cl, cetcd_user_passwd(cl, c->args[0], pw), "Password updated\n%s%s", "", "");
}

static int user_argc(const char *sub)
{
    if (!strcmp(sub, "list"))
        return 0;
    return !strcmp(sub, "grant-role") || !strcmp(sub, "revoke-role") ? 2 : 1;
}

static const char *user_usage(const char *sub)
{
    if (!strcmp(sub, "grant-role"))
        return "user grant command requires user name and role name as its argument";
    if (!strcmp(sub, "revoke-role"))
        return "user revoke-role requires user name and role name as its argument";
    if (!strcmp(sub, "list"))
        return "user list command requires no arguments";
    if (!strcmp(sub, "add"))
        return "user add command requires user name as its argument";
    if (!strcmp(sub, "delete"))
        return "user delete command requires user name as its argument";
    if (!strcmp(sub, "get"))
        return "user get command requires user name as its argument";
    return "user passwd command requires user name as its argument";
}

int ctl_cmd_user(struct ctl *c, const char *sub)
{
    struct cetcd_names names;
    cetcd_client *cl;
    int rc;

    if ((rc = need_args(c, user_argc(sub), user_usage(sub))) || (rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    if (!strcmp(sub, "add"))
        return user_add(c, cl);
    if (!strcmp(sub, "delete"))
        return finish(cl, cetcd_user_delete(cl, c->args[0]), "User %s deleted\n%s", c->args[0], "");
    if (!strcmp(sub, "get"))
        return user_get(cl, c->args[0]);
    if (!strcmp(sub, "list"))
        return print_names(cl, cetcd_user_list(cl, &names), &names);
    if (!strcmp(sub, "passwd"))
        return user_passwd(c, cl);
    if (!strcmp(sub, "grant-role"))
        return finish(cl, cetcd_user_grant_role(cl, c->args[0], c->args[1]),
                      "Role %s is granted to user %s\n", c->args[1], c->args[0]);
    return finish(cl, cetcd_user_revoke_role(cl, c->args[0], c->args[1]),
                  "Role %s is revoked from user %s\n", c->args[1], c->args[0]);
}

/* ---- role -------------------------------------------------------------------------------------- */

/* etcdctl's printRange: "[key, end)" or "[key, <open ended>", plus " (prefix key)". */
static void print_perm(const struct cetcd_perm *p)
{
    char pe[1024];
    size_t pl;

    if (!p->end_len) {
        printf("\t%.*s\n", (int)p->key_len, p->key);
        return;
    }
    if (p->end_len == 1 && p->end[0] == 0)
        printf("\t[%.*s, <open ended>", (int)p->key_len, p->key);
    else
        printf("\t[%.*s, %.*s)", (int)p->key_len, p->key, (int)p->end_len, p->end);
    if (p->key_len < sizeof(pe)) {
        pl = cetcd_prefix_end(p->key, p->key_len, pe);
        if (pl == p->end_len && !memcmp(pe, p->end, pl))
            printf(" (prefix %.*s)", (int)p->key_len, p->key);
    }
    putchar('\n');
}

static int role_get(cetcd_client *cl, const char *role)
{
    struct cetcd_role_perms r;
    int rc = cetcd_role_get(cl, role, &r);

    if (rc)
        return finish(cl, rc, "%s%s", "", "");
    printf("Role %s\nKV Read:\n", role);
    for (size_t i = 0; i < r.n; i++)
        if (r.perms[i].type != 1)
            print_perm(&r.perms[i]);
    puts("KV Write:");
    for (size_t i = 0; i < r.n; i++)
        if (r.perms[i].type != 0)
            print_perm(&r.perms[i]);
    cetcd_role_perms_free(&r);
    cetcd_client_free(cl);
    return 0;
}

/* key [end] with --prefix / --from-key into p (end points into buf when derived). */
static int perm_range(const struct ctl *c, int first, struct cetcd_perm *p, char *buf, size_t len)
{
    bool prefix = ctl_bool(c, "prefix"), from = ctl_bool(c, "from-key");

    p->key = (char *)c->args[first];
    p->key_len = strlen(p->key);
    p->end = (char *)"";
    p->end_len = 0;
    if (prefix && from)
        return ctl_fail(EXIT_BAD_ARGS, "--from-key and --prefix flags are mutually exclusive");
    if (c->n_args > first + 1) {
        if (prefix || from)
            return ctl_fail(EXIT_BAD_ARGS, "unexpected endkey argument with --%s flag",
                            prefix ? "prefix" : "from-key");
        p->end = (char *)c->args[first + 1];
        p->end_len = strlen(p->end);
    } else if (prefix) {
        if (p->key_len >= len)
            return ctl_fail(EXIT_BAD_ARGS, "key too long");
        p->end_len = cetcd_prefix_end(p->key, p->key_len, buf);
        p->end = buf;
    } else if (from) {
        p->end = (char *)"\0";
        p->end_len = 1;
    }
    return 0;
}

static int perm_type(const char *s, int *type)
{
    static const char *const names[] = {"read", "write", "readwrite"};

    for (int i = 0; i < 3; i++)
        if (!strcasecmp(s, names[i])) {
            *type = i;
            return 0;
        }
    return ctl_fail(EXIT_BAD_ARGS, "invalid permission type %s", s);
}

static int role_grant(struct ctl *c, cetcd_client *cl)
{
    struct cetcd_perm p;
    char buf[1024];
    int rc;

    if (c->n_args < 3 || c->n_args > 4)
        rc = ctl_fail(EXIT_BAD_ARGS, "role grant command requires role name, permission type, and key [endkey] as its argument");
    else if (!(rc = perm_type(c->args[1], &p.type)) && !(rc = perm_range(c, 2, &p, buf, sizeof(buf))))
        return finish(cl, cetcd_role_grant(cl, c->args[0], &p), "Role %s updated\n%s", c->args[0], "");
    cetcd_client_free(cl);
    return rc;
}

static int role_revoke(struct ctl *c, cetcd_client *cl)
{
    struct cetcd_perm p;
    char buf[1024];
    int rc;

    if (c->n_args < 2 || c->n_args > 3)
        rc = ctl_fail(EXIT_BAD_ARGS, "role revoke-permission command requires role name and key [endkey] as its argument");
    else if (!(rc = perm_range(c, 1, &p, buf, sizeof(buf)))) {
        rc = cetcd_role_revoke(cl, c->args[0], p.key, p.key_len, p.end, p.end_len);
        if (rc)
            return finish(cl, rc, "%s%s", "", "");
        if (p.end_len)
            printf("Permission of range [%.*s, %.*s) is revoked from role %s\n", (int)p.key_len,
                   p.key, (int)p.end_len, p.end, c->args[0]);
        else
            printf("Permission of key %s is revoked from role %s\n", p.key, c->args[0]);
    }
    cetcd_client_free(cl);
    return rc;
}

int ctl_cmd_role(struct ctl *c, const char *sub)
{
    struct cetcd_names names;
    cetcd_client *cl;
    int rc;

    if (!strcmp(sub, "list") && (rc = need_args(c, 0, "role list command requires no arguments")))
        return rc;
    if ((!strcmp(sub, "add") || !strcmp(sub, "delete") || !strcmp(sub, "get")) &&
        c->n_args != 1)
        return ctl_fail(EXIT_BAD_ARGS, "role %s command requires role name as its argument", sub);
    if ((rc = ctl_client(c, NULL, 0, &cl)))
        return rc;
    if (!strcmp(sub, "add"))
        return finish(cl, cetcd_role_add(cl, c->args[0]), "Role %s created\n%s", c->args[0], "");
    if (!strcmp(sub, "delete"))
        return finish(cl, cetcd_role_delete(cl, c->args[0]), "Role %s deleted\n%s", c->args[0], "");
    if (!strcmp(sub, "get"))
        return role_get(cl, c->args[0]);
    if (!strcmp(sub, "list"))
        return print_names(cl, cetcd_role_list(cl, &names), &names);
    if (!strcmp(sub, "grant-permission"))
        return role_grant(c, cl);
    return role_revoke(c, cl);
}
