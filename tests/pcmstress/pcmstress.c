// SPDX-License-Identifier: GPL-2.0
/*
 * pcmstress: stress and behaviour checks of the snd-voip card through the
 * raw ALSA ioctls (no alsa-lib), so the same file builds with glibc for the
 * x86_64 guest and with the kernel's nolibc for the emulated arm64 board
 * (tests/pcmstress/build.sh).
 *
 *   pcmstress stress CYCLES PROCS [routes]   parallel open/hw_params/prepare/
 *                                            trigger/close cycles over every
 *                                            substream of both devices, with
 *                                            random pauses, I/O and control
 *                                            changes (routes: also the RTOS
 *                                            routing controls)
 *   pcmstress modcycle KO N [PARAMS]         N load/unload cycles of module KO
 *   pcmstress eio                            ends of different formats: START -> EIO
 *   pcmstress route                          route changes after prepare (RTOS board)
 *   pcmstress delay DEV DIR SECONDS PERIOD   stream and print delay / ring part
 *   pcmstress pause DEV DIR FILE             stream 3 s, pause 3 s, stream 3 s (to FILE)
 *   pcmstress suspend DEV DIR MODE [GO]      MODE run|pause: wait for a system suspend
 *                                            (SUSPENDED), resume, stream on (pause:
 *                                            release once file GO exists)
 *   pcmstress play DEV FILE                  play raw S16_LE mono 8 kHz FILE
 *   pcmstress ctlwatch SECONDS               print every control value event
 *   pcmstress ctlset NAME DEVICE SUB VALUE   write a (PCM iface) control
 *   pcmstress rt PRIO PROG [ARGS...]         run PROG under SCHED_FIFO PRIO
 *                                            (chrt -f for guests without
 *                                            util-linux: the arm64 busybox
 *                                            has no chrt); PROG without a /
 *                                            is looked up in /usr/bin, /bin,
 *                                            /usr/sbin, /sbin
 *
 * DEV is "D,S" (PCM device, substream) of card VoIP; DIR is p or c. Each
 * check prints "PASS: ..." or "FAIL: ..." lines and exits 1 on a failure.
 */
#ifndef NOLIBC
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#endif
#include <sound/asound.h>

#ifndef O_CLOEXEC
#define O_CLOEXEC 02000000
#endif

static int failures;

static void say(const char *what, const char *msg)
{
	printf("%s: %s\n", what, msg);
	fflush(stdout);
}

static void pass(const char *msg) { say("PASS", msg); }
static void fail(const char *msg) { say("FAIL", msg); failures++; }

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

static long long now_us(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (long long)tv.tv_sec * 1000000 + tv.tv_usec;
}

static void sleep_ms(unsigned int ms) { usleep(ms * 1000); }

/* xorshift64*, seeded per process */
static unsigned long long rng_state = 88172645463325252ULL;
static unsigned int rnd(unsigned int n)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return n ? (unsigned int)((rng_state * 2685821657736338717ULL) >> 33) % n : 0;
}

/* Appends the decimal `v` to `s` (no snprintf in nolibc). */
static char *append_num(char *s, long v)
{
	char tmp[24];
	int n = 0;

	if (v < 0) {
		*s++ = '-';
		v = -v;
	}
	do {
		tmp[n++] = '0' + v % 10;
		v /= 10;
	} while (v);
	while (n)
		*s++ = tmp[--n];
	*s = 0;
	return s;
}

static char *append(char *s, const char *t)
{
	while (*t)
		*s++ = *t++;
	*s = 0;
	return s;
}

/* ------------------------------------------------------------ card lookup */

static int card_no = -1;

static int find_card(void)
{
	char path[64];
	int i;

	if (card_no >= 0)
		return card_no;
	for (i = 0; i < 8; i++) {
		struct snd_ctl_card_info info;
		int fd;

		append_num(append(path, "/dev/snd/controlC"), i);
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			continue;
		memset(&info, 0, sizeof(info));
		if (xioctl(fd, SNDRV_CTL_IOCTL_CARD_INFO, &info) == 0 &&
		    strcmp((char *)info.id, "VoIP") == 0) {
			close(fd);
			card_no = i;
			return i;
		}
		close(fd);
	}
	fail("no card VoIP in /dev/snd");
	return -1;
}

static int ctl_open(void)
{
	char path[64];
	int card = find_card();

	if (card < 0)
		return -1;
	append_num(append(path, "/dev/snd/controlC"), card);
	return open(path, O_RDWR | O_CLOEXEC);
}

