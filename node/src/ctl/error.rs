//! How `mxrepctl` fails: one line on stderr, or with `--json` one object on stdout,
//! `{"error": {"code": "…", "message": "…"}}`, and an exit code a script can act on:
//!
//! | exit | code | meaning |
//! |---|---|---|
//! | 1 | `refused`, `invalid_argument`, `failed_precondition`, `not_found`, … | the cluster (or this tool) said no |
//! | 2 | `usage` | the command line is wrong |
//! | 3 | `unavailable` | no node answered |

use serde_json::json;

/// A failure with its code and exit status.
#[derive(Debug)]
pub struct CtlError {
    pub code: String,
    pub exit: i32,
    pub message: String,
}

impl CtlError {
    pub fn usage(message: String) -> Self {
        Self {
            code: "usage".into(),
            exit: 2,
            message,
        }
    }

    pub fn unavailable(message: String) -> Self {
        Self {
            code: "unavailable".into(),
            exit: 3,
            message,
        }
    }

    /// A gRPC status from a node.
    pub fn from_status(s: &tonic::Status, endpoint: &str) -> Self {
        if s.code() == tonic::Code::Unavailable {
            return Self::unavailable(format!(
                "cannot reach mxrep node at {endpoint}: {}",
                s.message()
            ));
        }
        let code = format!("{:?}", s.code());
        let mut snake = String::new();
        for (i, c) in code.chars().enumerate() {
            if c.is_ascii_uppercase() && i > 0 {
                snake.push('_');
            }
            snake.push(c.to_ascii_lowercase());
        }
        Self {
            code: snake,
            exit: 1,
            message: s.message().to_string(),
        }
    }

    /// Any other error of a command.
    pub fn other(e: &anyhow::Error) -> Self {
        Self {
            code: "refused".into(),
            exit: 1,
            message: e.root_cause().to_string(),
        }
    }

    /// Prints the error as asked and exits.
    pub fn exit(&self, json: bool) -> ! {
        if json {
            println!(
                "{}",
                json!({"error": {"code": self.code, "message": self.message}})
            );
        } else {
            eprintln!("error: {}", self.message);
        }
        std::process::exit(self.exit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_exits() {
        let e = CtlError::from_status(
            &tonic::Status::failed_precondition("covers every IPv4 address"),
            "x:1",
        );
        assert_eq!((e.code.as_str(), e.exit), ("failed_precondition", 1));
        let e = CtlError::from_status(&tonic::Status::unavailable("gone"), "x:1");
        assert_eq!((e.code.as_str(), e.exit), ("unavailable", 3));
        assert_eq!(CtlError::usage("bad".into()).exit, 2);
    }
}
