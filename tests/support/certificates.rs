//! Test certificates, shared by the backend's and the LSP's HTTPS tests (included with
//! `#[path]`), made in-process with `rcgen`: `cargo test` needs no `openssl` on the host. The
//! README's own `openssl` recipe for a team certificate is run by `test.sh`.
#![allow(dead_code)] // each test file uses some of these

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA and a server certificate for 127.0.0.1/localhost signed by it, written to `dir` (the
/// server's also in DER, as `server.der`: a certificate, but not PEM). Returns (ca.pem,
/// server.pem, server.key).
pub fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    ca.distinguished_name = name("ghostline test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca.self_signed(&ca_key).expect("CA certificate");

    let server_key = KeyPair::generate().expect("server key");
    let mut server = CertificateParams::new(["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server parameters");
    server.distinguished_name = name("localhost");
    server.is_ca = IsCa::ExplicitNoCa;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server = server
        .signed_by(&server_key, &ca, &ca_key)
        .expect("server certificate");

    let write = |file: &str, text: String| {
        let path = dir.join(file);
        std::fs::write(&path, text).unwrap();
        path
    };
    std::fs::write(dir.join("server.der"), server.der().as_ref()).unwrap();
    (
        write("ca.pem", ca.pem()),
        write("server.pem", server.pem()),
        write("server.key", server_key.serialize_pem()),
    )
}

/// A certificate like the README's team certificate (`openssl req -x509 ... -subj /CN=gpu-box
/// -addext subjectAltName=...`): self-signed, marked a CA as OpenSSL marks it, for `names`
/// (IP addresses and DNS names), valid from one (year, month, day) until another when given
/// (else for years). Written as `ghostline.pem` and `ghostline.key` in `dir`, as the README
/// names them; returns both.
pub fn make_team_certificate(
    dir: &Path,
    names: &[&str],
    valid: Option<(Day, Day)>,
) -> (PathBuf, PathBuf) {
    let key = KeyPair::generate().expect("key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("parameters");
    params.distinguished_name = name("gpu-box");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    if let Some(((y0, m0, d0), (y1, m1, d1))) = valid {
        params.not_before = rcgen::date_time_ymd(y0, m0, d0);
        params.not_after = rcgen::date_time_ymd(y1, m1, d1);
    }
    let certificate = params.self_signed(&key).expect("certificate");
    let (pem, key_file) = (dir.join("ghostline.pem"), dir.join("ghostline.key"));
    std::fs::write(&pem, certificate.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (pem, key_file)
}

/// A day, as (year, month, day).
pub type Day = (i32, u8, u8);

fn name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, common_name);
    name
}
