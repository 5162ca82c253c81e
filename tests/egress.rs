//! The egress allow-list, proven by attempt. Each test builds a private lab: a client
//! network namespace (where the supervisor runs, through `ip netns exec`) and a host
//! namespace holding the test hosts (10.231.0.2 listed, 10.231.0.3 unlisted, a DNS server
//! on 10.231.0.2:53), joined by a veth pair. Those addresses exist only inside the lab's two
//! namespaces, the client namespace has no other route, and the lab is deleted when the test
//! ends: no test traffic can leave them or loopback. The servers are threads of this test
//! process that entered the host namespace; every loop in them and in the probe is bounded
//! in count and time.
//!
//! The sandboxed child is `egress-probe` (tests/egress_probe/), which attempts each
//! operation and prints what it got. Runs as root (CI does).

mod common;

use serde_json::Value;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SUPERVISOR: &str = env!("CARGO_BIN_EXE_supervisor");
const PROBE: &str = env!("CARGO_BIN_EXE_egress-probe");
const LISTED: &str = "10.231.0.2";
const UNLISTED: &str = "10.231.0.3";
const CLIENT_IP: &str = "10.231.0.1";
const WEB: u16 = 8081;
const EPERM: i64 = 1;
const EACCES: i64 = 13;
const LIMIT: Duration = Duration::from_secs(60);

/// What the lab's servers saw.
#[derive(Default)]
struct Seen {
    web: AtomicU32,
    unlisted: AtomicU32,
    dns: AtomicU32,
}

