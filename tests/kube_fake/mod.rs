//! A fake Kubernetes API server on 127.0.0.1, for the sandboxctl kube tests.
//!
//! **This is the one mock in the project.** No cluster can run on our machines (no
//! kube-apiserver, kubelet, kind or k3s can be installed or built offline), so the real
//! `sandboxctl` binary talks plain HTTP/1.1 to this server through a kubeconfig the test
//! writes. It implements what sandboxctl uses, with the API's semantics: StatefulSets,
//! Services, PVCs, pods and Leases (create, get, list with label selectors, JSON merge
//! patch, delete with preconditions and a grace period), the StatefulSet `scale`
//! subresource, resourceVersion preconditions (409 Conflict), generations, and watches
//! (chunked JSON event streams from a resourceVersion).
//!
//! Standing in for the cluster's other parts:
//! - the StatefulSet controller (`reconcile`): makes pod `NAME-0` (with its claim volume)
//!   and the claim from the volumeClaimTemplates for replicas 1, deletes the pod for
//!   replicas 0 or when the StatefulSet is gone, and keeps status/observedGeneration;
//! - a provisioner: every PVC is bound to a host directory `<node>/pv/<namespace>/<claim>`
//!   (removed with the claim), like the local-path provisioners of kind and k3s;
//! - one node whose kubelet (`kubelet.rs`) runs the pods **for real** as podman containers.
//!   So what the conformance suite checks through this fake (the hook's boot log on the
//!   workspace, the agent's confinement as the kernel reports it, the supervisor's
//!   termination message, SIGTERM on a stop) is real; only the API server and the
//!   controllers are pretend.

#![allow(dead_code)]

use serde_json::{json, Value};
pub mod kubelet;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Controller tick.
const TICK: Duration = Duration::from_millis(40);

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Kind {
    StatefulSet,
    Service,
    Pvc,
    Pod,
    Lease,
}

impl Kind {
    fn from_plural(s: &str) -> Option<Kind> {
        Some(match s {
            "statefulsets" => Kind::StatefulSet,
            "services" => Kind::Service,
            "persistentvolumeclaims" => Kind::Pvc,
            "pods" => Kind::Pod,
            "leases" => Kind::Lease,
            _ => return None,
        })
    }
    fn kind(self) -> &'static str {
        match self {
            Kind::StatefulSet => "StatefulSet",
            Kind::Service => "Service",
            Kind::Pvc => "PersistentVolumeClaim",
            Kind::Pod => "Pod",
            Kind::Lease => "Lease",
        }
    }
    fn api_version(self) -> &'static str {
        match self {
            Kind::StatefulSet => "apps/v1",
            Kind::Lease => "coordination.k8s.io/v1",
            _ => "v1",
        }
    }
}

type Key = (Kind, String, String);

