//! Egress proxy cost: connection set-up and one large transfer, through the proxy against a
//! direct connection, measured by the same sandboxed process in interleaved rounds.
//!
//!     cargo bench --bench egress                        # as root; defaults below
//!     cargo bench --bench egress -- 3000 1024 7         # set-ups per path, MiB per transfer, rounds
//!     cargo bench --bench egress -- 2000 256 5 1gbit    # the test host's link shaped to 1 Gbit/s
//!
//! The harness builds a private lab like tests/egress.rs (a client and a host network
//! namespace joined by a veth pair; 10.231.0.0/24 exists only inside them), serves from a
//! thread that entered the host namespace, and runs the release-profile supervisor in the
//! client namespace with this binary (re-executed in `client` mode) as the confined child.
//! The policy lists the bench host for the child's binary AND lets it connect directly to
//! the bench ports (`landlock.tcp_connect`), so both paths run under the same Landlock and
//! seccomp and alternate within one process: load drift hits both alike.
//!
//! The lab's veth link is as fast as the CPU; on a small machine a bulk transfer is then
//! CPU-bound, and relaying costs CPU that the direct path does not spend. A fourth argument
//! shapes the host's side of the link (`tc ... tbf rate RATE`), which is what a real
//! network does: the figure then says whether the proxy keeps up with such a link.
//!
//! Reported: set-up medians and p90 (connect + first byte echoed; through the proxy that
//! includes the CONNECT exchange and its decision), throughput per path (median of the
//! rounds), and the proxy's own CPU time per GiB relayed (from /proc/PID/stat): that last
//! figure depends far less on what else the machine runs than the wall-clock ones.

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const HOST: &str = "10.231.0.2";
const ECHO: u16 = 9000;
const BULK: u16 = 9001;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if args.first().map(String::as_str) == Some("client") {
        return client(&args[1..]);
    }
    let num = |i: usize, d: u64| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (setups, mib, rounds) = (num(0, 2000), num(1, 512), num(2, 5));
    harness(setups, mib, rounds, args.get(3).map(String::as_str));
}

// ----- the harness (root, outside the sandbox) ---------------------------------------

fn ip(args: &[&str]) {
    let ok = Command::new("ip")
        .args(args)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "ip {args:?} failed (needs root and iproute2)");
}

fn harness(setups: u64, mib: u64, rounds: u64, rate: Option<&str>) {
    assert_eq!(unsafe { libc::geteuid() }, 0, "run the benchmark as root");
    let base = format!("osup-egb-{}", std::process::id());
    let (c, h) = (format!("{base}-c"), format!("{base}-h"));
    let dir = std::path::PathBuf::from(format!("/tmp/{base}"));
    let stop = Arc::new(AtomicBool::new(false));
    let cleanup = |stop: &AtomicBool| {
        stop.store(true, Ordering::Relaxed);
        for ns in [&c, &h] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = fs::remove_dir_all(format!("/etc/netns/{c}"));
        let _ = fs::remove_dir_all(&dir);
    };
    ip(&["netns", "add", &c]);
    ip(&["netns", "add", &h]);
    ip(&[
        "link", "add", "eg0", "netns", &c, "type", "veth", "peer", "name", "eg1", "netns", &h,
    ]);
    ip(&["-n", &c, "addr", "add", "10.231.0.1/24", "dev", "eg0"]);
    ip(&["-n", &h, "addr", "add", &format!("{HOST}/24"), "dev", "eg1"]);
    for (ns, dev) in [(&c, "eg0"), (&h, "eg1")] {
        ip(&["-n", ns, "link", "set", dev, "up"]);
        ip(&["-n", ns, "link", "set", "lo", "up"]);
    }
    if let Some(rate) = rate {
        let ok = Command::new("ip")
            .args([
                "netns", "exec", &h, "tc", "qdisc", "add", "dev", "eg1", "root", "tbf", "rate",
                rate, "burst", "512kb", "latency", "50ms",
            ])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            cleanup(&stop);
            panic!("tc could not shape the link to {rate}");
        }
        println!("link from the test host shaped to {rate} (tc tbf)\n");
    }
    fs::create_dir_all(format!("/etc/netns/{c}")).unwrap();
    fs::write(
        format!("/etc/netns/{c}/resolv.conf"),
        format!("nameserver {HOST}\n"),
    )
    .unwrap();
    fs::create_dir_all(dir.join("bin")).unwrap();
    fs::create_dir_all(dir.join("status")).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let me = dir.join("bin/egress-bench");
    fs::copy(std::env::current_exe().unwrap(), &me).unwrap();
    serve(&h, stop.clone());

    let policy = dir.join("policy.yaml");
    fs::write(
        &policy,
        format!(
            "version: 1
filesystem_policy:
  read_only: [/usr, /lib, /lib64, /proc, /dev/urandom, {bin}, {status}]
  read_write: [/dev/null]
process: {{run_as_user: nobody, run_as_group: nogroup}}
landlock:
  tcp_connect: [{ECHO}, {BULK}]
network_policies:
  bench:
    endpoints: [{{host: {HOST}, ports: [{ECHO}, {BULK}]}}]
    binaries: [{{path: {me}}}]
",
            bin = dir.join("bin").display(),
            status = dir.join("status").display(),
            me = me.display()
        ),
    )
    .unwrap();
    let sup = env!("CARGO_BIN_EXE_supervisor");
    let out = Command::new("ip")
        .args(["netns", "exec", &c, sup, "--policy"])
        .arg(&policy)
        .arg("--status-dir")
        .arg(dir.join("status"))
        .args([
            "--no-hook",
            "--restart",
            "never",
            "--log-level",
            "warn",
            "--",
        ])
        .arg(&me)
        .args([
            "client",
            &setups.to_string(),
            &mib.to_string(),
            &rounds.to_string(),
        ])
        .arg(dir.join("status/status.json"))
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the supervisor");
    cleanup(&stop);
    print!("{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        out.status.success(),
        "the benchmark run failed: {:?}",
        out.status
    );
}