struct Lab {
    client: String,
    host: String,
    dir: PathBuf,
    stop: Arc<AtomicBool>,
    seen: Arc<Seen>,
    threads: Vec<JoinHandle<()>>,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .expect("iproute2's ip is installed (tests/run.sh installs it)");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    fn new(tag: &str) -> Lab {
        common::require_root();
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let base = format!("osup-eg-{}-{n}", std::process::id());
        let (client, host) = (format!("{base}-c"), format!("{base}-h"));
        ip(&["netns", "add", &client]);
        ip(&["netns", "add", &host]);
        let dir = PathBuf::from(format!("/tmp/{base}-{tag}"));
        let _ = fs::remove_dir_all(&dir);
        let mut lab = Lab {
            client,
            host,
            dir,
            stop: Arc::default(),
            seen: Arc::default(),
            threads: Vec::new(),
        };
        // Created inside the namespaces: the names never meet the host's interfaces.
        ip(&[
            "link",
            "add",
            "eg0",
            "netns",
            &lab.client,
            "type",
            "veth",
            "peer",
            "name",
            "eg1",
            "netns",
            &lab.host,
        ]);
        ip(&[
            "-n",
            &lab.client,
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            "eg0",
        ]);
        for a in [LISTED, UNLISTED] {
            ip(&[
                "-n",
                &lab.host,
                "addr",
                "add",
                &format!("{a}/24"),
                "dev",
                "eg1",
            ]);
        }
        for (ns, dev) in [(&lab.client, "eg0"), (&lab.host, "eg1")] {
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        // `ip netns exec` bind-mounts these over /etc: the supervisor (and its proxy) resolve
        // through the lab's DNS server, never the machine's.
        let etc = lab.netns_etc();
        fs::create_dir_all(&etc).unwrap();
        fs::write(etc.join("resolv.conf"), format!("nameserver {LISTED}\n")).unwrap();
        fs::write(
            etc.join("hosts"),
            // Listed names that resolve where the proxy must never go (SSRF by name).
            "127.0.0.1 localhost loop.test\n169.254.169.254 meta.test\n10.231.0.3 unlisted.test\n",
        )
        .unwrap();

        fs::create_dir_all(lab.path("bin/allowed")).unwrap();
        fs::create_dir_all(lab.path("bin/other")).unwrap();
        fs::create_dir_all(lab.path("rw")).unwrap();
        fs::create_dir_all(lab.path("status")).unwrap();
        fs::set_permissions(&lab.dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(lab.path("rw"), fs::Permissions::from_mode(0o777)).unwrap();
        for d in ["allowed", "other"] {
            fs::copy(PROBE, lab.probe(d)).unwrap();
        }
        lab.serve_http(LISTED);
        lab.serve_http(UNLISTED);
        lab.serve_dns();
        lab
    }

    fn netns_etc(&self) -> PathBuf {
        PathBuf::from("/etc/netns").join(&self.client)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn probe(&self, which: &str) -> PathBuf {
        self.path(&format!("bin/{which}/egress-probe"))
    }

    /// A thread of this process that works inside `ns`.
    fn in_ns(&mut self, ns: &str, f: impl FnOnce() + Send + 'static) {
        let path = format!("/run/netns/{ns}");
        let (tx, rx) = std::sync::mpsc::channel();
        self.threads.push(std::thread::spawn(move || {
            let fd = fs::File::open(&path).unwrap();
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            assert_eq!(
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
                0,
                "setns {path}"
            );
            f();
            let _ = tx.send(());
        }));
        // Bound sockets exist once `f` has bound them; it signals by returning or by the
        // server loop's first iteration (see serve_*), so give it a moment and go on.
        let _ = rx.recv_timeout(Duration::from_millis(0));
    }

    /// Runs `f` inside the host namespace and returns its result.
    fn on_host<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.host);
        std::thread::spawn(move || {
            let fd = fs::File::open(&path).unwrap();
            // SAFETY: as in `in_ns`.
            assert_eq!(
                unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) },
                0
            );
            f()
        })
        .join()
        .unwrap()
    }

    /// A one-request-per-connection HTTP server on `addr:WEB` answering `hello from ADDR`.
    fn serve_http(&mut self, addr: &'static str) {
        let (stop, seen) = (self.stop.clone(), self.seen.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let host = self.host.clone();
        self.in_ns(&host, move || {
            let l = TcpListener::bind((addr, WEB)).unwrap();
            l.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            let counter = if addr == LISTED { &seen.web } else { &seen.unlisted };
            // Bounded: at most 1000 connections, and never past the test's lifetime.
            let mut served = 0;
            while !stop.load(Ordering::Relaxed) && served < 1000 {
                match l.accept() {
                    Ok((mut s, _)) => {
                        served += 1;
                        counter.fetch_add(1, Ordering::SeqCst);
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        let mut head = Vec::new();
                        let mut b = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match s.read(&mut b) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => head.extend_from_slice(&b[..n]),
                            }
                        }
                        let body = format!("hello from {addr}");
                        let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("test HTTP server bound");
    }

    /// A DNS server on LISTED:53/udp: api.test → LISTED, unlisted-dns.test → UNLISTED, AAAA
    /// empty, anything else NXDOMAIN.
    fn serve_dns(&mut self) {
        let (stop, seen) = (self.stop.clone(), self.seen.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let host = self.host.clone();
        self.in_ns(&host, move || {
            let s = UdpSocket::bind((LISTED, 53)).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            ready_tx.send(()).unwrap();
            let mut buf = [0u8; 512];
            let mut answered = 0;
            while !stop.load(Ordering::Relaxed) && answered < 1000 {
                let Ok((n, peer)) = s.recv_from(&mut buf) else {
                    continue;
                };
                answered += 1;
                seen.dns.fetch_add(1, Ordering::SeqCst);
                if let Some(reply) = dns_reply(&buf[..n]) {
                    let _ = s.send_to(&reply, peer);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("test DNS server bound");
    }

    /// Writes the policy: the probes' directories read-only (so they can run), `network`
    /// appended, `extra` appended at the top level.
    fn policy(&self, network: &str, extra: &str) -> PathBuf {
        let text = format!(
            "version: 1
filesystem_policy:
  read_only: [/usr, /lib, /lib64, /bin, /etc, /proc, /dev/urandom, {bin}]
  read_write: [{rw}, /dev/null]
process:
  run_as_user: nobody
  run_as_group: nogroup
{extra}{network}",
            bin = self.path("bin").display(),
            rw = self.path("rw").display(),
        );
        let p = self.path("policy.yaml");
        fs::write(&p, text).unwrap();
        p
    }

    /// `network_policies` allowing LISTED:WEB and api.test:WEB to the `allowed` probe.
    fn web_policy(&self, extra: &str) -> PathBuf {
        let net = format!(
            "network_policies:
  web:
    endpoints:
      - host: {LISTED}
        port: {WEB}
      - host: api.test
        port: {WEB}
      - host: unlisted.test
        port: {WEB}
        allowed_ips: [{LISTED}/32]
      - host: loop.test
        port: {WEB}
      - host: meta.test
        port: {WEB}
    binaries:
      - path: {}/bin/allowed/*
",
            self.dir.display()
        );
        self.policy(&net, extra)
    }

    /// Starts the supervisor in the client namespace with `args`, the child after `--`.
    fn start(&self, policy: &Path, args: &[&str], child: &[String]) -> Running {
        self.start_via(&[], policy, args, child)
    }

    /// [`Lab::start`] with `wrap` (e.g. setpriv and its flags) before the supervisor.
    fn start_via(&self, wrap: &[&str], policy: &Path, args: &[&str], child: &[String]) -> Running {
        let log = self.path("supervisor.log");
        let out = self.path("stdout.txt");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.client])
            .args(wrap)
            .args([SUPERVISOR, "--policy"])
            .arg(policy)
            .arg("--status-dir")
            .arg(self.path("status"))
            .args(["--no-hook", "--ready-after", "0"])
            .args(args)
            .arg("--")
            .args(child)
            .current_dir(self.path("rw"))
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&log).unwrap());
        Running {
            child: cmd.spawn().expect("ip netns exec supervisor"),
            log,
            out,
            status: self.path("status/status.json"),
        }
    }

    /// Runs the `allowed` probe with `ops` under `--restart never` to its end.
    fn run(&self, policy: &Path, ops: &[&str]) -> Done {
        let mut child = vec![self.probe("allowed").display().to_string()];
        child.extend(ops.iter().map(|s| s.to_string()));
        self.start(policy, &["--restart", "never"], &child).finish()
    }

    /// Runs `script` with /bin/sh as the child (to combine probes).
    fn run_sh(&self, policy: &Path, script: &str) -> Done {
        let child = vec!["/bin/sh".to_string(), "-c".to_string(), script.to_string()];
        self.start(policy, &["--restart", "never"], &child).finish()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for ns in [&self.client, &self.host] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = fs::remove_dir_all(self.netns_etc());
        let _ = fs::remove_dir_all(&self.dir);
    }
}

struct Running {
    child: Child,
    log: PathBuf,
    out: PathBuf,
    status: PathBuf,
}

struct Done {
    code: i32,
    out: Vec<Value>,
    log: Vec<Value>,
}

impl Running {
    fn status(&self) -> Value {
        fs::read(&self.status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    }

    fn wait_status(&self, what: &str, mut cond: impl FnMut(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        common::wait_for(what, LIMIT, || {
            last = self.status();
            cond(&last)
        });
        last
    }

    fn log(&self) -> Vec<Value> {
        common::parse_log(&self.log)
    }

    fn out(&self) -> Vec<Value> {
        lines(&fs::read_to_string(&self.out).unwrap_or_default())
    }

    fn finish(mut self) -> Done {
        let deadline = Instant::now() + LIMIT;
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "supervisor did not finish; log:\n{}",
                fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        eprintln!(
            "supervisor exit {code}; log:\n{}",
            fs::read_to_string(&self.log).unwrap_or_default()
        );
        Done {
            code,
            out: self.out(),
            log: self.log(),
        }
    }

    fn stop(mut self) -> Done {
        // SAFETY: signalling the supervisor we started (ip netns exec execs it in place).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = &mut self.child;
        self.finish()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Done {
    fn op(&self, op: &str, target: &str) -> &Value {
        self.out
            .iter()
            .find(|v| v["op"] == op && (target.is_empty() || v["target"] == target))
            .unwrap_or_else(|| panic!("probe printed no {op} {target} line; got {:?}", self.out))
    }

    fn errno(&self, op: &str, target: &str) -> i64 {
        self.op(op, target)["errno"].as_i64().unwrap()
    }

    fn events(&self, name: &str) -> Vec<&Value> {
        common::named(&self.log, name)
    }
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// The answer to a one-question query, or None for garbage.
fn dns_reply(q: &[u8]) -> Option<Vec<u8>> {
    if q.len() < 17 {
        return None;
    }
    let mut pos = 12;
    let mut name = Vec::new();
    while *q.get(pos)? != 0 {
        let len = q[pos] as usize;
        name.push(String::from_utf8_lossy(q.get(pos + 1..pos + 1 + len)?).to_ascii_lowercase());
        pos += 1 + len;
    }
    let qtype = u16::from_be_bytes([*q.get(pos + 1)?, *q.get(pos + 2)?]);
    let end = pos + 5;
    let name = name.join(".");
    let addr: Option<[u8; 4]> = match name.as_str() {
        "api.test" => Some([10, 231, 0, 2]),
        "unlisted-dns.test" => Some([10, 231, 0, 3]),
        _ => None,
    };
    let mut r = q.get(..end)?.to_vec();
    r[2] = 0x81;
    r[3] = if addr.is_some() { 0x80 } else { 0x83 };
    if let (Some(a), 1) = (addr, qtype) {
        r[7] = 1;
        r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        r.extend_from_slice(&a);
    }
    Some(r)
}

fn body_of(v: &Value) -> &str {
    v["body"].as_str().unwrap_or("")
}

#[test]
fn listed_hosts_are_reachable_through_the_proxy_and_others_refused() {
    let lab = Lab::new("reach");
    let policy = lab.web_policy("");
    let listed = format!("{LISTED}:{WEB}");
    let unlisted = format!("{UNLISTED}:{WEB}");
    let named = format!("api.test:{WEB}");
    let named_unlisted = format!("unlisted-dns.test:{WEB}");
    let hosts_file = format!("unlisted.test:{WEB}");
    let r = lab.run(
        &policy,
        &[
            &format!("get:{listed}"),
            &format!("connect:{listed}"),
            &format!("get:{named}"),
            &format!("connect:{named}"),
            &format!("get:{unlisted}"),
            &format!("connect:{unlisted}"),
            &format!("get:{named_unlisted}"),
            &format!("get:{LISTED}:{}", WEB + 1),
            &format!("connect:{hosts_file}"),
            &format!("connect:loop.test:{WEB}"),
            &format!("get:meta.test:{WEB}"),
            "env:HTTP_PROXY",
            "env:https_proxy",
            "env:NO_PROXY",
        ],
    );
    assert_eq!(r.code, 0);
    // Listed: through the plain forward and through CONNECT, by address and by a name the
    // proxy resolved over the lab's DNS.
    for (op, t) in [
        ("get", &listed),
        ("connect", &listed),
        ("get", &named),
        ("connect", &named),
    ] {
        let v = r.op(op, t);
        assert_eq!(v["status"], 200, "{op} {t}: {v}");
        assert_eq!(body_of(v), format!("hello from {LISTED}"));
    }
    // Unlisted: refused with 403 and a reason, and nothing reached the unlisted host.
    for (op, t) in [
        ("get", &unlisted),
        ("connect", &unlisted),
        ("get", &named_unlisted),
    ] {
        let v = r.op(op, t);
        assert_eq!(v["status"], 403, "{op} {t}: {v}");
        assert!(body_of(v).contains("no network policy allows"), "{v}");
    }
    assert_eq!(
        r.op("get", &format!("{LISTED}:{}", WEB + 1))["status"],
        403,
        "a listed host on another port"
    );
    // unlisted.test is listed, but /etc/hosts maps it to UNLISTED, outside its allowed_ips.
    let v = r.op("connect", &hosts_file);
    assert_eq!(v["status"], 403, "{v}");
    assert!(body_of(v).contains("not in allowed_ips"), "{v}");
    // Listed names that resolve to loopback (the sandbox's own services, the proxy
    // itself) or link-local (cloud metadata) are never dialled.
    for (op, t) in [
        ("connect", format!("loop.test:{WEB}")),
        ("get", format!("meta.test:{WEB}")),
    ] {
        let v = r.op(op, &t);
        assert_eq!(v["status"], 403, "{v}");
        assert!(body_of(v).contains("never reachable"), "{v}");
    }
    assert_eq!(
        lab.seen.unlisted.load(Ordering::SeqCst),
        0,
        "the unlisted host saw no connection"
    );
    assert!(
        lab.seen.dns.load(Ordering::SeqCst) > 0,
        "the proxy resolved through the lab's DNS"
    );

    let proxy = r.op("env", "")["value"].as_str().unwrap().to_owned();
    assert!(proxy.starts_with("http://127.0.0.1:"), "{proxy}");
    let env: Vec<_> = r.out.iter().filter(|v| v["op"] == "env").collect();
    assert_eq!(env[1]["value"], proxy.as_str(), "lower-case forms too");
    assert_eq!(env[2]["value"], "localhost,127.0.0.1,::1");

    // Every decision is logged with host, port, binary and policy key.
    let allows = r.events("egress.allow");
    assert_eq!(allows.len(), 4, "{allows:?}");
    let binary = lab.probe("allowed").display().to_string();
    for a in &allows {
        assert_eq!(a["policy"], "web");
        assert_eq!(a["binary"], binary.as_str());
        assert_eq!(a["port"], WEB);
    }
    assert!(allows
        .iter()
        .any(|a| a["host"] == "api.test" && a["addr"] == LISTED));
    let denies = r.events("egress.deny");
    assert_eq!(denies.len(), 7, "{denies:?}");
    assert!(denies
        .iter()
        .any(|d| d["host"] == UNLISTED && d["binary"] == binary.as_str() && d["policy"] == ""));
    assert!(denies
        .iter()
        .any(|d| d["host"] == "unlisted.test" && d["policy"] == "web"));
    let status: Value =
        serde_json::from_slice(&fs::read(lab.path("status/status.json")).unwrap()).unwrap();
    assert_eq!(status["egress"]["state"], "stopped");
    assert_eq!(
        status["egress"]["port"].as_u64().unwrap().to_string(),
        proxy.rsplit(':').next().unwrap()
    );
}

#[test]
fn side_doors_around_the_proxy_are_closed() {
    let lab = Lab::new("doors");
    let policy = lab.web_policy("");
    let listed = format!("{LISTED}:{WEB}");
    let r = lab.run(
        &policy,
        &[
            &format!("direct:{listed}"),
            &format!("direct:{LISTED}:53"),
            &format!("direct6:{listed}"),
            &format!("udp:{LISTED}:53"),
            &format!("tfo:{listed}"),
            &format!("mptcp:{listed}"),
            "sockets",
            &format!("get:{listed}"),
        ],
    );
    assert_eq!(r.code, 0);
    // A direct connect to a listed host, and DNS over TCP: Landlock refuses the connect.
    assert_eq!(r.errno("direct", &listed), EACCES);
    assert_eq!(r.errno("direct", &format!("{LISTED}:53")), EACCES);
    // Second spelling: an IPv6 socket with the v4-mapped address.
    assert_eq!(r.errno("direct6", &listed), EACCES);
    // UDP DNS, TCP Fast Open (whose connect Landlock never sees), MPTCP (not TCP to
    // Landlock), SCTP, raw and ICMP sockets: seccomp refuses the socket or the send.
    assert_eq!(r.errno("udp", &format!("{LISTED}:53")), EPERM);
    assert_eq!(r.errno("tfo", &listed), EPERM);
    assert_eq!(r.errno("mptcp", &listed), EPERM);
    for op in [
        "sctp",
        "sctp_seqpacket",
        "raw",
        "icmp",
        "udp6",
        "packet_type",
    ] {
        assert_eq!(r.errno(op, ""), EPERM, "{op}");
    }
    // Plain TCP sockets are still made (the proxy is reached with one).
    assert_eq!(r.errno("tcp", ""), 0);
    assert_eq!(r.errno("tcp6", ""), 0);
    assert_eq!(r.op("get", &listed)["status"], 200);
    // Only the proxy's one request reached the listed host; the agent sent no DNS query.
    assert_eq!(lab.seen.web.load(Ordering::SeqCst), 1);
    assert_eq!(lab.seen.dns.load(Ordering::SeqCst), 0);

    // Control: with seccomp's socket and send rules lifted (Landlock unchanged), the same
    // attempts get through to the lab's hosts. So the refusals above are seccomp's, and TCP
    // Fast Open and MPTCP really do pass Landlock's TCP connect rule.
    let lifted = lab.web_policy("seccomp:\n  allow: [socket, sendto, sendmsg, sendmmsg]\n");
    let r = lab.run(
        &lifted,
        &[
            &format!("udp:{LISTED}:53"),
            &format!("tfo:{listed}"),
            &format!("mptcp:{listed}"),
            &format!("direct:{listed}"),
        ],
    );
    assert_eq!(r.code, 0);
    assert_eq!(
        r.errno("udp", &format!("{LISTED}:53")),
        0,
        "the query was answered"
    );
    assert_eq!(r.errno("tfo", &listed), 0);
    assert_eq!(r.errno("mptcp", &listed), 0);
    assert_eq!(
        r.errno("direct", &listed),
        EACCES,
        "plain TCP is still Landlock's"
    );
    assert_eq!(lab.seen.dns.load(Ordering::SeqCst), 1);
    common::wait_for("the bypassing connections", LIMIT, || {
        lab.seen.web.load(Ordering::SeqCst) == 3
    });
}

#[test]
fn a_binary_not_listed_is_refused() {
    let lab = Lab::new("binary");
    let policy = lab.web_policy("");
    let t = format!("{LISTED}:{WEB}");
    let (allowed, other) = (lab.probe("allowed"), lab.probe("other"));
    let r = lab.run_sh(
        &policy,
        &format!(
            "{a} get:{t}; {o} get:{t}; {o} connect:{t}; {a} handoff:{t}:{o}",
            a = allowed.display(),
            o = other.display()
        ),
    );
    assert_eq!(r.code, 0);
    let gets: Vec<_> = r.out.iter().filter(|v| v["op"] == "get").collect();
    assert_eq!(gets[0]["status"], 200, "the listed binary: {:?}", gets[0]);
    assert_eq!(
        gets[1]["status"], 403,
        "the same probe at another path: {:?}",
        gets[1]
    );
    assert_eq!(r.op("connect", &t)["status"], 403);
    // Second spelling: the listed binary connects, then execs an unlisted one that holds
    // the socket and speaks: the proxy asks who holds the socket when the request arrives.
    assert_eq!(r.op("use-fd", &t)["status"], 403);
    let other_s = other.display().to_string();
    let denies = r.events("egress.deny");
    assert_eq!(denies.len(), 3, "{denies:?}");
    for d in denies {
        assert_eq!(d["binary"], other_s.as_str());
        assert_eq!(d["policy"], "web");
        assert!(
            d["reason"]
                .as_str()
                .unwrap()
                .contains("is not allowed by policy"),
            "{d}"
        );
    }
    assert_eq!(lab.seen.web.load(Ordering::SeqCst), 1);
}

#[test]
fn the_agent_can_serve_its_own_port() {
    let lab = Lab::new("serve");
    let (port, other) = (18080u16, 18081u16);
    let policy = lab.web_policy(&format!("landlock:\n  tcp_bind: [{port}]\n"));
    let running = lab.start(
        &policy,
        &["--restart", "never"],
        &[
            lab.probe("allowed").display().to_string(),
            format!("bind:{other}"),
            format!("serve:{port}"),
        ],
    );
    common::wait_for("the agent listening", LIMIT, || {
        running.out().iter().any(|v| v["op"] == "serving")
    });
    // A peer on the lab's network connects in and is answered.
    let got = lab.on_host(move || {
        let mut s = TcpStream::connect_timeout(
            &format!("{CLIENT_IP}:{port}").parse().unwrap(),
            Duration::from_secs(5),
        )
        .expect("connect to the agent");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = String::new();
        let _ = s.read_to_string(&mut b);
        b
    });
    assert_eq!(got, "served\n");
    let r = running.finish();
    assert_eq!(r.code, 0);
    assert_eq!(r.errno("serve", &port.to_string()), 0);
    assert_eq!(
        r.errno("bind", &other.to_string()),
        EACCES,
        "a port the policy does not list"
    );
}

/// pid of a child of `ppid`, from /proc.
fn child_of(ppid: u32) -> Option<u32> {
    common::children_of(ppid as i32)
        .first()
        .map(|(p, _)| *p as u32)
}

fn proc_status(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
}

fn field<'a>(status: &'a str, key: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(str::trim)
        .unwrap_or("")
}

#[test]
fn proxy_death_is_reported_and_it_is_restarted() {
    let lab = Lab::new("restart");
    let policy = lab.web_policy("");
    let t = format!("{LISTED}:{WEB}");
    let go = lab.path("rw/go");
    let go2 = lab.path("rw/go2");
    let child = vec![
        lab.probe("allowed").display().to_string(),
        format!("get:{t}"),
        format!("wait-file:{}", go.display()),
        format!("get:{t}"),
        format!("wait-file:{}", go2.display()),
        format!("get:{t}"),
        format!("get:{t}"),
        "sleep:60000".into(),
    ];
    let running = lab.start(&policy, &[], &child);
    let st = running.wait_status("Ready with egress running", |s| {
        s["phase"] == "Ready" && s["egress"]["state"] == "running"
    });
    let proxy = st["egress"]["pid"].as_u64().unwrap() as u32;
    common::wait_for("the first request", LIMIT, || {
        running.out().iter().any(|v| v["op"] == "get")
    });

    // The proxy and its helper are confined: their own identities, no capabilities.
    let ps = proc_status(proxy);
    assert_eq!(
        field(&ps, "Uid").split_whitespace().next(),
        Some("65533"),
        "{ps}"
    );
    assert_eq!(field(&ps, "CapEff"), "0000000000000000");
    assert_eq!(field(&ps, "CapPrm"), "0000000000000000");
    assert_eq!(field(&ps, "NoNewPrivs"), "1");
    assert_eq!(field(&ps, "Seccomp"), "2");
    let helper = child_of(proxy).expect("the attribution helper runs");
    let hs = proc_status(helper);
    assert_eq!(
        field(&hs, "Uid").split_whitespace().next(),
        Some("65534"),
        "the agent's uid: {hs}"
    );
    assert_eq!(field(&hs, "CapEff"), "0000000000000000");
    assert_eq!(field(&hs, "Seccomp"), "2");

    // Killed: reported (egress down, phase no longer Ready), restarted, and serving again.
    // SAFETY: killing the proxy we found in status.json.
    assert_eq!(unsafe { libc::kill(proxy as i32, libc::SIGKILL) }, 0);
    let st = running.wait_status("egress restarted", |s| {
        s["egress"]["restarts"] == 1 && s["egress"]["state"] == "running" && s["phase"] == "Ready"
    });
    let proxy2 = st["egress"]["pid"].as_u64().unwrap() as u32;
    assert_ne!(proxy2, proxy);
    assert_eq!(st["egress"]["last_exit"]["signal"], 9);
    fs::write(&go, "").unwrap();
    common::wait_for("the request after the restart", LIMIT, || {
        running.out().iter().filter(|v| v["op"] == "get").count() == 2
    });

    // Second spelling: the helper dies instead; the proxy notices on the next request,
    // exits, and is restarted with a new helper.
    let helper2 = child_of(proxy2).expect("helper of the restarted proxy");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(helper2 as i32, libc::SIGKILL) }, 0);
    fs::write(&go2, "").unwrap();
    running.wait_status("egress restarted twice", |s| {
        s["egress"]["restarts"] == 2 && s["egress"]["state"] == "running"
    });
    common::wait_for("two more requests", LIMIT, || {
        running.out().iter().filter(|v| v["op"] == "get").count() == 4
    });
    let r = running.stop();
    assert_eq!(r.code, 0);
    let gets: Vec<_> = r.out.iter().filter(|v| v["op"] == "get").collect();
    assert_eq!(gets[0]["status"], 200);
    assert_eq!(gets[1]["status"], 200, "served by the restarted proxy");
    // The request that met the dead helper was dropped (never allowed); the next passes.
    assert_ne!(gets[2]["status"], 200);
    assert_eq!(gets[3]["status"], 200);
    let phases = common::phases(&r.log);
    let ready_again = phases
        .windows(2)
        .filter(|w| w[0] == "Starting" && w[1] == "Ready")
        .count();
    assert!(
        ready_again >= 2,
        "Ready → Starting → Ready when the proxy died: {phases:?}"
    );
    assert_eq!(r.events("egress.exit").len(), 2);
    assert_eq!(r.events("egress.restart_scheduled").len(), 2);
    assert_eq!(r.events("egress.ident_failed").len(), 1);
    assert!(r.events("egress.ready").len() >= 3);
    // Stopped with the supervisor, and no egress process outlives it.
    assert!(!common::alive(proxy2 as i32));
    assert!(
        r.events("stop.kill_descendants").is_empty(),
        "the proxy is reaped by its own shutdown"
    );
}

#[test]
fn the_agent_cannot_touch_the_proxy() {
    let lab = Lab::new("touch");
    let policy = lab.web_policy("");
    let go = lab.path("rw/go");
    let pids = lab.path("rw/pids");
    let script = format!(
        "{probe} wait-file:{go}; read p h < {pids}; {probe} kill:$p kill:$h read:/proc/$p/environ read:/proc/$h/environ read:/proc/$h/fd/0",
        probe = lab.probe("allowed").display(),
        go = go.display(),
        pids = pids.display()
    );
    let running = lab.start(
        &policy,
        &["--restart", "never"],
        &["/bin/sh".into(), "-c".into(), script],
    );
    let st = running.wait_status("egress running", |s| {
        s["egress"]["state"] == "running" && s["phase"] == "Ready"
    });
    let proxy = st["egress"]["pid"].as_u64().unwrap() as u32;
    let helper = child_of(proxy).unwrap();
    fs::write(&pids, format!("{proxy} {helper}\n")).unwrap();
    fs::write(&go, "").unwrap();
    let r = running.finish();
    assert_eq!(r.code, 0);
    // Another uid (the proxy), or Landlock's signal scoping (the helper shares the agent's
    // uid): no signal gets through.
    assert_eq!(r.errno("kill", &proxy.to_string()), EPERM);
    assert_eq!(r.errno("kill", &helper.to_string()), EPERM);
    // Not dumpable, and outside the agent's Landlock domain: nothing of theirs is readable.
    for p in [
        format!("/proc/{proxy}/environ"),
        format!("/proc/{helper}/environ"),
        format!("/proc/{helper}/fd/0"),
    ] {
        assert_eq!(r.errno("read", &p), EACCES, "{p}");
    }
    assert!(r.events("egress.exit").is_empty(), "the proxy never died");
}

#[test]
fn no_network_policies_means_no_egress() {
    let lab = Lab::new("none");
    let policy = lab.policy("", "");
    let t = format!("{LISTED}:{WEB}");
    let r = lab.run(
        &policy,
        &[
            "env:HTTP_PROXY",
            &format!("direct:{t}"),
            &format!("udp:{LISTED}:53"),
            &format!("direct:127.0.0.1:{WEB}"),
        ],
    );
    assert_eq!(r.code, 0);
    assert_eq!(r.op("env", "")["value"], "", "no proxy to point at");
    assert_eq!(r.errno("direct", &t), EACCES);
    assert_eq!(r.errno("direct", &format!("127.0.0.1:{WEB}")), EACCES);
    assert_eq!(r.errno("udp", &format!("{LISTED}:53")), EPERM);
    assert_eq!(r.events("egress.none").len(), 1);
    assert!(r.events("egress.start").is_empty(), "no proxy is started");
    let status: Value =
        serde_json::from_slice(&fs::read(lab.path("status/status.json")).unwrap()).unwrap();
    assert!(status.get("egress").is_none(), "{status}");
    assert_eq!(
        lab.seen.web.load(Ordering::SeqCst) + lab.seen.dns.load(Ordering::SeqCst),
        0
    );
}

#[test]
fn l7_rules_refused_under_hard_requirement_and_flagged_under_best_effort() {
    let lab = Lab::new("l7");
    let net = format!(
        "network_policies:
  api:
    endpoints:
      - host: {LISTED}
        port: {WEB}
        protocol: rest
        enforcement: enforce
        access: read-only
    binaries: [{{path: {}/bin/allowed/*}}]
",
        lab.dir.display()
    );
    let hard = lab.policy(&net, "landlock:\n  compatibility: hard_requirement\n");
    let r = lab.run(&hard, &[]);
    assert_eq!(r.code, 83, "refused before anything runs");
    let e = &r.events("enforce.unsupported")[0];
    assert_eq!(e["field"], "network_policies.api.endpoints[0]");
    assert!(
        e["error"].as_str().unwrap().contains("access: read-only"),
        "{e}"
    );

    let best = lab.policy(&net, "landlock:\n  compatibility: best_effort\n");
    let r = lab.run(&best, &[&format!("get:{LISTED}:{WEB}")]);
    assert_eq!(r.code, 0);
    let w = &r.events("egress.l7_unenforced")[0];
    assert_eq!(w["level"], "warn");
    assert_eq!(w["policy"], "api");
    assert_eq!(w["unenforced"], "access: read-only");
    assert_eq!(
        r.op("get", &format!("{LISTED}:{WEB}"))["status"],
        200,
        "the L4 allow-list applies"
    );
    assert_eq!(
        r.events("egress.allow")[0]["l7_unenforced"],
        "access: read-only"
    );

    // `supervisor check` says it in words.
    let out = Command::new(SUPERVISOR)
        .args(["check", "--policy"])
        .arg(&best)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("api"), "{text}");
    assert!(text.contains("NOT ENFORCED"), "{text}");
    assert!(text.contains("proxy's port"), "{text}");
}

#[test]
fn an_unprivileged_supervisor_still_enforces_egress() {
    let lab = Lab::new("unpriv");
    let policy = lab.web_policy("");
    // The supervisor itself runs as the policy's user (nobody), without capabilities.
    let status = lab.path("status");
    std::os::unix::fs::chown(&status, Some(65534), Some(65534)).unwrap();
    let (listed, unlisted) = (format!("{LISTED}:{WEB}"), format!("{UNLISTED}:{WEB}"));
    let child = vec![
        lab.probe("allowed").display().to_string(),
        format!("get:{listed}"),
        format!("connect:{unlisted}"),
        format!("direct:{listed}"),
        format!("udp:{LISTED}:53"),
    ];
    let wrap = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
    ];
    let r = lab
        .start_via(&wrap, &policy, &["--restart", "never"], &child)
        .finish();
    assert_eq!(r.code, 0);
    assert_eq!(r.op("get", &listed)["status"], 200);
    assert_eq!(r.op("connect", &unlisted)["status"], 403);
    assert_eq!(r.errno("direct", &listed), EACCES);
    assert_eq!(r.errno("udp", &format!("{LISTED}:53")), EPERM);
    let confined = &r.events("egress.proxy_confined")[0];
    assert_eq!(
        confined["uid"], 65534,
        "kept the supervisor's uid: {confined}"
    );
    assert_eq!(
        r.events("egress.allow")[0]["binary"],
        lab.probe("allowed").display().to_string().as_str()
    );
}

#[test]
fn a_resolver_file_the_workload_could_write_fails_startup() {
    let lab = Lab::new("resolv");
    let policy = lab.web_policy("");
    let resolv = lab.netns_etc().join("resolv.conf");
    // `ip netns exec` mounts it over /etc/resolv.conf: owned by the agent's uid, then
    // root's but writable by everyone. Either would let the workload point an allowed name
    // at any address, so the proxy is not started and neither is the child.
    for (uid, mode) in [(65534, 0o644), (0, 0o666)] {
        std::os::unix::fs::chown(&resolv, Some(uid), Some(uid)).unwrap();
        fs::set_permissions(&resolv, fs::Permissions::from_mode(mode)).unwrap();
        let r = lab.run(&policy, &[&format!("get:{LISTED}:{WEB}")]);
        assert_eq!(r.code, 87, "egress_failed (uid {uid}, mode {mode:o})");
        assert!(r.out.is_empty(), "the child never ran: {:?}", r.out);
        let f = &r.events("egress.failed")[0];
        assert!(f["error"].as_str().unwrap().contains("resolv.conf"), "{f}");
        let st: Value =
            serde_json::from_slice(&fs::read(lab.path("status/status.json")).unwrap()).unwrap();
        assert_eq!(st["phase"], "Failed");
        assert_eq!(st["reason"], "egress_failed");
        assert!(r.events("child.spawn").is_empty());
    }
}
