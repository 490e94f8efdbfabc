//! TLS: with `server.tls_cert_file` and `server.tls_key_file` every listener serves HTTPS (with
//! a self-signed certificate rcgen makes for 127.0.0.1 at test time), plain HTTP on that port
//! gets no HTTP answer, and bad files refuse start-up naming the file and the problem.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value as Json};

use super::common::{repo_root, ServerBuilder, ADMIN_KEY};
use super::ingest::quiver_load_command;
use super::registry::broken_config;

/// A certificate for 127.0.0.1 and localhost, its key, and a key of another pair, as PEM files.
struct TestCertificate {
    dir: tempfile::TempDir,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl TestCertificate {
    fn new() -> TestCertificate {
        let rcgen::CertifiedKey { cert, key_pair } =
            rcgen::generate_simple_self_signed(["127.0.0.1".to_string(), "localhost".to_string()])
                .expect("rcgen makes a certificate");
        let other_key = rcgen::KeyPair::generate().expect("rcgen makes a key");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.path().join("key.pem"), key_pair.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("other-key.pem"), other_key.serialize_pem()).unwrap();
        TestCertificate {
            dir,
            der: cert.der().clone(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client that trusts this certificate and nothing else.
    fn client(&self) -> ureq::Agent {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        ureq::AgentBuilder::new()
            .tls_config(Arc::new(config))
            .timeout(Duration::from_secs(30))
            .build()
    }
}

/// A server with `cert` and `key` (files in the certificate's directory) as its TLS settings.
fn with_tls(certificate: &TestCertificate, cert: &str, key: &str) -> ServerBuilder {
    ServerBuilder::new()
        .arg("--tls-cert-file")
        .arg(certificate.path(cert).to_str().unwrap())
        .arg("--tls-key-file")
        .arg(certificate.path(key).to_str().unwrap())
}

/// Status and JSON body of a request, whatever the status.
fn answer(result: Result<ureq::Response, ureq::Error>) -> (u16, Json) {
    let response = match result {
        Ok(response) => response,
        Err(ureq::Error::Status(_, response)) => response,
        Err(error) => panic!("the HTTPS request failed: {error}"),
    };
    (
        response.status(),
        response.into_json().expect("a JSON body"),
    )
}

#[test]
fn every_listener_serves_https_and_plain_http_gets_no_answer() {
    let certificate = TestCertificate::new();
    let server = with_tls(&certificate, "cert.pem", "key.pem")
        .arg("--metrics-address")
        .arg("127.0.0.1:0")
        .start();
    assert!(
        server.base_url.starts_with("https://"),
        "{}",
        server.base_url
    );
    let client = certificate.client();

    let (status, body) = answer(client.get(&server.url("/healthz")).call());
    assert_eq!((status, body), (200, json!({"status": "alive"})));

    let get_features = json!({"params": {
        "workspaceName": "prod",
        "featureServiceName": "user_risk_service",
        "joinKeyMap": {"user_id": "user_1001", "merchant": "fraud_Kirlin and Sons"},
    }});
    let url = server.url("/api/v1/feature-service/get-features");
    let (status, body) = answer(
        client
            .post(&url)
            .set("Authorization", &format!("Tecton-key {ADMIN_KEY}"))
            .send_json(&get_features),
    );
    assert_eq!(status, 200, "{body}");
    assert!(body["result"]["features"].is_array(), "{body}");
    let (status, _) = answer(client.post(&url).send_json(&get_features));
    assert_eq!(status, 401, "the key is still checked over TLS");

    let metrics_url = server
        .printed
        .iter()
        .find_map(|line| line.strip_prefix("quiver metrics on "))
        .expect("the metrics address is printed");
    assert!(metrics_url.starts_with("https://"), "{metrics_url}");
    let metrics = client.get(metrics_url).call().expect("metrics over HTTPS");
    assert_eq!(metrics.status(), 200);

    // A plain HTTP request to the TLS port: the handshake fails, no HTTP answer comes back.
    let address = server.base_url.trim_start_matches("https://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = Vec::new();
    // Closed with a TLS alert, or reset: either way no HTTP status line.
    let _ = stream.read_to_end(&mut reply);
    assert!(
        !reply.starts_with(b"HTTP/"),
        "plain HTTP was answered: {}",
        String::from_utf8_lossy(&reply)
    );
}

#[test]
fn quiver_load_sends_over_https_trusting_the_certificate_ssl_cert_file_names() {
    let certificate = TestCertificate::new();
    // This time the settings come from the file: config.toml's commented example, uncommented,
    // its paths relative to the file.
    let config = broken_config(
        "config.toml",
        "# tls_cert_file = \"tls/cert.pem\"\n# tls_key_file = \"tls/key.pem\"",
        "tls_cert_file = \"tls/cert.pem\"\ntls_key_file = \"tls/key.pem\"",
    );
    std::fs::create_dir(config.path().join("tls")).unwrap();
    for file in ["cert.pem", "key.pem"] {
        std::fs::copy(certificate.path(file), config.path().join("tls").join(file)).unwrap();
    }
    let server = ServerBuilder::new()
        .config(config.path().join("config.toml"))
        .start();
    assert!(
        server.base_url.starts_with("https://"),
        "{}",
        server.base_url
    );
    let rows = certificate.path("users.csv");
    std::fs::write(
        &rows,
        "user_id,timestamp,credit_score,is_verified,preferred_categories\n\
         tls_1,2026-02-01T00:00:00Z,640,true,[]\n",
    )
    .unwrap();
    let load = |trusted: Option<PathBuf>| {
        let mut command = quiver_load_command(&server.base_url, &rows);
        command
            .env_remove("SSL_CERT_DIR")
            .env_remove("SSL_CERT_FILE");
        if let Some(trusted) = trusted {
            command.env("SSL_CERT_FILE", trusted);
        }
        command.output().expect("quiver load runs")
    };

    // The system's roots do not know the test's certificate: refused, nothing sent.
    let untrusted = load(None);
    assert!(!untrusted.status.success());
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert!(stderr.contains("could not reach"), "{stderr}");

    let trusted = load(Some(certificate.path("cert.pem")));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
}

/// Runs a server that must refuse to start; answers what it said.
fn refusal(server: ServerBuilder) -> String {
    let output = server.env("RUST_BACKTRACE", "0").run_to_exit();
    assert!(
        !output.status.success(),
        "the server should refuse to start"
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_certificate_or_key_files_refuse_start_up_naming_the_file() {
    let certificate = TestCertificate::new();
    let named = |name: &str| certificate.path(name).display().to_string();

    let mismatch = format!(
        "{}: the private key does not match the certificate in {}",
        named("other-key.pem"),
        named("cert.pem")
    );
    let stderr = refusal(with_tls(&certificate, "cert.pem", "other-key.pem"));
    assert!(stderr.contains(&mismatch), "{stderr}");
    // `quiver config check` reads the files too.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["config", "check", "--config"])
        .arg(repo_root().join("config.toml"))
        .arg("--tls-cert-file")
        .arg(certificate.path("cert.pem"))
        .arg("--tls-key-file")
        .arg(certificate.path("other-key.pem"))
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("quiver config check runs");
    assert!(!check.status.success());
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert!(stderr.contains(&mismatch), "{stderr}");

    let stderr = refusal(with_tls(&certificate, "missing.pem", "key.pem"));
    assert!(stderr.contains(&named("missing.pem")), "{stderr}");
    assert!(
        stderr.contains("cannot read the TLS certificate"),
        "{stderr}"
    );

    // The key where the certificate should be, and the other way round.
    let stderr = refusal(with_tls(&certificate, "key.pem", "key.pem"));
    assert!(
        stderr.contains(&format!("{}: not a PEM certificate", named("key.pem"))),
        "{stderr}"
    );
    let stderr = refusal(with_tls(&certificate, "cert.pem", "cert.pem"));
    assert!(
        stderr.contains(&format!("{}: not a PEM private key", named("cert.pem"))),
        "{stderr}"
    );

    // One without the other.
    let stderr = refusal(ServerBuilder::new().env(
        "QUIVER_TLS_CERT_FILE",
        certificate.path("cert.pem").to_str().unwrap(),
    ));
    assert!(
        stderr.contains("QUIVER_TLS_CERT_FILE: server.tls_cert_file"),
        "{stderr}"
    );
    assert!(
        stderr.contains("without server.tls_key_file: give both or neither"),
        "{stderr}"
    );
}
