# snd-voip top-level Makefile. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
BOARD ?= qemu-x86_64
export BOARD
KSRC_TREE = $(shell $(ROOT)/scripts/kernel.sh --print-kdir)
KDIR ?= $(KSRC_TREE)
CARGO ?= cargo
SND_VOIP_CACHE ?= $(HOME)/.cache/snd-voip
KFMT_CONFIG = $(SND_VOIP_CACHE)/linux-source-6.12/.rustfmt.toml
KMOD_RS = $(wildcard kmod-snd-voip/*.rs kmod-snd-voip/logic/*.rs)

help:
	@echo "snd-voip: a sound card and a SIP phone for boards without one"
	@echo
	@echo "  make demo        set up, build, boot the emulated boards and make calls (the main job):"
	@echo "                   the x86_64 board (demo-x86), then the arm64 AMP board through the RTOS FIFO (demo-board)"
	@echo "  make test        set up, build and run every test (host and qemu)"
	@echo
	@echo "  make setup       install packages, bindgen, the kernel tree and rustc+rust-src (idempotent)"
	@echo "  make kernel      build the reference kernel for BOARD=$(BOARD) into ~/.cache/snd-voip (cached)"
	@echo "  make kmod        build kmod-snd-voip/snd-voip.ko against KDIR (default: the reference tree)"
	@echo "  make bridge      build voipbridge and the host tools (cargo, release)"
	@echo "  make test-host   cargo tests and host integration tests (no qemu)"
	@echo "  make test-kmod   the card tests in qemu (KASAN, lockdep, kmemleak kernel)"
	@echo "  make test-intree build snd-voip in tree (sound/drivers/voip) and load it in qemu"
	@echo "  make test-linphone  linphonec on the card calls baresip, audio both ways (qemu)"
	@echo "  make demo-x86 / demo-board   one of the two demos alone"
	@echo "  make test-rtos   the RTOS audio FIFO on the emulated arm64 board (rtos-sim plays the RTOS)"
	@echo "  make kernel-arm64 / kmod-arm64   the arm64 board's kernel (cached) / snd-voip.ko for it"
	@echo "  make fuzz        cargo-fuzz the SIP and SDP parsers (FUZZ_SECONDS each, default 60); test-fuzz: 30 s"
	@echo "  make rootfs-arm64 / dtb-arm64   the emulated arm64 board's userspace / its DTB with the RTOS FIFO node"
	@echo "  make lint        cargo fmt/clippy -D warnings, rustfmt of the module"
	@echo "  make dtbs-check  validate the device-tree binding and overlays (dt-schema, dtc)"
	@echo "  make buildroot-check BUILDROOT=<dir>   lint board-configs/buildroot and merge its fragment there"
	@echo "  make bench-kmod  period-wakeup jitter and CPU: snd-voip vs snd-aloop, in qemu"
	@echo "  make print-kdir / print-kernel   the reference build directory / bootable image"

setup:
	@$(ROOT)/scripts/setup.sh

kernel: setup
	@$(ROOT)/scripts/kernel.sh

print-kdir:
	@$(ROOT)/scripts/kernel.sh --print-kdir

print-kernel:
	@$(ROOT)/scripts/kernel.sh --print-kernel

kmod: $(if $(filter command line environment,$(origin KDIR)),,kernel)
	@$(MAKE) -C kmod-snd-voip KDIR="$(KDIR)"

bridge: setup
	$(CARGO) build --workspace --release --locked
	$(CARGO) build --workspace --locked

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	rustfmt --check --edition 2021 --config-path $(KFMT_CONFIG) kmod-snd-voip/snd_voip_main.rs

test-host: bridge
	$(CARGO) test --workspace --locked
	@set -e; for t in tests/host/*.sh; do [ -e "$$t" ] || continue; echo "== $$t"; bash "$$t"; done

test-kmod: kmod bridge
	tests/kmod/run.sh full

test-intree: kernel
	tests/kmod/intree.sh

dtbs-check: setup
	dts/check.sh

# The emulated arm64 board (board-configs/qemu-arm64/README.md).
rootfs-arm64:
	@$(ROOT)/scripts/arm64-rootfs.sh

DTB_ARM64 ?= target/arm64/board.dtb
dtb-arm64:
	$(ROOT)/dts/mkboard-dtb.sh $(DTB_ARM64_ARGS) -o $(DTB_ARM64)

# Needs a Buildroot checkout (not fetchable in CI, so not part of `make test`).
buildroot-check:
	@[ -n "$(BUILDROOT)" ] || { echo "usage: make buildroot-check BUILDROOT=/path/to/buildroot [BR_DEFCONFIG=...]" >&2; exit 2; }
	$(ROOT)/scripts/buildroot-check.sh "$(BUILDROOT)" $(BR_DEFCONFIG)

test-linphone: kmod bridge
	tests/demo/linphone.sh

# The emulated arm64 board with the RTOS FIFO: its kernel (cached like the
# x86_64 one), the arm64 module, the smoke test and the FIFO tests.
kernel-arm64: setup
	@BOARD=qemu-arm64 $(ROOT)/scripts/kernel.sh

kmod-arm64: kernel-arm64
	@$(ROOT)/scripts/kmod-arm64.sh

test-rtos: kernel-arm64 bridge
	tests/rtos/arm64-smoke.sh --module "$$($(ROOT)/scripts/kmod-arm64.sh)"
	tests/rtos/run.sh --module "$$($(ROOT)/scripts/kmod-arm64.sh)"

test: setup lint dtbs-check test-host test-fuzz test-kmod test-intree test-linphone test-rtos demo
	@echo "make test: all test suites passed"

bench-kmod: kmod bridge
	tests/kmod/bench.sh

# Both demos always run (each prints its report); either failing fails `make demo`.
demo: kmod bridge kernel-arm64
	@rc=0; $(MAKE) --no-print-directory demo-x86 || rc=1; $(MAKE) --no-print-directory demo-board || rc=1; exit $$rc

demo-x86: kmod bridge
	tests/demo/run.sh

# The demo on the emulated arm64 AMP board, through the RTOS audio FIFO
# (board.sh builds the arm64 module, userspace and voipbridge itself).
XBUILD_JOBS ?= $(shell nproc)
export XBUILD_JOBS
demo-board: kernel-arm64
	tests/demo/board.sh

.PHONY: buildroot-check demo-x86 demo-board kernel-arm64 kmod-arm64 test-rtos rootfs-arm64 dtb-arm64 help setup kernel print-kdir print-kernel kmod bridge lint dtbs-check test-host test-kmod test-intree test-linphone test bench-kmod demo

# cargo-fuzz on the stable toolchain (RUSTC_BOOTSTRAP=1 admits -Zsanitizer=address):
# each voipbridge fuzz target for FUZZ_SECONDS, from the committed seeds.
FUZZ_SECONDS ?= 60
fuzz:
	@set -e; cd voipbridge && for t in sip_message sdp; do mkdir -p fuzz/corpus/$$t; echo "== fuzz $$t ($(FUZZ_SECONDS) s)"; RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t fuzz/corpus/$$t fuzz/seeds/$$t -- -max_total_time=$(FUZZ_SECONDS) -max_len=8192; done
test-fuzz:
	$(MAKE) fuzz FUZZ_SECONDS=30
.PHONY: fuzz test-fuzz
