//! TLS material and terminators for the TLS tests: a private CA that signs a
//! server certificate for 127.0.0.1 and a client certificate, a second CA that
//! signs nothing here (what a wrong bundle looks like), and stunnel in front
//! of a plain service.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Certificates and keys in a temporary directory, made with `openssl`.
pub struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A fresh CA, server (IP 127.0.0.1, DNS localhost) and client identity.
    pub fn new() -> Self {
        let pki = Self {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for ca in ["ca", "other-ca"] {
            pki.openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=understudy-test-{ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        std::fs::write(
            pki.dir.path().join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("server.ext");
        std::fs::write(
            pki.dir.path().join("client.ext"),
            "extendedKeyUsage=clientAuth\n",
        )
        .expect("client.ext");
        for (name, subject) in [
            ("server", "/CN=127.0.0.1"),
            ("client", "/CN=understudy-node"),
        ] {
            pki.openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                subject,
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ]);
            pki.openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.pem"),
            ]);
        }
        // ZooKeeper's PEM key store: the key (PKCS#8) and its certificate in one file.
        pki.openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "server.key",
            "-out",
            "server.pk8",
        ]);
        let bundle = [pki.read("server.pk8"), pki.read("server.pem")].concat();
        std::fs::write(pki.dir.path().join("server-keystore.pem"), bundle).expect("keystore");
        pki
    }

    /// The path of `name` (`ca.pem`, `server.key`, …) as a string.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The directory holding every file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name)).expect("pem file")
    }

    fn openssl(&self, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("openssl (scripts/bootstrap installs it)");
        assert!(
            output.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A child process killed when dropped.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// stunnel terminating TLS (the server certificate of `pki`) on
/// 127.0.0.1:`accept` for the plain service at `connect`.
pub fn stunnel(pki: &Pki, accept: u16, connect: &str) -> Killed {
    let config: PathBuf = pki.dir().join(format!("stunnel-{accept}.conf"));
    std::fs::write(
        &config,
        format!(
            "foreground = yes\npid =\n[tls]\naccept = 127.0.0.1:{accept}\nconnect = {connect}\ncert = {}\nkey = {}\n",
            pki.path("server.pem"),
            pki.path("server.key")
        ),
    )
    .expect("stunnel config");
    let child = Command::new("stunnel4")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel4 (scripts/bootstrap installs it)");
    let stunnel = Killed(child);
    wait_listening(accept, "stunnel");
    stunnel
}