#[derive(Default)]
pub struct World {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// (resourceVersion, kind, event type, object) for watches.
    events: Vec<(u64, Kind, &'static str, Value)>,
    /// The node's directory: PV directories and pod volumes.
    node: PathBuf,
    /// Every request, for assertions: "METHOD path -> code".
    log: Vec<String>,
    /// Fault injection: before the next PATCH of this StatefulSet, another writer changes
    /// it (resourceVersion bump) `n` times.
    interfere: BTreeMap<String, u32>,
    /// Before the next scale of this StatefulSet, another operator records this intent.
    rival_intent: BTreeMap<String, &'static str>,
    /// Pods (by uid) whose node lost power: their container was killed, nothing restarts.
    powered_off: BTreeSet<String>,
    /// The container each pod (by uid) runs in now.
    containers: BTreeMap<String, String>,
    uid: u64,
}

pub struct Fake {
    pub addr: String,
    state: Arc<(Mutex<World>, Condvar)>,
    stop: Arc<AtomicBool>,
    pub kubeconfig: PathBuf,
    /// The node's directory (PVs, pod volumes).
    pub node: PathBuf,
    /// On every container the node runs (label `io.openshell.fake-kubelet`).
    pub node_id: String,
}

pub fn now() -> String {
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
        if key.0 == Kind::Pvc {
            // Reclaim policy Delete: the volume goes with its claim.
            let _ = std::fs::remove_dir_all(kubelet::pv_dir(&self.node, &key.1, &key.2));
        }
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
        if kind == Kind::Pvc {
            // The provisioner binds it to a fresh host directory.
            let dir = kubelet::pv_dir(&self.node, ns, &name);
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).map_err(|e| (500, e.to_string()))?;
            kubelet::set_mode(&dir, 0o755);
            obj["status"] = json!({"phase": "Bound"});
            obj["spec"]["volumeName"] = json!(format!("pvc-{}", self.uid));
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
    /// Starts the server, the controller and the node; writes a kubeconfig (context `fake`,
    /// namespace `sandboxes`) into `dir`, where the node keeps its volumes too.
    pub fn start(dir: &Path) -> Fake {
        std::fs::create_dir_all(dir).unwrap();
        let node = dir.join("node");
        std::fs::create_dir_all(&node).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
        let addr = listener.local_addr().unwrap().to_string();
        let node_id = format!("{}-{}", std::process::id(), addr.replace([':', '.'], "-"));
        let world = World {
            node: node.clone(),
            ..World::default()
        };
        let state = Arc::new((Mutex::new(world), Condvar::new()));
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
        {
            let (state, stop, node, id) =
                (state.clone(), stop.clone(), node.clone(), node_id.clone());
            thread::spawn(move || kubelet::run(state, stop, node, id));
        }
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
            node,
            node_id,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let (m, cv) = &*self.state;
        let mut w = m.lock().unwrap();
        let r = f(&mut w);
        cv.notify_all();
        r
    }

    /// An object in namespace `sandboxes` (the kubeconfig's).
    pub fn get(&self, kind: Kind, name: &str) -> Option<Value> {
        self.get_in("sandboxes", kind, name)
    }

    pub fn get_in(&self, ns: &str, kind: Kind, name: &str) -> Option<Value> {
        self.with(|w| w.objects.get(&(kind, ns.into(), name.into())).cloned())
    }

    /// Makes an object as another client would (e.g. a Lease someone holds).
    pub fn create_in(&self, ns: &str, kind: Kind, obj: Value) -> Value {
        self.with(|w| w.create(kind, ns, obj)).expect("create")
    }

    /// Removes every object of `kind` in namespace `ns`.
    pub fn clear_namespace_kind(&self, ns: &str, kind: Kind) {
        self.with(|w| {
            let keys: Vec<Key> = w
                .objects
                .keys()
                .filter(|k| k.1 == ns && k.0 == kind)
                .cloned()
                .collect();
            for k in keys {
                w.remove(&k);
            }
        });
    }

    /// Removes every object of namespace `ns` (a test's leftovers).
    pub fn clear_namespace(&self, ns: &str) {
        self.with(|w| {
            let keys: Vec<Key> = w.objects.keys().filter(|k| k.1 == ns).cloned().collect();
            for k in keys {
                w.remove(&k);
            }
        });
    }

    /// `kubectl scale --replicas=N` by someone else, through the scale subresource's effect.
    pub fn scale_outside(&self, sts: &str, replicas: i64) {
        self.scale_outside_in("sandboxes", sts, replicas)
    }

    pub fn scale_outside_in(&self, ns: &str, sts: &str, replicas: i64) {
        self.with(|w| {
            let key = (Kind::StatefulSet, ns.to_owned(), sts.to_owned());
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

    /// The node that runs pod `ns/pod` loses power: its container is SIGKILLed (the
    /// supervisor gets no notice and writes nothing) and the kubelet restarts nothing of that
    /// pod until it is replaced (see `kubelet.rs` for why).
    pub fn power_cut(&self, ns: &str, pod: &str) {
        let (uid, ctr) = self.with(|w| {
            let uid = w.objects[&(Kind::Pod, ns.to_owned(), pod.to_owned())]["metadata"]["uid"]
                .as_str()
                .unwrap()
                .to_owned();
            w.powered_off.insert(uid.clone());
            let ctr = w.containers.get(&uid).cloned();
            (uid, ctr)
        });
        let ctr = ctr.unwrap_or_else(|| panic!("pod {ns}/{pod} ({uid}) runs no container"));
        let (code, _, err) = kubelet::podman(&["kill", "--signal", "KILL", &ctr]);
        assert_eq!(code, 0, "podman kill {ctr}: {err}");
    }

    /// The container pod `ns/pod` runs in now.
    pub fn container_of(&self, ns: &str, pod: &str) -> Option<String> {
        self.with(|w| {
            let uid = w.objects.get(&(Kind::Pod, ns.to_owned(), pod.to_owned()))?["metadata"]
                ["uid"]
                .as_str()?
                .to_owned();
            w.containers.get(&uid).cloned()
        })
    }

    /// The host directory behind claim `ns/claim`.
    pub fn pv_dir(&self, ns: &str, claim: &str) -> PathBuf {
        kubelet::pv_dir(&self.node, ns, claim)
    }

    /// Requests seen, e.g. "PATCH /apis/apps/v1/namespaces/sandboxes/statefulsets/x -> 409".
    pub fn log(&self) -> Vec<String> {
        self.with(|w| w.log.clone())
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.remove_node();
    }
}

impl Fake {
    /// Stops everything and removes the node: its containers and its directory.
    pub fn remove_node(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(&self.addr);
        self.state.1.notify_all();
        let (_, out, _) = kubelet::podman(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={}={}", kubelet::NODE_LABEL, self.node_id),
            "--format",
            "{{.Names}}",
        ]);
        for name in out.lines().filter(|l| !l.is_empty()) {
            let _ = kubelet::podman(&["rm", "-f", "-t", "0", name]);
        }
        if let Some(dir) = self.node.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The StatefulSet controller and the garbage collector, one step.
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
            // The claims from the templates (an existing one of that name is adopted), and
            // the pod from the template with a volume for each claim.
            let tpl = &sts["spec"]["template"];
            let mut spec = tpl["spec"].clone();
            for t in sts["spec"]["volumeClaimTemplates"]
                .as_array()
                .cloned()
                .unwrap_or_default()
            {
                let vname = t["metadata"]["name"].as_str().unwrap();
                let claim = format!("{vname}-{name}-0");
                let pvc_key = (Kind::Pvc, ns.clone(), claim.clone());
                if !w.objects.contains_key(&pvc_key) {
                    let mut pvc =
                        json!({"metadata": t["metadata"].clone(), "spec": t["spec"].clone()});
                    pvc["metadata"]["name"] = json!(claim);
                    let _ = w.create(Kind::Pvc, ns, pvc);
                }
                if !spec["volumes"].is_array() {
                    spec["volumes"] = json!([]);
                }
                spec["volumes"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"name": vname, "persistentVolumeClaim": {"claimName": claim}}));
            }
            let mut pod = json!({"metadata": tpl["metadata"].clone(), "spec": spec,
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
        .or_else(|| path.strip_prefix("/apis/coordination.k8s.io/v1/namespaces/"))
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
            let have_rv = o["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if let Some(want) = body["preconditions"]["resourceVersion"].as_str() {
                if want != have_rv {
                    return (409, status_body(409, &format!(
                        "Operation cannot be fulfilled on {} \"{n}\": the ResourceVersion in the precondition ({want}) does not match the ResourceVersion in record ({have_rv}). The object might have been modified",
                        kind.kind().to_lowercase())));
                }
            }
            if kind == Kind::Pod {
                // Graceful: the kubelet stops it, then it goes. A shorter grace period than
                // the one in force replaces it.
                let grace = body["gracePeriodSeconds"].as_i64();
                let cur = o["metadata"]["deletionGracePeriodSeconds"].as_i64();
                let mut changed = false;
                if o["metadata"]["deletionTimestamp"].is_null() {
                    o["metadata"]["deletionTimestamp"] = json!(now());
                    changed = true;
                }
                if let Some(g) = grace.filter(|g| cur.is_none_or(|c| g < &c)) {
                    o["metadata"]["deletionGracePeriodSeconds"] = json!(g);
                    changed = true;
                }
                if changed {
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
