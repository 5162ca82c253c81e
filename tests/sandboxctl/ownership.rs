//! A container of the sandbox's name that is not the sandbox's own is never acted on: its
//! labels (sandbox id) are checked against sandbox.json before start, stop and delete.

use crate::conformance::engine::Engine;
use crate::conformance::{Ctx, WAIT};
use openshell_supervisor::contract::CtlExit;

/// Two state roots on one engine both have a sandbox `a`: the first one's container was
/// removed behind its back and the second one created its own. The first must read
/// Missing/name_taken and refuse to start, stop or resume it; its delete leaves the other's
/// container and volume alone. Second spellings: a hand-made container without labels, and
/// one with forged name labels but no id.
pub fn another_sandboxs_container_is_never_touched(e: &'static Engine) {
    let one = Ctx::new(e, "own");
    let two = Ctx::new(e, "own");
    let a = one.name("a");
    let c = Engine::container(&a);
    one.create(&a, &[]).ok();
    e.run(&["rm", "-f", &c]).ok();
    e.run(&["volume", "rm", &Engine::volume(&a)]).ok();
    two.create(&a, &["--no-start"]).ok();
    let theirs_id = two.status(&a)["id"].as_str().unwrap().to_owned();

    let s = one.status(&a);
    assert_eq!(s["phase"], "Missing", "{s:#}");
    assert_eq!(s["reason"], "name_taken", "{s:#}");
    let m = s["message"].as_str().unwrap();
    assert!(
        m.contains("belongs to another sandbox") && m.contains(&theirs_id),
        "{m}"
    );
    // start records intent running (before acting), so resume --all wants it running too;
    // stop last, as it records intent stopped.
    let r = one.ctl(&["start", &a]).fails_with(CtlExit::Conflict);
    assert!(r.stderr.contains("is not this sandbox's"), "{}", r.stderr);
    let r = one
        .ctl(&["resume", "--all", "--timeout", WAIT])
        .fails_with(CtlExit::Conflict);
    assert!(r.stderr.contains("name_taken"), "{}", r.stderr);
    let r = one.ctl(&["stop", &a]).fails_with(CtlExit::Conflict);
    assert!(r.stderr.contains("is not this sandbox's"), "{}", r.stderr);
    assert_eq!(
        e.container_state(&a).as_deref(),
        Some("created"),
        "theirs was started"
    );

    let r = one.ctl(&["delete", &a]).ok();
    assert!(r.stderr.contains("delete.skipped"), "{}", r.stderr);
    assert!(!one.root.join(&a).exists());
    assert_eq!(e.container_state(&a).as_deref(), Some("created"));
    assert!(e.volume_dir(&a).is_some(), "their workspace was removed");
    // Theirs still works.
    let r = two.ctl(&["start", &a, "--timeout", WAIT]).ok();
    assert!(r.stdout.contains(&format!("{a}: Ready")), "{}", r.stdout);
    two.ctl(&["delete", &a]).ok();

    // A hand-made container of the name, no labels at all.
    let b = one.name("b");
    let cb = Engine::container(&b);
    one.create(&b, &["--no-start"]).ok();
    e.run(&["rm", "-f", &cb]).ok();
    e.run(&["create", "--name", &cb, e.image()]).ok();
    let r = one.ctl(&["start", &b]).fails_with(CtlExit::Conflict);
    assert!(r.stderr.contains("io.openshell.managed-by"), "{}", r.stderr);
    // Forged name labels, no id.
    e.run(&["rm", "-f", &cb]).ok();
    let name_label = format!("io.openshell.sandbox={b}");
    e.run(&[
        "create",
        "--name",
        &cb,
        "--label",
        "io.openshell.managed-by=sandboxctl",
        "--label",
        &name_label,
        e.image(),
    ])
    .ok();
    let r = one.ctl(&["start", &b]).fails_with(CtlExit::Conflict);
    assert!(r.stderr.contains("io.openshell.sandbox-id"), "{}", r.stderr);
    assert_eq!(e.container_state(&b).as_deref(), Some("created"));
    one.ctl(&["delete", &b]).ok();
    assert_eq!(e.container_state(&b).as_deref(), Some("created"));
    e.run(&["rm", "-f", &cb]).ok();
}