/* Opens substream `sub` of PCM `dev` in direction `play` (1) or capture (0). */
static int pcm_open(int dev, int sub, int play, int nonblock)
{
	char path[64], *p;
	int ctl = ctl_open(), fd, r;

	if (ctl < 0)
		return -ENODEV;
	r = xioctl(ctl, SNDRV_CTL_IOCTL_PCM_PREFER_SUBDEVICE, &sub);
	if (r < 0) {
		close(ctl);
		return r;
	}
	p = append(path, "/dev/snd/pcmC");
	p = append_num(p, card_no);
	p = append(p, "D");
	p = append_num(p, dev);
	append(p, play ? "p" : "c");
	fd = open(path, O_RDWR | O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
	r = fd < 0 ? -errno : fd;
	close(ctl);
	if (r >= 0) {
		struct snd_pcm_info info;

		memset(&info, 0, sizeof(info));
		if (xioctl(r, SNDRV_PCM_IOCTL_INFO, &info) == 0 && (int)info.subdevice != sub) {
			close(r);
			return -EBUSY; /* another substream was given */
		}
	}
	return r;
}

/* -------------------------------------------------------------- hw_params */

static void hp_any(struct snd_pcm_hw_params *p)
{
	int i;

	memset(p, 0, sizeof(*p));
	for (i = 0; i <= SNDRV_PCM_HW_PARAM_LAST_MASK - SNDRV_PCM_HW_PARAM_FIRST_MASK; i++)
		memset(&p->masks[i], 0xff, sizeof(p->masks[i]));
	for (i = 0; i <= SNDRV_PCM_HW_PARAM_LAST_INTERVAL - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL; i++) {
		p->intervals[i].min = 0;
		p->intervals[i].max = ~0U;
	}
	p->rmask = ~0U;
	p->info = ~0U;
}

static void hp_mask(struct snd_pcm_hw_params *p, int var, unsigned int bit)
{
	struct snd_mask *m = &p->masks[var - SNDRV_PCM_HW_PARAM_FIRST_MASK];

	memset(m, 0, sizeof(*m));
	m->bits[bit / 32] = 1U << (bit % 32);
}

static void hp_exact(struct snd_pcm_hw_params *p, int var, unsigned int v)
{
	struct snd_interval *i = &p->intervals[var - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL];

	i->min = i->max = v;
	i->openmin = i->openmax = 0;
	i->integer = 1;
}

struct pcm {
	int fd;
	int play;
	unsigned int frame_bytes;
	unsigned int rate, period, buffer;
	unsigned char silence;
};

/* Sets the hardware parameters; 0 frame_bytes: none chosen. */
static int pcm_hw(struct pcm *pcm, int format, int rate, int channels, int period, int periods)
{
	struct snd_pcm_hw_params p;
	int r;

	hp_any(&p);
	hp_mask(&p, SNDRV_PCM_HW_PARAM_ACCESS, SNDRV_PCM_ACCESS_RW_INTERLEAVED);
	if (format >= 0)
		hp_mask(&p, SNDRV_PCM_HW_PARAM_FORMAT, format);
	if (rate > 0)
		hp_exact(&p, SNDRV_PCM_HW_PARAM_RATE, rate);
	if (channels > 0)
		hp_exact(&p, SNDRV_PCM_HW_PARAM_CHANNELS, channels);
	if (period > 0)
		hp_exact(&p, SNDRV_PCM_HW_PARAM_PERIOD_SIZE, period);
	if (periods > 0)
		hp_exact(&p, SNDRV_PCM_HW_PARAM_PERIODS, periods);
	r = xioctl(pcm->fd, SNDRV_PCM_IOCTL_HW_PARAMS, &p);
	if (r < 0)
		return r;
	{
		unsigned int bits = p.intervals[SNDRV_PCM_HW_PARAM_FRAME_BITS - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL].min;
		int fmt = -1, i;

		for (i = 0; i < 64; i++)
			if (p.masks[SNDRV_PCM_HW_PARAM_FORMAT - SNDRV_PCM_HW_PARAM_FIRST_MASK].bits[i / 32] & (1U << (i % 32)))
				fmt = i;
		pcm->frame_bytes = bits / 8;
		pcm->rate = p.intervals[SNDRV_PCM_HW_PARAM_RATE - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL].min;
		pcm->period = p.intervals[SNDRV_PCM_HW_PARAM_PERIOD_SIZE - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL].min;
		pcm->buffer = p.intervals[SNDRV_PCM_HW_PARAM_BUFFER_SIZE - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL].min;
		pcm->silence = fmt == SNDRV_PCM_FORMAT_MU_LAW ? 0xff : fmt == SNDRV_PCM_FORMAT_A_LAW ? 0xd5 : 0;
	}
	return 0;
}

static int pcm_status(struct pcm *pcm, struct snd_pcm_status *st)
{
	memset(st, 0, sizeof(*st));
	return xioctl(pcm->fd, SNDRV_PCM_IOCTL_STATUS, st);
}

static int pcm_state(struct pcm *pcm)
{
	struct snd_pcm_status st;

	return pcm_status(pcm, &st) < 0 ? -1 : (int)st.state;
}

/* Writes (playback) or reads (capture) `frames` through `buf`; the count done or -errno. */
static long pcm_io(struct pcm *pcm, void *buf, unsigned long frames)
{
	struct snd_xferi x;
	int r;

	x.result = 0;
	x.buf = buf;
	x.frames = frames;
	r = xioctl(pcm->fd, pcm->play ? SNDRV_PCM_IOCTL_WRITEI_FRAMES : SNDRV_PCM_IOCTL_READI_FRAMES, &x);
	return r < 0 ? r : (long)x.result;
}

/* Blocks until the stream can move a period (or 500 ms pass). */
static void pcm_wait(struct pcm *pcm)
{
	struct pollfd pfd;

	pfd.fd = pcm->fd;
	pfd.events = pcm->play ? POLLOUT : POLLIN;
	pfd.revents = 0;
	poll(&pfd, 1, 500);
}

/* ------------------------------------------------------------- controls */

static void ctl_id(struct snd_ctl_elem_id *id, int iface, const char *name, int dev, int sub, int index)
{
	memset(id, 0, sizeof(*id));
	id->iface = iface;
	id->device = dev;
	id->subdevice = sub;
	id->index = index;
	strncpy((char *)id->name, name, sizeof(id->name) - 1);
}

static int ctl_write(int ctl, int iface, const char *name, int dev, int sub, int index, long v, int enumerated)
{
	struct snd_ctl_elem_value val;

	memset(&val, 0, sizeof(val));
	ctl_id(&val.id, iface, name, dev, sub, index);
	if (enumerated)
		val.value.enumerated.item[0] = v;
	else
		val.value.integer.value[0] = v;
	return xioctl(ctl, SNDRV_CTL_IOCTL_ELEM_WRITE, &val);
}

static long ctl_read_id(int ctl, struct snd_ctl_elem_id *id, int enumerated, int *err)
{
	struct snd_ctl_elem_value val;
	int r;

	memset(&val, 0, sizeof(val));
	val.id = *id;
	r = xioctl(ctl, SNDRV_CTL_IOCTL_ELEM_READ, &val);
	if (err)
		*err = r;
	if (r < 0)
		return r;
	return enumerated ? (long)val.value.enumerated.item[0] : val.value.integer.value[0];
}

static long ctl_read(int ctl, int iface, const char *name, int dev, int sub, int index, int enumerated)
{
	struct snd_ctl_elem_id id;

	ctl_id(&id, iface, name, dev, sub, index);
	return ctl_read_id(ctl, &id, enumerated, NULL);
}

/* -------------------------------------------------------------- stress */

static const int formats[] = { SNDRV_PCM_FORMAT_S16_LE, SNDRV_PCM_FORMAT_MU_LAW, SNDRV_PCM_FORMAT_A_LAW };
static const int rates[] = { 8000, 16000, 32000, 44100, 48000 };

/* errnos the card may legitimately answer with under stress */
static int expected_errno(int e)
{
	return e == -EBUSY || e == -EINVAL || e == -EIO || e == -EPIPE || e == -EBADFD ||
	       e == -EAGAIN || e == -ESTRPIPE || e == -ENODEV || e == -EPERM || e == -ENOENT;
}

struct stress_counts {
	long cycles, started, paused, io, ctl, busy, refused;
};

static int substreams(void)
{
	int ctl = ctl_open(), n = 0, i;

	if (ctl < 0)
		return 0;
	for (i = 0; i < 8; i++) {
		struct snd_pcm_info info;

		memset(&info, 0, sizeof(info));
		info.device = 0;
		info.subdevice = i;
		info.stream = SNDRV_PCM_STREAM_PLAYBACK;
		if (xioctl(ctl, SNDRV_CTL_IOCTL_PCM_INFO, &info) < 0)
			break;
		n = i + 1;
	}
	close(ctl);
	return n;
}

static int stress_child(long cycles, int nsub, int routes, struct stress_counts *c)
{
	static unsigned char buf[65536];
	int ctl = ctl_open();
	long i;

	if (ctl < 0)
		return 1;
	for (i = 0; i < cycles; i++) {
		struct pcm pcm;
		int dev = rnd(2), sub = rnd(nsub), play = rnd(2), r, k, ops;

		memset(&pcm, 0, sizeof(pcm));
		pcm.play = play;
		/* Control changes from every process, in any state. */
		if (rnd(3) == 0) {
			int d = rnd(2), s = rnd(nsub);

			r = ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_PCM, "PCM Notify", d, s, 0, rnd(2), 0);
			if (r < 0 && !expected_errno(r))
				return 10 - r;
			c->ctl++;
			ctl_read(ctl, SNDRV_CTL_ELEM_IFACE_PCM, "PCM Slave Active", d, s, 0, 0);
			if (routes) {
				r = ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, rnd(2) ? "Capture Source" : "Playback Sink",
					      0, 0, s, rnd(3), 1);
				if (r == -EBUSY)
					c->busy++;
				else if (r < 0 && !expected_errno(r))
					return 20 - r;
			}
		}
		c->cycles++;
		r = pcm_open(dev, sub, play, 1);
		if (r < 0) {
			if (!expected_errno(r))
				return 30 - r;
			c->busy++;
			continue;
		}
		pcm.fd = r;
		r = pcm_hw(&pcm, rnd(4) ? formats[rnd(3)] : -1, rnd(4) ? rates[rnd(5)] : 0, 1 + rnd(2),
			   rnd(2) ? 80 << rnd(4) : 0, 2 + rnd(7));
		if (r < 0)
			r = pcm_hw(&pcm, -1, 0, 0, 0, 0); /* whatever the cable allows */
		if (r < 0 || !pcm.frame_bytes) {
			c->refused++;
			close(pcm.fd);
			continue;
		}
		ops = 1 + rnd(2);
		for (k = 0; k < ops; k++) {
			r = xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
			if (r < 0) {
				if (!expected_errno(r))
					return 40 - r;
				break;
			}
			if (play) {
				unsigned long n = pcm.period < sizeof(buf) / pcm.frame_bytes ? pcm.period : sizeof(buf) / pcm.frame_bytes;

				memset(buf, rnd(256), n * pcm.frame_bytes);
				r = pcm_io(&pcm, buf, n);
			}
			r = xioctl(pcm.fd, SNDRV_PCM_IOCTL_START, NULL);
			if (r == 0)
				c->started++;
			else if (!expected_errno(r))
				return 50 - r;
			switch (rnd(6)) {
			case 0: /* pause and release */
				if (xioctl(pcm.fd, SNDRV_PCM_IOCTL_PAUSE, (void *)1) == 0) {
					c->paused++;
					if (rnd(2))
						usleep(rnd(1000));
					xioctl(pcm.fd, SNDRV_PCM_IOCTL_PAUSE, (void *)0);
				}
				break;
			case 1: /* move some frames */
			case 2: {
				unsigned long n = pcm.period < sizeof(buf) / pcm.frame_bytes ? pcm.period : sizeof(buf) / pcm.frame_bytes;
				long got;

				usleep(rnd(1000));
				got = pcm_io(&pcm, buf, n);
				if (got < 0 && !expected_errno(got))
					return 60 - got;
				c->io++;
				break;
			}
			case 3: { /* status, delay */
				struct snd_pcm_status st;
				long delay;

				pcm_status(&pcm, &st);
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_DELAY, &delay);
				break;
			}
			case 4: /* re-run hw_params without hw_free */
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_DROP, NULL);
				pcm_hw(&pcm, formats[rnd(3)], rates[rnd(5)], 1 + rnd(2), 0, 0);
				break;
			default:
				usleep(rnd(500));
				break;
			}
			if (rnd(3) == 0)
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_DROP, NULL);
			if (rnd(5) == 0)
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_HW_FREE, NULL);
		}
		/* Close in any state: running, paused, prepared, freed. */
		close(pcm.fd);
	}
	close(ctl);
	return 0;
}

