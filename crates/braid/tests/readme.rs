//! The README's shell examples, run as written: the README and what is tested cannot drift.
//!
//! Every ```` ```sh ```` (or `bash`, `shell`, `console`) block of README.md must sit right under
//! one of these marks, else `every_shell_block_is_marked` fails:
//!
//! * `<!-- test: run -->` — run with `bash -euo pipefail` in a scratch directory, `braid` on the
//!   PATH (the binary this test suite built: what `cargo install --path crates/braid` installs);
//! * `<!-- test: run as root -->` — the same, inside a private network, mount and PID namespace
//!   (with its own /run/netns), so the example's fixed names (`peer`, `bt0`) collide with nothing
//!   on the machine and everything it leaves behind dies with it; skipped, and said so, without
//!   root (fails instead under CI);
//! * `<!-- test: quick start -->` — the Quick start: `cargo run --release -- ARGS` is run as
//!   `braid ARGS` (cargo itself cannot run inside `cargo test`, which holds the build lock), and
//!   `bash scripts/test.sh` must be what CI runs (it is this very test suite).

// A test harness, not the engine: deadlines and timings are wall-clock time.
#![allow(clippy::disallowed_methods)]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest any example may run.
const DEADLINE: Duration = Duration::from_secs(180);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Run,
    Root,
    QuickStart,
}

#[derive(Debug)]
struct Block {
    /// 1-based line of the opening fence.
    line: usize,
    mark: Result<Mark, String>,
    text: String,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).expect("read README.md")
}

/// The shell blocks of `md` with the mark above each.
fn shell_blocks(md: &str) -> Vec<Block> {
    let lines: Vec<&str> = md.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let fence = lines[i].trim_start();
        let Some(info) = fence.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let shell = matches!(info.trim(), "sh" | "bash" | "shell" | "console");
        let start = i;
        i += 1;
        let mut text = String::new();
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            text.push_str(lines[i]);
            text.push('\n');
            i += 1;
        }
        i += 1; // the closing fence
        if !shell {
            continue;
        }
        let above = lines[..start]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .map(|l| l.trim());
        let mark = match above {
            Some("<!-- test: run -->") => Ok(Mark::Run),
            Some("<!-- test: run as root -->") => Ok(Mark::Root),
            Some("<!-- test: quick start -->") => Ok(Mark::QuickStart),
            other => Err(format!(
                "README.md line {}: a shell block without a test mark (the line above it is \
                 {other:?}); put `<!-- test: run -->` or `<!-- test: run as root -->` right \
                 above it (see crates/braid/tests/readme.rs)",
                start + 1
            )),
        };
        blocks.push(Block {
            line: start + 1,
            mark,
            text,
        });
    }
    blocks
}

/// A scratch directory with `bin/braid`, the binary under test.
fn scratch(tag: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("braid-readme-{tag}-{:016x}", random_u64()));
    std::fs::create_dir_all(dir.join("bin")).expect("scratch dir");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_braid"), dir.join("bin/braid"))
        .expect("symlink braid");
    TempDir(dir)
}

/// Runs `cmd` to its end or the deadline; returns exit status and what it printed.
fn run_to_end(mut cmd: Command, dir: &Path, what: &str) -> (Option<i32>, String) {
    let out = dir.join("out.txt");
    let f = std::fs::File::create(&out).expect("output file");
    let mut child = cmd
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(f.try_clone().expect("dup"))
        .stderr(f)
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    let end = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        if Instant::now() >= end {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, std::fs::read_to_string(&out).unwrap_or_default())
}

