/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * snd-voip RTOS audio FIFO, version 1.0: the shared-memory ring between the
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
 *  - Counters are free-running 64-bit frame counts; never reset them while
 *    the other side runs. fill = write_frames - read_frames, 0..capacity.
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
 *    empty one nobody fills, is not an xrun. The RTOS drops frames that do
 *    not fit (never overwrites unread ones); Linux skips a full ring whole
 *    at start, since its contents are old.
 *  - 64-bit counters on a 32-bit core: write the low word, then the high
 *    word, or use an exclusive 64-bit store; Linux re-reads until two reads
 *    agree.
 */
#ifndef SND_VOIP_FIFO_H
#define SND_VOIP_FIFO_H

#include <stdint.h>

#define SND_VOIP_FIFO_MAGIC		0x51465653u	/* "SVFQ" little-endian */
#define SND_VOIP_FIFO_VERSION_MAJOR	1
#define SND_VOIP_FIFO_VERSION_MINOR	0
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
	uint64_t write_frames;
	uint32_t producer_state;	/* 0 stopped, 1 running */
	uint32_t overruns;
	uint32_t producer_heartbeat;
	uint8_t reserved1[44];
	/* 128: consumer's cache line */
	uint64_t read_frames;
	uint32_t consumer_state;
	uint32_t underruns;
	uint32_t consumer_heartbeat;
	uint8_t reserved2[44];
	/* 192 */
	uint8_t reserved3[64];
} __attribute__((packed, aligned(64)));

_Static_assert(sizeof(struct snd_voip_fifo_header) == SND_VOIP_FIFO_HEADER_SIZE, "header is 256 bytes");

#endif /* SND_VOIP_FIFO_H */
