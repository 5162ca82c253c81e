//! A fake Kubernetes API server on 127.0.0.1, for the sandboxctl kube tests.
//!
//! **This is the one mock in the project.** No cluster can run on our machines (no
//! kube-apiserver, kubelet, kind or k3s can be installed or built offline), so the real
//! `sandboxctl` binary talks plain HTTP/1.1 to this server through a kubeconfig the test
//! writes. It implements what sandboxctl uses, with the API's semantics: StatefulSets,
//! Services, PVCs and pods (create, get, list with label selectors, JSON merge patch,
//! delete), the StatefulSet `scale` subresource, resourceVersion preconditions (409
//! Conflict), generations, and watches (chunked JSON event streams from a resourceVersion).
//! A tiny controller stands in for the StatefulSet controller and the kubelet: it makes the
//! PVC and the pod for replicas 1, deletes the pod for replicas 0 (or when the StatefulSet is
//! gone), and moves the container through its states (waiting ContainerCreating, running,
//! Ready; terminated with the supervisor's termination message on a stop; CrashLoopBackOff,
//! ImagePullBackOff and power cuts on request).
//!
//! What the pod does is scripted by its agent command: `fail-hook` makes the "supervisor"
//! exit 80 with `Failed/hook_failed: …` as its termination message; an image whose name
//! contains `missing` never pulls. The real supervisor in a real pod is exercised by
//! tests/kube_play.rs (podman kube play) instead.

#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Controller tick: how often pods move on.
const TICK: Duration = Duration::from_millis(40);
/// Ticks a running container needs before its readiness probe passes.
const READY_TICKS: u32 = 5;
/// Ticks a terminating pod takes to go (the supervisor's graceful stop).
const STOP_TICKS: u32 = 5;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    StatefulSet,
    Service,
    Pvc,
    Pod,
}

impl Kind {
    fn from_plural(s: &str) -> Option<Kind> {
        Some(match s {
            "statefulsets" => Kind::StatefulSet,
            "services" => Kind::Service,
            "persistentvolumeclaims" => Kind::Pvc,
            "pods" => Kind::Pod,
            _ => return None,
        })
    }
    fn kind(self) -> &'static str {
        match self {
            Kind::StatefulSet => "StatefulSet",
            Kind::Service => "Service",
            Kind::Pvc => "PersistentVolumeClaim",
            Kind::Pod => "Pod",
        }
    }
    fn api_version(self) -> &'static str {
        match self {
            Kind::StatefulSet => "apps/v1",
            _ => "v1",
        }
    }
}

type Key = (Kind, String, String);

#[derive(Default)]
struct World {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// (resourceVersion, kind, event type, object) for watches.
    events: Vec<(u64, Kind, &'static str, Value)>,
    /// Per pod: controller ticks in the current state.
    ticks: BTreeMap<String, u32>,
    /// Every request, for assertions: "METHOD path -> code".
    log: Vec<String>,
    /// Fault injection: before the next PATCH of this StatefulSet, another writer changes
    /// it (resourceVersion bump) `n` times.
    interfere: BTreeMap<String, u32>,
    /// Before the next scale of this StatefulSet, another operator records this intent.
    rival_intent: BTreeMap<String, &'static str>,
    /// The node is down: the kubelet does nothing.
    power_off: bool,
    uid: u64,
}

pub struct Fake {
    pub addr: String,
    state: Arc<(Mutex<World>, Condvar)>,
    stop: Arc<AtomicBool>,
    pub kubeconfig: std::path::PathBuf,
}

fn now() -> String {
    openshell_supervisor::contract::time::now_rfc3339()
}

impl World {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn record(&mut self, kind: Kind, ty: &'static str, obj: &Value) {
        let rv = self.rv;
        self.events.push((rv, kind, ty, obj.clone()));
    }

    fn put(&mut self, key: Key, mut obj: Value, ty: &'static str) -> Value {
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(key.0, ty, &obj);
        self.objects.insert(key, obj.clone());
        obj
    }

    fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(key.0, "DELETED", &obj);
        self.ticks.remove(&key.2);
        Some(obj)
    }

