# Pieces shared by the two demos' guest scripts (POSIX sh, sourced):
# tests/demo/guest.sh (x86_64) and tests/demo/guest-board.sh (arm64).

# demo_bridge_config FILE DEVICE SOCKET: the board phone's voipbridge config:
# sip:board@127.0.0.1 registered with the demo's kamailio (127.0.0.1:5060,
# digest password "boardpass"), SIP on 127.0.0.1:5070, PCMU, capture and
# playback on the ALSA device DEVICE, control socket SOCKET.
demo_bridge_config() {
    cat >"$1" <<CFG
[account]
uri = "sip:board@127.0.0.1"
registrar = "127.0.0.1:5060"
password = "boardpass"
[sip]
listen = "127.0.0.1:5070"
[media]
codecs = ["PCMU"]
[audio]
capture = "alsa:$2"
playback = "alsa:$2"
[control]
socket = "$3"
CFG
}
