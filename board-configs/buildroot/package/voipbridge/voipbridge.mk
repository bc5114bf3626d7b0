################################################################################
#
# voipbridge
#
################################################################################

VOIPBRIDGE_VERSION = 0.1.0
VOIPBRIDGE_SITE = $(BR2_EXTERNAL_SND_VOIP_PATH)/../..
VOIPBRIDGE_SITE_METHOD = local
VOIPBRIDGE_LICENSE = GPL-2.0
VOIPBRIDGE_DEPENDENCIES = alsa-lib host-pkgconf
VOIPBRIDGE_SUBDIR = voipbridge

$(eval $(cargo-package))
