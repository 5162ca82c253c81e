//! Name resolution for the proxy: `/etc/hosts`, then the nameservers of
//! `/etc/resolv.conf` over UDP (TCP when the answer is truncated), A and AAAA.
//!
//! Why our own instead of hickory-resolver: the supervisor is a static glibc binary, so
//! `getaddrinfo` has no NSS; what the proxy needs is one exact-name lookup per request
//! against the configured servers, with no search list (policy hosts are full names), no
//! cache (the answer is checked against the policy each time, so a rebinding answer is judged
//! like any other) and no DNSSEC. That is a few hundred lines we can read and fuzz, instead
//! of a resolver stack of some forty crates in the one process that parses hostile input.
//!
//! Both files are read by the supervisor, once per start (after the boot hook, which may
//! write them), through the trusted walk: a file the workload could have written would let
//! it point an allowed name at any address. Their text travels to the proxy in its sealed
//! configuration, so a restarted proxy resolves exactly as the first one did.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

const MAX_FILE: u64 = 1 << 20;
pub const HOSTS: &str = "/etc/hosts";
pub const RESOLV_CONF: &str = "/etc/resolv.conf";

/// Reads one resolver file for the proxy: a missing file is empty; one that is not a
/// regular file owned by root (or us) behind trusted directories is refused.
pub fn read_trusted(path: &str) -> Result<String, String> {
    use crate::safe_fs::{self, Final, Trust, WalkError};
    let trust = Trust::root_and_self();
    let r = match safe_fs::resolve(std::path::Path::new(path), &trust, Final::Read) {
        Ok(r) => r,
        Err(WalkError::NotFound { .. }) => return Ok(String::new()),
        Err(e) => return Err(format!("{path}: {e}")),
    };
    r.require_trusted_file(&trust, "resolver file")?;
    let body = safe_fs::read_regular_fd(r.fd, MAX_FILE).map_err(|e| format!("{path} {e}"))?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_AAAA: u16 = 28;
const CLASS_IN: u16 = 1;
/// Per server and query type; the whole lookup is bounded by the caller too.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Default)]
pub struct Resolver {
    hosts: Vec<(String, IpAddr)>,
    pub servers: Vec<SocketAddr>,
}

impl Resolver {
    pub fn parse(hosts: &str, resolv: &str) -> Resolver {
        let mut r = Resolver::default();
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
                continue;
            };
            for name in words {
                r.hosts
                    .push((name.trim_end_matches('.').to_ascii_lowercase(), ip));
            }
        }
        for line in resolv.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("nameserver") {
                continue;
            }
            // An IPv6 server may carry a zone (`fe80::1%eth0`): not supported, skipped.
            if let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) {
                r.servers.push(SocketAddr::new(ip, 53));
            }
        }
        r.servers.truncate(3); // glibc's MAXNS
                               // As glibc does, no `nameserver` line means the local one.
        if r.servers.is_empty() {
            r.servers
                .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        r
    }

    /// All addresses of `name` (lower-case, no trailing dot): /etc/hosts entries when it has
    /// any, else the first server that answers.
    pub async fn lookup(&self, name: &str) -> Result<Vec<IpAddr>, String> {
        let from_hosts: Vec<IpAddr> = self
            .hosts
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, ip)| *ip)
            .collect();
        if !from_hosts.is_empty() {
            return Ok(from_hosts);
        }
        let mut last = format!("no nameserver answered for {name}");
        for server in &self.servers {
            match query(*server, name).await {
                Ok(ips) if ips.is_empty() => return Err(format!("{name} has no A or AAAA record")),
                Ok(ips) => return Ok(ips),
                Err(Answer::NxDomain) => {
                    return Err(format!("{name} does not exist (NXDOMAIN from {server})"))
                }
                Err(e) => last = format!("{server}: {}", e.text()),
            }
        }
        Err(last)
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Answer {
    NxDomain,
    Failed(String),
    Truncated,
}

impl Answer {
    fn text(&self) -> String {
        match self {
            Answer::NxDomain => "NXDOMAIN".into(),
            Answer::Failed(s) => s.clone(),
            Answer::Truncated => "truncated".into(),
        }
    }
}

