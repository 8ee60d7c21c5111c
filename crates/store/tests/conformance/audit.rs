//! Checks of the audit log: duplicates skipped, newest first, paged with `before` (and
//! `before_id` within one millisecond), filtered by namespace, limited.

use super::*;
use wisp_store::{Audit, AuditEntry, AuditQuery};

/// Entry `id` at `at`, of a namespace.
pub fn audit_entry(namespace: &Namespace, id: &str, at: i64) -> AuditEntry {
    AuditEntry {
        id: id.to_owned(),
        at,
        namespace: namespace.clone(),
        key_id: Some("WKADMIN".to_owned()),
        action: "function.deploy".to_owned(),
        target: format!("fn-{id}"),
        source: Some("127.0.0.1:4242".to_owned()),
        detail: Some(format!("version {id}")),
    }
}

/// The ids of `entries`, in order.
pub fn audit_ids(entries: &[AuditEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.id.as_str()).collect()
}

fn query(namespace: Option<&Namespace>, before: Option<i64>, limit: usize) -> AuditQuery {
    AuditQuery {
        namespace: namespace.cloned(),
        before,
        before_id: None,
        limit,
    }
}

pub async fn audit_skips_duplicate_ids(store: &dyn Audit) -> TestResult {
    let default = ns("default")?;
    assert!(store.audit(&AuditQuery::default()).await?.is_empty());
    store.append_audit(&[]).await?;

    let bootstrap = AuditEntry {
        key_id: None,
        source: None,
        detail: None,
        action: "key.create".to_owned(),
        ..audit_entry(&default, "a1", T)
    };
    store
        .append_audit(&[bootstrap.clone(), audit_entry(&default, "a2", T + 1)])
        .await?;
    // A retried batch, and a different entry under a kept id: both skipped, the rest
    // appended.
    store
        .append_audit(&[
            audit_entry(&default, "a1", T + 5),
            audit_entry(&default, "a2", T + 1),
            audit_entry(&default, "a3", T + 2),
        ])
        .await?;
    let all = store.audit(&AuditQuery::default()).await?;
    assert_eq!(audit_ids(&all), ["a3", "a2", "a1"]);
    // Every field round-trips; the first write of an id wins.
    assert_eq!(all[2], bootstrap);
    assert_eq!(all[1], audit_entry(&default, "a2", T + 1));
    Ok(())
}

pub async fn audit_is_newest_first_paged_and_filtered(store: &dyn Audit) -> TestResult {
    let (default, other) = (ns("default")?, ns("other")?);
    // Appended out of time order, and three in one millisecond.
    store
        .append_audit(&[
            audit_entry(&default, "e3", T + 30),
            audit_entry(&other, "e1", T + 10),
            audit_entry(&default, "e2", T + 20),
            audit_entry(&default, "e4b", T + 40),
            audit_entry(&other, "e4a", T + 40),
            audit_entry(&default, "e4c", T + 40),
            audit_entry(&other, "e5", T + 50),
        ])
        .await?;

    let all = store.audit(&query(None, None, 100)).await?;
    assert_eq!(audit_ids(&all), ["e5", "e4c", "e4b", "e4a", "e3", "e2", "e1"]);
    // `0` is the default limit, not nothing.
    assert_eq!(store.audit(&query(None, None, 0)).await?, all);
    assert_eq!(
        audit_ids(&store.audit(&query(None, None, 2)).await?),
        ["e5", "e4c"]
    );

    // Strictly before `before`.
    assert_eq!(
        audit_ids(&store.audit(&query(None, Some(T + 40), 100)).await?),
        ["e3", "e2", "e1"]
    );
    assert_eq!(
        audit_ids(&store.audit(&query(None, Some(T + 41), 2)).await?),
        ["e4c", "e4b"]
    );
    assert!(store.audit(&query(None, Some(T + 10), 100)).await?.is_empty());

    // Paging with the last entry's time and id neither loses nor repeats entries of one
    // millisecond split across pages.
    let mut pages = Vec::new();
    let mut cursor: Option<(i64, String)> = None;
    loop {
        let page = store
            .audit(&AuditQuery {
                namespace: None,
                before: cursor.as_ref().map(|(at, _)| *at),
                before_id: cursor.as_ref().map(|(_, id)| id.clone()),
                limit: 2,
            })
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some((last.at, last.id.clone()));
        pages.push(audit_ids(&page).join(","));
    }
    assert_eq!(pages, ["e5,e4c", "e4b,e4a", "e3,e2", "e1"]);

    // Per namespace, with the same ordering and paging.
    assert_eq!(
        audit_ids(&store.audit(&query(Some(&default), None, 100)).await?),
        ["e4c", "e4b", "e3", "e2"]
    );
    assert_eq!(
        audit_ids(&store.audit(&query(Some(&other), None, 100)).await?),
        ["e5", "e4a", "e1"]
    );
    assert_eq!(
        audit_ids(&store.audit(&query(Some(&other), Some(T + 50), 1)).await?),
        ["e4a"]
    );
    let within = AuditQuery {
        namespace: Some(default.clone()),
        before: Some(T + 40),
        before_id: Some("e4c".to_owned()),
        limit: 100,
    };
    assert_eq!(audit_ids(&store.audit(&within).await?), ["e4b", "e3", "e2"]);
    assert!(
        store
            .audit(&query(Some(&ns("empty")?), None, 100))
            .await?
            .is_empty()
    );
    Ok(())
}