static int cmd_stress(long cycles, int procs, int routes)
{
	int nsub = substreams(), i, bad = 0;
	long long t0 = now_us();
	int pids[64];

	if (nsub <= 0) {
		fail("stress: no substreams");
		return 1;
	}
	if (procs > 64)
		procs = 64;
	for (i = 0; i < procs; i++) {
		int pid = fork();

		if (pid == 0) {
			struct stress_counts c;
			int r;

			memset(&c, 0, sizeof(c));
			rng_state ^= (unsigned long long)getpid() * 0x9e3779b97f4a7c15ULL ^ (unsigned long long)now_us();
			r = stress_child(cycles / procs, nsub, routes, &c);
			printf("stress process %d: %ld cycles, %ld starts, %ld pauses, %ld i/o, %ld control writes, %ld busy, %ld refused; status %d\n",
			       i, c.cycles, c.started, c.paused, c.io, c.ctl, c.busy, c.refused, r);
			fflush(stdout);
			exit(r);
		}
		pids[i] = pid;
	}
	for (i = 0; i < procs; i++) {
		int st = 0;

		if (pids[i] > 0 && waitpid(pids[i], &st, 0) > 0 && (!WIFEXITED(st) || WEXITSTATUS(st) != 0))
			bad++;
		else if (pids[i] <= 0)
			bad++;
	}
	printf("stress: %ld cycles over %d substreams x 2 devices x 2 directions from %d processes in %ld ms\n",
	       (cycles / procs) * procs, nsub, procs, (long)((now_us() - t0) / 1000));
	if (bad)
		fail("stress: a process met an unexpected error (status above)");
	else
		pass("stress: every process finished its cycles with only the errors the card may give");
	return bad != 0;
}

