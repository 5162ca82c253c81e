//! Kernel modules for the VM's devices, loaded with `finit_module` from the files the image
//! ships, dependencies first as `modules.dep` lists them. No modprobe, no udev.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tracing::{debug, info};

/// `modules.dep` of one kernel: module name → (file, dependencies' names).
pub struct DepTable {
    dir: PathBuf,
    entries: HashMap<String, (PathBuf, Vec<String>)>,
}

/// `ext4.ko` and `pvpanic-pci` name the same module as `ext4` and `pvpanic_pci`.
pub fn normalize(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    let base = base.strip_suffix(".ko").unwrap_or(base);
    base.replace('-', "_")
}

impl DepTable {
    /// Reads `dir/modules.dep` (and `modules.builtin`, whose modules need no loading).
    pub fn read(dir: &Path) -> io::Result<DepTable> {
        let text = fs::read_to_string(dir.join("modules.dep"))?;
        let mut entries = HashMap::new();
        for line in text.lines() {
            let Some((file, deps)) = line.split_once(':') else {
                continue;
            };
            let deps = deps.split_whitespace().map(normalize).collect();
            entries.insert(normalize(file), (dir.join(file.trim()), deps));
        }
        Ok(DepTable {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    fn builtin(&self, name: &str) -> bool {
        fs::read_to_string(self.dir.join("modules.builtin"))
            .map(|t| t.lines().any(|l| normalize(l) == name))
            .unwrap_or(false)
    }

    /// The files to load for `wanted`, in order: each module after its dependencies, each
    /// once. A name that is neither shipped nor built in is an error naming it.
    pub fn plan(&self, wanted: &[String]) -> Result<Vec<PathBuf>, String> {
        let mut order = Vec::new();
        let mut done: HashMap<String, bool> = HashMap::new();
        for w in wanted {
            let name = normalize(w);
            if !self.entries.contains_key(&name) {
                if self.builtin(&name) {
                    continue;
                }
                return Err(format!(
                    "module {w} is neither in {}/modules.dep nor built in; ship it in the image",
                    self.dir.display()
                ));
            }
            self.visit(&name, &mut done, &mut order, 0)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        done: &mut HashMap<String, bool>,
        order: &mut Vec<PathBuf>,
        depth: usize,
    ) -> Result<(), String> {
        if done.contains_key(name) {
            return Ok(());
        }
        if depth > 64 {
            return Err(format!("module dependencies of {name} loop"));
        }
        let Some((file, deps)) = self.entries.get(name) else {
            return Err(format!(
                "module {name} is a dependency but missing from {}/modules.dep",
                self.dir.display()
            ));
        };
        done.insert(name.to_owned(), false);
        // modules.dep lists every transitive dependency; visiting each one's own line puts
        // it after what it needs, whatever order the line lists them in.
        for d in deps {
            self.visit(d, done, order, depth + 1)?;
        }
        done.insert(name.to_owned(), true);
        order.push(file.clone());
        Ok(())
    }
}

/// Loads `files` in order. A module that is already loaded (`EEXIST`) is fine.
pub fn load(files: &[PathBuf]) -> Result<(), (PathBuf, io::Error)> {
    for f in files {
        let started = Instant::now();
        let file = fs::File::open(f).map_err(|e| (f.clone(), e))?;
        // SAFETY: finit_module on a descriptor we hold, with empty parameters.
        let r = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                file.as_raw_fd(),
                c"".as_ptr(),
                0 as libc::c_int,
            )
        };
        if r != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                debug!(event = "init.module", module = %f.display(), loaded = false, "already loaded");
                continue;
            }
            return Err((f.clone(), e));
        }
        info!(event = "init.module", module = %f.display(), loaded = true,
            duration_ms = started.elapsed().as_millis() as u64, "kernel module loaded");
    }
    Ok(())
}

/// The module names in the image's list: one per line, `#` comments.
pub fn read_list(path: &Path) -> io::Result<Vec<String>> {
    Ok(fs::read_to_string(path)?
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_puts_dependencies_first_once() {
        let dir = std::env::temp_dir().join(format!("modules-dep-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        // The order of a line's dependencies does not matter (busybox depmod differs
        // from kmod's).
        fs::write(
            dir.join("modules.dep"),
            "kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/fscache/fscache.ko kernel/fs/netfs/netfs.ko\n\
             kernel/fs/fscache/fscache.ko: kernel/fs/netfs/netfs.ko\n\
             kernel/fs/netfs/netfs.ko:\n\
             kernel/net/9p/9pnet.ko:\n\
             kernel/drivers/misc/pvpanic/pvpanic-pci.ko: kernel/drivers/misc/pvpanic/pvpanic.ko\n\
             kernel/drivers/misc/pvpanic/pvpanic.ko:\n",
        )
        .unwrap();
        fs::write(dir.join("modules.builtin"), "kernel/fs/ext4/ext4.ko\n").unwrap();
        let t = DepTable::read(&dir).unwrap();
        let plan = t
            .plan(&[
                "9p".into(),
                "netfs".into(),
                "pvpanic-pci".into(),
                "ext4".into(),
            ])
            .unwrap();
        let names: Vec<_> = plan
            .iter()
            .map(|p| normalize(&p.to_string_lossy()))
            .collect();
        assert_eq!(
            names,
            ["9pnet", "netfs", "fscache", "9p", "pvpanic", "pvpanic_pci"]
        );
        let e = t.plan(&["nope".into()]).unwrap_err();
        assert!(e.contains("nope") && e.contains("modules.dep"), "{e}");
        let _ = fs::remove_dir_all(&dir);
    }
}
