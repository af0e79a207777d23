/*
 * base64.h: standard base64 (RFC 4648 section 4), shared by the client library (etcd's JSON
 * gateway carries keys and values as base64) and the operator (kubeconfig "-data" fields).
 * The encoder writes padded standard base64; the decoder also accepts the URL-safe alphabet
 * and missing padding, and refuses anything else with CE_CORRUPT.
 */
#ifndef CETCD_BASE64_H
#define CETCD_BASE64_H

#include <stddef.h>

size_t cetcd_b64_encoded_len(size_t n);
void cetcd_b64_encode(const void *src, size_t n, char *dst); /* writes encoded_len + NUL */
/* dst needs at least n*3/4+3 bytes. */
int cetcd_b64_decode(const char *src, size_t n, char *dst, size_t *outlen);
/* Text of base64 with whitespace ignored (a kubeconfig's or a Secret's data) decoded into a new
 * NUL-terminated string: 0, CE_CORRUPT or CE_NOMEM. */
int cetcd_b64_decode_text(const char *in, char **out);

#endif
