//! Reference servers the tests start as child processes (Python and Node servers from the
//! registries), each in its own process group, killed as a group when dropped.

use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Server {
    pub port: u16,
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the process group this test started.
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `cmd` in its own process group with `dir` as its working directory; ready
    /// when `port` accepts TCP connections (within 60 s, or the test fails with its log).
    pub async fn start(mut cmd: Command, port: u16, dir: tempfile::TempDir, what: &str) -> Server {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = cmd
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        let mut server = Server { port, child, dir };
        for _ in 0..600 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("{what} exited ({status}) before listening:\n{}", server.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{what} did not start within 60 s:\n{}", server.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}
