//! A verification report's lines: each [`Finding`] and its [`Level`].

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// The check passed.
    Ok,
    /// Worth attention but not a failure (the leaf expires soon, the chain file carries the root).
    Warn,
    /// The check failed: the certificate does not pass.
    Fail,
}

/// One line of a verification report.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Finding {
    /// How bad it is.
    pub level: Level,
    /// The check's short name: `root`, `parse`, `chain`, `profile`, `key` or `expiry`.
    pub check: &'static str,
    /// What was found.
    pub detail: String,
}

impl Finding {
    pub(super) fn new(level: Level, check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            level,
            check,
            detail: detail.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tag = match self.level {
            Level::Ok => "ok  ",
            Level::Warn => "WARN",
            Level::Fail => "FAIL",
        };
        write!(f, "{tag} {:<8} {}", self.check, self.detail)
    }
}

/// True when no finding failed.
pub fn passed(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.level != Level::Fail)
}
