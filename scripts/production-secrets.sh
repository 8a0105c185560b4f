#!/usr/bin/env bash
# What compose.production.yaml mounts: a local CA and TLS certificates for RabbitMQ and MongoDB in
# ./certs, and random secrets in ./secrets (both git- and docker-ignored). For a trial or a private
# deployment; a public one brings certificates from its own CA. Refuses to overwrite anything.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -e certs || -e secrets ]]; then
  echo "certs/ or secrets/ exists already: move it away first" >&2
  exit 1
fi
mkdir -m 700 certs secrets

openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=pharmacy local CA" \
  -keyout certs/ca-key.pem -out certs/ca.pem 2>/dev/null
for host in rabbitmq mongodb; do
  # The services reach the server by its compose name; its own healthcheck by localhost.
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$host" \
    -keyout "certs/$host-key.pem" -out "certs/$host.csr" 2>/dev/null
  openssl x509 -req -in "certs/$host.csr" -CA certs/ca.pem -CAkey certs/ca-key.pem -CAcreateserial \
    -days 825 -out "certs/$host.pem" \
    -extfile <(printf 'subjectAltName=DNS:%s,DNS:localhost\nextendedKeyUsage=serverAuth\n' "$host") 2>/dev/null
  rm "certs/$host.csr"
done
cat certs/mongodb.pem certs/mongodb-key.pem >certs/mongodb-bundle.pem  # mongod takes both in one file
rm -f certs/ca.srl
mv certs/ca-key.pem ./pharmacy-ca-key.pem  # signs nothing at run time: keep it off the servers

# Hex: no character that would need escaping in a URL.
broker_password=$(openssl rand -hex 24)
store_password=$(openssl rand -hex 24)
printf 'default_user = pharmacy\ndefault_pass = %s\n' "$broker_password" >secrets/rabbitmq_credentials.conf
printf 'amqps://pharmacy:%s@rabbitmq:5671/' "$broker_password" >secrets/rabbitmq_url
printf '%s' "$store_password" >secrets/mongodb_root_password
printf 'mongodb://pharmacy:%s@mongodb:27017/?tls=true&authSource=admin' "$store_password" >secrets/mongodb_url
openssl rand -hex 32 | tr -d '\n' >secrets/secret_key
openssl rand -hex 32 | tr -d '\n' >secrets/email_index_key
openssl rand -hex 32 | tr -d '\n' >secrets/delivery_pin_key
openssl rand -hex 16 | tr -d '\n' >secrets/admin_password
printf 'k1:%s' "$(openssl rand -base64 32)" >secrets/field_encryption_keys

# The containers' users (rabbitmq, mongodb, pharmacy) are not the owner of these files: they must be able
# to read them. The directories stay closed to other users of this host.
chmod 644 certs/* secrets/*
echo "certs/ and secrets/ are ready; the CA key is ./pharmacy-ca-key.pem (keep it safe, or delete it)."
echo "The first admin's password, for ADMIN_EMAIL: secrets/admin_password"
