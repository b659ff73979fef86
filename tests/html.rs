//! The HTML report in a real browser: headless Chromium (Debian's `chromium`) loads the file
//! offline, logs no console error, and its DOM holds the class names, the tables and the
//! charts. Skipped, and said so, where chromium is not installed (CI has none).
use std::path::Path;
use std::process::Command;

use crate::util::{copy_classes, sweep, text};

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser"].into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Chromium as the project runs it: headless, no sandbox (root in CI containers), no GPU, no
/// network of its own, a fresh profile.
fn headless(browser: &str, profile: &Path) -> Command {
    let mut c = Command::new(browser);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    c
}

#[test]
fn the_html_report_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    copy_classes("train", &root.join("train"), 3, 8);
    std::fs::write(
        root.join("s.toml"),
        "name = \"page\"\n[data]\ntrain = \"train\"\nimage_size = 12\nchannels = 1\n\
         val_split = 0.25\n[train]\nepochs = 2\nwidth = 4\nbatch_size = 8\n\
         [grid]\nbackbone = [\"cnn\", \"resnet18\"]\n",
    )
    .unwrap();
    let out = sweep(&["run", "s.toml"], root);
    assert!(out.status.success(), "{}", text(&out).1);
    let out = sweep(
        &[
            "report",
            "--format",
            "html",
            "--out",
            "reports/page/index.html",
        ],
        root,
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let page = root.join("reports/page/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    // Two backbones: the comparison comes by default.
    assert!(html.contains("The best run of each backbone"), "{html}");
    let Some(browser) = chromium() else {
        eprintln!("skipped the Chromium check: chromium is not installed");
        return;
    };
    let url = format!("file://{}", page.canonicalize().unwrap().display());
    let dom = headless(browser, &root.join("profile"))
        .arg("--dump-dom")
        .arg(&url)
        .output()
        .unwrap();
    let (dom_text, log) = (
        String::from_utf8_lossy(&dom.stdout),
        String::from_utf8_lossy(&dom.stderr),
    );
    assert!(dom.status.success(), "{log}");
    for class in ["0_tshirt_top", "1_trouser", "2_pullover"] {
        assert!(dom_text.contains(class), "{class} not in the DOM");
    }
    assert!(dom_text.matches("<table").count() >= 4, "{dom_text}");
    assert!(dom_text.matches("<svg").count() >= 3, "{dom_text}");
    // Chromium logs a page's console messages as CONSOLE lines.
    let console: Vec<&str> = log.lines().filter(|l| l.contains("CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    let shot = root.join("page.png");
    let out = headless(browser, &root.join("profile"))
        .arg("--window-size=1280,2000")
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "an empty screenshot"
    );
}