/// A and AAAA for `name` from `server`: both questions on one UDP socket (ids `id` and
/// `id ^ 1`), each retried over TCP when its answer is truncated.
async fn query(server: SocketAddr, name: &str) -> Result<Vec<IpAddr>, Answer> {
    let id = random_id() & !1;
    let types = [(id, TYPE_A), (id | 1, TYPE_AAAA)];
    let mut answers: [Option<Result<Vec<IpAddr>, Answer>>; 2] = [None, None];
    let udp = async {
        let bind: SocketAddr = if server.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let io = |e: std::io::Error| Answer::Failed(e.to_string());
        let sock = UdpSocket::bind(bind).await.map_err(io)?;
        // Connected: the kernel drops datagrams from anyone but the server.
        sock.connect(server).await.map_err(io)?;
        for (qid, qtype) in types {
            sock.send(&build_query(qid, name, qtype).map_err(Answer::Failed)?)
                .await
                .map_err(io)?;
        }
        let mut buf = vec![0u8; 4096];
        while answers.iter().any(Option::is_none) {
            let n = sock.recv(&mut buf).await.map_err(io)?;
            for (i, (qid, qtype)) in types.iter().enumerate() {
                // A datagram that answers neither question (spoofed, late) is ignored.
                if answers[i].is_none() && matches_id(&buf[..n], *qid) {
                    answers[i] = Some(parse_response(&buf[..n], *qid, name, *qtype));
                }
            }
        }
        Ok::<(), Answer>(())
    };
    match tokio::time::timeout(QUERY_TIMEOUT, udp).await {
        Ok(r) => r?,
        Err(_) if answers.iter().all(Option::is_none) => {
            return Err(Answer::Failed("timed out".into()))
        }
        Err(_) => {} // one type answered; the other is taken as empty below
    }
    let mut out = Vec::new();
    let mut first_err = None;
    for (i, (qid, qtype)) in types.iter().enumerate() {
        let r = match answers[i].take() {
            Some(Err(Answer::Truncated)) => query_tcp(server, name, *qid, *qtype).await,
            Some(r) => r,
            None => Ok(Vec::new()),
        };
        match r {
            Ok(ips) => out.extend(ips),
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    match first_err {
        Some(e) if out.is_empty() => Err(e),
        _ => Ok(out),
    }
}

async fn query_tcp(
    server: SocketAddr,
    name: &str,
    id: u16,
    qtype: u16,
) -> Result<Vec<IpAddr>, Answer> {
    let tcp = async {
        let io = |e: std::io::Error| Answer::Failed(e.to_string());
        let msg = build_query(id, name, qtype).map_err(Answer::Failed)?;
        let mut s = TcpStream::connect(server).await.map_err(io)?;
        let mut framed = (msg.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&msg);
        s.write_all(&framed).await.map_err(io)?;
        let len = s.read_u16().await.map_err(io)? as usize;
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf).await.map_err(io)?;
        parse_response(&buf, id, name, qtype)
    };
    tokio::time::timeout(QUERY_TIMEOUT, tcp)
        .await
        .unwrap_or(Err(Answer::Failed("timed out over TCP".into())))
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes into our 2-byte buffer.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    if n != 2 {
        // Cannot happen after boot; a fixed id still only meets a connected socket's replies.
        return std::process::id() as u16;
    }
    u16::from_ne_bytes(b)
}

fn build_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(name.len() + 18);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]); // RD; one question
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a valid DNS name"));
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

fn matches_id(buf: &[u8], id: u16) -> bool {
    buf.len() >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id
}

fn u16_at(b: &[u8], i: usize) -> Result<u16, Answer> {
    b.get(i..i + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| Answer::Failed("short DNS message".into()))
}

