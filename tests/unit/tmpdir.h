/*
 * tmpdir.h: the unit tests' scratch directories. A test makes one with mkdtemp under /tmp and
 * removes it, contents and all, in its teardown with tmpdir_remove (depth first, symlinks not
 * followed). Header-only: each test binary is one translation unit.
 */
#ifndef CETCD_TEST_TMPDIR_H
#define CETCD_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static int tmpdir_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static inline int tmpdir_remove(const char *dir)
{
    return nftw(dir, tmpdir_rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

#endif
