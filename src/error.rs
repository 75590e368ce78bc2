//! The crate's one error type. Every variant says where (host, file, line,
//! variable) and `hint()` says what to do; the binary prints both.

use std::path::PathBuf;

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong, with the place it went wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written locally.
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// YAML that does not parse or does not match the schema.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Yaml { path: PathBuf, line: usize, column: usize, message: String },
    /// A file that parses but says something invalid.
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Invalid { path: PathBuf, line: Option<usize>, message: String },
    /// A template or variable that does not render.
    #[error("host {host}: {}{}: {message}", file.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Render { host: String, file: PathBuf, line: Option<usize>, message: String },
    /// An age-encrypted file that cannot be decrypted or encrypted.
    #[error("{}: {message}", path.display())]
    Secret { path: PathBuf, message: String },
    /// The SSH connection to a host failed.
    #[error("host {host}: {message}")]
    Connect { host: String, message: String, retryable: bool },
    /// A command on a host failed.
    #[error("host {host}: {message}")]
    Remote { host: String, message: String },
    /// The command line asks for something that cannot be done.
    #[error("{0}")]
    Usage(String),
    /// Any error, with advice on what to do about it.
    #[error("{error}")]
    Hinted { error: Box<Error>, hint: String },
}

impl Error {
    /// Attach advice to an error.
    pub fn hinted(self, hint: impl Into<String>) -> Error {
        Error::Hinted { error: Box::new(self), hint: hint.into() }
    }

    /// The advice attached to this error, if any.
    pub fn hint(&self) -> Option<&str> {
        match self {
            Error::Hinted { hint, .. } => Some(hint),
            _ => None,
        }
    }

    /// What kind of error this is, for `--output json`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Io { .. } => "io",
            Error::Yaml { .. } => "yaml",
            Error::Invalid { .. } => "invalid",
            Error::Render { .. } => "render",
            Error::Secret { .. } => "secret",
            Error::Connect { .. } => "connect",
            Error::Remote { .. } => "remote",
            Error::Usage(_) => "usage",
            Error::Hinted { error, .. } => error.kind(),
        }
    }

    /// The host the error concerns, if one.
    pub fn host(&self) -> Option<&str> {
        match self {
            Error::Render { host, .. } | Error::Connect { host, .. } | Error::Remote { host, .. } => Some(host),
            Error::Hinted { error, .. } => error.host(),
            _ => None,
        }
    }

    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }

    /// An invalid-content error without a line.
    pub fn invalid(path: impl Into<PathBuf>, message: impl Into<String>) -> Error {
        Error::Invalid { path: path.into(), line: None, message: message.into() }
    }
}

/// Exit statuses (Terraform's -detailed-exitcode for --check).
pub mod exit {
    /// Success: applied, or in sync.
    pub const OK: u8 = 0;
    /// Error: nothing applied (bad input, every host failed, aborted).
    pub const ERROR: u8 = 1;
    /// --check: changes pending.
    pub const CHANGES: u8 = 2;
    /// Some hosts failed, others were applied.
    pub const PARTIAL: u8 = 3;
    /// The command line does not parse (an unknown flag, a missing argument).
    pub const USAGE: u8 = 64;
    /// Interrupted (SIGINT, SIGTERM, SIGHUP): hosts finished their step and
    /// were released.
    pub const INTERRUPTED: u8 = 130;
}