    fn create(&mut self, kind: Kind, ns: &str, mut obj: Value) -> Result<Value, (u16, String)> {
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let key = (kind, ns.to_owned(), name.clone());
        if self.objects.contains_key(&key) {
            return Err((409, format!("{} \"{name}\" already exists", kind.kind())));
        }
        self.uid += 1;
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind());
        obj["metadata"]["namespace"] = json!(ns);
        obj["metadata"]["uid"] = json!(format!("uid-{}", self.uid));
        obj["metadata"]["creationTimestamp"] = json!(now());
        if kind == Kind::StatefulSet {
            obj["metadata"]["generation"] = json!(1);
            obj["status"] = json!({"replicas": 0});
        }
        Ok(self.put(key, obj, "ADDED"))
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().unwrap();
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

fn matches_selector(obj: &Value, selector: Option<&str>) -> bool {
    let Some(sel) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &obj["metadata"]["labels"];
    sel.split(',').all(|term| match term.split_once('=') {
        Some((k, v)) => labels[k].as_str() == Some(v),
        None => labels.get(term).is_some(),
    })
}

fn status_body(code: u16, message: &str) -> Value {
    let reason = match code {
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        422 => "Invalid",
        _ => "BadRequest",
    };
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code})
}

impl Fake {
    /// Starts the server and the controller; writes a kubeconfig (context `fake`, namespace
    /// `sandboxes`) into `dir`.
    pub fn start(dir: &std::path::Path) -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new((Mutex::new(World::default()), Condvar::new()));
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, stop) = (state.clone(), stop.clone());
                    thread::spawn(move || serve(conn, &state, &stop));
                }
            });
        }
        {
            let (state, stop) = (state.clone(), stop.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    {
                        let (m, cv) = &*state;
                        let mut w = m.lock().unwrap();
                        reconcile(&mut w);
                        cv.notify_all();
                    }
                    thread::sleep(TICK);
                }
            });
        }
        std::fs::create_dir_all(dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{addr}\n\
                 users:\n- name: tester\n  user:\n    token: fake-token\n\
                 contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: tester\n    namespace: sandboxes\n\
                 current-context: fake\n"
            ),
        )
        .unwrap();
        Fake {
            addr,
            state,
            stop,
            kubeconfig,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let (m, cv) = &*self.state;
        let mut w = m.lock().unwrap();
        let r = f(&mut w);
        cv.notify_all();
        r
    }

    pub fn get(&self, kind: Kind, name: &str) -> Option<Value> {
        self.with(|w| {
            w.objects
                .get(&(kind, "sandboxes".into(), name.into()))
                .cloned()
        })
    }

    /// `kubectl scale --replicas=N` by someone else, through the scale subresource's effect.
    pub fn scale_outside(&self, sts: &str, replicas: i64) {
        self.with(|w| {
            let key = (Kind::StatefulSet, "sandboxes".to_owned(), sts.to_owned());
            let mut obj = w.objects.get(&key).cloned().expect("statefulset");
            obj["spec"]["replicas"] = json!(replicas);
            let g = obj["metadata"]["generation"].as_i64().unwrap_or(1);
            obj["metadata"]["generation"] = json!(g + 1);
            w.put(key, obj, "MODIFIED");
        });
    }

    /// Another writer changes the StatefulSet right before sandboxctl's next `n` PATCHes.
    pub fn interfere(&self, sts: &str, n: u32) {
        self.with(|w| w.interfere.insert(sts.to_owned(), n));
    }

    /// Another operator records `intent` right before sandboxctl's next scale.
    pub fn rival_intent(&self, sts: &str, intent: &'static str) {
        self.with(|w| w.rival_intent.insert(sts.to_owned(), intent));
    }

    /// The node loses power: every container dies with 137 and no termination message,
    /// and the kubelet restarts nothing while the power is off.
    pub fn power_cut(&self) {
        self.with(|w| {
            w.power_off = true;
            let keys: Vec<Key> = w.objects.keys().filter(|k| k.0 == Kind::Pod).cloned().collect();
            for k in keys {
                let mut p = w.objects[&k].clone();
                p["status"]["containerStatuses"] = json!([{"name": "sandbox", "ready": false,
                    "restartCount": 0, "image": "", "imageID": "",
                    "state": {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now()}}}]);
                p["status"]["conditions"] = json!([{"type": "Ready", "status": "False"}]);
                w.put(k, p, "MODIFIED");
            }
        });
    }

    pub fn power_on(&self) {
        self.with(|w| w.power_off = false);
    }

    /// Requests seen, e.g. "PATCH /apis/apps/v1/namespaces/sandboxes/statefulsets/x -> 409".
    pub fn log(&self) -> Vec<String> {
        self.with(|w| w.log.clone())
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        self.state.1.notify_all();
    }
}