/// Runs one example as written; panics with its output when it fails.
fn run_example(b: &Block, root: bool) {
    let dir = scratch(&format!("l{}", b.line));
    let path = format!(
        "{}:{}",
        dir.0.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = if root {
        // A private network namespace (the example's TUN devices), mount namespace (its own
        // /run/netns for `ip netns add`) and PID namespace (background processes die with it).
        let mut c = Command::new("unshare");
        c.args([
            "--net",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
            "bash",
            "-c",
            "mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns && exec bash -euo pipefail -c \"$1\"",
            "readme-example",
            &b.text,
        ]);
        c
    } else {
        let mut c = Command::new("bash");
        c.args(["-euo", "pipefail", "-c", &b.text]);
        c
    };
    cmd.env("PATH", path);
    let what = format!("README.md example at line {}", b.line);
    let started = Instant::now();
    let (status, out) = run_to_end(cmd, &dir.0, &what);
    assert_eq!(
        status,
        Some(0),
        "{what} failed (exit {status:?}, None = killed at the {DEADLINE:?} deadline):\n--- example\n{}--- output\n{out}",
        b.text
    );
    assert!(!out.contains("FAILED"), "{what}:\n{out}");
    eprintln!(
        "{what}: ok in {:.1} s\n{out}",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_shell_block_is_marked() {
    let blocks = shell_blocks(&readme());
    let unmarked: Vec<&String> = blocks
        .iter()
        .filter_map(|b| b.mark.as_ref().err())
        .collect();
    assert!(unmarked.is_empty(), "{unmarked:#?}");
    // The README has examples of each kind: this test cannot pass by finding none.
    for kind in [Mark::QuickStart, Mark::Run, Mark::Root] {
        assert!(
            blocks.iter().any(|b| b.mark == Ok(kind)),
            "no {kind:?} block found"
        );
    }
    assert_eq!(
        blocks
            .iter()
            .filter(|b| b.mark == Ok(Mark::QuickStart))
            .count(),
        1
    );
}

#[test]
fn the_marks_are_read_as_meant() {
    let md = "x\n<!-- test: run -->\n```sh\necho a\n```\n\n```\nsynopsis, not shell\n```\n\
              <!-- test: run as root -->\n\n```bash\necho b\n```\n```console\n$ nothing\n```\n";
    let b = shell_blocks(md);
    assert_eq!(b.len(), 3);
    assert_eq!(
        (b[0].line, &b[0].mark, b[0].text.as_str()),
        (3, &Ok(Mark::Run), "echo a\n")
    );
    assert_eq!((b[1].line, &b[1].mark), (12, &Ok(Mark::Root)));
    assert!(b[2].mark.as_ref().unwrap_err().contains("line 15"));
}

#[test]
fn quick_start_runs() {
    let blocks = shell_blocks(&readme());
    let b = blocks
        .iter()
        .find(|b| b.mark == Ok(Mark::QuickStart))
        .expect("a quick start block");
    let lines: Vec<&str> = b.text.lines().collect();
    assert_eq!(lines.len(), 2, "the Quick start is exactly two commands");
    let args = lines[0]
        .strip_prefix("cargo run --release -- ")
        .expect("the first command is `cargo run --release -- ...`");
    let dir = scratch("quick");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_braid"));
    cmd.args(args.split_whitespace());
    let (status, out) = run_to_end(cmd, &dir.0, "quick start");
    assert_eq!(status, Some(0), "{out}");
    assert!(out.contains("intact: yes"), "{out}");

    assert_eq!(lines[1], "bash scripts/test.sh");
    assert!(repo().join("scripts/test.sh").is_file());
    let ci = std::fs::read_to_string(repo().join(".ci/run")).expect(".ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "bash scripts/test.sh"),
        "CI runs the README's test command"
    );
    // The install instruction names the crate that builds the `braid` binary.
    assert!(readme().contains("`cargo install --path crates/braid`"));
    let manifest =
        std::fs::read_to_string(repo().join("crates/braid/Cargo.toml")).expect("manifest");
    assert!(manifest.contains("name = \"braid\""));
}

#[test]
fn examples_run_as_written() {
    let blocks = shell_blocks(&readme());
    let runnable: Vec<&Block> = blocks.iter().filter(|b| b.mark == Ok(Mark::Run)).collect();
    assert!(!runnable.is_empty());
    for b in runnable {
        run_example(b, false);
    }
}

#[test]
fn root_examples_run_as_written() {
    let _g = serial();
    let blocks = shell_blocks(&readme());
    let root: Vec<&Block> = blocks.iter().filter(|b| b.mark == Ok(Mark::Root)).collect();
    assert!(!root.is_empty());
    for b in root {
        if !root_or_skip(&format!("README example at line {}", b.line)) {
            continue;
        }
        run_example(b, true);
    }
}
