//! The air-gap guard: the root key's machine must have no network. We ask the kernel, twice and
//! by two unrelated paths, rather than trusting a checklist: the sysfs listing
//! (/sys/class/net/*/flags) and a netlink RTM_GETLINK dump. A view that cannot be read, or two
//! views that do not list the same interfaces (a masked or stale /sys), refuse: the guard fails
//! closed, and `allow-network = true` in the ceremony file is the only way past it.

use std::fs;

use crate::error::{Result, RootError};

const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;

/// One network interface as a view reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: String,
    pub flags: u32,
}

impl Iface {
    fn is_up_non_loopback(&self) -> bool {
        self.flags & IFF_UP != 0 && self.flags & IFF_LOOPBACK == 0
    }
}

/// What one source says: its interfaces, or why it could not be read.
#[derive(Debug, Clone)]
pub struct View {
    pub source: &'static str,
    pub interfaces: std::result::Result<Vec<Iface>, String>,
}

/// Both views of this machine.
pub fn views() -> Vec<View> {
    vec![
        View {
            source: "/sys/class/net",
            interfaces: sysfs_view(),
        },
        View {
            source: "netlink (RTM_GETLINK)",
            interfaces: netlink::view(),
        },
    ]
}

fn sysfs_view() -> std::result::Result<Vec<Iface>, String> {
    let entries = fs::read_dir("/sys/class/net").map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| e.to_string())?;
        // Interfaces are links to folders; plain files such as bonding_masters are not.
        if !e.path().is_dir() {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path().join("flags");
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let flags = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16)
            .map_err(|_| format!("{}: not a hexadecimal flag word", path.display()))?;
        out.push(Iface { name, flags });
    }
    Ok(out)
}

/// The decision, over any views: every view must be readable, must list at least the loopback
/// interface, and must list the same names as the others; then no non-loopback interface may be
/// up in any of them.
pub fn decide(views: &[View]) -> Result<()> {
    let mut names: Option<(&str, Vec<&str>)> = None;
    for v in views {
        let list = v
            .interfaces
            .as_ref()
            .map_err(|reason| RootError::NetworkUnknown {
                reason: format!("cannot read {}: {reason}", v.source),
            })?;
        if !list.iter().any(|i| i.flags & IFF_LOOPBACK != 0) {
            return Err(RootError::NetworkUnknown {
                reason: format!(
                    "{} lists no loopback interface, so it does not show this machine's interfaces (masked?)",
                    v.source
                ),
            });
        }
        let mut these: Vec<&str> = list.iter().map(|i| i.name.as_str()).collect();
        these.sort_unstable();
        match &names {
            None => names = Some((v.source, these)),
            Some((first, seen)) if *seen != these => {
                return Err(RootError::NetworkUnknown {
                    reason: format!(
                        "{first} lists [{}] but {} lists [{}]",
                        seen.join(", "),
                        v.source,
                        these.join(", ")
                    ),
                })
            }
            Some(_) => {}
        }
    }
    let mut up: Vec<&str> = views
        .iter()
        .filter_map(|v| v.interfaces.as_ref().ok())
        .flatten()
        .filter(|i| i.is_up_non_loopback())
        .map(|i| i.name.as_str())
        .collect();
    up.sort_unstable();
    match up.first() {
        Some(iface) => Err(RootError::NetworkUp {
            iface: iface.to_string(),
        }),
        None => Ok(()),
    }
}

/// Refuses to go on while a network interface is up, or while that cannot be known, unless the
/// ceremony allows it.
pub fn check(allow_network: bool) -> Result<()> {
    if allow_network {
        return Ok(());
    }
    decide(&views())
}

/// A netlink route socket's dump of every link: an interface list that does not depend on sysfs.
mod netlink {
    use super::Iface;
    use rustix::net::{self, netlink::SocketAddrNetlink, AddressFamily, SocketFlags, SocketType};

