//! The verbs on the kube backend (`--backend kube`): the same verbs, exit codes and output
//! shapes as on podman and docker, with the cluster as the only state.

use super::client::Target;
use super::ops::{Kube, KubeView, POLL};
use super::render::{self, IntentAnnotations, SandboxSpec};
use super::{pod_name, pvc_name, CONTAINER};
use crate::contract::time::now_rfc3339;
use crate::contract::{CtlExit, SandboxPhase};
use crate::shim::cli::{
    CreateArgs, CreateOutput, DeleteArgs, ListArgs, OutputFormat, ResumeArgs, StartArgs,
    StatusArgs, StopArgs, Targets, WaitArgs, WatchArgs,
};
use crate::shim::error::{CtlError, Outcome};
use crate::shim::names::Name;
use crate::shim::output::{transition_json, transition_text, Transition};
use crate::shim::state::Intent;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tracing::info;

fn parse_name(n: &str) -> Result<Name, CtlError> {
    Name::parse(n).map_err(|e| CtlError::new(CtlExit::BadName, e))
}

fn usage(e: String) -> CtlError {
    CtlError::new(CtlExit::Usage, e)
}

/// The create request as objects; checks every flag first (nothing is contacted).
pub fn spec_of(args: &CreateArgs, namespace: String) -> Result<SandboxSpec, CtlError> {
    let name = parse_name(&args.name)?;
    render::check_quantity(&args.workspace_size).map_err(usage)?;
    render::check_dns("--namespace", &namespace, false).map_err(usage)?;
    if let Some(sc) = &args.storage_class {
        render::check_dns("--storage-class", sc, true).map_err(usage)?;
    }
    Ok(SandboxSpec {
        name,
        namespace,
        image: args
            .image
            .clone()
            .unwrap_or_else(|| render::DEFAULT_IMAGE.to_owned()),
        env: args.env.clone(),
        command: args.command.clone(),
        start: !args.no_start,
        workspace_size: args.workspace_size.clone(),
        storage_class: args.storage_class.clone(),
        grace: render::DEFAULT_GRACE,
        intent: IntentAnnotations {
            intent: if args.no_start { "stopped" } else { "running" }.into(),
            at: now_rfc3339(),
            by: "create".into(),
        },
    })
}

pub fn create(target: &Target, args: &CreateArgs) -> i32 {
    let mut outcome = Outcome::default();
    outcome.record(run_create(target, args));
    outcome.code()
}

fn run_create(target: &Target, args: &CreateArgs) -> Result<(), CtlError> {
    if args.dry_run {
        // Printing needs no cluster: the namespace is --namespace, else `default`.
        let ns = target.namespace.clone().unwrap_or_else(|| "default".into());
        let spec = spec_of(args, ns)?;
        match args.output {
            Some(CreateOutput::Json) => {
                let list = json!({"apiVersion": "v1", "kind": "List", "items": [
                    render::service(&spec), render::stateful_set(&spec)]});
                println!(
                    "{}",
                    serde_json::to_string_pretty(&list).expect("objects serialize")
                );
            }
            _ => print!("{}", render::to_yaml(&spec)),
        }
        return Ok(());
    }
    // Flags are checked before the cluster is contacted.
    spec_of(args, "default".into())?;
    let kube = Kube::open(target)?;
    let spec = spec_of(args, kube.namespace().to_owned())?;
    info!(event = "create.begin", sandbox = %spec.name, backend = "kube", image = %spec.image,
        namespace = %kube.namespace(), stop_timeout_secs = spec.termination_grace_secs(), "creating");
    kube.create(&spec)?;
    if args.no_start {
        let v = kube.observe_one(&spec.name)?;
        println!("{}", summary(&v));
        return Ok(());
    }
    start_wait(&kube, &spec.name, &args.wait, "create").map(drop)
}

