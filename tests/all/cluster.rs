//! A node among the store's nodes, on one machine with SQLite: `GET /v1/cluster` and
//! `wisp cluster status` list it, `/v1/health` says it reaches its store, its name is
//! kept across restarts, and a node whose master key is not the store's does not start.

use crate::util::*;
use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn a_single_node_lists_itself_and_reaches_its_store() {
    let server = server();
    let name = std::fs::read_to_string(server.data_dir.join("node.name")).unwrap();
    let name = name.trim();
    assert!(name.starts_with("node-"), "{name}");

    let health = get_json(&server, "/v1/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["node"], name, "{health}");
    assert_eq!(health["store"]["reachable"], true, "{health}");

    let cluster = get_json(&server, "/v1/cluster").await;
    let nodes = cluster["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "{cluster}");
    let node = &nodes[0];
    assert_eq!(node["name"], name);
    assert_eq!(
        (node["up"].as_bool(), node["this"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(node["url"], format!("{}/", server.url));
    assert_eq!(node["version"], env!("CARGO_PKG_VERSION"));

    let status = wisp(&server, &["cluster", "status"]);
    assert!(status.contains(&format!("{name} (this)")), "{status}");
    assert!(status.contains("1 of 1 nodes up"), "{status}");
    assert!(status.contains("schedules: no leader"), "{status}");
}

#[tokio::test]
async fn a_node_keeps_its_name_and_refuses_a_bad_one() {
    let mut server = server_with(&["--node-name", "edge-1"]);
    assert_eq!(get_json(&server, "/v1/health").await["node"], "edge-1");
    server.crash_and_restart();
    let cluster = get_json(&server, "/v1/cluster").await;
    let names: Vec<&str> = cluster["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n["name"].as_str())
        .collect();
    assert_eq!(names, vec!["edge-1"], "{cluster}");
    drop(server);

    let data = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--node-name",
            "no spaces!",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(stderr.contains("`no spaces!` is not a node name"), "{stderr}");

    let out = Command::new(bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "postgres://db",
            "--data-dir",
        ])
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("`postgres://db` is not a store") && stderr.contains("nats://HOST:PORT"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_node_with_another_master_key_does_not_start() {
    let mut server = server();
    let dir = server.data_dir.clone();
    server.signal("TERM");
    server.wait(Duration::from_secs(30));
    // Another node's key: 64 other hex digits.
    std::fs::write(dir.join("master.key"), "ab".repeat(32)).unwrap();
    let out = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("master key is not the one the store was started with"),
        "{stderr}"
    );
}
