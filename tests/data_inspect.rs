//! `sweep data inspect` on copies of the bundled images: the JSON facts, the chart files, and
//! the exit codes (0 clean, 2 problems, 1 a bad path).
use crate::util::{copy_classes, sweep, text};

#[test]
fn inspect_reports_counts_problems_and_writes_the_chart() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test) = (dir.path().join("train"), dir.path().join("test"));
    let classes = copy_classes("train", &train, 3, 4);
    copy_classes("test", &test, 3, 2);

    // Clean folders: exit 0, the table ends with the verdict.
    let out = sweep(&["data", "inspect", "train", "--test", "test"], dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stdout.contains("imbalance ratio: 1.00"), "{stdout}");
    assert!(stdout.contains("colour modes: L8 12"), "{stdout}");
    assert!(
        stdout
            .trim_end()
            .ends_with("no image in both train and test"),
        "{stdout}"
    );
    let chart = dir.path().join("reports/data-train/class-counts.png");
    assert!(
        stderr.contains("wrote reports/data-train/class-counts.png"),
        "{stderr}"
    );
    assert!(chart.exists());

    // A cut file, one class's image copied into another class and into test.
    let first = train.join(&classes[0]).join("00000.png");
    let bytes = std::fs::read(&first).unwrap();
    std::fs::write(
        train.join(&classes[1]).join("cut.png"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    std::fs::copy(&first, train.join(&classes[2]).join("copy.png")).unwrap();
    std::fs::copy(&first, test.join(&classes[0]).join("leak.png")).unwrap();
    let out_dir = dir.path().join("charts");
    let args = [
        "data",
        "inspect",
        "train",
        "--test",
        "test",
        "--format",
        "json",
        "--out-dir",
        out_dir.to_str().unwrap(),
    ];
    let out = sweep(&args, dir.path());
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let train_facts = &v["splits"][0];
    assert_eq!(train_facts["split"], "train");
    assert_eq!(train_facts["files"], 14);
    assert_eq!(train_facts["images"], 13);
    assert_eq!(train_facts["classes"][1]["images"], 4);
    assert_eq!(train_facts["classes"][1]["files"], 5);
    assert_eq!(train_facts["classes"][2]["images"], 5);
    assert_eq!(train_facts["imbalance_ratio"], 1.25);
    assert_eq!(train_facts["sizes"]["most_common"][0]["width"], 28);
    assert_eq!(train_facts["sizes"]["most_common"][0]["count"], 13);
    assert_eq!(train_facts["colour_modes"]["L8"], 13);
    let unreadable = &train_facts["unreadable"][0];
    assert!(unreadable["path"].as_str().unwrap().ends_with("cut.png"));
    assert!(
        unreadable["reason"]
            .as_str()
            .unwrap()
            .starts_with("truncated PNG"),
        "{unreadable}"
    );
    assert_eq!(v["splits"][1]["images"], 7);
    // The copied image: one group in three classes' worth of places, across the splits.
    assert_eq!(v["label_conflicts"].as_array().unwrap().len(), 1);
    assert_eq!(v["label_conflicts"][0].as_array().unwrap().len(), 3);
    assert_eq!(v["leaks"][0][2]["split"], "test");
    assert_eq!(v["problems"], 3);

    let png = out_dir.join("class-counts.png");
    assert_eq!(v["charts"][1], png.to_str().unwrap());
    let img = image::open(&png).unwrap();
    assert!(img.width() >= 480 && img.height() > 300);
    assert!(out_dir.join("class-counts.svg").exists());
}

#[test]
fn a_missing_folder_names_the_path_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = sweep(&["data", "inspect", "nowhere"], dir.path());
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("nowhere does not exist") && stderr.contains("one sub-folder per class"),
        "{stderr}"
    );
}
