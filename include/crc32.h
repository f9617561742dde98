/*
 * crc32.h - the CRC-32 of zlib, gzip and Ethernet (reflected polynomial
 * 0xEDB88320), for checking records written to files.
 */
#ifndef CHATD_CRC32_H
#define CHATD_CRC32_H

#include <stddef.h>
#include <stdint.h>

/*
 * crc extended by the len bytes at p: start with 0, feed the pieces in
 * order (crc32(0, "123456789", 9) == 0xCBF43926, as zlib's crc32).
 */
uint32_t	crc32_update(uint32_t crc, const void *p, size_t len);

#endif
