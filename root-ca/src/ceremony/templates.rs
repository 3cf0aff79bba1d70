//! The commented ceremony files `root-ca template KIND` prints.

pub const TEMPLATE_INIT: &str = r#"# root-ca init ceremony. Review and sign off this file before the ceremony.
# Run:  root-ca init THIS_FILE --dry-run   (shows the plan and the token's capability check; generates nothing)
#       root-ca init THIS_FILE             (generates the key in the token and self-signs the root)

# Refuse to run while a network interface is up. Set to true only for rehearsals.
allow-network = false

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"   # the PKCS#11 module of the HSM
token-label = "root-ca"                      # the token (slot) label
key-label = "root-2026"                      # must not exist yet in the token

[key]
algorithm = "p384"                           # p384 (default), p256, rsa3072, rsa4096, ed25519
# true: the key can leave the token, wrapped only, for `root-ca backup` (see the runbook's
# trade-off); false (default): the key never leaves the token and dies with it.
backup = false

[root]
common-name = "Example Root CA 2026"
organization = "Example Ltd"                 # optional
country = "GB"                               # optional
days = 3653                                  # lifetime: default 10 years, at most 25
# 1: room for the intermediates only. 2: also for a cross certificate in the path, which a
# root rollover needs (OpenSSL and Go enforce a root's path length; docs/root-rollover.md).
path-length = 2

[output]
dir = "root"                                 # the root's state folder; must not exist or be empty
"#;

pub const TEMPLATE_SIGN: &str = r#"# root-ca sign ceremony: sign one intermediate CA certificate.
# Run:  root-ca sign THIS_FILE --dry-run   then   root-ca sign THIS_FILE

allow-network = false
# A request (request ID or key) this root already signed is refused unless this is true.
allow-resign = false
root-dir = "root"                            # the folder `root-ca init` created

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[request]
bundle = "request.age"                       # the request bundle from `intermediate-ca request`
# csr = "intermediate.csr"                   # or a plain PKCS#10 request (PEM) instead of a bundle
# SHA-256 of the request's public key, as the requester read it out over the phone:
#   openssl req -in intermediate.csr -pubkey -noout | openssl pkey -pubin -outform DER | sha256sum
key-fingerprint = "AB:CD:..."

[certificate]
# common-name = "Example Intermediate CA 1" # default: the CN of the request
days = 1826                                  # default 5 years; never past the root
# Optional name constraints: what a stolen intermediate could still sign. They must cover
# every name its leaves carry, including the member names `issuer etcd` adds as DNS names.
# A constraint on one name type closes the other: DNS names only excludes every IP address
# (0.0.0.0/0, ::/0); IP ranges only excludes every DNS name.
# permitted-dns = ["etcd.example.internal"]
# permitted-ips = ["10.0.0.0/8"]

[output]
response = "response.age"                    # the response bundle for the requester; must not exist
certificate = "intermediate.crt"             # also the certificate as PEM (optional); must not exist
"#;

pub const TEMPLATE_REVOKE: &str = r#"# root-ca revoke ceremony: mark an intermediate revoked. The next `root-ca crl` lists it.
allow-network = false
root-dir = "root"
serial = "5A3F..."                           # the intermediate's serial (openssl x509 -serial -noout)
# unspecified, keyCompromise, cACompromise, affiliationChanged, superseded,
# cessationOfOperation, privilegeWithdrawn
reason = "keyCompromise"
"#;

pub const TEMPLATE_CRL: &str = r#"# root-ca crl ceremony: sign the root's CRL in the token.
allow-network = false
root-dir = "root"
next-update-days = 180                       # sign a new one before then

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[output]
crl = "root-crl.pem"                         # must not exist
"#;

pub const TEMPLATE_CUSTODY: &str = r#"# root-ca custody split / resplit ceremony: the token's user PIN and the backup wrap key,
# held M-of-N by custodians. Each custodian brings their age recipient (age-keygen -o me.txt
# prints it); their share is encrypted to it. Later ceremonies need `threshold` of them.
# Run:  root-ca custody split THIS_FILE --dry-run   then   root-ca custody split THIS_FILE
#       (the first split takes the token's current PIN from --pin-file, ROOT_CA_PIN or a prompt,
#        and replaces it: afterwards only the custodians can open the token)
#       root-ca custody resplit THIS_FILE --custodian-identity FILE ...   (a new set of custodians)

allow-network = false                        # true on a networked rehearsal machine only
root-dir = "root"
threshold = 3                                # M: custodians every later ceremony needs (2 or more)
# Re-split only: draw a new secret (new token PIN, new wrap key): earlier shares open nothing.
# Earlier backups then need earlier shares; make a new backup afterwards.
new-secret = false

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[[custodian]]
name = "alice"
recipient = "age1..."
[[custodian]]
name = "bob"
recipient = "age1..."
[[custodian]]
name = "carol"
recipient = "age1..."
[[custodian]]
name = "dave"
recipient = "age1..."
[[custodian]]
name = "erin"
recipient = "age1..."
"#;

pub const TEMPLATE_BACKUP: &str = r#"# root-ca backup ceremony: the root key, wrapped in the token under the custody wrap key
# (CKM_AES_KEY_WRAP_PAD), written to one file. Needs a root made with [key] backup = true and
# `threshold` custodians.
# Run:  root-ca backup THIS_FILE --so-pin-file SO_PIN_FILE --custodian-identity FILE ...
#       (the security officer's PIN: --so-pin-file, ROOT_CA_SO_PIN or a prompt)
allow-network = false                        # true on a networked rehearsal machine only
root-dir = "root"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[output]
backup = "root-key-backup.toml"              # must not exist
"#;

pub const TEMPLATE_RESTORE: &str = r#"# root-ca restore ceremony: a backup unwrapped into a fresh token, which then holds the same
# root key under the custody PIN. The fresh token's own PIN comes from --pin-file,
# ROOT_CA_PIN or a prompt; `threshold` custodians bring the wrap key.
# Run:  root-ca restore THIS_FILE --pin-file NEW_TOKEN_PIN --custodian-identity FILE ...
#       (SoftHSM2 rehearsal: the fresh token may live under another SOFTHSM2_CONF; export the
#        one that holds it before running)
allow-network = false                        # true on a networked rehearsal machine only
root-dir = "root"

[token]
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca-2"                    # the fresh token
key-label = "root-2026"                      # the label recorded in the backup

[input]
backup = "root-key-backup.toml"
"#;

pub const TEMPLATE_CROSS_SIGN: &str = r#"# root-ca cross-sign ceremony: one root's key certifies the other root (root rollover,
# docs/root-rollover.md). Run it twice, once per direction, each time with the signer's token:
#   new-with-old: the old root signs; a party that trusts only the old root reaches the new one
#   old-with-new: the new root signs; a party that trusts only the new root reaches the old one
# The cross certificate carries the certified root's exact subject and key, with the signer as
# issuer, and never outlives either root.
# Run:  root-ca cross-sign THIS_FILE --dry-run   then   root-ca cross-sign THIS_FILE

allow-network = false
direction = "new-with-old"                   # or "old-with-new"
signer-root-dir = "root"                     # the root whose key signs (the token below)
subject-root-dir = "root-2031"               # the root certified (only its root.crt is read)
# days = 1826                                # default: until the earlier root expires
# A second cross certificate for the same roots and direction is refused unless this is true.
allow-resign = false

[token]                                      # the signer's token and key
module = "/usr/lib/softhsm/libsofthsm2.so"
token-label = "root-ca"
key-label = "root-2026"

[output]
certificate = "root-2031-by-root-2026.crt"   # must not exist
"#;
