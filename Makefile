# snd-voip top-level Makefile. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
BOARD ?= qemu-x86_64
export BOARD
CARGO ?= cargo
SND_VOIP_CACHE ?= $(HOME)/.cache/snd-voip
export SND_VOIP_CACHE
# Cargo's target directory (outside the clone) and the binaries the tests
# run, as scripts/env.sh computes them (each overridable from the
# environment; a worktree may keep its own: SND_VOIP_TARGET=$PWD/target).
SND_VOIP_TARGET ?= $(shell $(ROOT)/scripts/cargo-ci.sh print-target)
SND_VOIP_BIN ?= $(shell SND_VOIP_TARGET=$(SND_VOIP_TARGET) $(ROOT)/scripts/cargo-ci.sh print-bin)
export SND_VOIP_TARGET SND_VOIP_BIN
KSRC_TREE = $(shell $(ROOT)/scripts/kernel.sh --print-kdir)
KDIR ?= $(KSRC_TREE)
KFMT_CONFIG = $(SND_VOIP_CACHE)/linux-source-6.12/.rustfmt.toml
# Which kernel each suite boots (README, "Which kernel each suite boots"):
# the card and RTOS suites the debug one (KASAN, lockdep, kmemleak), the
# call tests and benchmarks the production one.
DEBUG_KERNEL := SND_VOIP_KERNEL=debug
PROD_KERNEL := SND_VOIP_KERNEL=prod

help:
	@echo "snd-voip: a sound card and a SIP phone for boards without one"
	@echo
	@echo "  make demo        set up, build, boot the emulated boards and make calls (the main job):"
	@echo "                   the x86_64 board (demo-x86), then the arm64 AMP board through the RTOS FIFO (demo-board)"
	@echo "  make test        set up, build and run every test a change must pass (host and qemu),"
	@echo "                   each suite timed; ends with a table of wall times (budget: README, 'Tests')"
	@echo "  make test-long   soaks, long fuzzing, hour runs, the template board's build (not in CI)"
	@echo
	@echo "  make setup       install packages, pinned tools, the kernel tree and rustc+rust-src (idempotent)"
	@echo "  make kernel      the debug kernel (KASAN, lockdep, kmemleak) for BOARD=$(BOARD), cached in $(SND_VOIP_CACHE)"
	@echo "  make kernel-prod the production kernel for BOARD (no debug options; x86_64: built with GCC)"
	@echo "  make kmod        build kmod-snd-voip/snd-voip.ko against KDIR (default: the reference tree)"
	@echo "  make kmods       snd-voip.ko for each test kernel (x86_64 debug and production, arm64; kmods-test: the two make test boots)"
	@echo "  make bridge      build the workspace's binaries in the tests' profile (ci) into SND_VOIP_BIN"
	@echo "  make test-host   cargo tests and host integration tests (no qemu)"
	@echo "  make test-kmod   the card tests in qemu (debug kernel); test-kmod-arm64: the same on the arm64 board"
	@echo "  make test-kmod-arm64-matrix   the card's format/rate/channels/mmap/period matrix on the arm64 board (in make test-long)"
	@echo "  make test-intree build snd-voip in tree (sound/drivers/voip) and load it in qemu"
	@echo "  make test-linphone  linphonec on the card calls baresip, audio both ways, and its own echo canceller on an echo path (qemu, production kernel)"
	@echo "  make demo-x86 / demo-board   one of the two demos alone (production kernels; DEMO_X86_KERNEL / DEMO_BOARD_KERNEL=debug for the debug ones)"
	@echo "  make test-rtos   the RTOS audio FIFO on the emulated arm64 board (rtos-sim plays the RTOS)"
	@echo "  make kernel-arm64 / kmod-arm64   the arm64 board's kernel (cached) / snd-voip.ko for it"
	@echo "  make kernel-arm64-prod   the arm64 board's production kernel (make demo's board, test-aec-board)"
	@echo "  make fuzz        cargo-fuzz the SIP, SDP and SDES parsers (FUZZ_SECONDS each, default 60); test-fuzz: 30 s"
	@echo "  make rootfs-arm64 / dtb-arm64   the emulated arm64 board's userspace / its DTB with the RTOS FIFO node"
	@echo "  make lint        cargo fmt/clippy -D warnings, rustfmt of the module"
	@echo "  make dtbs-check  validate the device-tree binding and overlays (dt-schema, dtc)"
	@echo "  make kconfig-check  every board fragment (and the template AMP board's on arm64 defconfig) takes"
	@echo "  make buildroot-check BUILDROOT=<dir>   lint board-configs/buildroot and merge its fragment there"
	@echo "  make bench       every performance figure (issue 16): footprint, CPU per call beside baresip, the media"
	@echo "                   engine, the card beside snd-aloop and snd-dummy (production kernel); not in make test"
	@echo "  make bench-kmod  the card part alone: period wake-ups, drift, kernel CPU and timer events of snd-voip,"
	@echo "                   snd-aloop and snd-dummy in one qemu boot (production kernel)"
	@echo "  make bench-kmod-trace  the same on a production kernel with tracepoints: each timer callback and softirq timed"
	@echo "  make bench-calls-guest  CPU per call with the card in qemu: voipbridge on snd-voip vs baresip on snd-aloop, 1 and 8 calls"
	@echo "  make bench-media the media engine on the host: CPU per call, allocations per packet, resampler, latency"
	@echo "  make bench-aec   echo cancellers on the simulated acoustic path (host; BENCH_AEC_FEATURES=speex,webrtc adds the C ones)"
	@echo "  make bench-aec-arm64  the echo canceller's figures and CPU on the emulated arm64 board"
	@echo "  make test-aec-board   the board's call with the echo path on: the far end's own echo >= 20 dB down"
	@echo "  make print-kdir / print-kernel   the reference build directory / bootable image (SND_VOIP_KERNEL=debug|prod)"

