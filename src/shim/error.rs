//! One error type for the verbs: what went wrong, for which sandbox, and the exit code.

use super::backend::container::EngineError;
use crate::contract::CtlExit;
use std::fmt;
use tracing::error;

#[derive(Debug)]
pub struct CtlError {
    pub exit: CtlExit,
    pub message: String,
}

impl CtlError {
    pub fn new(exit: CtlExit, message: impl Into<String>) -> CtlError {
        CtlError {
            exit,
            message: message.into(),
        }
    }

    /// Prefixes the message with the sandbox it concerns.
    pub fn about(mut self, sandbox: &str) -> CtlError {
        if !self.message.starts_with(&format!("sandbox {sandbox}:")) {
            self.message = format!("sandbox {sandbox}: {}", self.message);
        }
        self
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<EngineError> for CtlError {
    fn from(e: EngineError) -> CtlError {
        CtlError::new(e.exit(), e.to_string())
    }
}

/// Collects the outcome of a verb over several sandboxes: every failure is logged as it
/// happens, the exit code is the first failure's.
#[derive(Debug, Default)]
pub struct Outcome {
    first: Option<CtlExit>,
}

impl Outcome {
    pub fn record<T>(&mut self, r: Result<T, CtlError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                fail(&e);
                self.first.get_or_insert(e.exit);
                None
            }
        }
    }

    pub fn code(&self) -> i32 {
        self.first.unwrap_or(CtlExit::Ok).code()
    }
}

/// The one place errors reach the operator: a log event with a stable name and the code.
pub fn fail(e: &CtlError) {
    error!(
        event = "sandboxctl.error",
        exit = e.exit.name(),
        code = e.exit.code(),
        "{}",
        e.message
    );
}
