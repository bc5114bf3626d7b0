/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * snd-voip RTOS audio FIFO, version 1.1: the shared-memory ring between the
 * RTOS core that owns the codec and Linux. One ring per direction, each a
 * 256-byte little-endian header followed by ring_bytes of interleaved audio.
 *
 * This header is for the firmware team; Linux uses the identical layout in
 * kmod-snd-voip/logic/fifo.rs. Rules (see ARCHITECTURE.md "RTOS audio FIFO"):
 *
 *  - Single producer, single consumer. The producer writes only the
 *    producer line (write_frames, producer_state, overruns,
 *    producer_heartbeat) and the data; the consumer writes only the consumer
 *    line (read_frames, consumer_state, underruns, consumer_heartbeat).
 *  - Counters (1.1): write_frames and read_frames are free-running frame
 *    counts modulo 2^32. Publish yours with one aligned 32-bit store and
 *    compute with 32-bit wrapping arithmetic:
 *        fill = (uint32_t)(write_frames - read_frames), 0 .. capacity
 *    (snd_voip_fifo_fill() below). Never reset a counter while the other
 *    side runs. The *_hi words after them are optional: a writer that
 *    keeps them as the carry (store the low word, then the high word) stays
 *    readable by version 1.0 drivers, which read 64-bit counters; Linux
 *    1.1 ignores them except to cross-check rings that say 1.0. Linux
 *    (a 64-bit core) writes its counter in one 64-bit store, so both words
 *    of Linux's counter are always consistent.
 *  - Linux reads your counter's low word and extends it from the value it
 *    last accepted: it cannot move by more than a ring (a producer is never
 *    more than capacity ahead of the consumer, a consumer never ahead of the
 *    producer). A value outside that is taken as a transient glitch; a run
 *    of them (8 Linux periods) stops Linux's use of the ring until the
 *    stream restarts.
 *  - Producer: write the frames, then a write barrier (DMB ST on the M core,
 *    dma_wmb() on Linux), then publish write_frames (release).
 *  - Consumer: read write_frames (acquire), a read barrier (DMB / dma_rmb()),
 *    then read the frames; after copying, a full barrier, then publish
 *    read_frames.
 *  - The side that initialises a ring fills every field, issues a write
 *    barrier and writes magic last. Linux refuses a ring whose magic,
 *    version, sizes or format are wrong, and stops using one whose counters
 *    become impossible (fill > capacity or read ahead of write).
 *  - overruns (producer) and underruns (consumer) count events while the
 *    other side's state is 1 (running): a full ring nobody reads, or an
 *    empty one nobody fills, is not an xrun. They count events, not
 *    frames (Linux counts one per run of ticks it could not serve). The RTOS
 *    drops frames that do not fit (never overwrites unread ones); Linux
 *    skips a full ring whole at start, since its contents are old.
 *  - State words: 1 while the side streams, 0 when stopped, paused or
 *    suspended (Linux clears its word on pause and on system suspend, and
 *    re-syncs the ring when it streams again).
 */
#ifndef SND_VOIP_FIFO_H
#define SND_VOIP_FIFO_H

#include <stdint.h>

#define SND_VOIP_FIFO_MAGIC		0x51465653u	/* "SVFQ" little-endian */
#define SND_VOIP_FIFO_VERSION_MAJOR	1
#define SND_VOIP_FIFO_VERSION_MINOR	1
#define SND_VOIP_FIFO_HEADER_SIZE	256

#define SND_VOIP_FIFO_FORMAT_S16_LE	2	/* ALSA format codes */
#define SND_VOIP_FIFO_FORMAT_MU_LAW	20
#define SND_VOIP_FIFO_FORMAT_A_LAW	21

#define SND_VOIP_FIFO_TO_LINUX		0	/* microphone: RTOS produces */
#define SND_VOIP_FIFO_FROM_LINUX	1	/* speaker: Linux produces */

struct snd_voip_fifo_header {
	/* 0: description, written once by the initialising side */
	uint32_t magic;			/* written last */
	uint16_t version_major;
	uint16_t version_minor;
	uint32_t header_size;		/* >= 256; data starts here */
	uint32_t ring_bytes;		/* power of two, whole frames */
	uint32_t period_frames;		/* 1 .. capacity / 2 */
	uint32_t rate;			/* 8000, 16000, 32000, 44100, 48000 */
	uint16_t channels;		/* 1 or 2 */
	uint16_t format;		/* SND_VOIP_FIFO_FORMAT_* */
	uint32_t direction;		/* SND_VOIP_FIFO_TO_LINUX / _FROM_LINUX */
	uint8_t reserved0[32];
	/* 64: producer's cache line */
	uint32_t write_frames;		/* frames written, modulo 2^32 */
	uint32_t write_frames_hi;	/* optional carry (for 1.0 readers) */
	uint32_t producer_state;	/* 0 stopped, 1 running */
	uint32_t overruns;
	uint32_t producer_heartbeat;
	uint8_t reserved1[44];
	/* 128: consumer's cache line */
	uint32_t read_frames;		/* frames read, modulo 2^32 */
	uint32_t read_frames_hi;	/* optional carry (for 1.0 readers) */
	uint32_t consumer_state;
	uint32_t underruns;
	uint32_t consumer_heartbeat;
	uint8_t reserved2[44];
	/* 192 */
	uint8_t reserved3[64];
} __attribute__((packed, aligned(64)));

_Static_assert(sizeof(struct snd_voip_fifo_header) == SND_VOIP_FIFO_HEADER_SIZE, "header is 256 bytes");

/* Frames in the ring from the two counters (32-bit wrapping arithmetic). */
static inline uint32_t snd_voip_fifo_fill(uint32_t write_frames, uint32_t read_frames)
{
	return write_frames - read_frames;
}

#endif /* SND_VOIP_FIFO_H */