/// Reads the (possibly compressed) name at `pos`: returns it lower-cased and the offset
/// after it in the message. Pointers must go backwards, so a loop cannot be built.
fn read_name(b: &[u8], mut pos: usize) -> Result<(String, usize), Answer> {
    let bad = || Answer::Failed("malformed name in DNS message".into());
    let mut name = String::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *b.get(pos).ok_or_else(bad)? as usize;
        match len & 0xc0 {
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *b.get(pos + 1).ok_or_else(bad)? as usize;
                if target >= pos || jumps > 64 {
                    return Err(bad());
                }
                end.get_or_insert(pos + 2);
                pos = target;
                jumps += 1;
            }
            0 => {
                if len == 0 {
                    return Ok((name, end.unwrap_or(pos + 1)));
                }
                let label = b.get(pos + 1..pos + 1 + len).ok_or_else(bad)?;
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(&String::from_utf8_lossy(label).to_ascii_lowercase());
                if name.len() > 255 {
                    return Err(bad());
                }
                pos += 1 + len;
            }
            _ => return Err(bad()),
        }
    }
}

/// The addresses in the answer for (`name`, `qtype`), following CNAMEs within the answer.
fn parse_response(b: &[u8], id: u16, name: &str, qtype: u16) -> Result<Vec<IpAddr>, Answer> {
    let fail = |s: &str| Answer::Failed(s.to_owned());
    if u16_at(b, 0)? != id {
        return Err(fail("answer to another query"));
    }
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 || (flags >> 11) & 0xf != 0 {
        return Err(fail("not a standard DNS response"));
    }
    if flags & 0x0200 != 0 {
        return Err(Answer::Truncated);
    }
    match flags & 0xf {
        0 => {}
        3 => return Err(Answer::NxDomain),
        rc => return Err(Answer::Failed(format!("server answered rcode {rc}"))),
    }
    if u16_at(b, 4)? != 1 {
        return Err(fail("response does not carry exactly our question"));
    }
    let ancount = u16_at(b, 6)?;
    let (qname, mut pos) = read_name(b, 12)?;
    if qname != name || u16_at(b, pos)? != qtype || u16_at(b, pos + 2)? != CLASS_IN {
        return Err(fail("response is for another question"));
    }
    pos += 4;
    let mut records = Vec::new();
    for _ in 0..ancount {
        let (owner, p) = read_name(b, pos)?;
        let rtype = u16_at(b, p)?;
        let class = u16_at(b, p + 2)?;
        let len = u16_at(b, p + 8)? as usize;
        let data_at = p + 10;
        let data = b
            .get(data_at..data_at + len)
            .ok_or_else(|| fail("short DNS record"))?;
        if class == CLASS_IN {
            match (rtype, len) {
                (TYPE_A, 4) => records.push((
                    owner,
                    Rec::Ip(IpAddr::V4(Ipv4Addr::new(
                        data[0], data[1], data[2], data[3],
                    ))),
                )),
                (TYPE_AAAA, 16) => {
                    let mut o = [0u8; 16];
                    o.copy_from_slice(data);
                    records.push((owner, Rec::Ip(IpAddr::V6(Ipv6Addr::from(o)))));
                }
                (TYPE_CNAME, _) => records.push((owner, Rec::Alias(read_name(b, data_at)?.0))),
                _ => {}
            }
        }
        pos = data_at + len;
    }
    // Only records owned by the name asked for, or by an alias it leads to, count.
    let mut names = vec![name.to_owned()];
    for _ in 0..records.len() {
        let mut grew = false;
        for (owner, r) in &records {
            if let Rec::Alias(target) = r {
                if names.contains(owner) && !names.contains(target) {
                    names.push(target.clone());
                    grew = true;
                }
            }
        }
        if !grew {
            break;
        }
    }
    let mut out = Vec::new();
    for (owner, r) in &records {
        if let Rec::Ip(ip) = r {
            let right_family = (qtype == TYPE_A) == ip.is_ipv4();
            if names.contains(owner) && right_family && !out.contains(ip) {
                out.push(*ip);
            }
        }
    }
    Ok(out)
}

