//! What a cluster file may hold: rules across values (unique names, roles that exist, the
//! kube-apiserver client's limits) and each value's content (`values`).

use std::collections::BTreeSet;

use super::cluster::{ClientKind, ClusterFile};
use super::version::EtcdVersion;
use crate::error::{ClusterRule, Error};
use crate::keys::algorithm::KeyAlgorithm;

/// Why a cluster file is refused: a rule across values, or one value's content.
#[derive(Debug)]
pub(super) enum Invalid {
    Rule(ClusterRule),
    Value {
        field: String,
        value: String,
        problem: String,
    },
}

impl Invalid {
    pub(super) fn value(field: &str, value: &str, problem: String) -> Self {
        Invalid::Value {
            field: field.into(),
            value: crate::etcd::values::shown(value),
            problem,
        }
    }

    pub(super) fn into_error(self, file: &str) -> Error {
        match self {
            Invalid::Rule(rule) => Error::ClusterRule {
                file: file.into(),
                rule,
            },
            Invalid::Value {
                field,
                value,
                problem,
            } => Error::ClusterValue {
                file: file.into(),
                field,
                value,
                problem,
            },
        }
    }
}

fn check(
    field: &str,
    value: &str,
    rule: fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<(), Invalid> {
    rule(value).map_err(|p| Invalid::value(field, value, p))
}

fn each(
    field: &str,
    values: &[String],
    rule: fn(&str) -> std::result::Result<(), String>,
) -> std::result::Result<(), Invalid> {
    values.iter().try_for_each(|v| check(field, v, rule))
}

impl ClusterFile {
    pub(super) fn validate(&self) -> std::result::Result<(), Invalid> {
        self.validate_values()?;
        if self.members.is_empty() {
            return Err(Invalid::Rule(ClusterRule::NoMember));
        }
        let mut seen = BTreeSet::new();
        for m in &self.members {
            if !seen.insert(m.name.clone()) {
                return Err(Invalid::Rule(ClusterRule::Repeated {
                    what: "member",
                    name: m.name.clone(),
                }));
            }
            if m.ips.is_empty() {
                return Err(Invalid::Rule(ClusterRule::MemberWithoutIps {
                    member: m.name.clone(),
                }));
            }
        }
        let mut clients = BTreeSet::new();
        for c in &self.clients {
            if !clients.insert(c.name.clone()) {
                return Err(Invalid::Rule(ClusterRule::Repeated {
                    what: "client",
                    name: c.name.clone(),
                }));
            }
            if c.kind == ClientKind::Etcdctl && (c.install_dir.is_some() || !c.endpoints.is_empty())
            {
                return Err(Invalid::Rule(ClusterRule::EtcdctlWithKubeFields {
                    client: c.name.clone(),
                }));
            }
            if c.kind == ClientKind::KubeApiserver {
                if c.name == "root" || c.roles.iter().any(|r| r == "root") {
                    return Err(Invalid::Rule(ClusterRule::KubeClientRoot {
                        client: c.name.clone(),
                    }));
                }
                if self.roles.iter().any(|r| r.name == c.name) {
                    return Err(Invalid::Rule(ClusterRule::KubeRoleTaken {
                        role: c.name.clone(),
                    }));
                }
            }
            for r in &c.roles {
                if r != "root" && !self.roles.iter().any(|x| &x.name == r) {
                    return Err(Invalid::Rule(ClusterRule::UndefinedRole {
                        client: c.name.clone(),
                        role: r.clone(),
                    }));
                }
            }
        }
        if !self.roles.is_empty() && !clients.contains("root") {
            return Err(Invalid::Rule(ClusterRule::RbacWithoutRoot));
        }
        let unique = |names: Vec<&String>, what: &'static str| {
            let mut seen = BTreeSet::new();
            match names.into_iter().find(|n| !seen.insert(*n)) {
                Some(n) => Err(Invalid::Rule(ClusterRule::Repeated {
                    what,
                    name: n.clone(),
                })),
                None => Ok(()),
            }
        };
        unique(self.proxies.iter().map(|p| &p.name).collect(), "proxy")?;
        unique(self.roles.iter().map(|r| &r.name).collect(), "role")?;
        Ok(())
    }

    /// Every value, against what etcd accepts and what a shell or systemd reads literally
    /// (see `etcd_values`): this is what keeps `rbac.sh` and `etcd.env` free of injected code.
    fn validate_values(&self) -> std::result::Result<(), Invalid> {
        use crate::etcd::values as v;
        check("name", &self.name, v::name)?;
        if let Err(p) = EtcdVersion::parse(&self.etcd_version) {
            return Err(Invalid::value("etcd-version", &self.etcd_version, p));
        }
        check("install-dir", &self.install_dir, v::path)?;
        if let Some(d) = &self.client_install_dir {
            check("client-install-dir", d, v::path)?;
        }
        check("data-dir", &self.data_dir, v::path)?;
        if let Some(s) = &self.peer_san {
            check("peer-san", s, v::hostname)?;
        }
        if let Some(s) = &self.service {
            check("service", s, v::url)?;
        }
        if self.service.is_none() && !self.service_fallback.is_empty() {
            let why = "needs `service`: the fallbacks are tried after it".into();
            return Err(Invalid::value("service-fallback", "", why));
        }
        each("service-fallback", &self.service_fallback, v::url)?;
        if let Some(k) = &self.key {
            if k.parse::<KeyAlgorithm>().is_err() {
                let p =
                    "is not a key algorithm; use p256, p384, ed25519, rsa2048, rsa3072 or rsa4096";
                return Err(Invalid::value("key", k, p.into()));
            }
        }
        if self.days == Some(0) {
            return Err(Invalid::value("days", "0", "must be at least 1".into()));
        }
        for (i, m) in self.members.iter().enumerate() {
            let f = |k: &str| format!("member[{}].{k}", i + 1);
            check(&f("name"), &m.name, v::name)?;
            each(&f("dns"), &m.dns, v::hostname)?;
            each(&f("client-urls"), &m.client_urls, v::url)?;
            each(&f("peer-urls"), &m.peer_urls, v::url)?;
            if let Some(u) = &m.agent_user {
                check(&f("agent-user"), u, v::name)?;
            }
        }
        for (i, c) in self.clients.iter().enumerate() {
            let f = |k: &str| format!("client[{}].{k}", i + 1);
            check(&f("name"), &c.name, v::name)?;
            each(&f("roles"), &c.roles, v::name)?;
            if let Some(d) = &c.install_dir {
                check(&f("install-dir"), d, v::path)?;
            }
            each(&f("endpoints"), &c.endpoints, v::url)?;
            if let Some(u) = &c.agent_user {
                check(&f("agent-user"), u, v::name)?;
            }
        }
        for (i, p) in self.proxies.iter().enumerate() {
            check(&format!("proxy[{}].name", i + 1), &p.name, v::name)?;
            each(&format!("proxy[{}].dns", i + 1), &p.dns, v::hostname)?;
        }
        for (i, r) in self.roles.iter().enumerate() {
            let f = |k: &str| format!("role[{}].{k}", i + 1);
            check(&f("name"), &r.name, v::name)?;
            if r.name == "root" {
                let p = "is etcd's built-in role; give clients `roles = [\"root\"]` instead of defining it";
                return Err(Invalid::value(&f("name"), &r.name, p.into()));
            }
            each(&f("read"), &r.read, v::key_prefix)?;
            each(&f("write"), &r.write, v::key_prefix)?;
            each(&f("readwrite"), &r.readwrite, v::key_prefix)?;
        }
        Ok(())
    }
}