/// Waits for Ready (or Completed) after a start; any other settled phase fails.
fn start_wait(kube: &Kube, name: &Name, wait: &WaitArgs, by: &str) -> Result<KubeView, CtlError> {
    let t0 = Instant::now();
    let deadline = t0 + wait.timeout;
    let mut last = None;
    loop {
        let v = kube.observe_one(name)?;
        let phase = v.derived.phase;
        if last != Some(phase) {
            info!(event = "start.phase", sandbox = %name, phase = %phase,
                elapsed_ms = t0.elapsed().as_millis() as u64, "phase");
            last = Some(phase);
        }
        if wait.no_wait || matches!(phase, SandboxPhase::Ready | SandboxPhase::Completed) {
            info!(event = "start.done", sandbox = %name, phase = %phase, by,
                elapsed_ms = t0.elapsed().as_millis() as u64, "started");
            println!("{}", summary(&v));
            return Ok(v);
        }
        if phase.is_settled() {
            return Err(CtlError::new(
                CtlExit::SandboxFailed,
                format!("did not become Ready: {}", summary(&v)),
            )
            .about(name.as_str()));
        }
        if Instant::now() >= deadline {
            return Err(CtlError::new(
                CtlExit::Timeout,
                format!(
                    "not Ready after {:?} (now {}); it keeps starting: follow it with `sandboxctl watch {name} --backend kube`",
                    wait.timeout,
                    summary(&v)
                ),
            )
            .about(name.as_str()));
        }
        std::thread::sleep(POLL);
    }
}

/// Records intent running, scales to 1, and restarts a pod that is failing (a fresh pod
/// runs the boot hook again and resets the kubelet's back-off).
fn start_one(kube: &Kube, name: &Name, wait: &WaitArgs, by: &str) -> Result<KubeView, CtlError> {
    info!(event = "start.begin", sandbox = %name, container = %name.container(), "starting");
    kube.set_intent(name, Intent::Running, by)?;
    kube.scale(name, 1, Intent::Running)?;
    let v = kube.observe_one(name)?;
    if v.pod.is_some() && matches!(v.derived.phase, SandboxPhase::Error | SandboxPhase::Failed) {
        info!(event = "kube.restart_pod", sandbox = %name, phase = %v.derived.phase,
            "deleting the failing pod so the StatefulSet makes a fresh one");
        kube.delete_pod(name, None)?;
    }
    start_wait(kube, name, wait, by)
}

fn connect(target: &Target) -> Result<Kube, CtlError> {
    Kube::open(target)
}

pub fn start(target: &Target, args: &StartArgs) -> i32 {
    let mut outcome = Outcome::default();
    let Some(kube) = outcome.record(connect(target)) else {
        return outcome.code();
    };
    for n in &args.names {
        if let Some(name) = outcome.record(parse_name(n)) {
            outcome.record(start_one(&kube, &name, &args.wait, "start"));
        }
    }
    outcome.code()
}

fn targets(kube: &Kube, t: &Targets) -> Result<Vec<Result<Name, CtlError>>, CtlError> {
    if t.all {
        Ok(kube.list()?.into_iter().map(|(n, _)| Ok(n)).collect())
    } else {
        Ok(t.names.iter().map(|n| parse_name(n)).collect())
    }
}

/// Records intent stopped, scales to 0 and waits for the pod to go: the kubelet sends the
/// supervisor SIGTERM and waits terminationGracePeriodSeconds (its --grace plus a margin);
/// `-t` shortens that for this stop by deleting the pod with that grace. The PVC stays.
fn stop_one(kube: &Kube, name: &Name, time: Option<u64>, by: &str) -> Result<KubeView, CtlError> {
    let t0 = Instant::now();
    let before = kube.observe_one(name)?;
    if before.derived.phase == SandboxPhase::Created {
        // Never started: nothing to stop, and it stays Created (as on podman and docker).
        println!("{}", summary(&before));
        return Ok(before);
    }
    let grace = time.unwrap_or_else(|| grace_of(&before));
    info!(event = "stop.begin", sandbox = %name, container = %pod_name(&name.container()),
        timeout_secs = grace, "stopping");
    kube.set_intent(name, Intent::Stopped, by)?;
    kube.scale(name, 0, Intent::Stopped)?;
    if let Some(t) = time {
        kube.delete_pod(name, Some(u32::try_from(t).unwrap_or(u32::MAX)))?;
    }
    // The kubelet's own kill after the grace, plus time for the API to see the pod gone.
    kube.wait_pod_gone(name, Duration::from_secs(grace + 60))?;
    let v = kube.observe_one(name)?;
    info!(event = "stop.done", sandbox = %name, phase = %v.derived.phase,
        elapsed_ms = t0.elapsed().as_millis() as u64, "stopped");
    println!("{}", summary(&v));
    match v.derived.phase {
        SandboxPhase::Stopped | SandboxPhase::Created => Ok(v),
        _ => Err(CtlError::new(
            CtlExit::EngineError,
            format!(
                "scaled to 0 but the sandbox is not stopped: {}",
                summary(&v)
            ),
        )
        .about(name.as_str())),
    }
}

