//! Rendering views for people (table) and programs (JSON).

use super::observe::View;
use crate::contract::time::now_rfc3339;
use crate::contract::SandboxPhase;
use serde_json::{json, Value};

/// The JSON document of one sandbox (`status -o json`, one element of `list -o json`).
pub fn view_json(v: &View) -> Value {
    let r = &v.sandbox.record;
    let d = &v.derived;
    let i = &v.obs.intent;
    let objects: serde_json::Map<String, Value> = v
        .objects
        .iter()
        .map(|(k, n)| ((*k).to_owned(), Value::from(n.as_str())))
        .collect();
    json!({
        "name": v.sandbox.name.as_str(),
        "backend": r.backend,
        "phase": d.phase,
        "reason": d.reason,
        "message": d.message,
        "exit_code": d.exit_code,
        "intent": i.intent,
        "intent_at": i.at,
        "intent_by": i.by,
        "image": r.image,
        "id": r.id,
        "objects": objects,
        "workload": v.obs.workload.as_ref().map(|w| json!({
            "name": w.name,
            "state": w.raw_state,
            "exit_code": w.exit_code,
            "started_at": w.started_at_raw,
            "finished_at": w.finished_at_raw,
        })),
        "state_dir": v.sandbox.dir.as_ref().map(|d| &d.path),
        "status_current": d.status_current,
        "status_problem": v.obs.status_problem,
        "supervisor_status": v.obs.status,
        "supervisor_report": v.obs.report,
        "details": v.obs.details,
    })
}

/// `NAME BACKEND PHASE INTENT EXIT DETAIL`, columns sized to their content.
pub fn table(views: &[View]) -> String {
    let header = ["NAME", "BACKEND", "PHASE", "INTENT", "EXIT", "DETAIL"];
    let rows: Vec<[String; 6]> = views
        .iter()
        .map(|v| {
            let d = &v.derived;
            [
                v.sandbox.name.to_string(),
                v.sandbox.record.backend.to_string(),
                d.phase.to_string(),
                v.obs.intent.intent.as_str().to_owned(),
                d.exit_code.map_or("-".to_owned(), |c| c.to_string()),
                detail(d.reason.as_deref(), d.message.as_deref()),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// `status NAME` for people: one field per line.
pub fn describe(v: &View) -> String {
    let r = &v.sandbox.record;
    let d = &v.derived;
    let mut fields: Vec<(&str, String)> = vec![
        ("name", v.sandbox.name.to_string()),
        ("backend", r.backend.to_string()),
        ("phase", d.phase.to_string()),
    ];
    if let Some(reason) = &d.reason {
        fields.push(("reason", reason.clone()));
    }
    if let Some(m) = &d.message {
        fields.push(("message", m.clone()));
    }
    if let Some(c) = d.exit_code {
        fields.push(("exit code", c.to_string()));
    }
    let i = &v.obs.intent;
    fields.push((
        "intent",
        format!("{} (by {} at {})", i.intent.as_str(), i.by, i.at),
    ));
    fields.push((
        "workload",
        match &v.obs.workload {
            Some(w) => format!(
                "{} ({}, started {}, finished {})",
                w.name, w.raw_state, w.started_at_raw, w.finished_at_raw
            ),
            None => "gone".to_owned(),
        },
    ));
    for (kind, name) in &v.objects {
        fields.push((kind, name.clone()));
    }
    fields.push(("image", r.image.clone()));
    for (k, val) in &v.obs.details {
        // The scalars; the nested ones (a pod's container states) are for -o json.
        match val {
            Value::String(s) => fields.push((k, s.clone())),
            Value::Number(n) => fields.push((k, n.to_string())),
            Value::Bool(b) => fields.push((k, b.to_string())),
            _ => {}
        }
    }
    fields.push((
        "supervisor",
        match (&v.obs.status, &v.obs.status_problem, &v.obs.report) {
            (_, Some(p), _) => format!("no status: {p}"),
            (None, None, Some(r)) => format!(
                "{}{}{} (from the {})",
                r.phase,
                r.reason
                    .map(|r| format!("/{}", r.as_str()))
                    .unwrap_or_default(),
                r.message
                    .as_deref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default(),
                r.source
            ),
            (None, None, None) => "no report yet".to_owned(),
            (Some(s), None, _) => format!(
                "{} since {} (started {}, restarts {}){}",
                s.phase,
                s.since,
                s.supervisor.started_at,
                s.restarts,
                if d.status_current {
                    ""
                } else {
                    " [stale: written by an earlier run]"
                }
            ),
        },
    ));
    if let Some(dir) = &v.sandbox.dir {
        fields.push(("state dir", dir.path.display().to_string()));
    }
    let w = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    fields
        .iter()
        .map(|(k, val)| format!("{:<w$} {val}\n", format!("{k}:")))
        .collect()
}

/// A one-line summary for the action verbs: `NAME: PHASE (reason: message)`.
pub fn summary(v: &View) -> String {
    let d = &v.derived;
    let detail = detail(d.reason.as_deref(), d.message.as_deref());
    if detail.is_empty() {
        format!("{}: {}", v.sandbox.name, d.phase)
    } else {
        format!("{}: {} ({detail})", v.sandbox.name, d.phase)
    }
}

fn detail(reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message) {
        (Some(r), Some(m)) => format!("{r}: {m}"),
        (Some(r), None) => r.to_owned(),
        (None, Some(m)) => m.to_owned(),
        (None, None) => String::new(),
    }
}

/// One `watch` transition.
pub struct Transition<'a> {
    pub sandbox: &'a str,
    pub phase: SandboxPhase,
    pub previous: Option<SandboxPhase>,
    pub reason: Option<&'a str>,
    pub message: Option<&'a str>,
    pub exit_code: Option<i32>,
}

pub fn transition_json(t: &Transition<'_>) -> String {
    json!({
        "ts": now_rfc3339(),
        "sandbox": t.sandbox,
        "phase": t.phase,
        "previous": t.previous,
        "reason": t.reason,
        "message": t.message,
        "exit_code": t.exit_code,
    })
    .to_string()
}

pub fn transition_text(t: &Transition<'_>) -> String {
    let prev = t.previous.map_or("-".to_owned(), |p| p.to_string());
    let mut s = format!("{} {} {prev} -> {}", now_rfc3339(), t.sandbox, t.phase);
    let detail = detail(t.reason, t.message);
    if !detail.is_empty() {
        s.push_str(&format!(" ({detail})"));
    }
    if let Some(c) = t.exit_code {
        s.push_str(&format!(" [exit {c}]"));
    }
    s
}
