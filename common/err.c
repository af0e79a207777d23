/*
 * err.c: lookups in the error table of err.h, and the message helper ce_errf. Pure
 * functions, no state.
 */
#include "err.h"

#include <errno.h>
#include <stdio.h>

struct ce_entry {
    int code;
    int grpc;
    const char *msg;
};

static const struct ce_entry table[] = {
#define CE_ROW_(name, value, grpc, msg) {value, grpc, msg},
    CE_ERRORS(CE_ROW_)
#undef CE_ROW_
};

static const struct ce_entry *find(int err)
{
    for (unsigned i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (table[i].code == err)
            return &table[i];
    return 0;
}

const char *ce_strerror(int err)
{
    const struct ce_entry *e;

    if (err == CE_OK)
        return "ok";
    e = find(err);
    return e ? e->msg : "unknown error";
}

int ce_grpc_code(int err)
{
    const struct ce_entry *e;

    if (err == CE_OK)
        return 0;
    e = find(err);
    return e ? e->grpc : 2;
}

int ce_from_errno(int errnum)
{
    switch (errnum) {
    case ENOMEM:
        return CE_NOMEM;
    case ENOENT:
        return CE_NOTFOUND;
    case EEXIST:
        return CE_EXISTS;
    case EINVAL:
        return CE_INVAL;
    case EAGAIN:
        return CE_AGAIN;
    case ENOSPC:
        return CE_NO_SPACE;
    default:
        return CE_IO;
    }
}

int ce_verrf(char *err, size_t errsz, int rc, const char *fmt, va_list ap)
{
    if (err && errsz)
        vsnprintf(err, errsz, fmt, ap);
    return rc;
}

int ce_errf(char *err, size_t errsz, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rc = ce_verrf(err, errsz, rc, fmt, ap);
    va_end(ap);
    return rc;
}