/// The StatefulSet controller and the kubelet, one step.
fn reconcile(w: &mut World) {
    let sets: Vec<(Key, Value)> = w
        .objects
        .iter()
        .filter(|(k, _)| k.0 == Kind::StatefulSet)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, sts) in &sets {
        let (ns, name) = (&key.1, &key.2);
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        let pod_key = (Kind::Pod, ns.clone(), format!("{name}-0"));
        let pod = w.objects.get(&pod_key).cloned();
        if replicas >= 1 && pod.is_none() {
            // The PVC from the template, once; the pod from the template.
            for t in sts["spec"]["volumeClaimTemplates"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let claim = format!("{}-{name}-0", t["metadata"]["name"].as_str().unwrap());
                let pvc_key = (Kind::Pvc, ns.clone(), claim.clone());
                if !w.objects.contains_key(&pvc_key) {
                    let mut pvc = json!({"metadata": t["metadata"].clone(), "spec": t["spec"].clone(),
                        "status": {"phase": "Bound"}});
                    pvc["metadata"]["name"] = json!(claim);
                    let _ = w.create(Kind::Pvc, ns, pvc);
                }
            }
            let tpl = &sts["spec"]["template"];
            let mut pod = json!({"metadata": tpl["metadata"].clone(), "spec": tpl["spec"].clone(),
                "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}});
            pod["metadata"]["name"] = json!(format!("{name}-0"));
            pod["metadata"]["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": "StatefulSet",
                "name": name, "uid": sts["metadata"]["uid"], "controller": true}]);
            pod["spec"]["nodeName"] = json!("fake-node");
            let _ = w.create(Kind::Pod, ns, pod);
        }
        if replicas == 0 {
            if let Some(mut p) = pod.clone() {
                if p["metadata"]["deletionTimestamp"].is_null() {
                    p["metadata"]["deletionTimestamp"] = json!(now());
                    w.put(pod_key.clone(), p, "MODIFIED");
                }
            }
        }
        // Status: the controller has seen this generation.
        let cur = w.objects.get(key).cloned().unwrap();
        let count = i64::from(w.objects.contains_key(&pod_key));
        if cur["status"]["observedGeneration"] != cur["metadata"]["generation"]
            || cur["status"]["replicas"].as_i64() != Some(count)
        {
            let mut s = cur.clone();
            s["status"]["observedGeneration"] = cur["metadata"]["generation"].clone();
            s["status"]["replicas"] = json!(count);
            w.put(key.clone(), s, "MODIFIED");
        }
    }
    // Pods whose StatefulSet is gone are garbage-collected.
    let orphans: Vec<Key> = w
        .objects
        .iter()
        .filter(|(k, p)| {
            k.0 == Kind::Pod
                && p["metadata"]["deletionTimestamp"].is_null()
                && !p["metadata"]["ownerReferences"][0]["name"]
                    .as_str()
                    .is_some_and(|o| {
                        w.objects
                            .contains_key(&(Kind::StatefulSet, k.1.clone(), o.to_owned()))
                    })
        })
        .map(|(k, _)| k.clone())
        .collect();
    for k in orphans {
        let mut p = w.objects[&k].clone();
        p["metadata"]["deletionTimestamp"] = json!(now());
        w.put(k, p, "MODIFIED");
    }
    if w.power_off {
        return;
    }
    let pods: Vec<(Key, Value)> = w
        .objects
        .iter()
        .filter(|(k, _)| k.0 == Kind::Pod)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, pod) in pods {
        kubelet(w, key, pod);
    }
}