/* ------------------------------------------------------------ modcycle */

#ifdef NOLIBC
static long sys_finit_module(int fd, const char *args, int flags) { return my_syscall3(__NR_finit_module, fd, args, flags); }
static long sys_delete_module(const char *name, int flags) { return my_syscall2(__NR_delete_module, name, flags); }
#else
static long sys_finit_module(int fd, const char *args, int flags)
{
	return syscall(__NR_finit_module, fd, args, flags) < 0 ? -errno : 0;
}
static long sys_delete_module(const char *name, int flags)
{
	return syscall(__NR_delete_module, name, flags) < 0 ? -errno : 0;
}
#endif

static int cmd_modcycle(const char *ko, long n, const char *params)
{
	long i;
	long long t0 = now_us(), t_load = 0, t_unload = 0;
	char msg[200], *p;

	for (i = 0; i < n; i++) {
		int fd = open(ko, O_RDONLY | O_CLOEXEC);
		long long a, b, c;
		long r;

		if (fd < 0) {
			fail("modcycle: cannot open the module file");
			return 1;
		}
		a = now_us();
		r = sys_finit_module(fd, params, 0);
		b = now_us();
		close(fd);
		if (r == 0)
			r = sys_delete_module("snd_voip", O_NONBLOCK);
		c = now_us();
		t_load += b - a;
		t_unload += c - b;
		if (r != 0) {
			p = append(msg, "modcycle: load/unload cycle ");
			p = append_num(p, i);
			p = append(p, " failed with errno ");
			append_num(p, -r);
			fail(msg);
			return 1;
		}
	}
	p = append(msg, "modcycle: ");
	p = append_num(p, n);
	p = append(p, " load/unload cycles in ");
	p = append_num(p, (long)((now_us() - t0) / 1000));
	p = append(p, " ms (load ");
	p = append_num(p, (long)(t_load / (n ? n : 1) / 1000));
	p = append(p, " ms, unload ");
	p = append_num(p, (long)(t_unload / (n ? n : 1) / 1000));
	p = append(p, " ms each");
	if (*params) {
		p = append(p, "; ");
		p = append(p, params);
	}
	append(p, ")");
	pass(msg);
	return 0;
}

/* ------------------------------------------------------------------ eio */

static int open_pcm(struct pcm *pcm, int dev, int sub, int play)
{
	memset(pcm, 0, sizeof(*pcm));
	pcm->play = play;
	pcm->fd = pcm_open(dev, sub, play, 0);
	return pcm->fd;
}

static void check(int ok, const char *msg)
{
	if (ok)
		pass(msg);
	else
		fail(msg);
}

