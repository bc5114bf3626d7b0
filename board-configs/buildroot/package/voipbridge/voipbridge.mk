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

# The workspace's release-embedded profile (fat LTO, one codegen unit,
# opt-level "s", panic = "abort": README "Footprint"), which the
# cargo-package default cannot select (it passes --release, which cargo
# refuses beside --profile); with BR2_ENABLE_DEBUG the release profile
# (debug info as Buildroot's debug options set it). Buildroot's
# CARGO_PROFILE_RELEASE_* settings reach release-embedded only where it
# sets nothing itself (not LTO, codegen units, opt-level or debug).
VOIPBRIDGE_PROFILE = $(if $(BR2_ENABLE_DEBUG),release,release-embedded)
VOIPBRIDGE_CARGO_BUILD_OPTS = \
	--profile $(VOIPBRIDGE_PROFILE) \
	--target-dir $(@D)/target \
	--no-default-features \
	--features "$(subst $(space),$(comma),$(strip $(VOIPBRIDGE_FEATURES)))"

# A local site has no download step, so the cargo-package download
# post-process never vendored the crates: fetch them (Cargo.lock's
# versions) into Buildroot's cargo home first, then build offline.
define VOIPBRIDGE_BUILD_CMDS
	cd $(@D)/voipbridge && \
	$(TARGET_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
		cargo fetch --locked --manifest-path Cargo.toml
	cd $(@D)/voipbridge && \
	$(TARGET_MAKE_ENV) \
		$(TARGET_CONFIGURE_OPTS) \
		$(PKG_CARGO_ENV) \
		cargo build \
			--offline \
			--manifest-path Cargo.toml \
			--locked \
			$(VOIPBRIDGE_CARGO_BUILD_OPTS)
endef

# The binary the build step made: cargo install (the cargo-package
# default) would build it again with the default features, whatever the
# options above chose.
define VOIPBRIDGE_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(VOIPBRIDGE_PROFILE)/voipbridge \
		$(TARGET_DIR)/usr/bin/voipbridge
endef

$(eval $(cargo-package))
