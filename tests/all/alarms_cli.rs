//! The CLI's alarms against a real server: `[alarms.NAME]` in wisp.toml deployed with
//! the app (created, unchanged, updated), `wisp alarms` to list, show and remove them,
//! and a bad rule refused by `wisp deploy` at its line before anything is deployed.

use crate::util::{bin, wisp, wisp_fails};
use serde_json::Value;
use wisp_test_support::TestServer;

/// An app of a function and an alarm on it whose action invokes `pager`; `threshold` is
/// the alarm's, and `functions` the app's other functions.
fn manifest(threshold: &str, functions: &[&str]) -> String {
    let wasm = wisp_test_support::fixture("event-kit");
    let mut text = String::from("[app]\nname = \"shop\"\n\n");
    for name in ["worker"].iter().chain(functions) {
        text.push_str(&format!(
            "[functions.{name}]\nsource = {:?}\nkind = \"event\"\n\n",
            wasm.display().to_string()
        ));
    }
    text + &format!(
        "\
         [alarms.worker-errors]\nmetric = \"error_rate\"\nfunction = \"worker\"\nthreshold = {threshold}\n\
         period = \"1m\"\nevaluation_periods = 3\n\
         actions = [{{ webhook = \"https://hooks.example.com/wisp\" }}, {{ function = \"pager\", on = [\"ALARM\"] }}]\n"
    )
}

#[tokio::test]
async fn deploy_writes_the_manifests_alarms_and_wisp_alarms_lists_shows_and_removes_them() {
    let server = TestServer::serve(bin());
    let app = tempfile::tempdir().unwrap();
    std::fs::write(app.path().join("wisp.toml"), manifest("0.05", &["pager"])).unwrap();
    let path = app.path().to_str().unwrap();
    let condition = "error_rate of function worker > 0.05 for 3 of 3 periods of 1m";

    // The alarms come last: their actions may name the functions just deployed.
    let out = wisp(&server, &["deploy", path]);
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    assert!(lines[1].starts_with("created    worker"), "{out}");
    assert!(lines[2].starts_with("created    pager"), "{out}");
    assert_eq!(
        lines[3],
        format!("created    alarm worker-errors        {condition}"),
        "{out}"
    );

    let out = wisp(&server, &["alarms"]);
    let row = out.lines().find(|l| l.contains("worker-errors")).unwrap();
    assert!(
        row.contains("INSUFFICIENT_DATA") && row.contains(condition),
        "{out}"
    );
    assert_eq!(out, wisp(&server, &["alarms", "ls"]));
    let listed: Value = serde_json::from_str(&wisp(&server, &["alarms", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "worker-errors");
    assert_eq!(listed[0]["spec"]["actions"][1]["function"], "pager");

    let out = wisp(&server, &["alarms", "show", "worker-errors"]);
    assert!(
        out.starts_with("worker-errors is INSUFFICIENT_DATA since "),
        "{out}"
    );
    assert!(out.contains(&format!("  condition     {condition}\n")), "{out}");
    assert!(
        out.contains("  actions       webhook https://hooks.example.com/wisp; function pager (on ALARM)\n"),
        "{out}"
    );
    assert!(out.ends_with("\nNo changes of state yet.\n"), "{out}");
    let shown: Value =
        serde_json::from_str(&wisp(&server, &["alarms", "show", "worker-errors", "--json"])).unwrap();
    assert_eq!(shown["history"], serde_json::json!([]));

    let out = wisp(&server, &["deploy", path]);
    assert!(out.contains("unchanged  alarm worker-errors "), "{out}");
    std::fs::write(app.path().join("wisp.toml"), manifest("0.1", &["pager"])).unwrap();
    let out = wisp(&server, &["deploy", path]);
    assert!(
        out.contains("updated    alarm worker-errors        error_rate of function worker > 0.1 "),
        "{out}"
    );

    let out = wisp(&server, &["alarms", "rm", "worker-errors"]);
    assert_eq!(out, "removed alarm worker-errors\n");
    let err = wisp_fails(&server, &["alarms", "show", "worker-errors"], 4);
    assert!(err.contains("alarm_not_found"), "{err}");
    assert!(
        err.contains("hint: run `wisp alarms` to see the namespace's alarms"),
        "{err}"
    );
    let err = wisp_fails(&server, &["alarms", "rm", "worker-errors"], 4);
    assert!(err.contains("alarm_not_found"), "{err}");
    let err = wisp_fails(&server, &["alarms", "show", "Worker_Errors"], 2);
    assert!(err.contains("invalid alarm name `Worker_Errors`"), "{err}");
    let out = wisp(&server, &["alarms", "--json"]);
    assert_eq!(out.trim(), "[]");
}

#[tokio::test]
async fn deploy_refuses_a_bad_alarm_at_its_line_and_names_the_alarm_the_server_refuses() {
    let server = TestServer::serve(bin());
    let app = tempfile::tempdir().unwrap();
    let text = manifest("5", &["pager"]);
    std::fs::write(app.path().join("wisp.toml"), &text).unwrap();
    let line = text.lines().position(|l| l == "threshold = 5").unwrap() + 1;
    let err = wisp_fails(&server, &["deploy", app.path().to_str().unwrap()], 2);
    assert!(
        err.contains(&format!(
            "wisp.toml:{line}:13: alarm `worker-errors`: threshold: error_rate is a fraction from 0 to 1"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("{line} | threshold = 5")), "{err}");
    let out = wisp(&server, &["ls"]);
    assert!(!out.contains("worker"), "{out}");
    assert_eq!(wisp(&server, &["alarms", "--json"]).trim(), "[]");

    // The manifest may name a function it does not declare (another app's); the server
    // refuses the alarm while no such function is deployed, after the functions are.
    std::fs::write(app.path().join("wisp.toml"), manifest("0.05", &[])).unwrap();
    let err = wisp_fails(&server, &["deploy", app.path().to_str().unwrap()], 4);
    assert!(
        err.contains("error: saving alarm `worker-errors` failed (the functions, queues, topics, buckets and stores are deployed)"),
        "{err}"
    );
    assert!(
        err.contains("`pager`") && err.contains("function_not_found"),
        "{err}"
    );
    assert!(wisp(&server, &["ls"]).contains("worker"));
}