static int cmd_eio(void)
{
	struct pcm p, c;
	static unsigned char buf[8000];
	int r;

	/* Both ends opened and configured before either is prepared: the hw
	 * rules cannot see the peer, so they end with different formats. */
	if (open_pcm(&p, 0, 0, 1) < 0 || open_pcm(&c, 1, 0, 0) < 0) {
		fail("eio: cannot open hw:VoIP,0,0 playback and hw:VoIP,1,0 capture");
		return 1;
	}
	check(pcm_hw(&p, SNDRV_PCM_FORMAT_S16_LE, 8000, 1, 160, 4) == 0 &&
	      pcm_hw(&c, SNDRV_PCM_FORMAT_MU_LAW, 8000, 1, 160, 4) == 0,
	      "eio: S16_LE playback and MU_LAW capture configured at once (no peer prepared yet)");
	check(xioctl(p.fd, SNDRV_PCM_IOCTL_PREPARE, NULL) == 0 && xioctl(c.fd, SNDRV_PCM_IOCTL_PREPARE, NULL) == 0,
	      "eio: both ends prepare");
	r = xioctl(c.fd, SNDRV_PCM_IOCTL_START, NULL);
	check(r == -EIO, r == -EIO ? "eio: the capture's START fails with EIO (its playback is S16_LE)"
				   : "eio: the capture's START did not fail with EIO");
	memset(buf, 0, sizeof(buf));
	r = xioctl(p.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
	r = pcm_io(&p, buf, 160);
	r = xioctl(p.fd, SNDRV_PCM_IOCTL_START, NULL);
	check(r == 0 || pcm_state(&p) == SNDRV_PCM_STATE_RUNNING,
	      "eio: the playback starts while its mismatched capture is idle (aloop's rule)");
	r = xioctl(c.fd, SNDRV_PCM_IOCTL_START, NULL);
	check(r == -EIO, "eio: the capture's START still fails with EIO while the S16_LE playback runs");
	xioctl(p.fd, SNDRV_PCM_IOCTL_DROP, NULL);
	xioctl(c.fd, SNDRV_PCM_IOCTL_DROP, NULL);

	/* The other order: a running MU_LAW capture, then a playback whose
	 * hw_params ran before the capture was prepared (S16_LE). */
	xioctl(p.fd, SNDRV_PCM_IOCTL_HW_FREE, NULL);
	xioctl(c.fd, SNDRV_PCM_IOCTL_HW_FREE, NULL);
	check(pcm_hw(&p, SNDRV_PCM_FORMAT_S16_LE, 8000, 1, 160, 4) == 0 &&
	      pcm_hw(&c, SNDRV_PCM_FORMAT_MU_LAW, 8000, 1, 160, 4) == 0,
	      "eio: configured at once again");
	xioctl(c.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
	check(xioctl(c.fd, SNDRV_PCM_IOCTL_START, NULL) == 0, "eio: the MU_LAW capture starts (its playback is not prepared)");
	xioctl(p.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
	pcm_io(&p, buf, 160); /* start threshold 1: this may start it */
	r = pcm_state(&p) == SNDRV_PCM_STATE_RUNNING ? 0 : xioctl(p.fd, SNDRV_PCM_IOCTL_START, NULL);
	check(r == -EIO || (r == -EBADFD && pcm_state(&p) != SNDRV_PCM_STATE_RUNNING),
	      "eio: the S16_LE playback's START fails with EIO while the MU_LAW capture runs");
	check(pcm_state(&c) == SNDRV_PCM_STATE_RUNNING, "eio: the running capture is left running");

	/* Matching formats after all: both start. */
	xioctl(c.fd, SNDRV_PCM_IOCTL_DROP, NULL);
	xioctl(p.fd, SNDRV_PCM_IOCTL_DROP, NULL);
	xioctl(c.fd, SNDRV_PCM_IOCTL_HW_FREE, NULL);
	check(pcm_hw(&c, -1, 0, 0, 160, 4) == 0 && c.silence == 0, "eio: the capture re-configured takes the playback's S16_LE");
	xioctl(c.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
	xioctl(p.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
	check(xioctl(c.fd, SNDRV_PCM_IOCTL_START, NULL) == 0, "eio: with equal formats the capture starts");
	pcm_io(&p, buf, 160);
	check(pcm_state(&p) == SNDRV_PCM_STATE_RUNNING || xioctl(p.fd, SNDRV_PCM_IOCTL_START, NULL) == 0,
	      "eio: with equal formats the playback starts");
	close(p.fd);
	close(c.fd);
	return failures != 0;
}

/* ---------------------------------------------------------------- route */

static int route_case(int ctl, const char *name, int play, int fmt_routed, int fmt_other, int from, int to)
{
	struct pcm pcm;
	static unsigned char buf[16000];
	char msg[200], *p;
	int r;

	r = ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, name, 0, 0, 0, from, 1);
	if (r < 0) {
		fail("route: cannot set the control");
		return 1;
	}
	if (open_pcm(&pcm, 0, 0, play) < 0) {
		fail("route: cannot open hw:VoIP,0,0");
		return 1;
	}
	r = pcm_hw(&pcm, from ? fmt_routed : fmt_other, 8000, 1, 160, 8);
	p = append(msg, "route: ");
	p = append(p, name);
	p = append(p, from ? " RTOS: " : " Bridge: ");
	p = append(p, play ? "playback" : "capture");
	append(p, " configured and prepared");
	check(r == 0 && xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL) == 0, msg);
	r = ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, name, 0, 0, 0, to, 1);
	p = append(msg, "route: switching ");
	p = append(p, name);
	p = append(p, to ? " to RTOS" : " to Bridge");
	append(p, " while prepared is refused with EBUSY");
	check(r == -EBUSY, msg);
	check(ctl_read(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, name, 0, 0, 0, 1) == from, "route: the control kept its value");
	/* Start and stream half a second: the transfer uses the route fixed at
	 * prepare (a wrong frame size would write past the buffer: KASAN). */
	memset(buf, pcm.silence, sizeof(buf));
	if (play)
		pcm_io(&pcm, buf, 1280);
	r = pcm_state(&pcm) == SNDRV_PCM_STATE_RUNNING ? 0 : xioctl(pcm.fd, SNDRV_PCM_IOCTL_START, NULL);
	if (r == 0) {
		long long t = now_us();
		long moved = 0;

		while (now_us() - t < 500000) {
			long n = pcm_io(&pcm, buf, 160);

			if (n > 0)
				moved += n;
			else if (n == -EPIPE)
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
			else
				pcm_wait(&pcm);
		}
		check(moved > 0, "route: the stream ran on its prepared route");
	} else {
		fail("route: the stream did not start");
	}
	xioctl(pcm.fd, SNDRV_PCM_IOCTL_DROP, NULL);
	check(ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, name, 0, 0, 0, to, 1) == -EBUSY,
	      "route: still refused while stopped but prepared");
	xioctl(pcm.fd, SNDRV_PCM_IOCTL_HW_FREE, NULL);
	r = ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, name, 0, 0, 0, to, 1);
	check(r >= 0, "route: after hw_free the change is accepted");
	/* The new route's constraint: the other format is refused on the ring. */
	if (to) {
		check(pcm_hw(&pcm, fmt_other, 8000, 1, 160, 8) < 0, "route: the new RTOS route refuses a format the ring does not have");
		check(pcm_hw(&pcm, fmt_routed, 8000, 1, 160, 8) == 0 && xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL) == 0,
		      "route: and prepares with the ring's format");
	} else {
		check(pcm_hw(&pcm, fmt_other, 8000, 1, 160, 8) == 0 && xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL) == 0,
		      "route: the new Bridge route takes another format");
	}
	close(pcm.fd);
	return 0;
}