# Setup runs once per `make test` (scripts/run-suites.sh sets SND_VOIP_SETUP_DONE).
setup:
	@[ -n "$${SND_VOIP_SETUP_DONE:-}" ] || $(ROOT)/scripts/setup.sh

kernel: setup
	@$(DEBUG_KERNEL) $(ROOT)/scripts/kernel.sh

kernel-prod: setup
	@$(PROD_KERNEL) $(ROOT)/scripts/kernel.sh

# The arm64 board's production kernel (no KASAN/lockdep/kmemleak): the
# board demo of make demo and the echo-cancelling board call (test-aec-board);
# make test's board runs boot the debug one.
kernel-arm64-prod: setup
	@BOARD=qemu-arm64 $(PROD_KERNEL) $(ROOT)/scripts/kernel.sh

print-kdir:
	@$(ROOT)/scripts/kernel.sh --print-kdir

print-kernel:
	@$(ROOT)/scripts/kernel.sh --print-kernel

# The user-facing module build, in kmod-snd-voip/ (README). The tests build
# theirs in the cache with scripts/kmod.sh, one per kernel.
kmod: $(if $(filter command line environment,$(origin KDIR)),,kernel)
	@$(MAKE) -C kmod-snd-voip KDIR="$(KDIR)"

# The module for each of the three test kernels (a background build step of
# make test-long).
kmods: kmods-test kernel-prod
	@$(PROD_KERNEL) $(ROOT)/scripts/kmod.sh

# The module for the two kernels make test boots (x86_64 and arm64 debug;
# a background build step of make test).
kmods-test: kernel kernel-arm64
	@$(DEBUG_KERNEL) $(ROOT)/scripts/kmod.sh
	@$(DEBUG_KERNEL) $(ROOT)/scripts/kmod-arm64.sh

bridge: setup
	@$(ROOT)/scripts/cargo-ci.sh bins

lint: setup
	$(CARGO) fmt --all -- --check
	$(ROOT)/scripts/cargo-ci.sh clippy -- -D warnings
	$(ROOT)/scripts/cargo-ci.sh clippy-lean -- -D warnings
	rustfmt --check --edition 2021 --config-path $(KFMT_CONFIG) kmod-snd-voip/snd_voip_main.rs
	$(ROOT)/scripts/kmod-safe-check.sh

# cargo test, then each tests/host/*.sh (scripts/host-tests.sh times each).
test-host: bridge
	$(ROOT)/scripts/cargo-ci.sh test
	@$(ROOT)/scripts/host-tests.sh

test-kmod: kernel bridge
	@$(DEBUG_KERNEL) tests/kmod/run.sh full

test-kmod-arm64: kernel-arm64 bridge xbuild-arm64
	@$(DEBUG_KERNEL) tests/kmod/run-arm64.sh

# make test's card run on the arm64 board: the slot/parameter checks and
# the whole card matrix (tests/kmod/guest-card.sh matrix), then kmemleak and
# the kernel log; test-kmod-arm64 (make test-long) is the whole card suite.
test-kmod-arm64-matrix: kernel-arm64 bridge xbuild-arm64
	@$(DEBUG_KERNEL) tests/kmod/run-arm64.sh matrix