/// The pod template's terminationGracePeriodSeconds (what the kubelet will wait).
fn grace_of(v: &KubeView) -> u64 {
    v.sts
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|p| p.termination_grace_period_seconds)
        .and_then(|g| u64::try_from(g).ok())
        .unwrap_or(30)
}

pub fn stop(target: &Target, args: &StopArgs) -> i32 {
    let mut outcome = Outcome::default();
    let Some(kube) = outcome.record(connect(target)) else {
        return outcome.code();
    };
    if let Some(list) = outcome.record(targets(&kube, &args.targets)) {
        for n in list {
            if let Some(name) = outcome.record(n) {
                outcome.record(stop_one(&kube, &name, args.time, "stop"));
            }
        }
    }
    outcome.code()
}

pub fn delete(target: &Target, args: &DeleteArgs) -> i32 {
    let mut outcome = Outcome::default();
    let Some(kube) = outcome.record(connect(target)) else {
        return outcome.code();
    };
    if let Some(list) = outcome.record(targets(&kube, &args.targets)) {
        for n in list {
            let Some(name) = outcome.record(n) else {
                continue;
            };
            let r = (|| {
                if kube.find(&name)?.is_none() {
                    return Err(unknown(&kube, &name));
                }
                stop_one(&kube, &name, None, "delete")?;
                kube.delete(&name)?;
                info!(event = "delete.done", sandbox = %name, container = %name.container(),
                    volume = %pvc_name(&name.container()), "deleted");
                println!("{name}: deleted");
                Ok(())
            })();
            outcome.record(r);
        }
    }
    outcome.code()
}

fn unknown(kube: &Kube, name: &Name) -> CtlError {
    CtlError::new(
        CtlExit::UnknownSandbox,
        format!(
            "no sandbox named {:?} in namespace {} (see `sandboxctl list --backend kube`)",
            name.as_str(),
            kube.namespace()
        ),
    )
}

pub fn status(target: &Target, args: &StatusArgs) -> i32 {
    let mut outcome = Outcome::default();
    let r = parse_name(&args.name).and_then(|name| {
        let kube = connect(target)?;
        let v = kube.observe_one(&name)?;
        Ok((kube, v))
    });
    if let Some((kube, v)) = outcome.record(r) {
        match args.output {
            OutputFormat::Json => println!(
                "{}",
                serde_json::to_string_pretty(&view_json(&kube, &v)).expect("views serialize")
            ),
            OutputFormat::Table => print!("{}", describe(&kube, &v)),
        }
    }
    outcome.code()
}

pub fn list(target: &Target, args: &ListArgs) -> i32 {
    let mut outcome = Outcome::default();
    let r = connect(target).and_then(|kube| {
        let views = kube.observe(kube.list()?)?;
        Ok((kube, views))
    });
    let Some((kube, views)) = outcome.record(r) else {
        return outcome.code();
    };
    match args.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(
                &views
                    .iter()
                    .map(|v| view_json(&kube, v))
                    .collect::<Vec<_>>()
            )
            .expect("views serialize")
        ),
        OutputFormat::Table => print!("{}", table(&views)),
    }
    outcome.code()
}

