//! The Kubernetes objects of one sandbox, rendered from a [`SandboxSpec`]: a StatefulSet
//! `openshell-NAME` and a headless Service of the same name. Pure: the same spec always
//! renders the same objects (`create --dry-run -o yaml` prints exactly what `create` sends).
//!
//! Why each field is what it is (README "## Kubernetes" has the operator's version):
//! - `replicas` 1 (0 with `--no-start`); stop/start scale it. `podManagementPolicy: Parallel`
//!   so a scale never waits on ordinal order; the workspace is the `volumeClaimTemplates`
//!   entry `workspace` (PVC `workspace-openshell-NAME-0`), which survives scale-to-0 and a
//!   reschedule to another node. `persistentVolumeClaimRetentionPolicy` says Retain for both
//!   cases explicitly: `delete` removes the PVC itself, on every cluster version.
//! - The container's `command` is the supervisor (PID 1) with the flags sandboxctl relies on:
//!   `--grace` (so `terminationGracePeriodSeconds` can out-wait it), `--status-dir` on an
//!   emptyDir, and `--termination-message` at the container's `terminationMessagePath`.
//!   Kubernetes ignores the image's ENTRYPOINT *and* CMD once `command` is set, so `args`
//!   always carries the agent: `-- COMMAND…`, or the image contract's CMD.
//! - Least privilege: the supervisor must start as root to run the trusted hook and drop the
//!   agent's privileges, so `runAsUser: 0`, but with every capability dropped except the
//!   seven it uses ([`CAPABILITIES`]), `allowPrivilegeEscalation: false` (no_new_privs on
//!   PID 1; Landlock and seccomp need it anyway), a read-only root filesystem, the runtime's
//!   default seccomp profile, no service-account token (the agent must not hold cluster
//!   credentials) and no service-link environment. Never `privileged`. This fits the
//!   "baseline" Pod Security Standard, not "restricted" (which forbids root).

use super::{
    ANNOTATION_INTENT, ANNOTATION_INTENT_AT, ANNOTATION_INTENT_BY, ANNOTATION_INTENT_GENERATION,
    CONTAINER, LABEL_APP_NAME, LABEL_APP_NAME_VALUE, LABEL_MANAGED_BY, WORKSPACE_VOLUME,
};
use crate::shim::names::{self, Name};
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, ExecAction, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SeccompProfile,
    SecurityContext, Service, ServiceSpec, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;
use std::time::Duration;

/// The image contract (README "## Images", images/Containerfile): where the supervisor, the
/// hook and the policy are, and the agent the image runs by default. A unit test checks these
/// against the Containerfile's ENTRYPOINT and CMD.
pub const SUPERVISOR: &str = "/usr/bin/supervisor";
pub const HOOK: &str = "/etc/openshell/boot.sh";
pub const POLICY: &str = "/etc/openshell/policy.yaml";
pub const STATUS_DIR: &str = "/run/openshell";
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);
pub const DEFAULT_AGENT: [&str; 6] = ["/bin/httpd", "-f", "-p", "8080", "-h", "/sandbox"];
/// The image `build.sh` tags and writes into the OCI archive.
pub const DEFAULT_IMAGE: &str = "localhost/openshell-sandbox:dev";
/// Kubernetes' default `terminationMessagePath`, spelled out.
pub const TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
pub const WORKSPACE_PATH: &str = "/sandbox";
pub const DEFAULT_WORKSPACE_SIZE: &str = "2Gi";

/// What the supervisor needs and nothing more (the agent gets none of them: it drops the
/// bounding set, all capability sets and sets no_new_privs before exec):
/// SETUID, SETGID: switch the agent to the policy's user and groups; SETPCAP: empty the
/// agent's bounding set; KILL: signal the agent, which then runs under another uid;
/// CHOWN, FOWNER: seed the workspace keeping owners and modes; DAC_OVERRIDE: the trusted
/// hook and the seeding write into the workspace, which the agent's user owns.
pub const CAPABILITIES: [&str; 7] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "KILL",
    "SETGID",
    "SETPCAP",
    "SETUID",
];

