//! Certificates and keys into rustls, and the two TLS configurations: the service's (mutual
//! TLS offered, not required: enrolment, CRLs and health need no certificate) and an agent's.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;

use crate::error::{ServiceError, ServiceResult};

fn tls_file(path: &Path, reason: impl std::fmt::Display) -> ServiceError {
    ServiceError::TlsFile {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// Every certificate of a PEM file, in order (a chain file: leaf first).
pub fn load_chain(path: &Path) -> ServiceResult<Vec<CertificateDer<'static>>> {
    let bytes = pki_core::output::read(path)?;
    let chain = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_file(path, e))?;
    if chain.is_empty() {
        return Err(tls_file(path, "holds no PEM certificate"));
    }
    Ok(chain)
}

/// The private key of a PEM file.
pub fn load_key(path: &Path) -> ServiceResult<PrivateKeyDer<'static>> {
    let bytes = zeroize::Zeroizing::new(pki_core::output::read(path)?);
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| tls_file(path, e))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn roots(root: &CertificateDer<'static>) -> ServiceResult<Arc<rustls::RootCertStore>> {
    let mut store = rustls::RootCertStore::empty();
    store
        .add(root.clone())
        .map_err(|e| ServiceError::TlsSetup(format!("root certificate: {e}")))?;
    Ok(Arc::new(store))
}

/// The service's configuration: its chain and key, and client certificates verified against
/// `root` when a client offers one (only renew and confirm require one).
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    root: &CertificateDer<'static>,
) -> ServiceResult<rustls::ServerConfig> {
    let inner = WebPkiClientVerifier::builder_with_provider(roots(root)?, provider())
        .allow_unauthenticated()
        .build()
        .map_err(|e| ServiceError::TlsSetup(e.to_string()))?;
    let verifier = Arc::new(ExpiredToLedger { inner });
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServiceError::TlsSetup(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| ServiceError::TlsSetup(e.to_string()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The client-certificate check of the service: webpki's, except that a certificate whose only
/// fault is having expired passes the handshake (its chain and signatures are verified at an
/// instant inside its validity). The ledger check of every request that needs a certificate
/// then refuses it with `403 expired` and the next step, instead of a bare TLS alert; the
/// anonymous requests gain nothing from it.
#[derive(Debug)]
struct ExpiredToLedger {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for ExpiredToLedger {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self
            .inner
            .verify_client_cert(end_entity, intermediates, now);
        let expired = matches!(
            verdict,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Expired | rustls::CertificateError::ExpiredContext { .. }
            ))
        );
        if !expired {
            return verdict;
        }
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(end_entity) else {
            return verdict;
        };
        let not_after = cert.validity().not_after.timestamp();
        let Some(inside) = u64::try_from(not_after - 1).ok() else {
            return verdict;
        };
        let then = UnixTime::since_unix_epoch(std::time::Duration::from_secs(inside));
        match self
            .inner
            .verify_client_cert(end_entity, intermediates, then)
        {
            Ok(v) => Ok(v),
            Err(_) => verdict,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// An agent's configuration: the service is trusted through `root` only; `identity` (chain and
/// key) is presented when given.
pub fn client_config(
    root: &CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> ServiceResult<rustls::ClientConfig> {
    client_config_pinned(root, identity, None)
}

/// What an agent checks of the intermediate that issued the service's certificate, beyond the
/// chain to the root: an error names why it is not trusted.
pub type IntermediateCheck = dyn Fn(&[u8]) -> Result<(), String> + Send + Sync;

/// [`client_config`], with the intermediate of the service's chain also passed to `pin` (an
/// agent's pins: the generations of its CA folder it has seen, the root CRL).
pub fn client_config_pinned(
    root: &CertificateDer<'static>,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    pin: Option<Arc<IntermediateCheck>>,
) -> ServiceResult<rustls::ClientConfig> {
    let versions = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ServiceError::TlsSetup(e.to_string()))?;
    let builder = match pin {
        None => versions.with_root_certificates(roots(root)?),
        Some(pin) => {
            let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
                roots(root)?,
                provider(),
            )
            .build()
            .map_err(|e| ServiceError::TlsSetup(e.to_string()))?;
            versions
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(PinnedServer { inner, pin }))
        }
    };
    let mut config = match identity {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|e| ServiceError::TlsSetup(e.to_string()))?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks that `chain` (leaf first) chains to `root` for serverAuth now: the service refuses
/// to start with a certificate its own agents would refuse.
pub fn check_service_chain(
    path: &Path,
    chain: &[CertificateDer<'static>],
    root: &CertificateDer<'static>,
) -> ServiceResult<()> {
    let not_ours = |reason: String| ServiceError::ServiceCertNotOurs {
        path: path.to_path_buf(),
        reason,
    };
    let anchor = webpki::anchor_from_trusted_cert(root).map_err(|e| not_ours(e.to_string()))?;
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| not_ours(e.to_string()))?;
    leaf.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &chain[1..],
        UnixTime::now(),
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| not_ours(path_error_words(&e)))
}

/// webpki's path-building error in the words of an operator, with its name.
fn path_error_words(e: &webpki::Error) -> String {
    let words = match e {
        webpki::Error::CaUsedAsEndEntity => "it is a CA certificate, not a server leaf",
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "it lacks serverAuth in its extended key usage (a client leaf?): issue one with `issuer issue server`"
        }
        webpki::Error::UnknownIssuer => {
            "its issuer is not this CA folder's intermediate (or the file lacks the intermediate after the leaf)"
        }
        webpki::Error::CertExpired { .. } => {
            "it has expired"
        }
        webpki::Error::CertNotValidYet { .. } => {
            "it is not valid yet (is this host's clock right?)"
        }
        _ => "",
    };
    let name = format!("{e:?}");
    let name = name.split(['(', ' ', '{']).next().unwrap_or_default();
    match words {
        "" => format!("{e}"),
        w => format!("{w} ({name})"),
    }
}

/// webpki's check of the service's certificate, then the agent's pin on its intermediate.
struct PinnedServer {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pin: Arc<IntermediateCheck>,
}

impl std::fmt::Debug for PinnedServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedServer")
    }
}

