include $(sort $(wildcard $(BR2_EXTERNAL_SND_VOIP_PATH)/package/*/*.mk))
