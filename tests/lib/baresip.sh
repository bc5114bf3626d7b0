# baresip_config DIR SIP_PORT SOURCE_WAV ACCOUNT [menu]
# Writes DIR/config and DIR/accounts for a headless baresip far end (POSIX
# sh, sourced by host and guest tests): it listens on 127.0.0.1:SIP_PORT,
# sends SOURCE_WAV (8 kHz mono) and records what it hears into
# DIR/snd/*-dec.wav. With "menu", commands such as -e "/dial URI" work.
baresip_config() {
    mkdir -p "$1/snd"
    cat >"$1/config" <<CFG
sip_listen		127.0.0.1:$2
net_interface		127.0.0.1
audio_source		aufile,$3
audio_alert		aufile,/dev/null
audio_srate		8000
audio_channels		1
module_path		/usr/lib/baresip/modules
module			g711.so
module			aufile.so
module			sndfile.so
module			account.so
module			stdio.so
snd_path		$1/snd
CFG
    if [ "${5:-}" = menu ]; then echo "module			menu.so" >>"$1/config"; fi
    echo "$4" >"$1/accounts"
}
