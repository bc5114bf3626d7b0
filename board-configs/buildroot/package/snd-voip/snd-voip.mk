################################################################################
#
# snd-voip
#
################################################################################

SND_VOIP_VERSION = 0.1.0
SND_VOIP_SITE = $(BR2_EXTERNAL_SND_VOIP_PATH)/../..
SND_VOIP_SITE_METHOD = local
SND_VOIP_LICENSE = GPL-2.0
SND_VOIP_LICENSE_FILES = COPYING
# The site is the whole checkout: leave its build outputs (cargo and the
# cross builds put gigabytes under target/) out of the copy.
SND_VOIP_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target
SND_VOIP_MODULE_SUBDIRS = kmod-snd-voip
SND_VOIP_MODULE_MAKE_OPTS = CONFIG_SND_VOIP=m

$(eval $(kernel-module))
$(eval $(generic-package))
