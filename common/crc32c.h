/*
 * crc32c.h: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), used by the WAL, the
 * snapshot files and the store's HashKV (etcd's hash). crc32c(0, "123456789", 9) == 0xE3069283. Chaining holds:
 * crc32c(crc32c(0, a), b) == crc32c(0, a || b). Uses SSE4.2 when the CPU has it, else a table.
 */
#ifndef CETCD_CRC32C_H
#define CETCD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *buf, size_t len);
/* The table path alone, the reference the fast path is tested against. */
uint32_t crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
