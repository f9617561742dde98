/*
 * histspool.h - a worker's durable backlog of history rows: append-only
 * files that one writer thread appends to and one reader thread takes
 * from, stores elsewhere and marks done, both at once.  A mutex guards
 * only the offsets and counters, never held during I/O (except the
 * ftruncate that empties a file and the 32-byte write of a done
 * record).  A pure file module: no libev, no store calls.
 *
 * Two files, path and path.b: a file is emptied (truncated to 0) once
 * every record in it is done, but under steady load rows arrive while
 * others are stored and one file might never be all done; so the
 * writer moves to the other file, once that one is empty, when its own
 * passes a quarter of max_bytes (at least 4 KiB, at most 64 MiB), and
 * the reader takes the older file to its end first.  Each file stays
 * near that size plus what is pending.
 *
 * Each file is a run of records, each a 40-byte little-endian header
 * and the text:
 *     0  u8   HISTSPOOL_MAGIC (0xb1: the magic and version 1)
 *     1  u8   0, 0, 0 (reserved)
 *     4  u32  len: bytes of text (at most HISTSPOOL_MAX_TEXT)
 *     8  i64  smid
 *    16  i32  sender
 *    20  i32  peer
 *    24  i32  gid
 *    28  u32  CRC-32C (crc32.h) of bytes 0..27, 32..39 and the text
 *    32  i64  created (ms)
 *    40       the text, len bytes
 * A header with another magic, a nonzero reserved byte, a length over
 * the bound or a CRC that does not match is corrupt.  Nothing else is
 * in the files (when both hold rows, the file whose first row is older
 * is taken first).
 *
 * A third file, path.done, holds a done record per file (path's at byte
 * 0, path.b's at 32), rewritten at each histspool_done that extends
 * the file's done prefix (the records from its start all done), zeroed
 * before the file is emptied:
 *     0  u8   HISTSPOOL_DONE_MAGIC (0xd1), then 0, 0, 0
 *     4  u32  chain: CRC-32C of the prefix's record headers, in order
 *     8  u64  off: the prefix's end
 *    16  i64  smid of its last record
 *    24  u32  0 (reserved)
 *    28  u32  CRC-32C of bytes 0..27
 * An open starts taking a file at off only when the record is sound
 * and a record of the file ends at off with that chain and smid, i.e.
 * the file still begins with the records that were done; anything else
 * (no record, a torn or damaged one, one left from content since
 * emptied, a file cut before off) takes the file from its start again.
 *
 * Crash cases (the process dies; the kernel keeps what write() took,
 * histspool_sync() makes it survive a power loss too):
 * - after append: the rows are in the file; the next open takes them
 *   first.
 * - after take, or after storing elsewhere but before done: the rows
 *   are still in the file and are taken again after the open (at least
 *   once: the store must leave a row kept before as it is, as
 *   store_history_add does by smid).  Rows done after a batch freed
 *   undone, and the last batch when its done record did not reach the
 *   file, are taken again too; the done prefix is not.
 * - torn write (crash inside write(), or a disk that kept part of it):
 *   the open cuts the file at the end of the last whole record before
 *   the first damaged one, logs it, and appends after that; nothing
 *   after a damaged record is taken (a resync could invent rows).
 */
#ifndef CHATD_HISTSPOOL_H
#define CHATD_HISTSPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define HISTSPOOL_MAGIC		0xb1
#define HISTSPOOL_HDR		40
#define HISTSPOOL_DONE_MAGIC	0xd1
#define HISTSPOOL_DONE_REC	32
/* the largest text a record may hold: max_frame_bytes's upper bound */
#define HISTSPOOL_MAX_TEXT	(16u * 1024 * 1024)

struct histspool;

/*
 * Rows taken: v[0..n) and their texts point into buf, which the batch
 * owns.  The fields after n are the spool's; a batch is filled by
 * histspool_take and released by histspool_done or
 * histspool_batch_free (either accepts a batch of 0 rows).
 */
struct histspool_batch {
	struct store_hist	*v;
	size_t			 n;
	char			*buf;
	uint64_t		 bytes;		/* of the file the rows span */
	uint64_t		 start;		/* where in it they start */
	int			 file;		/* which of the two */
};

/*
 * Create path, path.b and path.done (mode 0600) or open them, and take
 * an exclusive flock(2) on the first two; the rows a previous run left
 * (after each file's done prefix) are the first taken.  A torn or
 * corrupt tail is cut (see above), with a log line.  max_bytes bounds
 * what is pending (appended, not yet done); 0: no bound.  NULL with errno: open's,
 * EWOULDBLOCK when another process holds the spool, EIO when reading
 * or cutting the file failed, ENOMEM.
 */
struct histspool	*histspool_open(const char *path, uint64_t max_bytes);

/*
 * Append v[0..n) as one write() (short writes continued).  0, or -1
 * with errno, and nothing of this call is in the file (it is cut back):
 * EFBIG when pending would pass max_bytes (the file is not touched: try
 * again once the reader has done some; a call alone larger than
 * max_bytes is taken when nothing is pending, so it never waits for
 * ever); ENOSPC when the disk is full or
 * the file reached RLIMIT_FSIZE (write's EFBIG, with SIGXFSZ ignored);
 * EIO for other write errors or when an earlier failed write could not
 * be cut back; EINVAL for a text over HISTSPOOL_MAX_TEXT; ENOMEM.
 * One writer thread at a time.
 */
int	histspool_append(struct histspool *hs, const struct store_hist *v,
	    size_t n);

/*
 * Up to max_rows rows not yet taken, oldest first, into *out (out->n
 * 0: nothing is waiting), read with pread.  0, or -1 with errno (EIO,
 * ENOMEM; nothing is taken).  A record found damaged here (the disk
 * changed it) ends the rows: it and everything after it are logged and
 * given up (counted as stored, so that pending reaches 0).  One reader
 * thread at a time.
 */
int	histspool_take(struct histspool *hs, size_t max_rows,
	    struct histspool_batch *out);

/*
 * out's rows are stored: counts them and frees the batch.  When every
 * row of their file is done, the file is truncated to 0 (so it does not
 * grow without bound).  0, or -1 with errno when that truncation failed
 * (the rows still count as done; it is tried again at the writer's next
 * append).
 */
int	histspool_done(struct histspool *hs, struct histspool_batch *b);

/*
 * Frees a batch taken but not stored: its rows are NOT taken again by
 * this handle, only after a reopen (a crash does the same), and until
 * then their file is not emptied (nor, for want of an empty one, can
 * the writer move on) and they stay pending.  Store again and
 * call histspool_done instead where the rows must not wait.
 */
void	histspool_batch_free(struct histspool_batch *b);

/* Bytes ever appended (a previous run's rows count as appended at open). */
uint64_t	histspool_appended(struct histspool *hs);
/* Bytes ever done (or given up as damaged); never more than appended. */
uint64_t	histspool_stored(struct histspool *hs);
/* appended - stored: what the reader still owes. */
uint64_t	histspool_pending(struct histspool *hs);
/* fdatasync(2), for a periodic call by the writer: 0, or -1 with errno. */
int	histspool_sync(struct histspool *hs);
/* Closes the files (left as they are: rows are taken after the next open). */
void	histspool_close(struct histspool *hs);

#endif