/// Echo (1 byte back per byte) on ECHO; on BULK, sends as many bytes as the client's first
/// 8 (little-endian) say. Threads inside the host namespace, until `stop`.
fn serve(ns: &str, stop: Arc<AtomicBool>) {
    for port in [ECHO, BULK] {
        let path = format!("/run/netns/{ns}");
        let stop = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let f = fs::File::open(&path).unwrap();
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let l = TcpListener::bind((HOST, port)).unwrap();
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !stop.load(Ordering::Relaxed) {
                let Ok((mut s, _)) = l.accept() else {
                    std::thread::sleep(Duration::from_micros(200));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                let _ = s.set_nodelay(true);
                std::thread::spawn(move || {
                    let mut b = [0u8; 8];
                    if port == ECHO {
                        while let Ok(1..) = s.read(&mut b[..1]) {
                            if s.write_all(&b[..1]).is_err() {
                                break;
                            }
                        }
                    } else if s.read_exact(&mut b).is_ok() {
                        let mut left = u64::from_le_bytes(b);
                        let chunk = vec![7u8; 1 << 20];
                        while left > 0 {
                            let n = left.min(chunk.len() as u64) as usize;
                            if s.write_all(&chunk[..n]).is_err() {
                                break;
                            }
                            left -= n as u64;
                        }
                    }
                });
            }
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("bench server bound");
    }
}

// ----- the client (the confined child) -------------------------------------------------

fn proxy() -> String {
    std::env::var("HTTP_PROXY")
        .unwrap()
        .trim_start_matches("http://")
        .to_owned()
}

/// Connects to HOST:port, directly or through a CONNECT tunnel.
fn open(port: u16, via_proxy: bool) -> TcpStream {
    if !via_proxy {
        let s = TcpStream::connect((HOST, port)).expect("direct connect");
        s.set_nodelay(true).unwrap();
        return s;
    }
    let mut s = TcpStream::connect(proxy()).expect("proxy connect");
    s.set_nodelay(true).unwrap();
    write!(s, "CONNECT {HOST}:{port} HTTP/1.1\r\n\r\n").unwrap();
    let mut head = Vec::with_capacity(64);
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).expect("CONNECT answer");
        head.push(b[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    s
}

fn setup_once(via_proxy: bool) -> Duration {
    let t = Instant::now();
    let mut s = open(ECHO, via_proxy);
    let mut b = [1u8; 1];
    s.write_all(&b).unwrap();
    s.read_exact(&mut b).unwrap();
    t.elapsed()
}

fn transfer(bytes: u64, via_proxy: bool) -> Duration {
    let t = Instant::now();
    let mut s = open(BULK, via_proxy);
    s.write_all(&bytes.to_le_bytes()).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0u64;
    while got < bytes {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n as u64,
            Err(e) => panic!("transfer: {e}"),
        }
    }
    assert_eq!(got, bytes, "short transfer");
    t.elapsed()
}

/// utime + stime of `pid` in seconds.
fn cpu_seconds(pid: u64) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: u64 = rest.get(11).and_then(|u| u.parse().ok()).unwrap_or(0)
        + rest.get(12).and_then(|s| s.parse().ok()).unwrap_or(0);
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// The attribution helper: the proxy's child.
fn helper_of(proxy: u64) -> Option<u64> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u64 = e.file_name().to_str()?.parse().ok()?;
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let ppid: u64 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (ppid == proxy).then_some(pid)
    })
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn client(args: &[String]) {
    let setups: u64 = args[0].parse().unwrap();
    let mib: u64 = args[1].parse().unwrap();
    let rounds: u64 = args[2].parse().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&fs::read(&args[3]).unwrap()).unwrap();
    let proxy_pid = status["egress"]["pid"]
        .as_u64()
        .expect("the proxy's pid in status.json");
    // Warm-up: both paths, a few times.
    for i in 0..50 {
        setup_once(i % 2 == 0);
    }
    let helper_pid = helper_of(proxy_pid).expect("the attribution helper runs");
    let egress_cpu = || cpu_seconds(proxy_pid) + cpu_seconds(helper_pid);
    let setup_cpu0 = egress_cpu();
    let (mut direct, mut proxied) = (Vec::new(), Vec::new());
    for i in 0..setups * 2 {
        // Alternate, and swap the order every 100 pairs, so neither path always goes first.
        let first_proxy = (i / 200) % 2 == 0;
        let via = (i % 2 == 0) == first_proxy;
        let d = setup_once(via).as_secs_f64() * 1e6;
        if via {
            proxied.push(d)
        } else {
            direct.push(d)
        }
    }
    let setup_cpu = (egress_cpu() - setup_cpu0) / setups as f64 * 1e6;
    let bytes = mib << 20;
    let (mut tdirect, mut tproxy) = (Vec::new(), Vec::new());
    let mut proxy_cpu = 0.0;
    for r in 0..rounds {
        for via in if r % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            let cpu0 = if via { cpu_seconds(proxy_pid) } else { 0.0 };
            let t = transfer(bytes, via).as_secs_f64();
            let mbs = bytes as f64 / (1 << 20) as f64 / t;
            if via {
                proxy_cpu += cpu_seconds(proxy_pid) - cpu0;
                tproxy.push(mbs);
            } else {
                tdirect.push(mbs);
            }
        }
    }
    let (dm, pm) = (pct(&mut direct, 0.5), pct(&mut proxied, 0.5));
    let (d9, p9) = (pct(&mut direct, 0.9), pct(&mut proxied, 0.9));
    let (tdm, tpm) = (pct(&mut tdirect, 0.5), pct(&mut tproxy, 0.5));
    let gib = (bytes * rounds) as f64 / (1u64 << 30) as f64;
    println!("| measurement | direct | through the proxy | proxy / direct |");
    println!("|---|---|---|---|");
    println!("| connection set-up, median (µs), n={setups} each | {dm:.0} | {pm:.0} | {:.2}x (+{:.0} µs) |", pm / dm, pm - dm);
    println!(
        "| connection set-up, p90 (µs) | {d9:.0} | {p9:.0} | {:.2}x |",
        p9 / d9
    );
    println!("| proxy + helper CPU time per set-up (µs) | | {setup_cpu:.0} | |");
    println!(
        "| one {mib} MiB transfer, median of {rounds} (MiB/s) | {tdm:.0} | {tpm:.0} | {:.1} % |",
        tpm / tdm * 100.0
    );
    println!(
        "| proxy CPU time per GiB relayed (s) | | {:.3} | |",
        proxy_cpu / gib
    );
}