/// Everything that decides the objects.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSpec {
    pub name: Name,
    /// Random, made at create time (`Record::id`), on every object as a label.
    pub id: String,
    pub namespace: String,
    pub image: String,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// The agent; empty means the image contract's CMD ([`DEFAULT_AGENT`]).
    pub command: Vec<String>,
    /// Start it (replicas 1) or only create it (replicas 0, `--no-start`).
    pub start: bool,
    pub workspace_size: String,
    pub storage_class: Option<String>,
    /// The supervisor's `--grace`.
    pub grace: Duration,
    /// Intent annotations written with the objects (the first intent is part of create).
    pub intent: IntentAnnotations,
}

/// The intent as it is stored on the StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntentAnnotations {
    pub intent: String,
    pub at: String,
    pub by: String,
}

impl SandboxSpec {
    /// `openshell-NAME`: the StatefulSet, the Service, and the pod's prefix.
    pub fn object_name(&self) -> String {
        self.name.container()
    }

    /// `terminationGracePeriodSeconds`: the supervisor's grace plus the margin its own
    /// SIGKILL wait needs, as for the container engines' stop timeout.
    pub fn termination_grace_secs(&self) -> i64 {
        self.grace.as_secs_f64().ceil() as i64 + crate::shim::backend::STOP_MARGIN_SECS as i64
    }
}

/// The labels on every object; [`selector`] is the subset that selects the pod. The id
/// tells this sandbox's objects from those of an earlier sandbox of the same name.
pub fn labels(spec: &SandboxSpec) -> BTreeMap<String, String> {
    let mut l = selector(&spec.name);
    l.insert(LABEL_MANAGED_BY.into(), names::MANAGED_BY.into());
    l.insert(names::LABEL_ID.into(), spec.id.clone());
    l
}

/// Selects the sandbox's pod (immutable in a StatefulSet, so never grows).
pub fn selector(name: &Name) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_APP_NAME.into(), LABEL_APP_NAME_VALUE.into()),
        (names::LABEL_SANDBOX.into(), name.to_string()),
    ])
}

fn meta(spec: &SandboxSpec) -> ObjectMeta {
    ObjectMeta {
        name: Some(spec.object_name()),
        namespace: Some(spec.namespace.clone()),
        labels: Some(labels(spec)),
        ..ObjectMeta::default()
    }
}

