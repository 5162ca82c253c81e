//! What an executable file is, read from its descriptor: an ELF program (and the loader it
//! names in `PT_INTERP`, which the kernel runs first), a `#!` script (and its interpreter
//! line), or neither. Reading the descriptor the trust check judged means the answer is
//! about the very file that will run.

use std::io;
use std::os::fd::RawFd;
use std::path::PathBuf;

/// The kernel reads at most this much of a `#!` line (BINPRM_BUF_SIZE).
const SHEBANG_MAX: usize = 256;
const PT_INTERP: u32 = 3;

#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// An ELF file; `interp` is its program interpreter (the dynamic loader), if any.
    Elf { interp: Option<PathBuf> },
    /// A `#!` script: the interpreter and its optional single argument, as the kernel
    /// splits the line.
    Script(Shebang),
    /// Anything else (execvp would hand it to /bin/sh).
    Other,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Shebang {
    pub interpreter: PathBuf,
    pub arg: Option<String>,
}

/// Classifies the file open at `fd` (read with `pread`, so no file offset changes).
pub fn classify(fd: RawFd) -> Result<Kind, String> {
    let mut head = [0u8; SHEBANG_MAX];
    let n = pread_full(fd, &mut head, 0).map_err(|e| format!("cannot read it: {e}"))?;
    let head = &head[..n];
    if head.starts_with(b"\x7fELF") {
        return elf_interp(fd, head).map(|interp| Kind::Elf { interp });
    }
    if let Some(line) = head.strip_prefix(b"#!") {
        return parse_shebang(line).map(Kind::Script);
    }
    Ok(Kind::Other)
}

/// Splits a `#!` line the way the kernel does: the interpreter ends at the first blank,
/// everything after it (trimmed) is one argument.
fn parse_shebang(line: &[u8]) -> Result<Shebang, String> {
    let Some(end) = line.iter().position(|&b| b == b'\n') else {
        return Err(format!(
            "its #! line is longer than {} bytes",
            SHEBANG_MAX - 1
        ));
    };
    let line =
        std::str::from_utf8(&line[..end]).map_err(|_| "its #! line is not UTF-8".to_string())?;
    let line = line.trim_matches(|c| c == ' ' || c == '\t' || c == '\r');
    let (interp, arg) = match line.find([' ', '\t']) {
        Some(i) => (&line[..i], Some(line[i..].trim_matches([' ', '\t']))),
        None => (line, None),
    };
    if interp.is_empty() {
        return Err("its #! line names no interpreter".into());
    }
    if !interp.starts_with('/') {
        return Err(format!(
            "its #! interpreter {interp:?} is not an absolute path (it would be looked up from the current directory)"
        ));
    }
    Ok(Shebang {
        interpreter: PathBuf::from(interp),
        arg: arg.filter(|a| !a.is_empty()).map(str::to_owned),
    })
}

