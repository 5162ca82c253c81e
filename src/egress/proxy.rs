//! The proxy's network side: accept on the inherited loopback listener, read one request
//! head, attribute the connection, decide, resolve, dial, then relay bytes both ways.
//! Every decision is one `egress.allow` or `egress.deny` event.

use super::http::{self, Request};
use super::resolve::Resolver;
use super::rules::{Caller, Candidate, Host, Rules};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::Mutex;
use tokio::time::timeout;
use tracing::{debug, error, info, warn};

/// A client must send its request head within this.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
const IDENT_TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Relay buffer per direction: a bulk transfer costs few syscalls. (splice(2) through a
/// pipe was tried and measured: no less CPU per GiB on TCP sockets here, and two more fds
/// per connection; see README, Egress, Benchmark.)
const RELAY_BUF: usize = 256 * 1024;

pub struct State {
    pub rules: Rules,
    pub resolver: Resolver,
    ident: Mutex<(BufReader<OwnedReadHalf>, OwnedWriteHalf)>,
}

impl State {
    pub fn new(rules: Rules, resolver: Resolver, helper: UnixStream) -> State {
        let (r, w) = helper.into_split();
        State {
            rules,
            resolver,
            ident: Mutex::new((BufReader::new(r), w)),
        }
    }

    /// Asks the attribution helper who holds the client's socket. A helper that no longer
    /// answers ends the proxy: the supervisor restarts both, and until then nothing passes.
    async fn identify(&self, client: SocketAddr, proxy: SocketAddr) -> Caller {
        let mut guard = self.ident.lock().await;
        let (r, w) = &mut *guard;
        let ask = async {
            w.write_all(format!("{client} {proxy}\n").as_bytes())
                .await?;
            let mut line = String::new();
            r.read_line(&mut line).await?;
            if line.is_empty() {
                return Err(std::io::Error::other("the helper closed its socket"));
            }
            serde_json::from_str::<Caller>(&line).map_err(std::io::Error::other)
        };
        match timeout(IDENT_TIMEOUT, ask).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                error!(event = "egress.ident_failed", error = %e, "the attribution helper failed; the proxy exits and is restarted");
                std::process::exit(1);
            }
            Err(_) => {
                error!(
                    event = "egress.ident_failed",
                    error = "timed out",
                    "the attribution helper did not answer; the proxy exits and is restarted"
                );
                std::process::exit(1);
            }
        }
    }
}