pub fn service(spec: &SandboxSpec) -> Service {
    Service {
        metadata: meta(spec),
        spec: Some(ServiceSpec {
            // Headless: a stable DNS name, openshell-NAME-0.openshell-NAME.NS.svc, no proxy.
            cluster_ip: Some("None".into()),
            selector: Some(selector(&spec.name)),
            // The agent's address is known before it is Ready (the Ready gate is ours).
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn stateful_set(spec: &SandboxSpec) -> StatefulSet {
    let mut metadata = meta(spec);
    metadata.annotations = Some(BTreeMap::from([
        (ANNOTATION_INTENT.into(), spec.intent.intent.clone()),
        (ANNOTATION_INTENT_AT.into(), spec.intent.at.clone()),
        (ANNOTATION_INTENT_BY.into(), spec.intent.by.clone()),
        // A new object's generation is 1: the intent is recorded with it, acted on at once.
        (ANNOTATION_INTENT_GENERATION.into(), "1".into()),
    ]));
    let retain = || Some("Retain".to_owned());
    StatefulSet {
        metadata,
        spec: Some(StatefulSetSpec {
            replicas: Some(i32::from(spec.start)),
            pod_management_policy: Some("Parallel".into()),
            service_name: Some(spec.object_name()),
            selector: LabelSelector {
                match_labels: Some(selector(&spec.name)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: retain(),
                    when_scaled: retain(),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(spec)),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(spec)),
            },
            volume_claim_templates: Some(vec![workspace_claim(spec)]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The workspace claim itself, `workspace-openshell-NAME-0`: `create` makes it, so the
/// workspace exists from the start (as a podman volume does) and a storage problem shows at
/// once; the StatefulSet adopts it, the claim of its volumeClaimTemplates' name.
pub fn workspace_pvc(spec: &SandboxSpec) -> PersistentVolumeClaim {
    let mut c = workspace_claim(spec);
    c.metadata.name = Some(super::pvc_name(&spec.object_name()));
    c.metadata.namespace = Some(spec.namespace.clone());
    c
}

fn workspace_claim(spec: &SandboxSpec) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(WORKSPACE_VOLUME.into()),
            labels: Some(labels(spec)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage_class.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".into(),
                    Quantity(spec.workspace_size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// The supervisor's command line in the pod: PID 1, flags spelled out, agent after `--`.
pub fn supervisor_command(grace: Duration) -> Vec<String> {
    let grace = format_duration(grace);
    [
        SUPERVISOR,
        "--hook",
        HOOK,
        "--policy",
        POLICY,
        "--status-dir",
        STATUS_DIR,
        "--grace",
        &grace,
        "--termination-message",
        TERMINATION_MESSAGE_PATH,
        "--",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// A duration as the supervisor's `--grace` reads it: whole seconds as `10s`, else `ms`.
fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn pod_spec(spec: &SandboxSpec) -> PodSpec {
    let args: Vec<String> = if spec.command.is_empty() {
        DEFAULT_AGENT.map(str::to_owned).to_vec()
    } else {
        spec.command.clone()
    };
    let env: Vec<EnvVar> = spec
        .env
        .iter()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            EnvVar {
                name: k.into(),
                value: Some(v.into()),
                ..EnvVar::default()
            }
        })
        .collect();
    let mount = |name: &str, path: &str| VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        ..VolumeMount::default()
    };
    let runtime_default = || {
        Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            ..SeccompProfile::default()
        })
    };
    let container = Container {
        name: CONTAINER.into(),
        image: Some(spec.image.clone()),
        // Images loaded from an archive (kind, k3s, ctr import) are never pulled.
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(supervisor_command(spec.grace)),
        args: Some(args),
        env: (!env.is_empty()).then_some(env),
        working_dir: Some(WORKSPACE_PATH.into()),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(
                    [SUPERVISOR, "status", "--ready", "--status-dir", STATUS_DIR]
                        .map(str::to_owned)
                        .to_vec(),
                ),
            }),
            period_seconds: Some(2),
            timeout_seconds: Some(3),
            failure_threshold: Some(1),
            success_threshold: Some(1),
            ..Probe::default()
        }),
        termination_message_path: Some(TERMINATION_MESSAGE_PATH.into()),
        termination_message_policy: Some("File".into()),
        security_context: Some(SecurityContext {
            run_as_user: Some(0),
            run_as_group: Some(0),
            run_as_non_root: Some(false),
            privileged: Some(false),
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: Some(CAPABILITIES.map(str::to_owned).to_vec()),
            }),
            seccomp_profile: runtime_default(),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount(WORKSPACE_VOLUME, WORKSPACE_PATH),
            mount(STATUS_VOLUME, STATUS_DIR),
            mount(TMP_VOLUME, "/tmp"),
        ]),
        ..Container::default()
    };
    PodSpec {
        containers: vec![container],
        termination_grace_period_seconds: Some(spec.termination_grace_secs()),
        automount_service_account_token: Some(false),
        enable_service_links: Some(false),
        security_context: Some(PodSecurityContext {
            seccomp_profile: runtime_default(),
            ..PodSecurityContext::default()
        }),
        volumes: Some(vec![
            Volume {
                name: STATUS_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource {
                    medium: Some("Memory".into()),
                    size_limit: Some(Quantity("1Mi".into())),
                }),
                ..Volume::default()
            },
            Volume {
                name: TMP_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    }
}

/// The emptyDir holding status.json (gone with the pod; the termination message outlives it).
pub const STATUS_VOLUME: &str = "status";
/// The agent's /tmp: the root filesystem is read-only.
pub const TMP_VOLUME: &str = "tmp";

/// The objects as a YAML stream (`create --dry-run -o yaml`), in the order `create` makes
/// them, so that `kubectl apply -f` creates the governing Service and the workspace claim
/// before the StatefulSet.
pub fn to_yaml(spec: &SandboxSpec) -> String {
    let svc = serde_saphyr::to_string(&service(spec)).expect("a Service serializes");
    let pvc = serde_saphyr::to_string(&workspace_pvc(spec)).expect("a PVC serializes");
    let sts = serde_saphyr::to_string(&stateful_set(spec)).expect("a StatefulSet serializes");
    format!("---\n{svc}---\n{pvc}---\n{sts}")
}

/// `--workspace-size`: a Kubernetes quantity such as `2Gi`, `500Mi`, `10G`.
pub fn check_quantity(s: &str) -> Result<(), String> {
    let digits = s.find(|c: char| !(c.is_ascii_digit() || c == '.'));
    let (num, unit) = s.split_at(digits.unwrap_or(s.len()));
    let num_ok = !num.is_empty()
        && num.chars().filter(|c| *c == '.').count() <= 1
        && !num.starts_with('.')
        && !num.ends_with('.');
    const UNITS: [&str; 13] = [
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E",
    ];
    if num_ok && UNITS.contains(&unit) && num.parse::<f64>().is_ok_and(|n| n > 0.0) {
        Ok(())
    } else {
        Err(format!(
            "invalid --workspace-size {s:?}: expected a Kubernetes quantity such as 2Gi, 500Mi or 10G"
        ))
    }
}

/// `--namespace`: an RFC 1123 DNS label; `--storage-class`: a DNS subdomain.
pub fn check_dns(what: &str, s: &str, subdomain: bool) -> Result<(), String> {
    let max = if subdomain { 253 } else { 63 };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    let ok = s.len() <= max
        && if subdomain {
            s.split('.').all(label_ok)
        } else {
            label_ok(s)
        };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {s:?}: expected a DNS {} (lowercase letters, digits, '-'{})",
            if subdomain { "subdomain" } else { "label" },
            if subdomain { ", '.'" } else { "" }
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(name: &str) -> SandboxSpec {
        SandboxSpec {
            name: Name::parse(name).unwrap(),
            id: "0123456789abcdef0123456789abcdef".into(),
            namespace: "sandboxes".into(),
            image: DEFAULT_IMAGE.into(),
            env: vec!["A=1".into(), "B=x=y".into()],
            command: Vec::new(),
            start: true,
            workspace_size: DEFAULT_WORKSPACE_SIZE.into(),
            storage_class: None,
            grace: DEFAULT_GRACE,
            intent: IntentAnnotations {
                intent: "running".into(),
                at: "2026-11-22T14:18:17.123Z".into(),
                by: "create".into(),
            },
        }
    }

    #[test]
    fn names_labels_and_scale() {
        let s = spec("agent-1");
        let sts = stateful_set(&s);
        let svc = service(&s);
        assert_eq!(sts.metadata.name.as_deref(), Some("openshell-agent-1"));
        assert_eq!(svc.metadata.name.as_deref(), Some("openshell-agent-1"));
        let l = sts.metadata.labels.as_ref().unwrap();
        assert_eq!(l["app.kubernetes.io/managed-by"], "sandboxctl");
        assert_eq!(l[names::LABEL_SANDBOX], "agent-1");
        assert_eq!(l[names::LABEL_ID], "0123456789abcdef0123456789abcdef");
        let sp = sts.spec.as_ref().unwrap();
        assert_eq!(sp.replicas, Some(1));
        assert_eq!(sp.pod_management_policy.as_deref(), Some("Parallel"));
        assert_eq!(sp.service_name.as_deref(), Some("openshell-agent-1"));
        // The selector matches the template's labels (the API server refuses it otherwise).
        let tl = sp
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap();
        for (k, v) in sp.selector.match_labels.as_ref().unwrap() {
            assert_eq!(tl.get(k), Some(v), "{k}");
        }
        let mut stopped = spec("agent-1");
        stopped.start = false;
        assert_eq!(stateful_set(&stopped).spec.unwrap().replicas, Some(0));
        assert_eq!(
            svc.spec.as_ref().unwrap().cluster_ip.as_deref(),
            Some("None")
        );
    }

    #[test]
    fn the_pod_runs_the_supervisor_as_pid_1_with_least_privilege() {
        let s = spec("a");
        let pod = stateful_set(&s).spec.unwrap().template.spec.unwrap();
        let c = &pod.containers[0];
        let cmd = c.command.as_ref().unwrap();
        assert_eq!(cmd[0], SUPERVISOR);
        assert_eq!(cmd.last().map(String::as_str), Some("--"));
        assert_eq!(c.args.as_ref().unwrap(), &DEFAULT_AGENT.map(str::to_owned));
        // The pod's command must be one the supervisor accepts.
        let argv = cmd[1..]
            .iter()
            .chain(c.args.as_ref().unwrap())
            .map(std::ffi::OsString::from)
            .collect();
        let crate::supervisor::cli::Cli::Run(run) = crate::supervisor::cli::parse(argv).unwrap()
        else {
            panic!("the pod's command is not a supervisor run")
        };
        assert_eq!(run.grace, DEFAULT_GRACE);
        assert_eq!(
            run.termination_message.as_deref(),
            Some(std::path::Path::new(TERMINATION_MESSAGE_PATH))
        );
        assert!(pod.termination_grace_period_seconds.unwrap() > DEFAULT_GRACE.as_secs() as i64);
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.privileged, Some(false));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        let caps = sc.capabilities.as_ref().unwrap();
        assert_eq!(caps.drop.as_ref().unwrap(), &["ALL"]);
        assert!(!caps.add.as_ref().unwrap().iter().any(|c| c == "SYS_ADMIN"));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(
            c.readiness_probe
                .as_ref()
                .unwrap()
                .exec
                .as_ref()
                .unwrap()
                .command
                .as_ref()
                .unwrap()[..3],
            [SUPERVISOR, "status", "--ready"]
        );
        let env = c.env.as_ref().unwrap();
        assert_eq!(
            (env[1].name.as_str(), env[1].value.as_deref()),
            ("B", Some("x=y"))
        );
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| (m.name.as_str(), m.mount_path.as_str()))
            .collect();
        assert!(mounts.contains(&("workspace", "/sandbox")));
        assert!(mounts.contains(&("status", STATUS_DIR)));
        let mut custom = spec("a");
        custom.command = vec!["sleep".into(), "inf".into()];
        let pod = stateful_set(&custom).spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].args.as_ref().unwrap(), &["sleep", "inf"]);
    }

    /// The constants above are the image contract: they must say what the Containerfile says.
    #[test]
    fn constants_match_the_image_contract() {
        let cf = include_str!("../../../../images/Containerfile");
        let json_of = |key: &str| -> Vec<String> {
            let line = cf
                .lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key} in the Containerfile"));
            serde_json::from_str(line[key.len()..].trim()).unwrap()
        };
        let ep = json_of("ENTRYPOINT");
        let cmd = json_of("CMD");
        assert_eq!(cmd, DEFAULT_AGENT.map(str::to_owned));
        let sup = crate::shim::backend::SupervisorSettings::from_entrypoint(&ep).unwrap();
        assert_eq!(sup.grace, DEFAULT_GRACE);
        assert_eq!(sup.status_dir, STATUS_DIR);
        assert_eq!(ep[0], SUPERVISOR);
        for (flag, value) in [("--hook", HOOK), ("--policy", POLICY)] {
            let i = ep.iter().position(|a| a == flag).unwrap();
            assert_eq!(ep[i + 1], value, "{flag}");
        }
    }

    #[test]
    fn yaml_is_a_stream_of_the_two_objects() {
        let y = to_yaml(&spec("a"));
        assert!(y.starts_with("---\n"));
        assert_eq!(y.matches("\n---\n").count() + 1, 3, "{y}");
        assert!(
            y.contains("kind: Service")
                && y.contains("kind: PersistentVolumeClaim")
                && y.contains("kind: StatefulSet"),
            "{y}"
        );
        // Rendering is deterministic.
        assert_eq!(y, to_yaml(&spec("a")));
    }

    #[test]
    fn input_checks() {
        for ok in ["2Gi", "500Mi", "10G", "1.5Gi", "1"] {
            check_quantity(ok).unwrap();
        }
        for bad in ["", "Gi", "2gb", "-1Gi", "0", "1..5Gi", ".5Gi", "2 Gi"] {
            assert!(check_quantity(bad).is_err(), "{bad:?}");
        }
        check_dns("--namespace", "team-a", false).unwrap();
        check_dns("--storage-class", "fast.ssd", true).unwrap();
        for bad in ["", "Team", "a_b", "-a", "a.b"] {
            assert!(check_dns("--namespace", bad, false).is_err(), "{bad:?}");
        }
    }
}
