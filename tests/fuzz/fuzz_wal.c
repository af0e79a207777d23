// FUZZ_SOURCES: server/wal/*.c
/*
 * fuzz_wal.c: libFuzzer target for the WAL reader. The input's first byte picks a layout, the
 * rest becomes the last segment of a fresh temporary WAL directory:
 *   bit 0 clear: the bytes are the segment, raw;
 *   bit 0 set:   the bytes are read as records {type % 6, len (1 byte), payload} that are
 *                framed with correct CRCs after a correct segment header and metadata (type 0
 *                writes the payload unframed, as garbage), so the replay logic behind the CRC
 *                check (record order, index continuity, truncation, torn tails) is reached;
 *   bit 1 set:   a valid segment 0 made by wal_create precedes the input as segment 1.
 * wal_open must fail cleanly or replay, repair and open; if it opens, a save + sync + reopen
 * with the same snapshot index must work and end with the saved entry. Never a crash, a leak
 * or a sanitizer finding.
 *   clang -fsanitize=fuzzer,address,undefined -I. -Icommon tests/fuzz/fuzz_wal.c \
 *         server/wal/\*.c common/\*.c -o /tmp/fw && /tmp/fw -max_total_time=20
 * The framing below restates the format documented at the top of server/wal/wal.c.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"
#include "common/crc32c.h"
#include "common/lebytes.h"
#include "server/wal/wal.h"

static char root[64];
static uint8_t out[1 << 17];

static void clean_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        unlink(p);
    }
    closedir(d);
}

static void write_segment(const char *name, const uint8_t *data, size_t size)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", root, name);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        abort();
    if (size && write(fd, data, size) != (ssize_t)size)
        abort();
    close(fd);
}

/* Frames one record at *off of out (see wal.c); false if it does not fit. */
static int frame(uint32_t salt, size_t *off, uint8_t type, const uint8_t *p, size_t len)
{
    size_t ext = 16 + ((len + 7) & ~(size_t)7);
    if (*off + ext > sizeof out)
        return 0;
    uint8_t *h = out + *off;
    memset(h, 0, ext);
    le_put32(h, (uint32_t)len);
    h[4] = type;
    uint8_t b[16];
    le_put64(b, *off);
    memcpy(b + 8, h, 8);
    uint32_t hcrc = crc32c(salt, b, 16);
    le_put32(h + 8, hcrc);
    memcpy(h + 16, p, len);
    le_put32(h + 12, crc32c(hcrc, p, len));
    *off += ext;
    return 1;
}

static size_t structured(uint64_t seq, uint64_t first, const uint8_t *d, size_t n)
{
    uint8_t s[16];
    memcpy(s, "cetcdWAL", 8);
    le_put64(s + 8, seq);
    uint32_t salt = crc32c(0, s, 16);
    uint8_t hdr[32] = {0};
    memcpy(hdr, "cetcdWAL", 8);
    le_put32(hdr + 8, 1);
    le_put64(hdr + 16, seq);
    le_put64(hdr + 24, first);
    size_t off = 0;
    frame(salt, &off, 1, hdr, sizeof hdr);
    frame(salt, &off, 2, (const uint8_t *)"m", 1);
    for (size_t i = 0; i + 2 <= n;) {
        uint8_t type = d[i] % 6;
        size_t len = d[i + 1];
        i += 2;
        if (len > n - i)
            len = n - i;
        if (type == 0) {
            if (off + len > sizeof out)
                break;
            memcpy(out + off, d + i, len);
            off += len;
        } else if (!frame(salt, &off, type, d + i, len)) {
            break;
        }
        i += len;
    }
    return off;
}

/* Opens what is there; if accepted, appends one entry and checks a reopen sees it. */
static void exercise(uint64_t snap_index)
{
    wal *w;
    wal_replay rp;
    if (wal_open(root, snap_index, &w, &rp) != 0)
        return;
    wal_set_unsafe_no_fsync(w, true);
    wal_set_segment_bytes(w, 4096); /* a small zeroed tail, a cut now and then */
    wal_replay_free(&rp);
    wal_entry e = {.term = 1, .index = wal_last_index(w) + 1, .data = (const uint8_t *)"x",
                   .len = 1};
    int rc = wal_save(w, NULL, &e, e.index ? 1 : 0);
    if (rc == 0)
        rc = wal_sync(w);
    wal_close(w);
    if (rc != 0)
        abort();
    /* what was accepted and appended to must reopen, with the new entry last */
    if (wal_open(root, snap_index, &w, &rp) != 0)
        abort();
    if (e.index > snap_index &&
        (rp.nents == 0 || rp.ents[rp.nents - 1].index != e.index ||
         rp.ents[rp.nents - 1].len != 1 || rp.ents[rp.nents - 1].data[0] != 'x'))
        abort();
    wal_replay_free(&rp);
    wal_close(w);
}

/* A valid first segment, made once by wal_create (syncs are too slow to do per input). */
static uint8_t seg0[4096];
static size_t seg0_len;

static void make_seg0(void)
{
    char dir[128], path[192];
    snprintf(dir, sizeof dir, "%s/tmpl", root);
    wal *w;
    if (wal_create(dir, (const uint8_t *)"m", 1, &w) != 0)
        abort();
    wal_close(w);
    snprintf(path, sizeof path, "%s/0000000000000000-0000000000000000.wal", dir);
    int fd = open(path, O_RDONLY);
    ssize_t n = fd >= 0 ? read(fd, seg0, sizeof seg0) : -1;
    if (n <= 0)
        abort();
    seg0_len = (size_t)n;
    close(fd);
    unlink(path);
    rmdir(dir);
}

static void remove_root(void)
{
    clean_dir(root);
    rmdir(root);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    log_set_level(LOG_FATAL);
    snprintf(root, sizeof root, "/tmp/fuzz_wal.XXXXXX");
    if (!mkdtemp(root))
        abort();
    atexit(remove_root);
    make_seg0();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    clean_dir(root);
    uint64_t seq = 0;
    if (mode & 2) {
        write_segment("0000000000000000-0000000000000000.wal", seg0, seg0_len);
        seq = 1;
    }
    const char *name = seq ? "0000000000000001-0000000000000001.wal"
                           : "0000000000000000-0000000000000000.wal";
    if (mode & 1)
        write_segment(name, out, structured(seq, seq, data, size));
    else
        write_segment(name, data, size);
    exercise((uint64_t)(mode >> 2));
    return 0;
}
