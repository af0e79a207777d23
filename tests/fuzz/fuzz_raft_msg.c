// FUZZ_SOURCES: server/raft/*.c
/*
 * fuzz_raft_msg.c: the peer wire decoder (2380) must reject any byte string without crashing
 * or leaking, and whatever it accepts must encode and decode again to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/raft/raft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    raft_msg m;
    uint8_t *buf = 0;
    size_t len = 0;

    if (raft_msg_decode(data, size, &m) != 0)
        return 0;
    if (raft_msg_encode(&m, &buf, &len) == 0) {
        raft_msg again;
        if (raft_msg_decode(buf, len, &again) != 0)
            abort();
        raft_msg_free(&again);
        free(buf);
    }
    raft_msg_free(&m);
    return 0;
}