test-kmod-long: kernel bridge
	@$(DEBUG_KERNEL) tests/kmod/run.sh long

test-intree: kernel
	@$(DEBUG_KERNEL) tests/kmod/intree.sh

dtbs-check: setup
	dts/check.sh

kconfig-check: setup
	@$(ROOT)/scripts/kconfig-check.sh

template-build: setup
	@$(ROOT)/scripts/kconfig-check.sh --build-template

# The emulated arm64 board (board-configs/qemu-arm64/README.md).
rootfs-arm64:
	@$(ROOT)/scripts/arm64-rootfs.sh

xbuild-arm64: setup
	@$(ROOT)/scripts/xbuild-arm64.sh >/dev/null

DTB_ARM64 ?= target/arm64/board.dtb
dtb-arm64:
	$(ROOT)/dts/mkboard-dtb.sh $(DTB_ARM64_ARGS) -o $(DTB_ARM64)

# Needs a Buildroot checkout (not fetchable in CI, so not part of `make test`).
buildroot-check:
	@[ -n "$(BUILDROOT)" ] || { echo "usage: make buildroot-check BUILDROOT=/path/to/buildroot [BR_DEFCONFIG=...]" >&2; exit 2; }
	$(ROOT)/scripts/buildroot-check.sh "$(BUILDROOT)" $(BR_DEFCONFIG)

# linphone on the card and both demos boot the production kernels, as a
# user's board would; make test boots them on the debug kernels
# (scripts/run-suites.sh sets these to debug: a correctness run, one
# kernel per architecture to build on a fresh machine; the demos then show
# their latency legs without judging them). Set here, before the rules
# whose prerequisites name the kernel each boots (DEMO_*_KERNEL_TARGET).
LINPHONE_KERNEL ?= prod
DEMO_X86_KERNEL ?= prod
DEMO_BOARD_KERNEL ?= prod
DEMO_X86_KERNEL_TARGET = $(if $(filter prod,$(DEMO_X86_KERNEL)),kernel-prod,kernel)
DEMO_BOARD_KERNEL_TARGET = $(if $(filter prod,$(DEMO_BOARD_KERNEL)),kernel-arm64-prod,kernel-arm64)
test-linphone: bridge $(if $(filter prod,$(LINPHONE_KERNEL)),kernel-prod,kernel)
	@SND_VOIP_KERNEL=$(LINPHONE_KERNEL) tests/demo/linphone.sh

# The emulated arm64 board with the RTOS FIFO: its kernel (cached like the
# x86_64 one), the arm64 module, the smoke test and the FIFO tests.
kernel-arm64: setup
	@BOARD=qemu-arm64 $(DEBUG_KERNEL) $(ROOT)/scripts/kernel.sh

kmod-arm64: kernel-arm64
	@$(DEBUG_KERNEL) $(ROOT)/scripts/kmod-arm64.sh

test-rtos: kernel-arm64 bridge
	@ko=$$($(DEBUG_KERNEL) $(ROOT)/scripts/kmod-arm64.sh) && \
	$(DEBUG_KERNEL) tests/rtos/arm64-smoke.sh --module "$$ko" && \
	$(DEBUG_KERNEL) tests/rtos/run.sh --module "$$ko"

test:
	@$(ROOT)/scripts/run-suites.sh --tier test

test-long:
	@$(ROOT)/scripts/run-suites.sh --tier long

bench-kmod: kernel-prod bridge
	@$(PROD_KERNEL) tests/bench/kernel.sh

# CPU per call with the card, in one boot of the production kernel: voipbridge
# on snd-voip and baresip on snd-aloop carrying 1, then 8 calls from a SIPp
# that echoes their RTP (make bench's part guest-calls).
bench-calls-guest: kernel-prod bridge
	@$(PROD_KERNEL) tests/bench/calls-guest.sh

# The card part again on the production kernel built with
# board-configs/common/trace.config (exact irq/softirq time, timer and
# softirq tracepoints; its own cached kernel, ~10 min to build), timing
# every hrtimer callback and softirq run of each module.
bench-kmod-trace: setup bridge
	@$(PROD_KERNEL) EXTRA_FRAGMENTS=$(ROOT)/board-configs/common/trace.config $(ROOT)/scripts/kernel.sh
	@$(PROD_KERNEL) tests/bench/kernel.sh --trace