fn container_status(state: Value, last: Value, ready: bool, restarts: i64) -> Value {
    json!([{"name": "sandbox", "ready": ready, "restartCount": restarts, "image": "", "imageID": "",
        "state": state, "lastState": last}])
}

fn kubelet(w: &mut World, key: Key, mut pod: Value) {
    let name = key.2.clone();
    let t = {
        let t = w.ticks.entry(name.clone()).or_insert(0);
        *t += 1;
        *t
    };
    let c = &pod["spec"]["containers"][0];
    let image = c["image"].as_str().unwrap_or_default().to_owned();
    let args: Vec<String> = c["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let cs = pod["status"]["containerStatuses"][0].clone();
    let restarts = cs["restartCount"].as_i64().unwrap_or(0);
    let set = |pod: &mut Value, phase: &str, status: Value, ready: bool| {
        pod["status"]["phase"] = json!(phase);
        pod["status"]["containerStatuses"] = status;
        pod["status"]["conditions"] = json!([{"type": "PodScheduled", "status": "True"},
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]);
    };
    if !pod["metadata"]["deletionTimestamp"].is_null() {
        // SIGTERM: the supervisor stops the agent and writes its last word, then the pod goes.
        if cs["state"].get("running").is_some() {
            set(
                &mut pod,
                "Running",
                container_status(
                    json!({"terminated": {"exitCode": 0, "reason": "Completed", "message": "Stopped", "finishedAt": now()}}),
                    Value::Null,
                    false,
                    restarts,
                ),
                false,
            );
            w.ticks.insert(name, 0);
            w.put(key, pod, "MODIFIED");
        } else if t >= STOP_TICKS {
            w.remove(&key);
        }
        return;
    }
    let before = pod.clone();
    if image.contains("missing") {
        let reason = if t < 3 {
            "ErrImagePull"
        } else {
            "ImagePullBackOff"
        };
        set(
            &mut pod,
            "Pending",
            container_status(
                json!({"waiting": {"reason": reason, "message": format!("failed to pull image \"{image}\": not found")}}),
                json!({}),
                false,
                0,
            ),
            false,
        );
    } else if cs.is_null() {
        set(
            &mut pod,
            "Pending",
            container_status(
                json!({"waiting": {"reason": "ContainerCreating"}}),
                json!({}),
                false,
                0,
            ),
            false,
        );
    } else if args.iter().any(|a| a == "fail-hook") {
        let dead = json!({"exitCode": 80, "reason": "Error",
            "message": "Failed/hook_failed: boot hook /etc/openshell/boot.sh exited with code 3", "finishedAt": now()});
        if cs["state"].get("terminated").is_some() {
            set(
                &mut pod,
                "Running",
                container_status(
                    json!({"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 10s restarting failed container"}}),
                    json!({"terminated": dead}),
                    false,
                    restarts + 1,
                ),
                false,
            );
        } else if cs["state"]
            .get("waiting")
            .is_some_and(|w| w["reason"] == "ContainerCreating")
        {
            set(
                &mut pod,
                "Running",
                container_status(json!({"terminated": dead}), json!({}), false, restarts),
                false,
            );
        }
    } else if cs["state"].get("waiting").is_some() {
        set(
            &mut pod,
            "Running",
            container_status(
                json!({"running": {"startedAt": now()}}),
                cs["lastState"].clone(),
                false,
                restarts,
            ),
            false,
        );
        w.ticks.insert(name.clone(), 0);
    } else if cs["state"].get("running").is_some()
        && !cs["ready"].as_bool().unwrap_or(false)
        && t >= READY_TICKS
    {
        set(
            &mut pod,
            "Running",
            container_status(cs["state"].clone(), cs["lastState"].clone(), true, restarts),
            true,
        );
    }
    if pod != before {
        w.put(key, pod, "MODIFIED");
    }
}

// ----- HTTP ---------------------------------------------------------------------------------

struct Request {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?.to_owned();
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().ok()?;
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
    let query = q
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_owned(), unescape(v))
        })
        .collect();
    Some(Request {
        method,
        path: path.to_owned(),
        query,
        body,
    })
}

fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 3 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn respond(s: &mut TcpStream, code: u16, body: &Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        s,
        "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn serve(conn: TcpStream, state: &Arc<(Mutex<World>, Condvar)>, stop: &AtomicBool) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut out = conn;
    while let Some(req) = read_request(&mut reader) {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        if req.query.get("watch").map(String::as_str) == Some("true") {
            let _ = watch(&mut out, &req, state, stop);
            return;
        }
        let (code, body) = {
            let (m, cv) = &**state;
            let mut w = m.lock().unwrap();
            let r = handle(&mut w, &req);
            w.log
                .push(format!("{} {} -> {}", req.method, req.path, r.0));
            cv.notify_all();
            r
        };
        if respond(&mut out, code, &body).is_err() {
            return;
        }
    }
}

/// `/apis/apps/v1/namespaces/NS/statefulsets[/NAME[/scale]]`, `/api/v1/namespaces/NS/pods…`
fn route(path: &str) -> Option<(Kind, String, Option<String>, Option<String>)> {
    let rest = path
        .strip_prefix("/apis/apps/v1/namespaces/")
        .or_else(|| path.strip_prefix("/api/v1/namespaces/"))?;
    let mut it = rest.split('/');
    let ns = it.next()?.to_owned();
    let kind = Kind::from_plural(it.next()?)?;
    let name = it.next().map(str::to_owned);
    let sub = it.next().map(str::to_owned);
    Some((kind, ns, name, sub))
}

fn handle(w: &mut World, req: &Request) -> (u16, Value) {
    let Some((kind, ns, name, sub)) = route(&req.path) else {
        return (404, status_body(404, &format!("no route for {}", req.path)));
    };
    let body: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
    let key = |n: &str| (kind, ns.clone(), n.to_owned());
    match (req.method.as_str(), name, sub.as_deref()) {
        ("GET", None, None) => {
            let sel = req.query.get("labelSelector").map(String::as_str);
            let items: Vec<Value> = w
                .objects
                .iter()
                .filter(|(k, v)| k.0 == kind && k.1 == ns && matches_selector(v, sel))
                .map(|(_, v)| v.clone())
                .collect();
            (
                200,
                json!({"apiVersion": kind.api_version(), "kind": format!("{}List", kind.kind()),
                "metadata": {"resourceVersion": w.rv.to_string()}, "items": items}),
            )
        }
        ("POST", None, None) => match w.create(kind, &ns, body) {
            Ok(o) => (201, o),
            Err((c, m)) => (c, status_body(c, &m)),
        },
        ("GET", Some(n), None) => match w.objects.get(&key(&n)) {
            Some(o) => (200, o.clone()),
            None => (
                404,
                status_body(
                    404,
                    &format!("{} \"{n}\" not found", kind.kind().to_lowercase()),
                ),
            ),
        },
        ("GET", Some(n), Some("scale")) => match w.objects.get(&key(&n)) {
            Some(o) => (200, scale_of(o)),
            None => (
                404,
                status_body(404, &format!("statefulset \"{n}\" not found")),
            ),
        },
        ("PATCH", Some(n), sub) => {
            // Fault injection: someone else writes first.
            if let Some(left) = w.interfere.get_mut(&n) {
                if *left > 0 {
                    *left -= 1;
                    let k = key(&n);
                    if let Some(o) = w.objects.get(&k).cloned() {
                        w.put(k, o, "MODIFIED");
                    }
                }
            }
            if sub == Some("scale") {
                if let Some(intent) = w.rival_intent.remove(&n) {
                    let k = key(&n);
                    let mut o = w.objects[&k].clone();
                    o["metadata"]["annotations"]["io.openshell.intent"] = json!(intent);
                    o["metadata"]["annotations"]["io.openshell.intent-by"] = json!("rival");
                    w.put(k, o, "MODIFIED");
                }
            }
            let k = key(&n);
            let Some(cur) = w.objects.get(&k).cloned() else {
                return (
                    404,
                    status_body(
                        404,
                        &format!("{} \"{n}\" not found", kind.kind().to_lowercase()),
                    ),
                );
            };
            let want_rv = body["metadata"]["resourceVersion"].as_str();
            if want_rv.is_some() && want_rv != cur["metadata"]["resourceVersion"].as_str() {
                return (409, status_body(409, &format!(
                    "Operation cannot be fulfilled on {} \"{n}\": the object has been modified; please apply your changes to the latest version and try again",
                    kind.kind().to_lowercase())));
            }
            let mut next = cur.clone();
            let mut patch = body.clone();
            if let Some(m) = patch.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("resourceVersion");
            }
            if sub == Some("scale") {
                let replicas = patch["spec"]["replicas"].clone();
                patch = json!({"spec": {"replicas": replicas}});
            }
            merge(&mut next, &patch);
            if next["spec"] != cur["spec"] {
                let g = cur["metadata"]["generation"].as_i64().unwrap_or(1);
                next["metadata"]["generation"] = json!(g + 1);
            }
            let o = w.put(k, next, "MODIFIED");
            (
                200,
                if sub == Some("scale") {
                    scale_of(&o)
                } else {
                    o
                },
            )
        }
        ("DELETE", Some(n), None) => {
            let k = key(&n);
            let Some(mut o) = w.objects.get(&k).cloned() else {
                return (
                    404,
                    status_body(
                        404,
                        &format!("{} \"{n}\" not found", kind.kind().to_lowercase()),
                    ),
                );
            };
            if kind == Kind::Pod {
                // Graceful: the kubelet stops it, then it goes.
                if o["metadata"]["deletionTimestamp"].is_null() {
                    o["metadata"]["deletionTimestamp"] = json!(now());
                    let o = w.put(k, o, "MODIFIED");
                    return (200, o);
                }
                return (200, o);
            }
            let o = w.remove(&k).unwrap();
            (200, o)
        }
        _ => (405, status_body(405, "method not allowed")),
    }
}

