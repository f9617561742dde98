/*
 * crc32.h - CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, as in
 * iSCSI, ext4 and btrfs), for checking records written to files; fast
 * where the CPU computes it (SSE4.2).
 */
#ifndef CHATD_CRC32_H
#define CHATD_CRC32_H

#include <stddef.h>
#include <stdint.h>

/*
 * crc extended by the len bytes at p: start with 0 and feed the pieces
 * in order (crc32c_update(0, "123456789", 9) == 0xE3069283).
 */
uint32_t	crc32c_update(uint32_t crc, const void *p, size_t len);
/* The same by the table alone (what a CPU without SSE4.2 runs). */
uint32_t	crc32c_table(uint32_t crc, const void *p, size_t len);

#endif
