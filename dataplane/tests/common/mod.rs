//! Network namespace helpers shared by the integration tests: namespaces whose names carry the
//! process id and a counter, deleted on drop even when a test fails; threads that enter a
//! namespace to create sockets and interfaces there; recognisable test payloads and a receive
//! loop that collects them from a port.
#![allow(dead_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use dataplane::ports::{BufPool, HeapPool, Port};
use pipelines::{HeapBuf, PacketBuf};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

pub fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Standard output of a command that must succeed.
pub fn output(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn ip(args: &[&str]) {
    run("ip", args).unwrap_or_else(|e| panic!("{e}"));
}

/// A network namespace deleted on drop (which also destroys the interfaces inside it).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Result<Netns, String> {
        let name = format!(
            "mxt{}-{}-{}",
            std::process::id(),
            tag,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        run("ip", &["netns", "add", &name])?;
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "dev", "lo", "up"]);
        Ok(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = run("ip", &["netns", "del", &self.name]);
    }
}

/// Creates a namespace, or explains why the test is skipped. Under `NMADP_REQUIRE_TOOLS=1`
/// (set by deploy/test-all.sh, which runs as root) a skip is a failure instead.
pub fn netns_or_skip(tag: &str) -> Option<Netns> {
    let skip = |why: String| {
        assert!(
            std::env::var("NMADP_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "cannot run: {why}"
        );
        eprintln!("skipped: {why}");
        None
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return skip("needs root".into());
    }
    match Netns::new(tag) {
        Ok(ns) => Some(ns),
        Err(e) => skip(format!("needs root with CAP_SYS_ADMIN ({e})")),
    }
}

/// Runs `f` on a thread that has entered namespace `ns`; what it creates (sockets, TUN
/// interfaces, child processes) belongs to that namespace wherever it is used afterwards.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    spawn_in_netns(ns, f).join().expect("thread in namespace")
}

pub fn spawn_in_netns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> thread::JoinHandle<T> {
    let path = format!("/var/run/netns/{ns}");
    thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // SAFETY: `file` is an open namespace file; setns affects only this thread.
        let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// veth `va` in `a` <-> `vb` in `b`, both up (kernel-chosen MACs).
pub fn veth(a: &Netns, va: &str, b: &Netns, vb: &str) {
    ip(&[
        "-n", &a.name, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", &b.name,
    ]);
    ip(&["-n", &a.name, "link", "set", "dev", va, "up"]);
    ip(&["-n", &b.name, "link", "set", "dev", vb, "up"]);
}

/// Adds `cidr` to `dev` in `ns` (IPv6 without duplicate address detection, usable at once).
pub fn addr(ns: &Netns, dev: &str, cidr: &str) {
    let mut args = vec!["-n", &ns.name, "addr", "add", cidr, "dev", dev];
    if cidr.contains(':') {
        args.push("nodad");
    }
    ip(&args);
}

/// A recognisable payload of `len` bytes (at least 10): `MXTEST`, the sequence number, filler.
pub fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut p = [b"MXTEST".as_slice(), &seq.to_be_bytes()].concat();
    p.resize(len.max(10), (seq & 0xff) as u8);
    p
}

/// The test sequence number of a packet, if it carries a [`payload`].
pub fn marker(p: &[u8]) -> Option<u32> {
    let pos = p.windows(6).position(|w| w == b"MXTEST")?;
    let s = p.get(pos + 6..pos + 10)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Receives on `port` until `want` of our packets (with a [`marker`]) arrived or `wait` passed;
/// returns them (others are freed). An empty result over a short `wait` checks that nothing
/// arrives.
pub fn collect_marked<P: Port<HeapBuf>>(
    port: &mut P,
    pool: &mut HeapPool,
    want: usize,
    wait: Duration,
) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut got = Vec::new();
    let mut out = Vec::new();
    while got.len() < want && Instant::now() < deadline {
        out.clear();
        let n = port.rx_burst(pool, &mut out, 32);
        assert!(n <= 32);
        if n == 0 {
            thread::sleep(Duration::from_millis(1));
        }
        for b in out.drain(..) {
            if marker(b.data()).is_some() {
                got.push(b.to_vec());
            }
            pool.free(b);
        }
    }
    got
}
