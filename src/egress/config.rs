//! What the supervisor hands the proxy process: a JSON document in a sealed memfd, so no
//! path the workload could reach is involved and a restarted proxy reads the same bytes.

use super::rules::Rules;
use crate::log::{Format, LogLevel};
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub rules: Rules,
    /// The agent's identity: the attribution helper runs as it (see `ident`).
    pub agent_uid: u32,
    pub agent_gid: u32,
    /// The proxy's own identity.
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    /// Ancestor walks stop here.
    pub supervisor_pid: u32,
    /// `/etc/hosts` and `/etc/resolv.conf` as the supervisor read them.
    pub hosts: String,
    pub resolv_conf: String,
    pub log_format: String,
    pub log_level: String,
}

impl Config {
    pub fn log_format(&self) -> Format {
        Format::from_str(&self.log_format, true).unwrap_or(Format::Json)
    }

    pub fn log_level(&self) -> LogLevel {
        LogLevel::from_str(&self.log_level, true).unwrap_or(LogLevel::Info)
    }
}

pub fn value_name<T: ValueEnum>(v: T) -> String {
    v.to_possible_value()
        .map(|p| p.get_name().to_owned())
        .unwrap_or_default()
}
