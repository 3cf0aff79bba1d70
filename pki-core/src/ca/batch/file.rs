//! The batch file: its TOML format, and the checked plan of leaves a run works from.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use serde::Deserialize;

use crate::ca::issuing::LeafPaths;
use crate::error::{BatchLeafProblem, Error, Result};
use crate::keys::algorithm::KeyAlgorithm;
use crate::x509::profile::{LeafRole, Subject, SubjectNames};

/// The batch file: one `[[leaf]]` table per leaf.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchFile {
    /// The leaves, in file order.
    #[serde(rename = "leaf", default)]
    pub leaves: Vec<BatchLeaf>,
}

/// One `[[leaf]]` table of a batch file: a leaf whose key is generated here, written to
/// `<role>.crt` and `<role>.key` in the folder `<cn>` of the output folder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLeaf {
    /// The role: `server`, `peer` or `client`.
    pub profile: String,
    /// The CN, also the name of the leaf's folder (not empty, no `/`, no leading `.`).
    pub cn: String,
    /// DNS subject alternative names.
    #[serde(default)]
    pub dns: Vec<String>,
    /// IP subject alternative names.
    #[serde(default)]
    pub ip: Vec<IpAddr>,
    /// The key algorithm (`p256`, `rsa2048`, ...); the profile's default when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// Lifetime in days; the profile's default when absent.
    #[serde(default)]
    pub days: Option<u32>,
}

/// A checked leaf of the batch.
pub(super) struct Planned {
    pub(super) role: LeafRole,
    pub(super) subject: Subject,
    pub(super) names: SubjectNames,
    pub(super) alg: KeyAlgorithm,
    pub(super) days: Option<u32>,
    pub(super) paths: LeafPaths,
}

impl BatchFile {
    /// Parses the TOML text of a batch file named `what`; unknown fields are refused.
    pub fn parse(what: &str, text: &str) -> Result<Self> {
        toml::from_str(text).map_err(|e| Error::BadToml {
            what: what.into(),
            detail: e.to_string().trim().replace('\n', " "),
        })
    }
}

pub(super) fn plan(file: &BatchFile, out: &Path) -> Result<Vec<Planned>> {
    let mut seen = BTreeSet::new();
    let mut v = Vec::with_capacity(file.leaves.len());
    for (i, l) in file.leaves.iter().enumerate() {
        let at = |problem| Error::BatchLeaf {
            number: i + 1,
            cn: l.cn.clone(),
            problem,
        };
        let invalid = |e: Error| at(BatchLeafProblem::Invalid(Box::new(e)));
        let role: LeafRole = l.profile.parse().map_err(invalid)?;
        if l.cn.is_empty()
            || l.cn.starts_with('.')
            || l.cn.contains('/')
            || l.cn.chars().any(|c| c.is_control())
        {
            return Err(at(BatchLeafProblem::CnNotFolderName));
        }
        if !seen.insert((l.cn.clone(), role)) {
            return Err(at(BatchLeafProblem::Twice));
        }
        let names = SubjectNames {
            dns: l.dns.clone(),
            ips: l.ip.clone(),
        };
        names.validate().map_err(invalid)?;
        let alg = match &l.key {
            Some(k) => k.parse().map_err(invalid)?,
            None => role.profile().default_key(),
        };
        v.push(Planned {
            role,
            subject: Subject::cn(l.cn.clone()),
            names,
            alg,
            days: l.days,
            paths: LeafPaths::new(&out.join(&l.cn), role),
        });
    }
    Ok(v)
}
