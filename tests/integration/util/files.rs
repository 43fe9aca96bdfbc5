//! Files a test prepares: a temporary directory removed on drop, scripts
//! in it, a config with its own control socket, and copies of the binary
//! or of a script that `nobody` can reach.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::{wait_until, BIN};

/// A fresh directory under the system's temporary directory, removed on
/// drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("preforkd-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes an executable script.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `config` with its own control socket in `dir` (tests run in parallel;
/// the default /run/preforkd.sock would be shared).
pub fn with_control(dir: &TempDir, config: &str) -> String {
    let line = format!(
        "control = \"{}\"\n",
        dir.path().join("control.sock").display()
    );
    match config.find("[daemon]\n") {
        Some(i) => format!("{}[daemon]\n{line}{}", &config[..i], &config[i + 9..]),
        None => format!("[daemon]\n{line}\n{config}"),
    }
}

/// Writes `config` [`with_control`] to `preforkd.toml` in `dir`; its path.
pub fn write_config(dir: &TempDir, config: &str) -> PathBuf {
    let path = dir.path().join("preforkd.toml");
    std::fs::write(&path, with_control(dir, config)).unwrap();
    path
}

/// A script in `dir`, where `nobody` can read it (mode 0644, `dir` made
/// searchable): for an interpreter run as `nobody`.
pub fn script_for_nobody(dir: &TempDir, name: &str, body: &str) -> PathBuf {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    path
}

/// A copy of the binary in `dir` (made world-readable and searchable) that
/// `nobody` can execute whatever the permissions of the checkout. Waits
/// until the copy can be executed: another test thread that forked while
/// the copy was being written holds it open for writing until its own exec
/// (ETXTBSY, "Text file busy").
pub fn binary_for_nobody(dir: &TempDir) -> PathBuf {
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let copy = dir.path().join("preforkd");
    std::fs::copy(BIN, &copy).unwrap();
    let runs = wait_until(Duration::from_secs(5), || {
        Command::new(&copy)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(runs, "the copy {} cannot be executed", copy.display());
    copy
}