/// `watch` on the API's watch (no polling): a line per phase transition.
pub fn watch(target: &Target, args: &WatchArgs) -> i32 {
    let mut outcome = Outcome::default();
    let r = (|| {
        let only = args.name.as_deref().map(parse_name).transpose()?;
        let kube = connect(target)?;
        if let Some(n) = &only {
            if kube.find(n)?.is_none() {
                return Err(unknown(&kube, n));
            }
        }
        let deadline = args.timeout.and_then(|t| Instant::now().checked_add(t));
        let mut seen: BTreeMap<Name, (SandboxPhase, Option<String>)> = BTreeMap::new();
        let mut printed = 0u64;
        let mut print = |t: Transition<'_>| {
            let line = match args.output {
                OutputFormat::Json => transition_json(&t),
                OutputFormat::Table => transition_text(&t),
            };
            println!("{line}");
            printed += 1;
            args.count.is_some_and(|n| printed >= n)
        };
        let done = kube.watch(only.as_ref(), deadline, |name, v| match v {
            Some(v) => {
                let d = &v.derived;
                let now = (d.phase, d.reason.clone());
                let previous = seen.insert(name.clone(), now.clone());
                if previous.as_ref() == Some(&now) {
                    return false;
                }
                print(Transition {
                    sandbox: name.as_str(),
                    phase: d.phase,
                    previous: previous.map(|p| p.0),
                    reason: d.reason.as_deref(),
                    message: d.message.as_deref(),
                    exit_code: d.exit_code,
                })
            }
            None => {
                let previous = seen.remove(name).map(|p| p.0);
                print(Transition {
                    sandbox: name.as_str(),
                    phase: SandboxPhase::Missing,
                    previous,
                    reason: None,
                    message: Some("the sandbox was deleted"),
                    exit_code: None,
                }) || only.is_some()
            }
        })?;
        if !done {
            if let Some(n) = args.count {
                return Err(CtlError::new(
                    CtlExit::Timeout,
                    format!("watch: fewer than {n} transitions before the timeout"),
                ));
            }
        }
        Ok(())
    })();
    outcome.record(r);
    outcome.code()
}

/// After a power cut or a lost node: every sandbox whose intent is running but that is not
/// (scaled to 0 outside sandboxctl, pod failed or gone) is started; stopped ones stay.
pub fn resume(target: &Target, args: &ResumeArgs) -> i32 {
    let mut outcome = Outcome::default();
    let Some(kube) = outcome.record(connect(target)) else {
        return outcome.code();
    };
    let views = outcome
        .record(kube.list().and_then(|l| kube.observe(l)))
        .unwrap_or_default();
    for v in views {
        let name = &v.name;
        match v.intent.as_ref().map(|i| i.record.intent) {
            Some(Intent::Stopped) => {
                println!("{name}: left {} (intent stopped)", v.derived.phase);
                continue;
            }
            None => {
                outcome.record::<()>(Err(CtlError::new(
                    CtlExit::Conflict,
                    v.derived.message.clone().unwrap_or_default(),
                )
                .about(name.as_str())));
                continue;
            }
            Some(Intent::Running) => {}
        }
        match v.derived.phase {
            SandboxPhase::Error | SandboxPhase::Failed => {
                info!(event = "resume.start", sandbox = %name, phase = %v.derived.phase, "resuming");
                outcome.record(start_one(&kube, name, &args.wait, "resume"));
            }
            p => println!("{name}: already running ({p})"),
        }
    }
    outcome.code()
}

// ----- output -------------------------------------------------------------------------------

fn detail(v: &KubeView) -> String {
    let d = &v.derived;
    match (&d.reason, &d.message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.clone(),
        (None, Some(m)) => m.clone(),
        (None, None) => String::new(),
    }
}

pub fn summary(v: &KubeView) -> String {
    let d = detail(v);
    if d.is_empty() {
        format!("{}: {}", v.name, v.derived.phase)
    } else {
        format!("{}: {} ({d})", v.name, v.derived.phase)
    }
}

