//! A throwaway PKI for TLS tests, made at run time: a CA, a server
//! certificate for `localhost` and `127.0.0.1`, a client certificate that
//! CA signed, and a client certificate from a second, unknown CA. Every
//! PEM is written to a temporary directory, as the services read them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

pub struct TestPki {
    dir: tempfile::TempDir,
}

/// A certificate's and its key's files.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestPki {
    pub fn generate() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let ca = new_ca("test CA");
        write(dir.path(), "ca.pem", &ca.0);
        let server = leaf(&ca.1, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        write(dir.path(), "server.pem", &server.0);
        write(dir.path(), "server.key", &server.1);
        let client = leaf(&ca.1, "test-client", ExtendedKeyUsagePurpose::ClientAuth);
        write(dir.path(), "client.pem", &client.0);
        write(dir.path(), "client.key", &client.1);
        let rogue_ca = new_ca("unknown CA");
        let rogue = leaf(
            &rogue_ca.1,
            "rogue-client",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        write(dir.path(), "rogue.pem", &rogue.0);
        write(dir.path(), "rogue.key", &rogue.1);
        Self { dir }
    }

    /// The CA that signed the server's and the client's certificates.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    pub fn server(&self) -> Pair {
        self.pair("server")
    }

    /// A client certificate the CA signed.
    pub fn client(&self) -> Pair {
        self.pair("client")
    }

    /// A client certificate signed by a CA nobody trusts.
    pub fn rogue_client(&self) -> Pair {
        self.pair("rogue")
    }

    fn pair(&self, name: &str) -> Pair {
        Pair {
            cert: self.dir.path().join(format!("{name}.pem")),
            key: self.dir.path().join(format!("{name}.key")),
        }
    }
}

fn write(dir: &Path, name: &str, pem: &str) {
    std::fs::write(dir.join(name), pem).expect("PEM written");
}

fn new_ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("no names");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), Issuer::new(params, key))
}

/// A certificate for `name` (and 127.0.0.1) and its key, signed by `issuer`.
fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    name: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params =
        CertificateParams::new(vec![name.to_owned(), "127.0.0.1".to_owned()]).expect("names");
    params.distinguished_name.push(DnType::CommonName, name);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}
