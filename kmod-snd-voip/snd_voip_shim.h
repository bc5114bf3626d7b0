/* SPDX-License-Identifier: GPL-2.0 */
/*
 * snd-voip: the C side of the module, kept as small as Rust on Linux 6.12
 * allows. bindgen reads this header to generate the module's own bindings
 * (the 6.12 kernel crate has no ALSA or hrtimer abstractions), and
 * snd_voip_shim.c implements the few things Rust cannot express there:
 * module_param() and wrappers for static inline functions and macros.
 */
#ifndef SND_VOIP_SHIM_H
#define SND_VOIP_SHIM_H

#include <linux/hrtimer.h>
#include <linux/io.h>
#include <linux/mod_devicetable.h>
#include <linux/ktime.h>
#include <linux/platform_device.h>
#include <linux/spinlock.h>
#include <sound/control.h>
#include <sound/core.h>
#include <sound/info.h>
#include <sound/pcm.h>
#include <sound/pcm_params.h>

/* Module parameters (module_param() is a macro that Rust on 6.12 cannot use). */
int snd_voip_param_index(void);
const char *snd_voip_param_id(void);
bool snd_voip_param_enable(void);
int snd_voip_param_pcm_substreams(void);
const char *snd_voip_param_capture_source(void);
const char *snd_voip_param_playback_sink(void);
int snd_voip_param_rtos_max_shift_ppm(void);
int snd_voip_param_rtos_slack_us(void);

/*
 * Device tree (the RTOS FIFO node): MODULE_DEVICE_TABLE() is a macro, and
 * of_parse_phandle()/of_property_read_bool() are static inlines.
 */
extern const struct of_device_id snd_voip_of_match[];
bool snd_voip_of_node_present(void);
int snd_voip_of_memory_region(struct device *dev, struct resource *res);
const char *snd_voip_of_string(struct device *dev, const char *prop);
bool snd_voip_of_bool(struct device *dev, const char *prop);

/* Barriers for memory shared with another core (macros). */
void snd_voip_dma_rmb(void);
void snd_voip_dma_wmb(void);
void snd_voip_mb(void);

/* Wrappers for static inline functions. */
/* Lock classes for lockdep: each has its own spin_lock_init() site. */
enum snd_voip_lock_class {
	SND_VOIP_LOCK_CABLE = 0,	/* a cable's state */
	SND_VOIP_LOCK_SLOT = 1,		/* a substream slot (taken inside a cable lock) */
};
void snd_voip_spin_lock_init(spinlock_t *lock, int lock_class);
unsigned long snd_voip_spin_lock_irqsave(spinlock_t *lock);
void snd_voip_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags);
void snd_voip_fsleep(unsigned long usecs);
void snd_voip_power_change_state(struct snd_card *card, unsigned int state);
size_t snd_voip_params_buffer_bytes(struct snd_pcm_hw_params *params);
snd_pcm_uframes_t snd_voip_pcm_appl_ptr(struct snd_pcm_runtime *runtime);
struct snd_mask *snd_voip_hw_param_mask(struct snd_pcm_hw_params *params, snd_pcm_hw_param_t var);
struct snd_interval *snd_voip_hw_param_interval(struct snd_pcm_hw_params *params, snd_pcm_hw_param_t var);
int snd_voip_pcm_state(struct snd_pcm_substream *substream);
void snd_voip_info_puts(struct snd_info_buffer *buffer, const char *text);

#ifdef __BINDGEN__
/*
 * Macros bindgen cannot evaluate (they contain casts), as typed constants.
 */
const u64 SND_VOIP_FMTBIT_S16_LE = SNDRV_PCM_FMTBIT_S16_LE;
const u64 SND_VOIP_FMTBIT_MU_LAW = SNDRV_PCM_FMTBIT_MU_LAW;
const u64 SND_VOIP_FMTBIT_A_LAW = SNDRV_PCM_FMTBIT_A_LAW;
const int SND_VOIP_PARAM_FORMAT = (__force int)SNDRV_PCM_HW_PARAM_FORMAT;
const int SND_VOIP_PARAM_RATE = (__force int)SNDRV_PCM_HW_PARAM_RATE;
const int SND_VOIP_PARAM_CHANNELS = (__force int)SNDRV_PCM_HW_PARAM_CHANNELS;
const int SND_VOIP_PARAM_PERIOD_TIME = (__force int)SNDRV_PCM_HW_PARAM_PERIOD_TIME;
const int SND_VOIP_STATE_DRAINING = (__force int)SNDRV_PCM_STATE_DRAINING;
const int SND_VOIP_STATE_RUNNING = (__force int)SNDRV_PCM_STATE_RUNNING;
const int SND_VOIP_STATE_PAUSED = (__force int)SNDRV_PCM_STATE_PAUSED;
const int SND_VOIP_STATE_SUSPENDED = (__force int)SNDRV_PCM_STATE_SUSPENDED;
const int SND_VOIP_CTL_IFACE_MIXER = (__force int)SNDRV_CTL_ELEM_IFACE_MIXER;
const int SND_VOIP_CTL_IFACE_PCM = (__force int)SNDRV_CTL_ELEM_IFACE_PCM;
const int SND_VOIP_CTL_TYPE_BOOLEAN = (__force int)SNDRV_CTL_ELEM_TYPE_BOOLEAN;
const int SND_VOIP_CTL_TYPE_INTEGER = (__force int)SNDRV_CTL_ELEM_TYPE_INTEGER;
const unsigned int SND_VOIP_CTL_ACCESS_READWRITE = SNDRV_CTL_ELEM_ACCESS_READWRITE;
const unsigned int SND_VOIP_CTL_ACCESS_READ = SNDRV_CTL_ELEM_ACCESS_READ;
const unsigned int SND_VOIP_CTL_EVENT_MASK_VALUE = SNDRV_CTL_EVENT_MASK_VALUE;
const unsigned int SND_VOIP_POWER_D0 = SNDRV_CTL_POWER_D0;
const unsigned int SND_VOIP_POWER_D3HOT = SNDRV_CTL_POWER_D3hot;
const int SND_VOIP_FORMAT_LAST = (__force int)SNDRV_PCM_FORMAT_LAST;
const int SND_VOIP_PARAM_BUFFER_BYTES = (__force int)SNDRV_PCM_HW_PARAM_BUFFER_BYTES;
const unsigned long SND_VOIP_MEMREMAP_WB = MEMREMAP_WB;
const unsigned long SND_VOIP_MEMREMAP_WC = MEMREMAP_WC;
#endif

#endif /* SND_VOIP_SHIM_H */