impl rustls::client::danger::ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let verified =
            self.inner
                .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        // The chain verified, so its first intermediate issued the service's certificate.
        let int = intermediates.first().ok_or_else(|| {
            rustls::Error::General("the service sent no intermediate with its certificate".into())
        })?;
        (self.pin)(int).map_err(|why| {
            rustls::Error::General(format!("the service's certificate is not trusted: {why}"))
        })?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(
        cn: &str,
        ca: bool,
        eku: rcgen::ExtendedKeyUsagePurpose,
        issuer: Option<&rcgen::Issuer<'_, rcgen::KeyPair>>,
    ) -> (CertificateDer<'static>, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        if ca {
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        } else {
            p.extended_key_usages = vec![eku];
        }
        let c = match issuer {
            Some(i) => p.signed_by(&key, i).unwrap(),
            None => p.self_signed(&key).unwrap(),
        };
        (c.der().clone(), key)
    }

    #[test]
    fn a_wrong_service_certificate_is_refused_in_plain_words() {
        let (root, root_key) = cert("root", true, rcgen::ExtendedKeyUsagePurpose::Any, None);
        let issuer = rcgen::Issuer::from_ca_cert_der(&root, root_key).unwrap();
        let path = Path::new("server.crt");
        let (server, _) = cert(
            "svc",
            false,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            Some(&issuer),
        );
        check_service_chain(path, &[server], &root).unwrap();
        let (client, _) = cert(
            "app",
            false,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
            Some(&issuer),
        );
        let e = check_service_chain(path, &[client], &root)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("lacks serverAuth") && e.contains("issuer issue server"),
            "{e}"
        );
        assert!(!e.contains("KeyPurposeId"), "{e}");
        let e = check_service_chain(path, std::slice::from_ref(&root), &root)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("is a CA certificate, not a server leaf (CaUsedAsEndEntity)"),
            "{e}"
        );
        let (other_root, other_key) =
            cert("other", true, rcgen::ExtendedKeyUsagePurpose::Any, None);
        let other = rcgen::Issuer::from_ca_cert_der(&other_root, other_key).unwrap();
        let (stranger, _) = cert(
            "svc",
            false,
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            Some(&other),
        );
        let e = check_service_chain(path, &[stranger], &root)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not this CA folder's intermediate"), "{e}");
    }
}