fn scale_of(sts: &Value) -> Value {
    json!({"apiVersion": "autoscaling/v1", "kind": "Scale",
        "metadata": {"name": sts["metadata"]["name"], "namespace": sts["metadata"]["namespace"],
            "resourceVersion": sts["metadata"]["resourceVersion"]},
        "spec": {"replicas": sts["spec"]["replicas"]},
        "status": {"replicas": sts["status"]["replicas"].as_i64().unwrap_or(0)}})
}

fn chunk(s: &mut TcpStream, data: &str) -> std::io::Result<()> {
    write!(s, "{:x}\r\n{data}\r\n", data.len())?;
    s.flush()
}

fn watch(
    out: &mut TcpStream,
    req: &Request,
    state: &Arc<(Mutex<World>, Condvar)>,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    let Some((kind, ns, _, _)) = route(&req.path) else {
        return respond(out, 404, &status_body(404, "no route"));
    };
    let sel = req.query.get("labelSelector").cloned();
    let mut from: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30u64);
    let end = Instant::now() + Duration::from_secs(timeout);
    write!(
        out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )?;
    out.flush()?;
    {
        let (m, _) = &**state;
        m.lock()
            .unwrap()
            .log
            .push(format!("WATCH {} -> 200", req.path));
    }
    loop {
        let batch: Vec<String> = {
            let (m, cv) = &**state;
            let mut w = m.lock().unwrap();
            loop {
                if stop.load(Ordering::Relaxed) || Instant::now() >= end {
                    break;
                }
                if w.events.iter().any(|e| e.0 > from && e.1 == kind) {
                    break;
                }
                w = cv.wait_timeout(w, Duration::from_millis(200)).unwrap().0;
            }
            let evs: Vec<String> = w
                .events
                .iter()
                .filter(|e| e.0 > from && e.1 == kind)
                .filter(|e| e.3["metadata"]["namespace"] == json!(ns))
                .filter(|e| matches_selector(&e.3, sel.as_deref()))
                .map(|e| format!("{}\n", json!({"type": e.2, "object": e.3})))
                .collect();
            from = w.rv;
            evs
        };
        for e in batch {
            chunk(out, &e)?;
        }
        if stop.load(Ordering::Relaxed) || Instant::now() >= end {
            chunk(out, "")?;
            return Ok(());
        }
    }
}