/// Serves until the process is killed.
pub async fn serve(listener: TcpListener, state: Arc<State>) {
    let local = listener.local_addr().ok();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let st = state.clone();
                let local = local.or_else(|| stream.local_addr().ok());
                tokio::spawn(async move {
                    if let Some(local) = local {
                        handle(stream, peer, local, st).await;
                    }
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning; the backlog waits.
                warn!(event = "egress.accept_failed", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Decision<'a> {
    req: &'a Request,
    caller: &'a Caller,
}

impl Decision<'_> {
    fn deny(&self, policy: Option<&str>, reason: &str) {
        let p = self.caller.processes.first();
        warn!(event = "egress.deny", host = %self.req.host.text(), port = self.req.port, method = %self.req.method,
            binary = self.caller.binary(), pid = p.map_or(0, |p| p.pid), policy = policy.unwrap_or(""), reason = %reason,
            "egress refused");
    }

    fn allow(&self, c: &Candidate, addr: IpAddr) {
        let p = self.caller.processes.first();
        info!(event = "egress.allow", host = %self.req.host.text(), port = self.req.port, method = %self.req.method,
            binary = self.caller.binary(), pid = p.map_or(0, |p| p.pid), policy = %c.policy,
            enforcement = if c.audit { "audit" } else { "enforce" }, addr = %addr,
            l7_unenforced = %c.unenforced.join("; "), "egress allowed");
    }
}

async fn handle(mut client: TcpStream, peer: SocketAddr, local: SocketAddr, st: Arc<State>) {
    let _ = client.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let req = match timeout(HEAD_TIMEOUT, read_head(&mut client, &mut buf)).await {
        Ok(Ok(r)) => r,
        Ok(Err(Some(refusal))) => {
            warn!(event = "egress.deny", host = "", port = 0u16, binary = "", policy = "", reason = %refusal.reason, "egress refused: bad request");
            let _ = client
                .write_all(&http::error_response(refusal.status, &refusal.reason))
                .await;
            return;
        }
        Ok(Err(None)) => return, // the client went away
        Err(_) => {
            debug!(
                event = "egress.head_timeout",
                "client sent no request head in time"
            );
            return;
        }
    };
    let caller = st.identify(peer, local).await;
    let d = Decision {
        req: &req,
        caller: &caller,
    };
    let candidates = match st.rules.candidates(&req.host, req.port, &caller) {
        Ok(c) => c,
        Err(den) => {
            d.deny(den.policy.as_deref(), &den.reason);
            let _ = client
                .write_all(&http::error_response(403, &den.reason))
                .await;
            return;
        }
    };
    let host = req.host.text();
    let ips = match &req.host {
        Host::Ip(ip) => vec![*ip],
        Host::Name(n) => match timeout(RESOLVE_TIMEOUT, st.resolver.lookup(n)).await {
            Ok(Ok(ips)) => ips,
            Ok(Err(e)) => {
                return refuse_after(
                    &mut client,
                    &d,
                    &candidates[0].policy,
                    502,
                    &format!("cannot resolve {host}: {e}"),
                )
                .await
            }
            Err(_) => {
                return refuse_after(
                    &mut client,
                    &d,
                    &candidates[0].policy,
                    504,
                    &format!("resolving {host} timed out"),
                )
                .await
            }
        },
    };
    // Every address must pass: the one we dial is then whichever answers first.
    let mut why = None;
    let chosen = candidates.iter().find(|c| {
        match ips
            .iter()
            .try_for_each(|ip| c.rule.check(&host, req.port, *ip))
        {
            Ok(()) => true,
            Err(e) => {
                why.get_or_insert(e);
                false
            }
        }
    });
    let Some(chosen) = chosen else {
        let reason = why.unwrap_or_else(|| format!("{host} has no address"));
        return refuse_after(&mut client, &d, &candidates[0].policy, 403, &reason).await;
    };
    let mut upstream = None;
    let mut last_err = String::new();
    for ip in &ips {
        match timeout(CONNECT_TIMEOUT, TcpStream::connect((*ip, req.port))).await {
            Ok(Ok(s)) => {
                d.allow(chosen, *ip);
                upstream = Some(s);
                break;
            }
            Ok(Err(e)) => last_err = format!("{ip}: {e}"),
            Err(_) => last_err = format!("{ip}: connect timed out"),
        }
    }
    let Some(mut upstream) = upstream else {
        warn!(event = "egress.upstream_failed", host = %host, port = req.port, policy = %chosen.policy, error = %last_err, "allowed, but the destination could not be reached");
        let _ = client
            .write_all(&http::error_response(
                502,
                &format!("cannot connect to {host}:{}: {last_err}", req.port),
            ))
            .await;
        return;
    };
    let _ = upstream.set_nodelay(true);
    let sent = match &req.forward {
        Some(head) => upstream.write_all(head).await,
        None => client.write_all(http::CONNECTED).await,
    };
    if sent.is_err() {
        return;
    }
    if buf.len() > req.head_len && upstream.write_all(&buf[req.head_len..]).await.is_err() {
        return;
    }
    drop(buf);
    match tokio::io::copy_bidirectional_with_sizes(&mut client, &mut upstream, RELAY_BUF, RELAY_BUF)
        .await
    {
        Ok((up, down)) => {
            debug!(event = "egress.close", host = %host, port = req.port, bytes_up = up, bytes_down = down, "connection closed")
        }
        Err(e) => {
            debug!(event = "egress.close", host = %host, port = req.port, error = %e, "connection ended")
        }
    }
}

async fn refuse_after(
    client: &mut TcpStream,
    d: &Decision<'_>,
    policy: &str,
    status: u16,
    reason: &str,
) {
    d.deny(Some(policy), reason);
    let _ = client
        .write_all(&http::error_response(status, reason))
        .await;
}

/// Reads until a whole head is buffered. Err(None): the client closed first.
async fn read_head(
    client: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<Request, Option<http::Refusal>> {
    let mut chunk = [0u8; 4096];
    loop {
        let n = client.read(&mut chunk).await.map_err(|_| None)?;
        if n == 0 {
            return Err(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(r) = http::parse(buf).map_err(Some)? {
            return Ok(r);
        }
    }
}
