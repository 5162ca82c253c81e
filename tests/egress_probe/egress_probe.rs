//! egress-probe: run inside the sandbox by tests/egress.rs. Each argument is one network
//! operation to *attempt*; each prints one JSON line with what the kernel or the proxy
//! answered, so the test sees what was actually allowed.
//!
//! `get:HOST:PORT` (plain HTTP through $HTTP_PROXY), `connect:HOST:PORT` (CONNECT, then a
//! GET through the tunnel), `direct:IP:PORT` (TCP connect bypassing the proxy; `direct6:IP:PORT` the same from an
//! IPv6 socket to the v4-mapped address),
//! `udp:IP:PORT` (a DNS query over UDP), `tfo:IP:PORT` (TCP Fast Open sendto),
//! `mptcp:IP:PORT`, `sockets` (SCTP, raw, ICMP, UDP6), `serve:PORT` (bind, listen, answer
//! one connection), `bind:PORT`, `handoff:HOST:PORT:EXE` (connect to the proxy, then exec
//! EXE holding the socket to send the request), `use-fd:FD:HOST:PORT`, `kill:PID`,
//! `read:PATH`, `wait-file:PATH`, `sleep:MS`, `env:NAME`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn esc(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn proxy() -> SocketAddr {
    let url = std::env::var("HTTP_PROXY").expect("HTTP_PROXY is set in the sandbox");
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .expect("HTTP_PROXY is http://IP:PORT")
}

/// Sends `req` on `s` and reads the whole response (the server closes after it).
fn exchange(s: &mut TcpStream, req: &str) -> Result<(u16, String), String> {
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    parse_response(&buf)
}

fn parse_response(buf: &[u8]) -> Result<(u16, String), String> {
    let text = String::from_utf8_lossy(buf).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn print_http(op: &str, target: &str, r: Result<(u16, String), String>) {
    match r {
        Ok((status, body)) => println!(
            "{{\"op\":\"{op}\",\"target\":{},\"status\":{status},\"body\":{}}}",
            esc(target),
            esc(&body)
        ),
        Err(e) => println!(
            "{{\"op\":\"{op}\",\"target\":{},\"status\":0,\"error\":{}}}",
            esc(target),
            esc(&e)
        ),
    }
}

fn get(target: &str) {
    let r = TcpStream::connect(proxy())
        .map_err(|e| e.to_string())
        .and_then(|mut s| {
            exchange(
                &mut s,
                &format!("GET http://{target}/probe HTTP/1.1\r\nHost: {target}\r\n\r\n"),
            )
        });
    print_http("get", target, r);
}

fn connect(target: &str) {
    let r = (|| {
        let mut s = TcpStream::connect(proxy()).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
            .map_err(|e| e.to_string())?;
        // Read the CONNECT answer head byte by byte, so nothing of the tunnel is consumed.
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match s.read(&mut b) {
                Ok(1) => head.push(b[0]),
                Ok(_) => break,
                Err(e) => return Err(e.to_string()),
            }
        }
        let (status, body) = match parse_response(&head) {
            Ok((200, _)) => exchange(
                &mut s,
                &format!("GET /probe HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n"),
            )?,
            Ok((code, _)) => {
                let mut rest = Vec::new();
                let _ = s.read_to_end(&mut rest);
                (code, String::from_utf8_lossy(&rest).into_owned())
            }
            Err(e) => return Err(e),
        };
        Ok((status, body))
    })();
    print_http("connect", target, r);
}

fn sockaddr(target: &str) -> libc::sockaddr_in {
    let a: std::net::SocketAddrV4 = target.parse().expect("IPv4:PORT");
    // SAFETY: plain data.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sa.sin_family = libc::AF_INET as u16;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
    sa
}

const SA_LEN: u32 = std::mem::size_of::<libc::sockaddr_in>() as u32;

/// socket(dom, ty, proto), then `then(fd)` when it worked; errno of the first failure.
fn sock(dom: i32, ty: i32, proto: i32, then: impl FnOnce(i32) -> i32) -> i32 {
    // SAFETY: socket calls on our own fd.
    unsafe {
        let fd = libc::socket(dom, ty | libc::SOCK_CLOEXEC, proto);
        if fd < 0 {
            return errno();
        }
        let r = then(fd);
        libc::close(fd);
        r
    }
}

