/*
 * yamljson.c: YAML (the first document) -> cJSON, for kubeconfig files (libyaml's document API).
 *
 * Mappings become objects (non-scalar keys are skipped; a repeated key keeps its first value),
 * sequences arrays, and every scalar a string: the kubeconfig reader interprets "true" and the
 * like itself. Anchors and aliases resolve to copies; the depth (64) and the total number of
 * nodes produced (200000) are bounded so that alias bombs fail instead of exhausting memory.
 */
#include "k8s_int.h"

#include <string.h>
#include <yaml.h>

#define MAX_DEPTH 64
#define MAX_NODES 200000

struct conv {
    yaml_document_t *doc;
    size_t nodes;
};

static cJSON *convert(struct conv *cv, yaml_node_t *n, int depth);

static cJSON *convert_seq(struct conv *cv, yaml_node_t *n, int depth)
{
    cJSON *a = cJSON_CreateArray(), *v;

    for (yaml_node_item_t *it = n->data.sequence.items.start; a && it < n->data.sequence.items.top;
         it++) {
        if (!(v = convert(cv, yaml_document_get_node(cv->doc, *it), depth + 1))) {
            cJSON_Delete(a);
            return NULL;
        }
        cJSON_AddItemToArray(a, v);
    }
    return a;
}

static cJSON *convert_map(struct conv *cv, yaml_node_t *n, int depth)
{
    cJSON *o = cJSON_CreateObject(), *v;

    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; o && p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(cv->doc, p->key);
        const char *key;

        if (!k || k->type != YAML_SCALAR_NODE)
            continue;
        key = (const char *)k->data.scalar.value;
        if (cJSON_HasObjectItem(o, key))
            continue;
        if (!(v = convert(cv, yaml_document_get_node(cv->doc, p->value), depth + 1))) {
            cJSON_Delete(o);
            return NULL;
        }
        cJSON_AddItemToObject(o, key, v);
    }
    return o;
}

static cJSON *convert(struct conv *cv, yaml_node_t *n, int depth)
{
    if (!n || depth > MAX_DEPTH || ++cv->nodes > MAX_NODES)
        return NULL;
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return cJSON_CreateString((const char *)n->data.scalar.value);
    case YAML_SEQUENCE_NODE:
        return convert_seq(cv, n, depth);
    case YAML_MAPPING_NODE:
        return convert_map(cv, n, depth);
    default:
        return NULL;
    }
}

int k8s_yaml_to_json(const char *text, size_t len, cJSON **out)
{
    yaml_parser_t p;
    yaml_document_t doc;
    struct conv cv = {&doc, 0};
    yaml_node_t *root;
    int rc = 0;

    *out = NULL;
    if (!yaml_parser_initialize(&p))
        return k8s_fail(CE_NOMEM, "kubernetes: out of memory");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    if (!yaml_parser_load(&p, &doc)) {
        rc = k8s_fail(CE_K8S_CONFIG, "invalid YAML at line %zu: %s", p.problem_mark.line + 1,
                      p.problem ? p.problem : "parse error");
        goto out_delete_parser;
    }
    root = yaml_document_get_root_node(&doc);
    *out = root ? convert(&cv, root, 0) : cJSON_CreateObject();
    if (!*out)
        rc = k8s_fail(CE_K8S_CONFIG, "YAML too deep or too large (aliases?)");
    yaml_document_delete(&doc);

out_delete_parser:
    yaml_parser_delete(&p);
    return rc;
}
