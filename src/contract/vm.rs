//! What the host (`sandboxctl --backend vm`) and the supervisor as the VM's init agree on:
//! the names of the devices the host attaches and the per-VM settings it passes in.
//!
//! The image fixes the supervisor's own flags (on the kernel command line, like a container
//! image's ENTRYPOINT); what differs per sandbox — its hostname, the agent's command and
//! environment — is a JSON blob ([`VmConfig`]) the host hands over as a QEMU `fw_cfg` file,
//! read-only to the guest, readable at [`FW_CFG_PATH`] once `qemu_fw_cfg` is loaded.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `fw_cfg` name of the VM configuration (`-fw_cfg name=…,file=…`).
pub const FW_CFG_NAME: &str = "opt/io.openshell/config";
/// Where the guest kernel exposes it.
pub const FW_CFG_PATH: &str = "/sys/firmware/qemu_fw_cfg/by_name/opt/io.openshell/config/raw";
/// The virtio-blk serial of the workspace disk (`-device virtio-blk-pci,serial=…`).
pub const WORKSPACE_SERIAL: &str = "openshell-workspace";
/// The 9p mount tag of the status share (the host's `<state>/status/`).
pub const STATUS_TAG: &str = "status";
pub const CONFIG_VERSION: u32 = 1;
/// A larger blob is refused (it is read into memory by PID 1).
pub const CONFIG_MAX: u64 = 256 * 1024;

/// Written by the init into the status share just before it powers off (`status/`
/// beside status.json): QEMU's own exit status is 0 for every clean power-off, so the
/// supervisor's exit code travels here.
pub const POWEROFF_FILE: &str = "poweroff.json";

/// What [`POWEROFF_FILE`] holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PowerOff {
    pub schema_version: u32,
    /// The supervisor's exit code (86 when the VM's set-up failed).
    pub code: i32,
    /// Whether the workspace was unmounted cleanly (false: remounted read-only or left to
    /// its journal).
    pub workspace_unmounted: bool,
    /// When (guest clock, RFC 3339).
    pub at: String,
}

/// Per-VM settings. Unknown fields are refused: an ignored setting is one the operator
/// believes is applied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    pub schema_version: u32,
    /// The guest's hostname (the sandbox name).
    #[serde(default)]
    pub hostname: Option<String>,
    /// The agent command; empty means the one on the supervisor's command line.
    #[serde(default)]
    pub command: Vec<String>,
    /// Added to the supervisor's environment, so the hook and the agent inherit it.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_unknown_fields() {
        let c = VmConfig {
            schema_version: CONFIG_VERSION,
            hostname: Some("a".into()),
            command: vec!["/bin/true".into()],
            env: [("K".to_string(), "V".to_string())].into(),
        };
        let j = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<VmConfig>(&j).unwrap(), c);
        assert!(serde_json::from_str::<VmConfig>(r#"{"schema_version":1,"comand":[]}"#).is_err());
        assert!(FW_CFG_PATH.contains(FW_CFG_NAME));
    }
}
