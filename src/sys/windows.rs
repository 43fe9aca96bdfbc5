//! What the portable code asks of the system, on Windows: the stand-ins
//! for `fd::describe`, `privs::lookup_user` and `lookup_group`, and
//! `process::program_file` and `is_executable`, under the names the Unix
//! modules give them.
//!
//! Only the config's checks and the exec service call these; everything
//! that forks, signals or drops privileges is Unix and not built here.
//! There is no `unsafe` code in this file: std has all it needs.

/// Error text.
pub mod fd {
    use std::io;

    /// What went wrong, without std's ` (os error N)` suffix or the final
    /// period of Windows' messages, so that it reads as one clause after a
    /// colon, as strerror(3)'s text does on Unix.
    pub fn describe(err: &io::Error) -> String {
        let text = err.to_string();
        let text = match err.raw_os_error() {
            Some(code) => text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text),
            None => &text,
        };
        text.trim_end().trim_end_matches('.').to_string()
    }

    /// As [`describe`]: Windows' codes have no names to give.
    pub fn describe_errno(err: &io::Error) -> String {
        describe(err)
    }
}

/// Accounts: Windows has no Unix users and groups to switch to.
pub mod privs {
    use std::io;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "users and groups need Unix; on Windows every service runs as the user who starts preforkd",
        )
    }

    /// Always an error: there is no account to switch to.
    pub fn lookup_user(_name: &str) -> io::Result<Option<(u32, u32)>> {
        Err(unsupported())
    }

    /// Always an error: there is no group to switch to.
    pub fn lookup_group(_name: &str) -> io::Result<Option<u32>> {
        Err(unsupported())
    }
}

/// Programs.
pub mod process {
    use std::io;
    use std::path::{Path, PathBuf};

    /// The file that runs for `path`: `path.exe` when `path` is not a file
    /// but that is (the name CreateProcess, and std's `Command`, complete),
    /// else `path` itself.
    pub fn program_file(path: &Path) -> PathBuf {
        let mut exe = path.as_os_str().to_owned();
        exe.push(".exe");
        let exe = PathBuf::from(exe);
        if !path.is_file() && exe.is_file() {
            exe
        } else {
            path.to_path_buf()
        }
    }

    /// Whether `path` is a file: Windows has no execute permission bit, and
    /// what a file's extension says is for CreateProcess to judge.
    pub fn is_executable(path: &Path) -> io::Result<()> {
        if path.is_file() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::NotFound, "no such file"))
        }
    }
}
