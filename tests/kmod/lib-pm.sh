# System suspend in the emulated guests (sourced; POSIX sh).
#
# A suspend resets every virtio-pci device whose PCI power management does
# not say No_Soft_Reset, and the 9p transport cannot restore its queues: the
# guest's root, repository and output shares would hang. tests/qemu/run-guest.sh
# --pm (or a "# run-guest: --pm" line in the guest script) puts each share on
# its own PCIe root port with No_Soft_Reset set; shares_survive_suspend checks
# that before a test suspends (setting $shares_why when it says no).

# pci_no_soft_reset DIR: the PCI device in sysfs DIR has a PM capability with
# No_Soft_Reset (PMCSR bit 3).
pci_no_soft_reset() {
    _cfg=$1/config
    _byte() { od -An -tu1 -j"$1" -N1 "$_cfg" 2>/dev/null | tr -d ' '; }
    _ptr=$(_byte 52)
    _n=0
    while [ -n "$_ptr" ] && [ "$_ptr" -ne 0 ] && [ $_n -lt 48 ]; do
        if [ "$(_byte "$_ptr")" = 1 ]; then
            _ctl=$(od -An -tu2 -j$((_ptr + 4)) -N2 "$_cfg" 2>/dev/null | tr -d ' ')
            [ -n "$_ctl" ] && [ $((_ctl & 8)) -ne 0 ]
            return
        fi
        _ptr=$(_byte $((_ptr + 1)))
        _n=$((_n + 1))
    done
    return 1
}

# shares_survive_suspend: every 9p virtio device is a PCI device with No_Soft_Reset.
shares_survive_suspend() {
    shares_why=""
    _seen=0
    for _v in /sys/bus/virtio/drivers/9pnet_virtio/virtio*; do
        [ -e "$_v" ] || continue
        _seen=$((_seen + 1))
        _pci=$(readlink -f "$_v/..")
        if ! pci_no_soft_reset "$_pci"; then
            shares_why="9p device $(basename "$_pci") has no PM No_Soft_Reset"
            return 1
        fi
    done
    [ $_seen -gt 0 ] || { shares_why="no 9p virtio device found"; return 1; }
}
