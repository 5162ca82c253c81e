//! Engine failures always say what happened. The engine's client is wrapped by a script on
//! PATH that runs the real client for everything but `stop`, where it kills itself with
//! SIGKILL before printing anything: a real process dying by a real signal.

use crate::conformance::engine::Engine;
use crate::conformance::Ctx;
use openshell_supervisor::contract::CtlExit;
use std::os::unix::fs::PermissionsExt;

pub fn an_engine_killed_by_a_signal_is_reported_as_such(e: &'static Engine) {
    let ctx = Ctx::new(e, "sig");
    let a = ctx.name("a");
    ctx.create(&a, &["--no-start"]).ok();
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", &format!("command -v {}", e.program)])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let bin = ctx.root.join("wrapped-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join(e.program);
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ \"$1\" = stop ] && kill -KILL $$\nexec {} \"$@\"\n",
            real.trim()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let r = ctx
        .ctl_env(&["stop", &a], &[("PATH", &path)])
        .fails_with(CtlExit::EngineError);
    let want = format!(
        "{} stop was killed by signal 9 (SIGKILL) and printed nothing",
        e.program
    );
    assert!(r.stderr.contains(&want), "{}", r.stderr);
    assert!(!r.stderr.contains("(exit a signal)"), "{}", r.stderr);
    // The intent was recorded before acting; the real engine stops it fine.
    assert_eq!(ctx.status(&a)["intent"], "stopped");
    ctx.ctl(&["stop", &a]).ok();
}
