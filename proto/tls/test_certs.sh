#!/usr/bin/env bash
# Makes a throwaway PKI in DIR for tests and local trials: two CAs (ca,
# other-ca), a server certificate for localhost / 127.0.0.1 signed by ca,
# and a client certificate (CN=app-client) signed by ca. EC P-256, valid for
# two days. Needs the openssl command.
#
#   proto/tls/test_certs.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2> /dev/null; }
for ca in ca other-ca; do
  key "$ca.key"
  openssl req -x509 -new -key "$ca.key" -out "$ca.pem" -days 2 -subj "/CN=runnel test $ca" 2> /dev/null
done
sign() {  # NAME CN EXTENSIONS
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$2" 2> /dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 2 \
    -extfile "$1.ext" 2> /dev/null
  rm -f "$1.csr" "$1.ext"
}
sign server localhost "subjectAltName=DNS:localhost,IP:127.0.0.1"
sign client app-client "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
