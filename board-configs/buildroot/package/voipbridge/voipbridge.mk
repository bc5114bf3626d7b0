################################################################################
#
# voipbridge
#
################################################################################

VOIPBRIDGE_VERSION = 0.1.0
VOIPBRIDGE_SITE = $(BR2_EXTERNAL_SND_VOIP_PATH)/../..
VOIPBRIDGE_SITE_METHOD = local
VOIPBRIDGE_LICENSE = GPL-2.0
VOIPBRIDGE_LICENSE_FILES = COPYING
# The site is the whole checkout: leave its build outputs (cargo and the
# cross builds put gigabytes under target/) out of the copy.
VOIPBRIDGE_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = --exclude=/target
VOIPBRIDGE_DEPENDENCIES = alsa-lib host-pkgconf
VOIPBRIDGE_SUBDIR = voipbridge

# The optional cargo features (README "Cargo features"): all on by default.
VOIPBRIDGE_FEATURES = \
	$(if $(BR2_PACKAGE_VOIPBRIDGE_TLS),tls) \
	$(if $(BR2_PACKAGE_VOIPBRIDGE_SRTP),srtp) \
	$(if $(BR2_PACKAGE_VOIPBRIDGE_AEC),aec)
VOIPBRIDGE_CARGO_BUILD_OPTS = \
	--no-default-features \
	--features "$(subst $(space),$(comma),$(strip $(VOIPBRIDGE_FEATURES)))"

$(eval $(cargo-package))