# Every figure of issue 16 in one run (README "Performance"): footprint,
# CPU per call beside baresip, the media engine, and the card beside
# snd-aloop and snd-dummy on the production kernel. Not part of `make test`.
# BENCH_NETNS=NAME runs the host calls in that network namespace;
# BENCH_MEDIA=0 skips the cargo bench (a release build of the workspace);
# BENCH_PARTS="footprint calls guest-calls media kernel latency" picks parts.
bench: kernel-prod bridge
	@$(PROD_KERNEL) tests/bench/bench.sh

# Echo cancellation (aec/README.md). bench-aec prints aec-eval's table;
# with BENCH_AEC_FEATURES=speex,webrtc it adds Debian's libspeexdsp and
# libwebrtc-audio-processing (installed here on demand).
BENCH_AEC_FEATURES ?=
bench-aec:
	@if [ -n "$(BENCH_AEC_FEATURES)" ]; then apt-get install -y -q libspeexdsp-dev libwebrtc-audio-processing-dev >/dev/null; fi
	$(CARGO) run --release --locked -p aec-eval $(if $(BENCH_AEC_FEATURES),--features $(BENCH_AEC_FEATURES))

bench-aec-arm64: kernel-arm64
	tests/aec/bench-arm64.sh

# The board's call with rtos-sim's echo path: ERLE of the far end's own
# voice >= 20 dB (exit 1 below). TEST_AEC_BOARD_ARGS=--echo-cancel false
# shows it failing without a canceller. It boots the board's production
# kernel: under the debug kernel's KASAN the emulated guest has ~8 % idle
# in a call before any canceller runs (README, Echo cancellation).
test-aec-board: kernel-arm64-prod
	@BOARD=qemu-arm64 $(PROD_KERNEL) tests/aec/board-echo.sh $(TEST_AEC_BOARD_ARGS)

# The media engine's numbers on the host: CPU per call-second (1, 8, 100
# calls, event-driven and timer-driven), allocations per packet, resampler
# cost, virtual-time latency. MEDIA_BENCH_SECONDS sets the windows (5).
bench-media:
	$(CARGO) bench -p voipbridge --bench media_calls

# Both demos always run (each prints its report); either failing fails `make demo`.
demo: bridge $(DEMO_X86_KERNEL_TARGET) $(DEMO_BOARD_KERNEL_TARGET)
	@rc=0; $(MAKE) --no-print-directory demo-x86 || rc=1; $(MAKE) --no-print-directory demo-board || rc=1; exit $$rc

demo-x86: bridge $(DEMO_X86_KERNEL_TARGET)
	@SND_VOIP_KERNEL=$(DEMO_X86_KERNEL) tests/demo/run.sh

# The demo on the emulated arm64 AMP board, through the RTOS audio FIFO
# (board.sh builds the arm64 module, userspace and voipbridge itself). It
# boots the board's production kernel, as a shipped board would, and shows
# the latency legs there (make demo). make test boots the debug kernel
# instead (scripts/run-suites.sh sets DEMO_BOARD_KERNEL=debug): the FIFO
# path is the driver's newest code, and this is its only run inside a
# real call. DEMO_ECHO=1 turns rtos-sim's echo path and the >= 20 dB ERLE
# check on (meant for the production kernel: under the debug kernel the
# emulated board does not keep up; README, Echo cancellation).
XBUILD_JOBS ?= $(shell nproc)
export XBUILD_JOBS
demo-board: bridge $(DEMO_BOARD_KERNEL_TARGET)
	@SND_VOIP_KERNEL=$(DEMO_BOARD_KERNEL) tests/demo/board.sh

.PHONY: bench-aec bench-aec-arm64 test-aec-board bench-media

# cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP=1 admits -Zsanitizer=address):
# each voipbridge fuzz target for FUZZ_SECONDS, from the committed seeds.
FUZZ_SECONDS ?= 60
fuzz: setup
	@FUZZ_SECONDS=$(FUZZ_SECONDS) $(ROOT)/scripts/fuzz.sh
test-fuzz:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=30
fuzz-long:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=1800

test-host-long: bridge
	PROPTEST_CASES=20000 $(ROOT)/scripts/cargo-ci.sh test

.PHONY: buildroot-check demo-x86 demo-board kernel-arm64 kernel-arm64-prod kmod-arm64 test-rtos rootfs-arm64 dtb-arm64 help setup \
	kernel kernel-prod kmods kmods-test print-kdir print-kernel kmod bridge lint dtbs-check kconfig-check template-build \
	test-host test-kmod test-kmod-arm64 test-kmod-arm64-matrix test-kmod-long test-intree test-linphone test test-long bench bench-kmod bench-kmod-trace bench-calls-guest demo \
	xbuild-arm64 fuzz test-fuzz fuzz-long test-host-long
