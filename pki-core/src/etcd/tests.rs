use std::net::IpAddr;

use super::*;

const CLUSTER: &str = r#"
name = "demo"
[[member]]
name = "etcd-1"
ips = ["10.0.0.1"]
dns = ["etcd-1.example"]
[[member]]
name = "etcd-2"
ips = ["10.0.0.2"]
client-urls = ["https://etcd-2.example:2379"]
[[client]]
name = "root"
[[client]]
name = "app-user"
roles = ["app-rw"]
[[role]]
name = "app-rw"
readwrite = ["/app/"]
"#;

#[test]
fn names_env_and_rbac() {
    let c: ClusterFile = toml::from_str(CLUSTER).unwrap();
    c.validate().unwrap();
    let m2 = &c.members[1];
    let s = c.server_names(m2);
    assert!(s.dns.contains(&"etcd-2.example".to_string()) && s.dns.contains(&"etcd-2".to_string()));
    let p = c.peer_names(&c.members[0]);
    assert!(p.dns.contains(&"peers.demo.etcd".to_string()));
    assert_eq!(p.ips, vec!["10.0.0.1".parse::<IpAddr>().unwrap()]);
    let env2 = c.member_env(&c.members[1], false);
    assert!(
        env2.contains("ETCD_LISTEN_CLIENT_URLS=https://10.0.0.2:2379\n"),
        "{env2}"
    );
    assert!(env2.contains("ETCD_ADVERTISE_CLIENT_URLS=https://etcd-2.example:2379\n"));
    let env = c.member_env(&c.members[0], false);
    assert!(env.contains(
        "ETCD_INITIAL_CLUSTER=etcd-1=https://10.0.0.1:2380,etcd-2=https://10.0.0.2:2380\n"
    ));
    assert!(env.contains("ETCD_PEER_CERT_ALLOWED_HOSTNAME=peers.demo.etcd\n"));
    assert!(env.contains("ETCD_CLIENT_CRL_FILE=/etc/etcd/pki/crl.der\n"));
    assert!(env.contains("ETCD_PEER_CRL_FILE=/etc/etcd/pki/crl.der\n"));
    assert!(!env.contains("ETCD_PEER_CERT_ALLOWED_CN"));
    let rbac = c.rbac_script();
    let root_add = rbac.find("user_add 'root'").unwrap();
    assert!(root_add < rbac.find("user_add 'app-user'").unwrap());
    assert!(rbac.contains("role grant-permission 'app-rw' readwrite '/app/' --prefix=true"));
    assert!(rbac.trim_end().ends_with("auth enable"));
}