    // Stable Linux UAPI values (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h).
    const NLMSG_ERROR: u16 = 2;
    const NLMSG_DONE: u16 = 3;
    const RTM_NEWLINK: u16 = 16;
    const RTM_GETLINK: u16 = 18;
    const NLM_F_REQUEST: u16 = 0x1;
    const NLM_F_DUMP: u16 = 0x300;
    const IFLA_IFNAME: u16 = 3;
    const NLMSG_HDRLEN: usize = 16;
    const IFINFOMSG_LEN: usize = 16;

    pub fn view() -> Result<Vec<Iface>, String> {
        let fd = net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None, // NETLINK_ROUTE
        )
        .map_err(|e| format!("netlink socket: {e}"))?;
        let seq = 1u32;
        let mut req = Vec::with_capacity(NLMSG_HDRLEN + IFINFOMSG_LEN);
        req.extend_from_slice(&((NLMSG_HDRLEN + IFINFOMSG_LEN) as u32).to_ne_bytes());
        req.extend_from_slice(&RTM_GETLINK.to_ne_bytes());
        req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
        req.extend_from_slice(&seq.to_ne_bytes());
        req.extend_from_slice(&0u32.to_ne_bytes());
        req.extend_from_slice(&[0u8; IFINFOMSG_LEN]); // AF_UNSPEC: every link
        net::sendto(
            &fd,
            &req,
            net::SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )
        .map_err(|e| format!("netlink send: {e}"))?;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let (n, _) = net::recv(&fd, &mut buf[..], net::RecvFlags::empty())
                .map_err(|e| format!("netlink receive: {e}"))?;
            if n == 0 {
                return Err("netlink: the kernel closed the dump early".into());
            }
            if parse(&buf[..n.min(buf.len())], seq, &mut out)? {
                return Ok(out);
            }
        }
    }

    fn u16_at(b: &[u8], at: usize) -> Option<u16> {
        Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
    }

    fn u32_at(b: &[u8], at: usize) -> Option<u32> {
        Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
    }

    /// Parses one datagram of the dump into `out`; true once the dump is complete.
    pub(super) fn parse(mut b: &[u8], seq: u32, out: &mut Vec<Iface>) -> Result<bool, String> {
        let bad = || "netlink: malformed reply".to_string();
        while b.len() >= NLMSG_HDRLEN {
            let len = u32_at(b, 0).ok_or_else(bad)? as usize;
            let kind = u16_at(b, 4).ok_or_else(bad)?;
            if len < NLMSG_HDRLEN || len > b.len() {
                return Err(bad());
            }
            if u32_at(b, 8) != Some(seq) {
                return Err("netlink: a reply to another request".into());
            }
            let msg = &b[..len];
            match kind {
                NLMSG_DONE => return Ok(true),
                NLMSG_ERROR => {
                    let errno = u32_at(msg, NLMSG_HDRLEN).map(|e| e as i32).unwrap_or(0);
                    return Err(format!(
                        "netlink: the kernel refused the dump (errno {})",
                        -errno
                    ));
                }
                RTM_NEWLINK => out.push(link(msg).ok_or_else(bad)?),
                _ => {}
            }
            b = b.get((len + 3) & !3..).unwrap_or(&[]);
        }
        Ok(false)
    }

    /// One RTM_NEWLINK message: ifinfomsg (flags at offset 8), then attributes.
    fn link(msg: &[u8]) -> Option<Iface> {
        let flags = u32_at(msg, NLMSG_HDRLEN + 8)?;
        let mut attrs = msg.get(NLMSG_HDRLEN + IFINFOMSG_LEN..)?;
        while attrs.len() >= 4 {
            let len = u16_at(attrs, 0)? as usize;
            if len < 4 || len > attrs.len() {
                return None;
            }
            if u16_at(attrs, 2)? == IFLA_IFNAME {
                let raw = &attrs[4..len];
                let name = raw.split(|&c| c == 0).next()?;
                return Some(Iface {
                    name: String::from_utf8_lossy(name).into_owned(),
                    flags,
                });
            }
            attrs = attrs.get((len + 3) & !3..).unwrap_or(&[]);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(name: &str, flags: u32) -> Iface {
        Iface {
            name: name.into(),
            flags,
        }
    }

    fn view(source: &'static str, list: &[(&str, u32)]) -> View {
        View {
            source,
            interfaces: Ok(list.iter().map(|(n, f)| iface(n, *f)).collect()),
        }
    }

    const LO: (&str, u32) = ("lo", IFF_UP | IFF_LOOPBACK);

    #[test]
    fn only_loopback_up_in_both_views_passes() {
        let v = [
            view("sys", &[LO, ("eth0", 0x1002)]),
            view("nl", &[("eth0", 0x1002), LO]),
        ];
        decide(&v).unwrap();
    }

    #[test]
    fn an_interface_up_in_either_view_refuses() {
        for (sys, nl) in [(0x1003, 0x1002), (0x1002, 0x1003)] {
            let v = [
                view("sys", &[LO, ("eth0", sys)]),
                view("nl", &[LO, ("eth0", nl)]),
            ];
            let e = decide(&v).unwrap_err().to_string();
            assert!(e.contains("network interface 'eth0' is up"), "{e}");
        }
    }

    #[test]
    fn an_unreadable_view_refuses() {
        let v = [
            View {
                source: "/sys/class/net",
                interfaces: Err("Permission denied (os error 13)".into()),
            },
            view("nl", &[LO]),
        ];
        let e = decide(&v).unwrap_err().to_string();
        assert!(
            e.contains("cannot read /sys/class/net: Permission denied")
                && e.contains("allow-network = true"),
            "{e}"
        );
    }

    #[test]
    fn a_masked_view_refuses_even_when_nothing_is_up() {
        let empty = [view("sys", &[]), view("nl", &[LO, ("eth0", 0x1002)])];
        let e = decide(&empty).unwrap_err().to_string();
        assert!(e.contains("sys lists no loopback interface"), "{e}");
        let stale = [view("sys", &[LO]), view("nl", &[LO, ("wlan0", 0x1002)])];
        let e = decide(&stale).unwrap_err().to_string();
        assert!(e.contains("sys lists [lo] but nl lists [lo, wlan0]"), "{e}");
    }

    #[test]
    fn no_view_at_all_is_not_a_pass() {
        // Guards against a refactoring that drops both sources: no evidence is no air gap.
        assert!(views().len() >= 2);
    }

    #[test]
    fn netlink_replies_are_parsed_and_bad_ones_refused() {
        let mut msg = Vec::new();
        let name = b"eth0\0";
        let attr_len = 4 + name.len();
        let total = 16 + 16 + ((attr_len + 3) & !3);
        msg.extend_from_slice(&(total as u32).to_ne_bytes());
        msg.extend_from_slice(&16u16.to_ne_bytes());
        msg.extend_from_slice(&2u16.to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        let mut info = [0u8; 16];
        info[8..12].copy_from_slice(&0x1003u32.to_ne_bytes());
        msg.extend_from_slice(&info);
        msg.extend_from_slice(&(attr_len as u16).to_ne_bytes());
        msg.extend_from_slice(&3u16.to_ne_bytes());
        msg.extend_from_slice(name);
        msg.resize(total, 0);
        let mut out = Vec::new();
        assert!(!netlink::parse(&msg, 7, &mut out).unwrap());
        assert_eq!(out, [iface("eth0", 0x1003)]);
        assert!(netlink::parse(&msg, 8, &mut out).is_err(), "wrong sequence");
        assert!(
            netlink::parse(&msg[..20], 7, &mut out).is_err(),
            "truncated"
        );
    }

    #[test]
    fn the_netlink_view_of_this_machine_has_loopback() {
        let list = netlink::view().unwrap();
        assert!(list
            .iter()
            .any(|i| i.name == "lo" && i.flags & IFF_LOOPBACK != 0));
    }
}