static int cmd_route(void)
{
	int ctl = ctl_open();
	int cs, ps;

	if (ctl < 0)
		return 1;
	cs = ctl_read(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, "Capture Source", 0, 0, 0, 1);
	ps = ctl_read(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, "Playback Sink", 0, 0, 0, 1);
	/* The ring is S16_LE; MU_LAW is what the bridge path may use instead. */
	route_case(ctl, "Capture Source", 0, SNDRV_PCM_FORMAT_S16_LE, SNDRV_PCM_FORMAT_MU_LAW, 0, 1);
	route_case(ctl, "Capture Source", 0, SNDRV_PCM_FORMAT_S16_LE, SNDRV_PCM_FORMAT_MU_LAW, 1, 0);
	route_case(ctl, "Playback Sink", 1, SNDRV_PCM_FORMAT_S16_LE, SNDRV_PCM_FORMAT_MU_LAW, 0, 1);
	route_case(ctl, "Playback Sink", 1, SNDRV_PCM_FORMAT_S16_LE, SNDRV_PCM_FORMAT_MU_LAW, 1, 0);
	ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, "Capture Source", 0, 0, 0, cs, 1);
	ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_MIXER, "Playback Sink", 0, 0, 0, ps, 1);
	close(ctl);
	return failures != 0;
}

/* ------------------------------------------------- streaming helpers */

static int parse_dev(const char *s, int *dev, int *sub)
{
	*dev = s[0] - '0';
	*sub = s[1] == ',' ? s[2] - '0' : 0;
	return (*dev == 0 || *dev == 1) && *sub >= 0 && *sub < 8;
}

/* Opens DEV DIR as S16_LE mono 8 kHz with `period`-frame periods, 16 of
 * them: the emulated guest can leave a process unscheduled for well over
 * 100 ms (measured: a capture overran its 8-period, 160 ms buffer between
 * PAUSE_RELEASE and the next status call when the host was loaded), and
 * these tests judge the driver, not the guest's scheduling. */
static int stream_open(struct pcm *pcm, const char *dev, const char *dir, int period)
{
	int d, s;

	if (!parse_dev(dev, &d, &s) || (dir[0] != 'p' && dir[0] != 'c')) {
		fail("bad DEV or DIR");
		return -1;
	}
	if (open_pcm(pcm, d, s, dir[0] == 'p') < 0) {
		fail("cannot open the PCM");
		return -1;
	}
	if (pcm_hw(pcm, SNDRV_PCM_FORMAT_S16_LE, 8000, 1, period, 16) < 0 ||
	    xioctl(pcm->fd, SNDRV_PCM_IOCTL_PREPARE, NULL) < 0) {
		fail("cannot configure S16_LE 8 kHz mono");
		return -1;
	}
	return 0;
}

