//! The crypto floor of one renewal, in one process: what `issuer serve` cannot avoid doing for
//! each `POST /v1/renew`, measured without sockets, ledger or HTTP.
//!
//! Per renewal: the server side of a TLS 1.3 handshake with client-certificate verification
//! (rustls on an in-memory pair with the service's own configuration; only the server's calls
//! are timed), the CSR's parsing and signature check, the leaf's signing through the issuance
//! gate and its software check. For a P-256 and a P-384 intermediate.
//!
//! ```text
//! cargo bench -p pki-service --bench renewal_floor -- [--iterations N]
//! ```
//! Prints one Markdown table row per intermediate (µs per renewal, median of five batches);
//! `scripts/bench-serve.sh` divides the service's CPU per renewal by the total.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pki_core::ca::{IssuingCa, LeafKey, LeafRequest};
use pki_core::keys::{FileKey, KeyAlgorithm};
use pki_core::x509::Validity;
use pki_core::x509::{CertFacts, CheckedCsr, LeafRole, Profile, Serial, Subject, SubjectNames};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use time::OffsetDateTime;

/// A root and an intermediate of `alg`, unlocked.
fn ca(alg: KeyAlgorithm) -> (CertificateDer<'static>, IssuingCa<FileKey>) {
    let now = OffsetDateTime::now_utc();
    let root_key = FileKey::generate(KeyAlgorithm::P384).expect("root key");
    let v = Validity::within_issuer(3650, 9132, None, now).expect("validity");
    let root = Profile::Root
        .params(
            &Subject::cn("floor root"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            KeyAlgorithm::P384,
            None,
        )
        .expect("root params")
        .self_signed(&root_key)
        .expect("root");
    let key = FileKey::generate(alg).expect("intermediate key");
    let v = Validity::within_issuer(1800, 3653, None, now).expect("validity");
    let issuer = rcgen::Issuer::from_ca_cert_der(root.der(), &root_key).expect("issuer");
    let int = Profile::Intermediate
        .params(
            &Subject::cn("floor intermediate"),
            &SubjectNames::default(),
            &v,
            &Serial::random(),
            alg,
            None,
        )
        .expect("intermediate params")
        .signed_by(&key, &issuer)
        .expect("intermediate");
    let facts = CertFacts::from_der("intermediate", int.der()).expect("facts");
    (
        root.der().clone(),
        IssuingCa::new(1, facts, key).expect("issuing CA"),
    )
}

/// A leaf of `role` with a key made here: (chain, key).
fn leaf(
    ca: &IssuingCa<FileKey>,
    role: LeafRole,
    cn: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    use rustls::pki_types::pem::PemObject;
    let names = match role {
        LeafRole::Client => SubjectNames::default(),
        _ => SubjectNames {
            dns: vec![],
            ips: vec!["127.0.0.1".parse().unwrap()],
        },
    };
    let l = ca
        .sign_leaf(
            LeafRequest {
                role,
                subject: Subject::cn(cn),
                names,
                days: None,
                key: LeafKey::Generate(KeyAlgorithm::P256),
            },
            OffsetDateTime::now_utc(),
        )
        .expect("leaf");
    let chain = CertificateDer::pem_slice_iter(l.chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(l.key_pem.expect("key").as_bytes()).expect("key");
    (chain, key)
}

/// A CSR for a fresh P-256 key, as an agent makes it.
fn csr(cn: &str) -> String {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut p = rcgen::CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(rcgen::DnType::CommonName, cn);
    p.serialize_request(&key)
        .and_then(|c| c.pem())
        .expect("csr")
}

/// One handshake on an in-memory pair; the time spent in the server's calls.
fn handshake(server: &Arc<rustls::ServerConfig>, client: &Arc<rustls::ClientConfig>) -> Duration {
    let mut c =
        rustls::ClientConnection::new(client.clone(), ServerName::try_from("127.0.0.1").unwrap())
            .unwrap();
    let mut s = rustls::ServerConnection::new(server.clone()).unwrap();
    let mut spent = Duration::ZERO;
    let mut buf = Vec::new();
    for _ in 0..10 {
        buf.clear();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        let t = Instant::now();
        let mut rd = &buf[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets().expect("server handshake");
        let mut out = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut out).unwrap();
        }
        spent += t.elapsed();
        let mut rd = &out[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        c.process_new_packets().expect("client handshake");
        if !s.is_handshaking() && !c.is_handshaking() {
            assert!(
                s.peer_certificates().is_some(),
                "the client certificate was verified"
            );
            return spent;
        }
    }
    panic!("the handshake did not finish");
}

fn main() {
    let mut iterations = 200usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--iterations" {
            iterations = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--iterations N");
        }
    }
    println!("| intermediate | handshake, server side µs | CSR check µs | sign + check µs | floor µs per renewal |");
    println!("|---|---:|---:|---:|---:|");
    for (label, alg) in [("P-256", KeyAlgorithm::P256), ("P-384", KeyAlgorithm::P384)] {
        let (root, signer) = ca(alg);
        let (chain, key) = leaf(&signer, LeafRole::Server, "pki-service");
        let server =
            Arc::new(pki_service::tls::server_config(chain, key, &root).expect("server config"));
        let (cchain, ckey) = leaf(&signer, LeafRole::Client, "app");
        let mut client =
            pki_service::tls::client_config(&root, Some((cchain, ckey))).expect("client config");
        client.resumption = rustls::client::Resumption::disabled();
        let client = Arc::new(client);
        let csrs: Vec<String> = (0..iterations).map(|_| csr("app")).collect();
        let mut batches = Vec::new();
        for _ in 0..5 {
            let (mut hs, mut check, mut sign) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
            for pem in &csrs {
                hs += handshake(&server, &client);
                let t = Instant::now();
                let checked = CheckedCsr::from_pem("CSR", pem.as_bytes()).expect("csr");
                check += t.elapsed();
                let t = Instant::now();
                signer
                    .sign_leaf(
                        LeafRequest {
                            role: LeafRole::Client,
                            subject: Subject::cn("app"),
                            names: SubjectNames::default(),
                            days: None,
                            key: LeafKey::Csr(Box::new(checked)),
                        },
                        OffsetDateTime::now_utc(),
                    )
                    .expect("sign");
                sign += t.elapsed();
            }
            let per = |d: Duration| d.as_secs_f64() * 1e6 / iterations as f64;
            batches.push((per(hs), per(check), per(sign)));
        }
        batches.sort_by(|a, b| (a.0 + a.1 + a.2).total_cmp(&(b.0 + b.1 + b.2)));
        let (hs, check, sign) = batches[2];
        println!(
            "| {label} | {hs:.0} | {check:.0} | {sign:.0} | {:.0} |",
            hs + check + sign
        );
    }
}
