// SPDX-License-Identifier: GPL-2.0
/*
 * snd-voip: module parameters and one-line wrappers for static inline
 * kernel functions. All driver logic is in Rust (snd_voip_main.rs).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/of.h>
#include <linux/of_address.h>
#include <linux/delay.h>
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

static char *capture_source;
module_param(capture_source, charp, 0444);
MODULE_PARM_DESC(capture_source, "Default \"Capture Source\" of the RTOS FIFO board: bridge or rtos (default: the device tree's snd-voip,capture-source, else rtos).");

static char *playback_sink;
module_param(playback_sink, charp, 0444);
MODULE_PARM_DESC(playback_sink, "Default \"Playback Sink\" of the RTOS FIFO board: bridge, rtos or both (default: the device tree's snd-voip,playback-sink, else rtos).");

static int rtos_max_shift_ppm = 1000;
module_param(rtos_max_shift_ppm, int, 0444);
MODULE_PARM_DESC(rtos_max_shift_ppm, "How far a stream's clock may be pulled to follow the RTOS clock, in ppm, 0-10000 (default 1000; 0: never).");

static int rtos_slack_us = -1;
module_param(rtos_slack_us, int, 0444);
MODULE_PARM_DESC(rtos_slack_us, "How late the RTOS (microphone ring) or Linux's timer (speaker ring) may be without a gap, in microseconds, 0-1000000; each ring's target fill is its periods plus this, so it is also delay (default -1: one RTOS period).");

int snd_voip_param_index(void) { return index; }
int snd_voip_param_rtos_slack_us(void) { return rtos_slack_us; }
int snd_voip_param_rtos_max_shift_ppm(void) { return rtos_max_shift_ppm; }
const char *snd_voip_param_id(void) { return id; }
bool snd_voip_param_enable(void) { return enable; }
int snd_voip_param_pcm_substreams(void) { return pcm_substreams; }
const char *snd_voip_param_capture_source(void) { return capture_source; }
const char *snd_voip_param_playback_sink(void) { return playback_sink; }

const struct of_device_id snd_voip_of_match[] = {
	{ .compatible = "snd-voip,rtos-fifo" },
	{ }
};
MODULE_DEVICE_TABLE(of, snd_voip_of_match);

bool snd_voip_of_node_present(void)
{
	struct device_node *np = of_find_matching_node(NULL, snd_voip_of_match);
	bool present = np && of_device_is_available(np);

	of_node_put(np);
	return present;
}

int snd_voip_of_memory_region(struct device *dev, struct resource *res)
{
	struct device_node *mem = of_parse_phandle(dev->of_node, "memory-region", 0);
	int ret;

	if (!mem)
		return -ENOENT;
	ret = of_address_to_resource(mem, 0, res);
	of_node_put(mem);
	return ret;
}

const char *snd_voip_of_string(struct device *dev, const char *prop)
{
	const char *value;

	if (of_property_read_string(dev->of_node, prop, &value))
		return NULL;
	return value;
}

bool snd_voip_of_bool(struct device *dev, const char *prop)
{
	return of_property_read_bool(dev->of_node, prop);
}

void snd_voip_dma_rmb(void)
{
	dma_rmb();
}

void snd_voip_dma_wmb(void)
{
	dma_wmb();
}

void snd_voip_mb(void)
{
	mb();
}

void snd_voip_spin_lock_init(spinlock_t *lock, int lock_class)
{
	/* One spin_lock_init() per class: each expansion has its own key. */
	switch (lock_class) {
	case SND_VOIP_LOCK_SLOT:
		spin_lock_init(lock);
		break;
	default:
		spin_lock_init(lock);
		break;
	}
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

void snd_voip_fsleep(unsigned long usecs)
{
	fsleep(usecs);
}

void snd_voip_power_change_state(struct snd_card *card, unsigned int state)
{
	snd_power_change_state(card, state);
}

size_t snd_voip_params_buffer_bytes(struct snd_pcm_hw_params *params)
{
	return params_buffer_bytes(params);
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