fn connect_fd(fd: i32, target: &str) -> i32 {
    let sa = sockaddr(target);
    // SAFETY: connect with a stack sockaddr.
    if unsafe { libc::connect(fd, &sa as *const _ as *const libc::sockaddr, SA_LEN) } < 0 {
        errno()
    } else {
        0
    }
}

/// A TCP connect from an AF_INET6 socket to the v4-mapped form of IPv4:PORT.
fn direct6(target: &str) -> i32 {
    let a: std::net::SocketAddrV4 = target.parse().expect("IPv4:PORT");
    sock(libc::AF_INET6, libc::SOCK_STREAM, 0, |fd| {
        // SAFETY: plain data.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sa.sin6_family = libc::AF_INET6 as u16;
        sa.sin6_port = a.port().to_be();
        sa.sin6_addr.s6_addr = a.ip().to_ipv6_mapped().octets();
        let len = std::mem::size_of::<libc::sockaddr_in6>() as u32;
        // SAFETY: connect with a stack sockaddr.
        if unsafe { libc::connect(fd, &sa as *const _ as *const libc::sockaddr, len) } < 0 {
            errno()
        } else {
            0
        }
    })
}

fn line(op: &str, target: &str, errno: i32) {
    println!(
        "{{\"op\":\"{op}\",\"target\":{},\"errno\":{errno}}}",
        esc(target)
    );
}

fn udp_dns(target: &str) -> i32 {
    sock(libc::AF_INET, libc::SOCK_DGRAM, 0, |fd| {
        // A query for api.test A.
        let q =
            b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03api\x04test\x00\x00\x01\x00\x01";
        let sa = sockaddr(target);
        // SAFETY: sendto/recv on our fd with stack buffers.
        unsafe {
            if libc::sendto(
                fd,
                q.as_ptr().cast(),
                q.len(),
                0,
                &sa as *const _ as *const libc::sockaddr,
                SA_LEN,
            ) < 0
            {
                return errno();
            }
            let tv = libc::timeval {
                tv_sec: 2,
                tv_usec: 0,
            };
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                16,
            );
            let mut buf = [0u8; 512];
            if libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) < 0 {
                return errno();
            }
        }
        0
    })
}

fn tfo(target: &str) -> i32 {
    sock(libc::AF_INET, libc::SOCK_STREAM, 0, |fd| {
        let sa = sockaddr(target);
        // SAFETY: sendto with a stack sockaddr.
        let r = unsafe {
            libc::sendto(
                fd,
                b"GET / HTTP/1.0\r\n\r\n".as_ptr().cast(),
                18,
                0x2000_0000,
                &sa as *const _ as *const libc::sockaddr,
                SA_LEN,
            )
        };
        if r < 0 {
            errno()
        } else {
            0
        }
    })
}