fn refused(text: &str) -> String {
    ClusterFile::parse("cluster.toml", text)
        .map(|_| ())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_top_level_key_appended_after_the_tables_is_refused_on_one_line_with_a_hint() {
    let e = refused(&format!("{CLUSTER}service = \"https://10.0.0.9:8443\"\n"));
    assert!(!e.contains('\n'), "{e}");
    assert!(e.contains("unknown field `service`"), "{e}");
    assert!(e.contains("must come before the first [[member]]"), "{e}");
    assert!(e.contains("line 19, column 1: 19 | service"), "{e}");
}

#[test]
fn bad_cluster_files_are_refused() {
    let no_ip = CLUSTER.replace("ips = [\"10.0.0.2\"]", "ips = []");
    assert!(refused(&no_ip).contains("IP addresses"));
    let no_root = CLUSTER.replace("name = \"root\"", "name = \"admin\"");
    assert!(refused(&no_root).contains("root"));
    assert!(
        toml::from_str::<ClusterFile>(&format!("{CLUSTER}\ncolour = 1")).is_err()
            || toml::from_str::<ClusterFile>(
                &CLUSTER.replace("name = \"demo\"", "name = \"demo\"\ncolour = 1")
            )
            .is_err()
    );
}

#[test]
fn injected_values_are_refused_naming_field_and_problem() {
    let role = CLUSTER.replace("\"app-rw\"", "\"x'; touch PWNED; echo '\"");
    assert_eq!(
        refused(&role),
        "cluster.toml: client[2].roles = \"x'; touch PWNED; echo '\" contains a quote ('); \
         use letters, digits, '-', '_' or '.'; correct the cluster file and run again"
    );
    let data = CLUSTER.replace(
        "name = \"demo\"",
        "name = \"demo\"\ndata-dir = \"/var/lib/etcd\\nETCD_CLIENT_CERT_AUTH=false\"",
    );
    let e = refused(&data);
    assert!(
        e.contains("data-dir = \"/var/lib/etcd\\nETCD_CLIENT_CERT_AUTH=false\" contains a newline"),
        "{e}"
    );
    let cases = [
        ("\"/app/\"", "\"/app/'\"", "role[1].readwrite"),
        (
            "\"etcd-1.example\"",
            "\"etcd-1.example evil\"",
            "member[1].dns",
        ),
        (
            "\"https://etcd-2.example:2379\"",
            "\"https://etcd-2.example:2379\\nETCD_X=1\"",
            "member[2].client-urls",
        ),
        ("name = \"etcd-1\"", "name = \"etcd 1\"", "member[1].name"),
    ];
    for (from, to, field) in cases {
        let e = refused(&CLUSTER.replace(from, to));
        assert!(e.starts_with(&format!("cluster.toml: {field} = ")), "{e}");
    }
}

#[test]
fn rbac_script_quotes_and_checks_before_adding() {
    let c = ClusterFile::parse("c", CLUSTER).unwrap();
    let rbac = c.rbac_script();
    assert!(rbac.contains(RBAC_PRELUDE));
    assert!(rbac.contains("role_add 'app-rw'\n"));
    let body = rbac.split(RBAC_PRELUDE).nth(1).unwrap();
    assert!(!body.contains("$ETCDCTL role add") && !body.contains("$ETCDCTL user add"));
}

#[test]
fn etcd_versions_short_and_full() {
    for (text, lists, der_only) in [
        ("3.4", false, false),
        ("3.5", false, false),
        ("3.5.1", false, false),
        ("3.5.14", false, false),
        ("3.5.15", true, false),
        ("3.6", true, true),
        ("3.6.5", true, true),
    ] {
        let v = EtcdVersion::parse(text).unwrap();
        assert_eq!(v.to_string(), text);
        assert_eq!(v.peer_lists(), lists, "{text}");
        assert_eq!(v.crl_der_only(), der_only, "{text}");
    }
    assert_eq!(
        EtcdVersion::parse("3.5.31").unwrap().grpc_crl_fixed(),
        Some(false)
    );
    assert_eq!(
        EtcdVersion::parse("3.5.32").unwrap().grpc_crl_fixed(),
        Some(true)
    );
    assert_eq!(
        EtcdVersion::parse("3.6.12").unwrap().grpc_crl_fixed(),
        Some(false)
    );
    assert_eq!(
        EtcdVersion::parse("3.6.13").unwrap().grpc_crl_fixed(),
        Some(true)
    );
    assert_eq!(EtcdVersion::parse("3.6").unwrap().grpc_crl_fixed(), None);
    for bad in [
        "3",
        "3.3",
        "3.7",
        "4.0",
        "3.5.",
        "3.5.x",
        "v3.5.1",
        "3.5.1.2",
        " 3.5",
        "3.5.1-rc1",
    ] {
        assert!(EtcdVersion::parse(bad).is_err(), "{bad}");
    }
    let e = refused(&CLUSTER.replace("name = \"demo\"", "name = \"demo\"\netcd-version = \"3.7\""));
    assert!(
        e.contains("etcd-version = \"3.7\" is not a supported etcd version"),
        "{e}"
    );
    let c = ClusterFile::parse(
        "c",
        &CLUSTER.replace(
            "name = \"demo\"",
            "name = \"demo\"\netcd-version = \"3.5.15\"",
        ),
    )
    .unwrap();
    let env = c.member_env(&c.members[0], false);
    assert!(
        env.starts_with("# etcd 3.5.15 configuration for member etcd-1"),
        "{env}"
    );
    assert!(env.contains("also accepts a comma-separated list"), "{env}");
    assert_eq!(
        crate::etcd::check::env_version(&env),
        EtcdVersion::parse("3.5.15").ok()
    );
}

const KUBE: &str = r#"
[[client]]
name = "kube-apiserver-etcd-client"
kind = "kube-apiserver"
endpoints = ["https://etcd.lb.example:2379", "https://10.0.0.1:2379"]
"#;

#[test]
fn kube_apiserver_client_files_snippet_role_and_sans() {
    let c = ClusterFile::parse("c", &format!("{CLUSTER}{KUBE}")).unwrap();
    let k = c
        .clients
        .iter()
        .find(|c| c.kind == ClientKind::KubeApiserver)
        .unwrap();
    assert_eq!(
        (k.kind.cert_file(), k.kind.key_file(), k.kind.ca_file()),
        (
            "apiserver-etcd-client.crt",
            "apiserver-etcd-client.key",
            "etcd/ca.crt"
        )
    );
    // The load balancer is in every member's server certificate; 10.0.0.1 is etcd-1's own.
    assert_eq!(
        c.shared_endpoints(),
        vec!["https://etcd.lb.example:2379".to_string()]
    );
    for m in &c.members {
        assert!(
            c.server_names(m)
                .dns
                .contains(&"etcd.lb.example".to_string()),
            "{}",
            m.name
        );
        assert!(!c.peer_names(m).dns.contains(&"etcd.lb.example".to_string()));
    }
    assert!(!c
        .server_names(&c.members[1])
        .ips
        .contains(&"10.0.0.1".parse().unwrap()));
    let y = c.kubeadm_snippet(k);
    assert!(y.contains("kind: ClusterConfiguration\netcd:\n  external:\n    endpoints:\n      - \"https://etcd.lb.example:2379\"\n      - \"https://10.0.0.1:2379\"\n"), "{y}");
    assert!(y.ends_with(
        "    caFile: \"/etc/kubernetes/pki/etcd/ca.crt\"\n    certFile: \"/etc/kubernetes/pki/apiserver-etcd-client.crt\"\n    keyFile: \"/etc/kubernetes/pki/apiserver-etcd-client.key\"\n"
    ), "{y}");
    let rbac = c.rbac_script();
    for line in [
        "role_add 'kube-apiserver-etcd-client'\n",
        "$ETCDCTL role grant-permission 'kube-apiserver-etcd-client' readwrite '/registry/' --prefix=true\n",
        "$ETCDCTL role grant-permission 'kube-apiserver-etcd-client' readwrite 'compact_rev_key'\n",
        "user_add 'kube-apiserver-etcd-client'\n$ETCDCTL user grant-role 'kube-apiserver-etcd-client' 'kube-apiserver-etcd-client'\n",
    ] {
        assert!(rbac.contains(line), "{line}\n{rbac}");
    }
    assert!(rbac.find("auth enable").unwrap() > rbac.find("grant-role 'kube-apiserver").unwrap());
    // Without endpoints: every member's client URL, and no extra SAN.
    let plain = ClusterFile::parse(
        "c",
        &format!(
            "{CLUSTER}{}",
            KUBE.replace(
                "endpoints = [\"https://etcd.lb.example:2379\", \"https://10.0.0.1:2379\"]",
                "install-dir = \"/srv/k8s/pki\""
            )
        ),
    )
    .unwrap();
    assert!(plain.shared_endpoints().is_empty());
    let k = plain
        .clients
        .iter()
        .find(|c| c.kind == ClientKind::KubeApiserver)
        .unwrap();
    let y = plain.kubeadm_snippet(k);
    assert!(
        y.contains("      - \"https://10.0.0.1:2379\"\n      - \"https://etcd-2.example:2379\"\n"),
        "{y}"
    );
    assert!(
        y.contains("keyFile: \"/srv/k8s/pki/apiserver-etcd-client.key\""),
        "{y}"
    );
    // `{name}` in install-dir is the client's name, as in client-install-dir.
    let named = ClusterFile::parse(
        "c",
        &format!("{CLUSTER}{KUBE}").replace(
            "endpoints = [\"https://etcd.lb.example:2379\", \"https://10.0.0.1:2379\"]",
            "install-dir = \"/srv/{name}/pki\"",
        ),
    )
    .unwrap();
    let k = named
        .clients
        .iter()
        .find(|c| c.kind == ClientKind::KubeApiserver)
        .unwrap();
    let y = named.kubeadm_snippet(k);
    assert!(
        y.contains("caFile: \"/srv/kube-apiserver-etcd-client/pki/etcd/ca.crt\""),
        "{y}"
    );
}

#[test]
fn kube_apiserver_client_mistakes_are_refused() {
    let with = |extra: &str| refused(&format!("{CLUSTER}{extra}"));
    let e = with("[[client]]\nname = \"k\"\nkind = \"kube-apiserver\"\nroles = [\"root\"]\n");
    assert!(e.contains("never etcd's root"), "{e}");
    let e = with("[[client]]\nname = \"app-rw\"\nkind = \"kube-apiserver\"\n");
    assert!(e.contains("role name 'app-rw' is taken"), "{e}");
    let e = with("[[client]]\nname = \"x\"\nendpoints = [\"https://a.example:2379\"]\n");
    assert!(e.contains("for kind = \"kube-apiserver\" only"), "{e}");
    let e = with("[[client]]\nname = \"k\"\nkind = \"kube-apiserver\"\nendpoints = [\"http://a.example:2379\"]\n");
    assert!(
        e.contains("client[3].endpoints = \"http://a.example:2379\" must start with https://"),
        "{e}"
    );
    let e = with(
        "[[client]]\nname = \"k\"\nkind = \"kube-apiserver\"\ninstall-dir = \"/etc/k\\\"x\"\n",
    );
    assert!(e.contains("client[3].install-dir"), "{e}");
    let e = with("[[client]]\nname = \"k\"\nkind = \"kubelet\"\n");
    assert!(e.contains("unknown variant `kubelet`"), "{e}");
}
