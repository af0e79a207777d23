/*
 * pbutil.c: descriptor-driven walks over protobuf-c messages (see pbutil.h).
 */
#include "pbutil.h"

#include <stdlib.h>

static void strip_field(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    char *base = (char *)msg;

    if (f->type != PROTOBUF_C_TYPE_MESSAGE)
        return;
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        size_t n = *(size_t *)(base + f->quantifier_offset);
        ProtobufCMessage **arr = *(ProtobufCMessage ***)(base + f->offset);
        for (size_t i = 0; i < n; i++)
            pb_strip_unknown(arr[i]);
        return;
    }
    if ((f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) &&
        *(uint32_t *)(base + f->quantifier_offset) != f->id)
        return; /* another member of the oneof is set */
    pb_strip_unknown(*(ProtobufCMessage **)(base + f->offset));
}

void pb_strip_unknown(ProtobufCMessage *msg)
{
    if (!msg)
        return;
    for (unsigned i = 0; i < msg->n_unknown_fields; i++)
        free(msg->unknown_fields[i].data);
    free(msg->unknown_fields);
    msg->unknown_fields = 0;
    msg->n_unknown_fields = 0;
    for (unsigned i = 0; i < msg->descriptor->n_fields; i++)
        strip_field(msg, &msg->descriptor->fields[i]);
}
