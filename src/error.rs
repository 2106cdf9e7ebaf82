//! The one error type of the library, and how it maps to the command line's exit codes.

/// Everything that can go wrong, split by whose fault it is: bad input exits 2, the rest 1.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The input (a file, a key, a flag) is not allowed; the message names it and what is allowed.
    #[error("{0}")]
    Input(String),
    /// The input is allowed but the simulation cannot proceed (e.g. a deadlocked route program).
    #[error("{0}")]
    Simulation(String),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error: 2 for bad input, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Input(_) => 2,
            Error::Simulation(_) | Error::Io { .. } => 1,
        }
    }

    pub(crate) fn input(message: impl Into<String>) -> Self {
        Error::Input(message.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
