# Test certificates for the TLS tests (sourced, bash; needs the openssl
# command, which only the tests use: the board's voipbridge has no OpenSSL).
#   pki_ca DIR NAME              DIR/NAME.pem + DIR/NAME.key: a CA
#   pki_cert DIR CA NAME SAN [NOT_BEFORE NOT_AFTER]
#                                DIR/NAME.pem + DIR/NAME.key (mode 0600)
#                                signed by DIR/CA, with subjectAltName SAN
#                                (e.g. "DNS:localhost,IP:127.0.0.1"); dates
#                                as YYYYMMDDHHMMSSZ (default: from a day
#                                ago, for 30 days)
pki_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
        -subj "/CN=snd-voip test CA $2" -keyout "$1/$2.key" -out "$1/$2.pem" 2>/dev/null
}
pki_cert() {
    local d=$1 ca=$2 name=$3 san=$4 nb=${5:-} na=${6:-}
    [ -n "$nb" ] || nb=$(date -u -d '1 day ago' +%Y%m%d%H%M%SZ)
    [ -n "$na" ] || na=$(date -u -d '30 days' +%Y%m%d%H%M%SZ)
    mkdir -p "$d/ca-$ca"
    : >"$d/ca-$ca/index.txt"
    [ -f "$d/ca-$ca/serial" ] || echo 1000 >"$d/ca-$ca/serial"
    cat >"$d/ca-$ca/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $d/ca-$ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
default_md = sha256
policy = any
copy_extensions = none
unique_subject = no
[any]
commonName = supplied
[ext]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = $san
CNF
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$name" \
        -keyout "$d/$name.key" -out "$d/$name.csr" 2>/dev/null
    openssl ca -batch -config "$d/ca-$ca/ca.cnf" -cert "$d/$ca.pem" -keyfile "$d/$ca.key" \
        -extensions ext -startdate "$nb" -enddate "$na" -notext \
        -in "$d/$name.csr" -out "$d/$name.pem" 2>/dev/null
    chmod 600 "$d/$name.key"
    [ -s "$d/$name.pem" ]
}
