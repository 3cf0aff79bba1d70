//! `rbac.sh`, which runs as etcd's root user: only the steps `issuer etcd` writes.

use super::*;

/// `rbac.sh` is run as etcd's root user: every line must be one `issuer etcd` writes (its
/// fixed prelude, or an etcdctl step whose words are single-quoted plain values), so an edited
/// or planted script is reported before anyone runs it.
pub(super) fn check_rbac_script(cx: &mut Ctx, path: &Path) {
    let Ok(text) = std::fs::read_to_string(path) else {
        cx.fail("rbac", path, "unreadable");
        return;
    };
    let prelude: BTreeSet<&str> = crate::etcd::RBAC_PRELUDE.lines().collect();
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        let known = l.is_empty()
            || (l.starts_with('#') && (i == 0 || !l.starts_with("#!")))
            || prelude.contains(l)
            || rbac_step(l);
        if !known {
            cx.fail("rbac", path, format!(
                "line {} is not a step `issuer etcd` writes: {:?}; this script runs as etcd's root user, so review the change, or write it again with `issuer etcd`",
                i + 1,
                l
            ));
        }
    }
}

/// One etcdctl step of `rbac.sh`: fixed words and single-quoted plain values in the places
/// the generator puts them.
pub(super) fn rbac_step(line: &str) -> bool {
    let quoted = |w: &str| {
        w.len() > 2
            && w.starts_with('\'')
            && w.ends_with('\'')
            && w[1..w.len() - 1]
                .chars()
                .all(|c| c.is_ascii_graphic() && !"'\"`\\$".contains(c))
    };
    let w: Vec<&str> = line.split(' ').collect();
    match w.as_slice() {
        ["role_add" | "user_add", name] => quoted(name),
        ["$ETCDCTL", "role", "grant-permission", role, "read" | "write" | "readwrite", prefix, "--prefix=true"] => {
            quoted(role) && quoted(prefix)
        }
        // The one single-key grant: the API server's compaction marker (docs/kubernetes.md).
        ["$ETCDCTL", "role", "grant-permission", role, "readwrite", key] => {
            quoted(role) && *key == format!("'{}'", crate::etcd::KUBE_COMPACT_KEY)
        }
        ["$ETCDCTL", "user", "grant-role", user, role] => quoted(user) && quoted(role),
        ["$ETCDCTL", "auth", "enable"] => true,
        _ => false,
    }
}