/* Moves up to a period; recovers from xruns and suspends; -errno on others. */
static long stream_step(struct pcm *pcm, short *buf, long *tone_pos, int *fd_out)
{
	long n, i;

	if (pcm->play)
		for (i = 0; i < (long)pcm->period; i++) {
			/* 500 Hz square-ish ramp: enough to see it is not silence */
			buf[i] = ((*tone_pos + i) / 8) % 2 ? 8000 : -8000;
		}
	n = pcm_io(pcm, buf, pcm->period);
	if (n == -EAGAIN) {
		pcm_wait(pcm);
		return 0;
	}
	if (n == -EPIPE) {
		xioctl(pcm->fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
		if (!pcm->play)
			xioctl(pcm->fd, SNDRV_PCM_IOCTL_START, NULL);
		return 0;
	}
	if (n < 0)
		return n;
	*tone_pos += n;
	if (fd_out && *fd_out >= 0 && n > 0)
		write(*fd_out, buf, n * 2);
	return n;
}

static int stream_start(struct pcm *pcm, short *buf)
{
	if (pcm->play) {
		long pos = 0, i;

		for (i = 0; i < 4; i++)
			stream_step(pcm, buf, &pos, NULL);
		return pcm_state(pcm) == SNDRV_PCM_STATE_RUNNING ? 0 : xioctl(pcm->fd, SNDRV_PCM_IOCTL_START, NULL);
	}
	return xioctl(pcm->fd, SNDRV_PCM_IOCTL_START, NULL);
}

/* Frames in the FIFO beyond the buffer: delay minus what the buffer holds. */
static long ring_part(struct pcm *pcm, const struct snd_pcm_status *st)
{
	long queued = pcm->play ? (long)pcm->buffer - (long)st->avail : (long)st->avail;

	return (long)st->delay - queued;
}

static int cmd_delay(const char *dev, const char *dir, int seconds, int period)
{
	static short buf[8192];
	struct pcm pcm;
	long long t0, next;
	long pos = 0;

	if (stream_open(&pcm, dev, dir, period) < 0 || stream_start(&pcm, buf) < 0) {
		fail("delay: the stream did not start");
		return 1;
	}
	t0 = now_us();
	next = t0 + 200000;
	while (now_us() - t0 < (long long)seconds * 1000000) {
		long n = stream_step(&pcm, buf, &pos, NULL);

		if (n < 0) {
			fail("delay: I/O error");
			return 1;
		}
		if (now_us() >= next) {
			struct snd_pcm_status st;

			if (pcm_status(&pcm, &st) == 0)
				printf("delay t=%ld ms delay %ld avail %lu ring %ld\n", (long)((now_us() - t0) / 1000),
				       (long)st.delay, (unsigned long)st.avail, ring_part(&pcm, &st));
			fflush(stdout);
			next += 200000;
		}
	}
	close(pcm.fd);
	return 0;
}

static void print_status(const char *when, struct pcm *pcm, const struct snd_pcm_status *st)
{
	printf("%s: state %d delay %ld avail %lu ring %ld\n", when, (int)st->state, (long)st->delay,
	       (unsigned long)st->avail, ring_part(pcm, st));
	fflush(stdout);
}

static void print_ring(const char *when, struct pcm *pcm)
{
	struct snd_pcm_status st;

	if (pcm_status(pcm, &st) == 0)
		print_status(when, pcm, &st);
}

static void stream_for(struct pcm *pcm, short *buf, long *pos, int ms, int *fd_out)
{
	long long t = now_us();

	while (now_us() - t < (long long)ms * 1000)
		if (stream_step(pcm, buf, pos, fd_out) < 0)
			break;
}

/* Stream 3 s, pause 3 s (the caller checks the ring's state word), release,
 * stream 3 s; the capture goes to FILE. */
static int cmd_pause(const char *dev, const char *dir, const char *file)
{
	static short buf[8192];
	struct pcm pcm;
	struct snd_pcm_status rel;
	long pos = 0;
	int out = -1, r, rel_ok;

	if (!(dir[0] == 'p') && file)
		out = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (stream_open(&pcm, dev, dir, 160) < 0 || stream_start(&pcm, buf) < 0) {
		fail("pause: the stream did not start");
		return 1;
	}
	stream_for(&pcm, buf, &pos, 3000, &out);
	print_ring("before pause", &pcm);
	r = xioctl(pcm.fd, SNDRV_PCM_IOCTL_PAUSE, (void *)1);
	if (r < 0)	/* which errno, and the state it met (XRUN after a stall?) */
		printf("PAUSE_PUSH: error %d, state %d\n", r, pcm_state(&pcm));
	check(r == 0, "pause: PAUSE_PUSH");
	printf("PAUSED\n");
	fflush(stdout);
	sleep_ms(3000);
	check(pcm_state(&pcm) == SNDRV_PCM_STATE_PAUSED, "pause: still paused 3 s later");
	r = xioctl(pcm.fd, SNDRV_PCM_IOCTL_PAUSE, (void *)0);
	/* The status right after the release, before any slow output. */
	rel_ok = pcm_status(&pcm, &rel) == 0;
	if (r < 0)
		printf("PAUSE_RELEASE: error %d, state %d\n", r, pcm_state(&pcm));
	check(r == 0, "pause: PAUSE_RELEASE");
	printf("RELEASED\n");
	fflush(stdout);
	if (rel_ok)
		print_status("right after release", &pcm, &rel);
	stream_for(&pcm, buf, &pos, 1000, &out);
	print_ring("1 s after release", &pcm);
	stream_for(&pcm, buf, &pos, 2000, &out);
	print_ring("3 s after release", &pcm);
	if (out >= 0)
		close(out);
	close(pcm.fd);
	return failures != 0;
}

/* Waits (up to 120 s) for a system suspend to suspend the stream, then
 * resumes it (SNDRV_PCM_IOCTL_RESUME, as snd_pcm_recover() does on ESTRPIPE)
 * and streams on. MODE pause: the stream is paused across the suspend. */
static int cmd_suspend(const char *dev, const char *dir, const char *mode, const char *go)
{
	static short buf[8192];
	struct pcm pcm;
	long pos = 0;
	long long t;
	int paused = strcmp(mode, "pause") == 0, saw = 0, r, estrpipe = 0, resumed_state;

	if (stream_open(&pcm, dev, dir, 160) < 0 || stream_start(&pcm, buf) < 0) {
		fail("suspend: the stream did not start");
		return 1;
	}
	stream_for(&pcm, buf, &pos, 1000, NULL);
	if (paused)
		check(xioctl(pcm.fd, SNDRV_PCM_IOCTL_PAUSE, (void *)1) == 0, "suspend: paused before the suspend");
	printf("READY\n");
	fflush(stdout);
	t = now_us();
	while (now_us() - t < 120000000LL) {
		if (!paused) {
			long n = pcm_io(&pcm, buf, pcm.period);

			if (n == -ESTRPIPE) {
				estrpipe = 1;
				saw = 1;
				break;
			}
			if (n == -EAGAIN)
				pcm_wait(&pcm);
			else if (n == -EPIPE)
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL), stream_start(&pcm, buf);
		} else {
			if (pcm_state(&pcm) == SNDRV_PCM_STATE_SUSPENDED) {
				saw = 1;
				break;
			}
			sleep_ms(20);
		}
	}
	if (!saw) {
		fail("suspend: the stream was never suspended");
		return 1;
	}
	if (!paused)
		check(estrpipe, "suspend: the running stream's I/O returned ESTRPIPE");
	else
		pass("suspend: the paused stream's state became SUSPENDED");
	do {
		r = xioctl(pcm.fd, SNDRV_PCM_IOCTL_RESUME, NULL);
		if (r == -EAGAIN)
			sleep_ms(10);
	} while (r == -EAGAIN);
	/* The state right after the resume, before any slow output. */
	resumed_state = pcm_state(&pcm);
	check(r == 0, r == -ENOSYS ? "suspend: RESUME said ENOSYS (no SNDRV_PCM_INFO_RESUME)" : "suspend: SNDRV_PCM_IOCTL_RESUME succeeded");
	if (paused) {
		check(pcm_state(&pcm) == SNDRV_PCM_STATE_PAUSED, "suspend: the stream is paused again after the resume");
		print_ring("paused after resume", &pcm);
		/* The caller looks at the released ring before we release. */
		for (t = now_us(); go && now_us() - t < 60000000LL; sleep_ms(50)) {
			int fd = open(go, O_RDONLY | O_CLOEXEC);

			if (fd >= 0) {
				close(fd);
				break;
			}
		}
		check(xioctl(pcm.fd, SNDRV_PCM_IOCTL_PAUSE, (void *)0) == 0, "suspend: PAUSE_RELEASE after the resume");
	} else {
		int state = resumed_state;

		if (state != SNDRV_PCM_STATE_RUNNING)
			print_ring("not running after the resume", &pcm);
		check(state == SNDRV_PCM_STATE_RUNNING, "suspend: the stream runs again after the resume");
	}
	{
		long before = pos, errs = 0;
		long long t1 = now_us();

		while (now_us() - t1 < 2000000) {
			long n = stream_step(&pcm, buf, &pos, NULL);

			if (n < 0)
				errs++;
		}
		check(errs == 0 && pos - before > 8000, "suspend: 2 s more stream after the resume, no error");
	}
	print_ring("after resume", &pcm);
	close(pcm.fd);
	return failures != 0;
}