/// The `PT_INTERP` path of a little-endian ELF file (32 or 64 bit), if it has one.
fn elf_interp(fd: RawFd, head: &[u8]) -> Result<Option<PathBuf>, String> {
    let bad = |why: &str| format!("it is a malformed ELF file ({why})");
    if head.len() < 52 {
        return Err(bad("truncated header"));
    }
    if head[5] != 1 {
        return Err(bad("not little-endian"));
    }
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let u32_at = |b: &[u8], o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap()) as u64;
    let u64_at = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap());
    let wide = match head[4] {
        1 => false,
        2 => true,
        _ => return Err(bad("unknown class")),
    };
    if wide && head.len() < 64 {
        return Err(bad("truncated header"));
    }
    let (phoff, phentsize, phnum) = if wide {
        (u64_at(head, 0x20), u16_at(head, 0x36), u16_at(head, 0x38))
    } else {
        (u32_at(head, 0x1c), u16_at(head, 0x2a), u16_at(head, 0x2c))
    };
    let min_entry = if wide { 0x38 } else { 0x20 };
    if phnum == 0 {
        return Ok(None);
    }
    if phentsize < min_entry || phnum * phentsize > 64 * 1024 {
        return Err(bad("program header table"));
    }
    let mut table = vec![0u8; (phnum * phentsize) as usize];
    let got = pread_full(fd, &mut table, phoff).map_err(|e| format!("cannot read it: {e}"))?;
    if got < table.len() {
        return Err(bad("program headers past the end of the file"));
    }
    for ph in table.chunks_exact(phentsize as usize) {
        if u32_at(ph, 0) as u32 != PT_INTERP {
            continue;
        }
        let (offset, size) = if wide {
            (u64_at(ph, 0x08), u64_at(ph, 0x20))
        } else {
            (u32_at(ph, 0x04), u32_at(ph, 0x10))
        };
        if size == 0 || size > libc::PATH_MAX as u64 {
            return Err(bad("PT_INTERP size"));
        }
        let mut path = vec![0u8; size as usize];
        let got = pread_full(fd, &mut path, offset).map_err(|e| format!("cannot read it: {e}"))?;
        path.truncate(got);
        // The kernel requires the NUL terminator and uses the string up to it.
        let Some(nul) = path.iter().position(|&b| b == 0) else {
            return Err(bad("PT_INTERP is not NUL-terminated"));
        };
        path.truncate(nul);
        use std::os::unix::ffi::OsStringExt;
        return Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(path))));
    }
    Ok(None)
}

/// Reads up to `buf.len()` bytes at `offset`; fewer only at the end of the file.
fn pread_full(fd: RawFd, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        // SAFETY: pread into the unfilled rest of our own buffer.
        let n = unsafe {
            libc::pread(
                fd,
                buf[done..].as_mut_ptr().cast(),
                buf.len() - done,
                (offset + done as u64) as libc::off_t,
            )
        };
        match n {
            0 => break,
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            n => done += n as usize,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    fn kind_of(bytes: &[u8]) -> Result<Kind, String> {
        let p = std::env::temp_dir().join(format!(
            "hook-format-{}-{}",
            std::process::id(),
            bytes.len()
        ));
        std::fs::write(&p, bytes).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let k = classify(f.as_raw_fd());
        std::fs::remove_file(&p).unwrap();
        k
    }

    #[test]
    fn shebang_lines_split_like_the_kernel() {
        let s = |interp: &str, arg: Option<&str>| {
            Ok(Kind::Script(Shebang {
                interpreter: interp.into(),
                arg: arg.map(Into::into),
            }))
        };
        assert_eq!(kind_of(b"#!/bin/sh\necho\n"), s("/bin/sh", None));
        assert_eq!(kind_of(b"#! /bin/sh -e -u \n"), s("/bin/sh", Some("-e -u")));
        assert_eq!(
            kind_of(b"#!/usr/bin/env\tpython3\r\n"),
            s("/usr/bin/env", Some("python3"))
        );
        assert!(kind_of(b"#!sh\n").unwrap_err().contains("absolute"));
        assert!(kind_of(b"#!\n").unwrap_err().contains("no interpreter"));
        let long = [b"#!/".as_slice(), &[b'x'; 300]].concat();
        assert!(kind_of(&long).unwrap_err().contains("longer"));
        assert_eq!(kind_of(b"echo hi\n"), Ok(Kind::Other));
        assert_eq!(kind_of(b""), Ok(Kind::Other));
    }

    #[test]
    fn elf_loader_is_read_from_the_program_headers() {
        // /bin/sh on Debian is dynamically linked; the supervisor itself is static-pie.
        let f = std::fs::File::open("/bin/sh").unwrap();
        match classify(f.as_raw_fd()).unwrap() {
            Kind::Elf { interp: Some(p) } => {
                assert!(p.to_str().unwrap().contains("ld-linux"), "{p:?}")
            }
            other => panic!("{other:?}"),
        }
        let me = std::fs::File::open("/proc/self/exe").unwrap();
        assert!(matches!(
            classify(me.as_raw_fd()).unwrap(),
            Kind::Elf { .. }
        ));
        assert!(kind_of(b"\x7fELF\x02\x01")
            .unwrap_err()
            .contains("malformed"));
    }
}
