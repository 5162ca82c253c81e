//! The egress allow-list: an L4 proxy that is the only way out of the sandbox.
//!
//! The child can connect (Landlock, ABI >= 4) only to the proxy's loopback port and can make
//! no UDP, raw or non-TCP stream socket (seccomp); the proxy, a separate confined process
//! under the supervisor, admits `CONNECT host:port` and absolute-URI HTTP requests that the
//! policy's `network_policies` list for the calling binary, resolving names itself.
//!
//! - [`rules`]: the compiled allow-list and its decisions; [`schema`]: from the policy's
//!   `network_policies`; [`addr`]: address classes;
//! - [`proxy`], [`http`], [`resolve`]: the proxy's network side;
//! - [`ident`]: which binary is behind a connection; [`process`]: the proxy process itself;
//! - the supervisor side (listener, start, restart, status) is `supervisor::egress`.

pub mod addr;
pub mod config;
pub mod http;
pub mod ident;
pub mod process;
pub mod proxy;
pub mod resolve;
pub mod rules;
pub mod schema;

/// The proxy's uid and gid: its own, not the agent's and not a login account. The next one
/// down is used when the policy's user happens to be this one.
pub const PROXY_ID: u32 = 65533;

pub fn proxy_id(agent_uid: u32, agent_gid: u32) -> (u32, u32) {
    let pick = |avoid: u32| {
        if avoid == PROXY_ID {
            PROXY_ID - 1
        } else {
            PROXY_ID
        }
    };
    (pick(agent_uid), pick(agent_gid))
}