static int cmd_play(const char *dev, const char *file)
{
	static short buf[8192];
	struct pcm pcm;
	int in = open(file, O_RDONLY | O_CLOEXEC);
	long n;

	if (in < 0 || stream_open(&pcm, dev, "p", 160) < 0) {
		fail("play: cannot open");
		return 1;
	}
	for (;;) {
		long got = read(in, buf, pcm.period * 2), done = 0;

		if (got <= 0)
			break;
		while (done < got / 2) {
			n = pcm_io(&pcm, buf + done, got / 2 - done);
			if (n == -EAGAIN)
				pcm_wait(&pcm);
			else if (n == -EPIPE)
				xioctl(pcm.fd, SNDRV_PCM_IOCTL_PREPARE, NULL);
			else if (n < 0) {
				fail("play: I/O error");
				return 1;
			} else
				done += n;
		}
	}
	xioctl(pcm.fd, SNDRV_PCM_IOCTL_DRAIN, NULL);
	close(pcm.fd);
	close(in);
	return 0;
}

/* ------------------------------------------------------------ ctlwatch */

static int cmd_ctlwatch(int seconds)
{
	int ctl = ctl_open(), one = 1;
	long long t0 = now_us();

	if (ctl < 0 || xioctl(ctl, SNDRV_CTL_IOCTL_SUBSCRIBE_EVENTS, &one) < 0) {
		fail("ctlwatch: cannot subscribe to control events");
		return 1;
	}
	printf("WATCHING\n");
	fflush(stdout);
	while (now_us() - t0 < (long long)seconds * 1000000) {
		struct pollfd pfd;
		struct snd_ctl_event ev;

		pfd.fd = ctl;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 200) <= 0)
			continue;
		while (read(ctl, &ev, sizeof(ev)) == sizeof(ev)) {
			struct snd_ctl_elem_id id = ev.data.elem.id;
			int enumerated = strcmp((char *)id.name, "Capture Source") == 0 ||
					 strcmp((char *)id.name, "Playback Sink") == 0;
			long v = ctl_read_id(ctl, &id, enumerated, NULL);

			if (ev.type != SNDRV_CTL_EVENT_ELEM)
				continue;
			printf("event t=%ld ms mask %u '%s' device %u subdevice %u value %ld\n",
			       (long)((now_us() - t0) / 1000), ev.data.elem.mask, (char *)id.name,
			       id.device, id.subdevice, v);
			fflush(stdout);
			pfd.revents = 0;
			if (poll(&pfd, 1, 0) <= 0)
				break;
		}
	}
	close(ctl);
	return 0;
}

static int cmd_ctlset(const char *name, int dev, int sub, long v)
{
	int ctl = ctl_open(), r;

	if (ctl < 0)
		return 1;
	r = ctl_write(ctl, SNDRV_CTL_ELEM_IFACE_PCM, name, dev, sub, 0, v, 0);
	close(ctl);
	if (r < 0)
		printf("ctlset: error %d\n", -r);
	return r < 0;
}

/* ------------------------------------------------------------------ rt */

#ifdef NOLIBC
static long sys_sched_setscheduler(int pid, int policy, const int *prio)
{
	return my_syscall3(__NR_sched_setscheduler, pid, policy, prio);
}
#else
extern char **environ;
static long sys_sched_setscheduler(int pid, int policy, const int *prio)
{
	return syscall(__NR_sched_setscheduler, pid, policy, prio);
}
#endif

static int cmd_rt(int prio, char **argv)
{
	static const char *const dirs[] = { "/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/" };
	char path[256];
	unsigned int i;
	long r;

	/* struct sched_param is one int, the priority; policy 1 is SCHED_FIFO. */
	r = sys_sched_setscheduler(0, 1, &prio);
	if (r < 0) {
		fprintf(stderr, "pcmstress rt: sched_setscheduler(SCHED_FIFO, %d): error %ld\n", prio, -r);
		return 1;
	}
	if (strchr(argv[0], '/')) {
		execve(argv[0], argv, environ);
	} else {
		for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
			size_t d = strlen(dirs[i]), n = strlen(argv[0]);

			if (d + n + 1 > sizeof(path))
				continue;
			memcpy(path, dirs[i], d);
			memcpy(path + d, argv[0], n + 1);
			execve(path, argv, environ);
		}
	}
	fprintf(stderr, "pcmstress rt: cannot run %s: errno %d\n", argv[0], errno);
	return 127;
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";

	if (!strcmp(c, "stress") && argc >= 4)
		return cmd_stress(atol(argv[2]), atoi(argv[3]), argc > 4 && !strcmp(argv[4], "routes"));
	if (!strcmp(c, "modcycle") && (argc == 4 || argc == 5))
		return cmd_modcycle(argv[2], atol(argv[3]), argc == 5 ? argv[4] : "");
	if (!strcmp(c, "eio"))
		return cmd_eio();
	if (!strcmp(c, "route"))
		return cmd_route();
	if (!strcmp(c, "delay") && argc == 6)
		return cmd_delay(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (!strcmp(c, "pause") && argc >= 4)
		return cmd_pause(argv[2], argv[3], argc > 4 ? argv[4] : NULL);
	if (!strcmp(c, "suspend") && (argc == 5 || argc == 6))
		return cmd_suspend(argv[2], argv[3], argv[4], argc == 6 ? argv[5] : NULL);
	if (!strcmp(c, "play") && argc == 4)
		return cmd_play(argv[2], argv[3]);
	if (!strcmp(c, "ctlwatch") && argc == 3)
		return cmd_ctlwatch(atoi(argv[2]));
	if (!strcmp(c, "rt") && argc >= 4)
		return cmd_rt(atoi(argv[2]), argv + 3);
	if (!strcmp(c, "ctlset") && argc == 6)
		return cmd_ctlset(argv[2], atoi(argv[3]), atoi(argv[4]), atol(argv[5]));
	fprintf(stderr, "usage: see the comment at the top of tests/pcmstress/pcmstress.c\n");
	return 2;
}
