//! End-to-end tests: each starts the real `wisp` binary on port 0 (a [`TestServer`])
//! and talks to it over a real socket, with real guests from `tests/fixtures/`.
//!
//! [`TestServer`]: wisp_test_support::TestServer

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod alarms;
mod alarms_cli;
mod api;
mod apps;
mod async_crash;
mod async_events;
mod breakers_delivery;
mod calls;
mod cli;
mod cli_queues;
mod cluster;
mod cluster_nats;
mod dashboard;
mod docs;
mod event;
mod gateway;
mod init;
mod kv;
mod kv_api;
mod kv_native;
mod lambda_api;
mod lambda_functions;
mod lifecycle;
mod limits;
mod listener;
mod logs_follow;
mod metrics;
mod native;
mod native_network;
mod objects_cli;
mod otlp;
mod outbound;
mod platform_calls;
mod queues_api;
mod quota;
mod rate_limit;
mod route_auth;
mod s3;
mod scaling;
mod secrets;
mod tenancy;
mod thumbnails;
mod topics;
mod topics_cli;
mod topics_native;
mod topics_webhook;
mod trace;
mod trace_chain;
mod trace_paths;
mod ui;
mod ui_admin;
mod ui_charts;
mod ui_queues;
mod ui_storage;
mod usage;
mod util;
mod versions;
