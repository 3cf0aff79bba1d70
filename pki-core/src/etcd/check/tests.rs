use super::rbac::rbac_step;
use super::*;

#[test]
fn rbac_steps_allow_the_compaction_key_and_no_other_single_key() {
    let ok = "$ETCDCTL role grant-permission 'kube' readwrite 'compact_rev_key'";
    assert!(rbac_step(ok));
    for bad in [
        "$ETCDCTL role grant-permission 'kube' readwrite '/registry'",
        "$ETCDCTL role grant-permission 'kube' readwrite ''",
        "$ETCDCTL role grant-permission 'kube' read 'compact_rev_key'",
        "$ETCDCTL role grant-permission kube readwrite 'compact_rev_key'",
    ] {
        assert!(!rbac_step(bad), "{bad}");
    }
    let kube = "$ETCDCTL role grant-permission 'kube' readwrite '/registry/' --prefix=true";
    assert!(rbac_step(kube));
}

#[test]
fn env_files_are_read_as_etcd_loaders_read_them() {
    let injected = "ETCD_NAME=etcd-1\nETCD_DATA_DIR=/var/lib/etcd\nETCD_CLIENT_CERT_AUTH=false\n\
                    ETCD_CLIENT_CERT_AUTH=true\n";
    let e = read_env(injected);
    assert_eq!(e.vars["ETCD_CLIENT_CERT_AUTH"], "true");
    assert!(
        e.problems
            .iter()
            .any(|p| p.starts_with("ETCD_CLIENT_CERT_AUTH is set twice (lines 3 and 4)")),
        "{:?}",
        e.problems
    );
    for (text, needle) in [
        ("ETCD_NAME='x'; touch /tmp/PWNED\n", "has '\\''"),
        ("ETCD_NAME=$(id)\n", "has '$'"),
        ("ETCD_NAME=a b\n", "has ' '"),
        ("export ETCD_NAME=a\n", "not a variable name"),
        (
            "ETCD_CLIENT_CRL_FIEL=/x\n",
            "ETCD_CLIENT_CRL_FIEL is not an etcd",
        ),
        ("garbage\n", "line 1 is not KEY=value"),
    ] {
        let e = read_env(text);
        assert!(
            e.problems.iter().any(|p| p.contains(needle)),
            "{text:?}: {:?}",
            e.problems
        );
    }
    assert!(read_env(
        "# c\nETCD_INITIAL_CLUSTER=a=https://[fd00::1]:2380,b=https://10.0.0.2:2380\n"
    )
    .problems
    .is_empty());
}