fn serve(port: u16) {
    let l = match std::net::TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => return line("serve", &port.to_string(), e.raw_os_error().unwrap_or(-1)),
    };
    println!("{{\"op\":\"serving\",\"port\":{port}}}");
    let _ = std::io::stdout().flush();
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        match l.accept() {
            Ok((mut s, peer)) => {
                s.set_nonblocking(false).unwrap();
                let _ = s.write_all(b"served\n");
                println!(
                    "{{\"op\":\"serve\",\"target\":\"{port}\",\"errno\":0,\"peer\":\"{peer}\"}}"
                );
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    line("serve", &port.to_string(), libc::ETIMEDOUT);
}

fn bind(port: u16) -> i32 {
    sock(libc::AF_INET, libc::SOCK_STREAM, 0, |fd| {
        let sa = sockaddr(&format!("0.0.0.0:{port}"));
        // SAFETY: bind with a stack sockaddr.
        if unsafe { libc::bind(fd, &sa as *const _ as *const libc::sockaddr, SA_LEN) } < 0 {
            errno()
        } else {
            0
        }
    })
}

/// Connects to the proxy, then becomes `exe` holding the socket (no other process holds it).
fn handoff(target: &str, exe: &str) {
    let s = TcpStream::connect(proxy()).expect("the proxy accepts");
    let fd = s.into_raw_fd();
    // SAFETY: clearing FD_CLOEXEC on our own fd before exec.
    unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    let err = std::os::unix::process::CommandExt::exec(
        std::process::Command::new(exe).arg(format!("use-fd:{fd}:{target}")),
    );
    println!("{{\"op\":\"handoff\",\"error\":{}}}", esc(&err.to_string()));
}

fn use_fd(arg: &str) {
    let (fd, target) = arg.split_once(':').expect("FD:HOST:PORT");
    // SAFETY: the fd was inherited across exec from `handoff`.
    let mut s = unsafe { TcpStream::from_raw_fd(fd.parse().expect("fd")) };
    let r = exchange(
        &mut s,
        &format!("GET http://{target}/probe HTTP/1.1\r\nHost: {target}\r\n\r\n"),
    );
    print_http("use-fd", target, r);
}

fn main() {
    for arg in std::env::args().skip(1) {
        let (op, val) = arg.split_once(':').unwrap_or((arg.as_str(), ""));
        match op {
            "get" => get(val),
            "connect" => connect(val),
            "direct" => line(
                "direct",
                val,
                sock(libc::AF_INET, libc::SOCK_STREAM, 0, |fd| {
                    connect_fd(fd, val)
                }),
            ),
            "direct6" => line("direct6", val, direct6(val)),
            "udp" => line("udp", val, udp_dns(val)),
            "tfo" => line("tfo", val, tfo(val)),
            "mptcp" => line(
                "mptcp",
                val,
                sock(libc::AF_INET, libc::SOCK_STREAM, 262, |fd| {
                    connect_fd(fd, val)
                }),
            ),
            "sockets" => {
                line(
                    "sctp",
                    "",
                    sock(libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP, |_| 0),
                );
                line(
                    "sctp_seqpacket",
                    "",
                    sock(
                        libc::AF_INET,
                        libc::SOCK_SEQPACKET,
                        libc::IPPROTO_SCTP,
                        |_| 0,
                    ),
                );
                line(
                    "raw",
                    "",
                    sock(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP, |_| 0),
                );
                line(
                    "icmp",
                    "",
                    sock(libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP, |_| 0),
                );
                line(
                    "udp6",
                    "",
                    sock(
                        libc::AF_INET6,
                        libc::SOCK_DGRAM | libc::SOCK_NONBLOCK,
                        0,
                        |_| 0,
                    ),
                );
                line(
                    "packet_type",
                    "",
                    sock(libc::AF_INET, 10 /* SOCK_PACKET */, 0, |_| 0),
                );
                line(
                    "tcp",
                    "",
                    sock(
                        libc::AF_INET,
                        libc::SOCK_STREAM | libc::SOCK_NONBLOCK,
                        libc::IPPROTO_TCP,
                        |_| 0,
                    ),
                );
                line(
                    "tcp6",
                    "",
                    sock(libc::AF_INET6, libc::SOCK_STREAM, 0, |_| 0),
                );
            }
            "serve" => serve(val.parse().expect("port")),
            "bind" => line("bind", val, bind(val.parse().expect("port"))),
            "handoff" => {
                let (target, exe) = val.rsplit_once(':').expect("HOST:PORT:EXE");
                handoff(target, exe);
            }
            "use-fd" => use_fd(val),
            "kill" => {
                // SAFETY: kill with a pid from the test.
                let r = unsafe { libc::kill(val.parse().expect("pid"), libc::SIGKILL) };
                line("kill", val, if r < 0 { errno() } else { 0 });
            }
            "read" => {
                let r = std::fs::read(val)
                    .map(|_| 0)
                    .unwrap_or_else(|e| e.raw_os_error().unwrap_or(-1));
                line("read", val, r);
            }
            "wait-file" => {
                let deadline = Instant::now() + Duration::from_secs(30);
                while !std::path::Path::new(val).exists() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            "sleep" => std::thread::sleep(Duration::from_millis(val.parse().expect("ms"))),
            "env" => println!(
                "{{\"op\":\"env\",\"name\":{},\"value\":{}}}",
                esc(val),
                esc(&std::env::var(val).unwrap_or_default())
            ),
            _ => {
                eprintln!("egress-probe: unknown operation {arg:?}");
                std::process::exit(2);
            }
        }
        let _ = std::io::stdout().flush();
    }
}
