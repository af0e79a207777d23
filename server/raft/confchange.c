/*
 * confchange.c: the payload of a RAFT_ENTRY_CONF_CHANGE entry. It is written to the WAL and
 * replicated, so its format is fixed:
 *
 *   offset  size  field
 *   0       1     type (raft_conf_change_type: 0 add voter, 1 remove, 2 update,
 *                 3 add learner, 4 promote)
 *   1       8     node id, little endian, != 0
 *   9       n     context: opaque member record of the node (n = len - 9, may be 0)
 *
 * Invariant: decode accepts exactly what encode produces; anything else is CE_CORRUPT.
 */
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "raft_int.h"

#define CC_HEADER 9

int raft_conf_change_encode(const raft_conf_change *cc, uint8_t **buf, size_t *len)
{
    if ((unsigned)cc->type > RAFT_CC_PROMOTE || cc->node_id == RAFT_NONE ||
        (cc->context_len && !cc->context))
        return CE_INVAL;
    uint8_t *b = malloc(CC_HEADER + cc->context_len);
    if (!b)
        return CE_NOMEM;
    b[0] = (uint8_t)cc->type;
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(cc->node_id >> (8 * i));
    if (cc->context_len)
        memcpy(b + CC_HEADER, cc->context, cc->context_len);
    *buf = b;
    *len = CC_HEADER + cc->context_len;
    return 0;
}

int raft_conf_change_decode(const uint8_t *data, size_t len, raft_conf_change *cc)
{
    if (!data || len < CC_HEADER || data[0] > RAFT_CC_PROMOTE)
        return CE_CORRUPT;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++)
        id |= (uint64_t)data[1 + i] << (8 * i);
    if (id == RAFT_NONE)
        return CE_CORRUPT;
    cc->type = (raft_conf_change_type)data[0];
    cc->node_id = id;
    cc->context_len = len - CC_HEADER;
    cc->context = cc->context_len ? data + CC_HEADER : NULL;
    return 0;
}