fn intent_str(v: &KubeView) -> &'static str {
    v.intent.as_ref().map_or("?", |i| i.record.intent.as_str())
}

fn table(views: &[KubeView]) -> String {
    let header = ["NAME", "BACKEND", "PHASE", "INTENT", "EXIT", "DETAIL"];
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            [
                v.name.to_string(),
                "kube".into(),
                v.derived.phase.to_string(),
                intent_str(v).into(),
                v.derived.exit_code.map_or("-".into(), |c| c.to_string()),
                detail(v),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.len());
        }
    }
    let line = |cells: [&str; 6]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                l.push_str(c);
            } else {
                l.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        format!("{}\n", l.trim_end())
    };
    let mut out = line(header);
    for r in &rows {
        out.push_str(&line(r.each_ref().map(String::as_str)));
    }
    out
}

fn pod_json(v: &KubeView) -> Value {
    let Some(p) = &v.pod else { return Value::Null };
    let st = p.status.as_ref();
    let c = st
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER));
    json!({
        "name": p.metadata.name,
        "phase": st.and_then(|s| s.phase.clone()),
        "node": p.spec.as_ref().and_then(|s| s.node_name.clone()),
        "terminating": p.metadata.deletion_timestamp.is_some(),
        "ready": c.map(|c| c.ready),
        "restarts": c.map(|c| c.restart_count),
        "state": c.and_then(|c| c.state.clone()),
        "last_state": c.and_then(|c| c.last_state.clone()),
    })
}

fn image_of(v: &KubeView) -> Option<String> {
    v.sts
        .spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .containers
        .first()?
        .image
        .clone()
}

fn view_json(kube: &Kube, v: &KubeView) -> Value {
    let d = &v.derived;
    let object = v.name.container();
    let i = v.intent.as_ref();
    json!({
        "name": v.name.as_str(),
        "backend": "kube",
        "phase": d.phase,
        "reason": d.reason,
        "message": d.message,
        "exit_code": d.exit_code,
        "intent": i.map(|i| i.record.intent),
        "intent_at": i.map(|i| i.record.at.clone()),
        "intent_by": i.map(|i| i.record.by.clone()),
        "image": image_of(v),
        "namespace": kube.namespace(),
        "statefulset": object,
        "service": object,
        "volume": pvc_name(&object),
        "replicas": v.sts.spec.as_ref().and_then(|s| s.replicas),
        "generation": v.sts.metadata.generation,
        "pod": pod_json(v),
    })
}

fn describe(kube: &Kube, v: &KubeView) -> String {
    let d = &v.derived;
    let object = v.name.container();
    let mut f: Vec<(&str, String)> = vec![
        ("name", v.name.to_string()),
        (
            "backend",
            format!(
                "kube (namespace {}, {})",
                kube.namespace(),
                kube.conn.server
            ),
        ),
        ("phase", d.phase.to_string()),
    ];
    if let Some(r) = &d.reason {
        f.push(("reason", r.clone()));
    }
    if let Some(m) = &d.message {
        f.push(("message", m.clone()));
    }
    if let Some(c) = d.exit_code {
        f.push(("exit code", c.to_string()));
    }
    if let Some(i) = &v.intent {
        f.push((
            "intent",
            format!(
                "{} (by {} at {})",
                i.record.intent.as_str(),
                i.record.by,
                i.record.at
            ),
        ));
    }
    f.push((
        "statefulset",
        format!(
            "{object} (replicas {})",
            v.sts.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
        ),
    ));
    f.push((
        "pod",
        match &v.pod {
            None => format!("{} (none)", pod_name(&object)),
            Some(p) => format!(
                "{} ({})",
                pod_name(&object),
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.clone())
                    .unwrap_or_default()
            ),
        },
    ));
    f.push(("volume", pvc_name(&object)));
    f.push(("image", image_of(v).unwrap_or_default()));
    let w = f.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    f.iter()
        .map(|(k, val)| format!("{:<w$} {val}\n", format!("{k}:")))
        .collect()
}