enum Rec {
    Ip(IpAddr),
    Alias(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to `build_query(id, name, qtype)` with `answers` (owner, type, rdata).
    pub fn response(
        id: u16,
        name: &str,
        qtype: u16,
        flags: u16,
        answers: &[(&str, u16, Vec<u8>)],
    ) -> Vec<u8> {
        let mut m = build_query(id, name, qtype).unwrap();
        m[2..4].copy_from_slice(&flags.to_be_bytes());
        m[6..8].copy_from_slice(&(answers.len() as u16).to_be_bytes());
        for (owner, t, data) in answers {
            if *owner == name {
                m.extend_from_slice(&[0xc0, 12]);
            } else {
                for l in owner.split('.') {
                    m.push(l.len() as u8);
                    m.extend_from_slice(l.as_bytes());
                }
                m.push(0);
            }
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            m.extend_from_slice(&60u32.to_be_bytes());
            m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            m.extend_from_slice(data);
        }
        m
    }

    fn wire(name: &str) -> Vec<u8> {
        let mut v = Vec::new();
        for l in name.split('.') {
            v.push(l.len() as u8);
            v.extend_from_slice(l.as_bytes());
        }
        v.push(0);
        v
    }

    #[test]
    fn answers_and_cnames() {
        let r = response(
            7,
            "api.example.com",
            TYPE_A,
            0x8180,
            &[
                ("api.example.com", TYPE_CNAME, wire("edge.example.net")),
                ("edge.example.net", TYPE_A, vec![10, 0, 0, 5]),
                ("other.example.org", TYPE_A, vec![6, 6, 6, 6]),
            ],
        );
        assert_eq!(
            parse_response(&r, 7, "api.example.com", TYPE_A).unwrap(),
            ["10.0.0.5".parse::<IpAddr>().unwrap()]
        );
        assert!(
            parse_response(&r, 8, "api.example.com", TYPE_A).is_err(),
            "wrong id"
        );
        assert!(
            parse_response(&r, 7, "api.example.org", TYPE_A).is_err(),
            "wrong question"
        );
        let nx = response(7, "x.example.com", TYPE_A, 0x8183, &[]);
        assert_eq!(
            parse_response(&nx, 7, "x.example.com", TYPE_A),
            Err(Answer::NxDomain)
        );
        let tc = response(7, "x.example.com", TYPE_A, 0x8380, &[]);
        assert_eq!(
            parse_response(&tc, 7, "x.example.com", TYPE_A),
            Err(Answer::Truncated)
        );
    }

    #[test]
    fn malformed_input_never_panics() {
        let good = response(
            9,
            "a.example.com",
            TYPE_AAAA,
            0x8180,
            &[(
                "a.example.com",
                TYPE_AAAA,
                vec![0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            )],
        );
        assert_eq!(
            parse_response(&good, 9, "a.example.com", TYPE_AAAA)
                .unwrap()
                .len(),
            1
        );
        for cut in 0..good.len() {
            let _ = parse_response(&good[..cut], 9, "a.example.com", TYPE_AAAA);
        }
        let mut seed = 0x1234_5678u32;
        for _ in 0..2000 {
            let mut m = good.clone();
            for _ in 0..4 {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                let i = (seed as usize >> 8) % m.len();
                m[i] = (seed >> 16) as u8;
            }
            let _ = parse_response(&m, 9, "a.example.com", TYPE_AAAA);
        }
        // A self-pointing compression pointer is refused, not followed forever.
        let mut lp = build_query(1, "a.b", TYPE_A).unwrap();
        lp[12] = 0xc0;
        lp[13] = 12;
        assert!(read_name(&lp, 12).is_err());
    }

    #[test]
    fn config_files() {
        let r = Resolver::parse(
            "127.0.0.1 localhost\n10.1.1.1 db.internal DB2.internal. # comment\nbad line\n",
            "search x\nnameserver 10.0.0.53\nnameserver fe80::1%eth0\nnameserver ::1\n",
        );
        assert_eq!(r.hosts.len(), 3);
        assert_eq!(
            r.hosts[2],
            ("db2.internal".into(), "10.1.1.1".parse().unwrap())
        );
        assert_eq!(
            r.servers,
            ["10.0.0.53:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }
}
