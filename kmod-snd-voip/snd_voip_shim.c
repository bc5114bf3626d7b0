// SPDX-License-Identifier: GPL-2.0
/*
 * snd-voip: module parameters and one-line wrappers for static inline
 * kernel functions. All driver logic is in Rust (snd_voip_main.rs).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <sound/initval.h>
#include "snd_voip_shim.h"

static int index = SNDRV_DEFAULT_IDX1;
module_param(index, int, 0444);
MODULE_PARM_DESC(index, "Index value for the VoIP soundcard (default -1: first free slot).");

static char *id = "VoIP";
module_param(id, charp, 0444);
MODULE_PARM_DESC(id, "ID string for the VoIP soundcard (default \"VoIP\").");

static bool enable = true;
module_param(enable, bool, 0444);
MODULE_PARM_DESC(enable, "Enable the VoIP soundcard (default 1).");

static int pcm_substreams = 1;
module_param(pcm_substreams, int, 0444);
MODULE_PARM_DESC(pcm_substreams, "Substreams (cables, simultaneous calls) per PCM device, 1-8 (default 1).");

int snd_voip_param_index(void) { return index; }
const char *snd_voip_param_id(void) { return id; }
bool snd_voip_param_enable(void) { return enable; }
int snd_voip_param_pcm_substreams(void) { return pcm_substreams; }

void snd_voip_spin_lock_init(spinlock_t *lock)
{
	spin_lock_init(lock);
}

unsigned long snd_voip_spin_lock_irqsave(spinlock_t *lock)
{
	unsigned long flags;

	spin_lock_irqsave(lock, flags);
	return flags;
}

void snd_voip_spin_unlock_irqrestore(spinlock_t *lock, unsigned long flags)
{
	spin_unlock_irqrestore(lock, flags);
}

void snd_voip_hrtimer_set_expires(struct hrtimer *timer, ktime_t time)
{
	hrtimer_set_expires(timer, time);
}

bool snd_voip_hrtimer_is_queued(struct hrtimer *timer)
{
	return hrtimer_is_queued(timer);
}

snd_pcm_uframes_t snd_voip_pcm_appl_ptr(struct snd_pcm_runtime *runtime)
{
	return READ_ONCE(runtime->control->appl_ptr);
}

struct snd_mask *snd_voip_hw_param_mask(struct snd_pcm_hw_params *params, snd_pcm_hw_param_t var)
{
	return hw_param_mask(params, var);
}

struct snd_interval *snd_voip_hw_param_interval(struct snd_pcm_hw_params *params, snd_pcm_hw_param_t var)
{
	return hw_param_interval(params, var);
}

int snd_voip_pcm_state(struct snd_pcm_substream *substream)
{
	return (__force int)substream->runtime->state;
}

void snd_voip_info_puts(struct snd_info_buffer *buffer, const char *text)
{
	snd_iprintf(buffer, "%s", text);
}
