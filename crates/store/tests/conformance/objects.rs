//! Checks of object storage's metadata: buckets per namespace, puts and deletes that
//! replace or remove whole and check their conditions (and puts their quotas), records
//! that keep their headers, listings by prefix and delimiter in pages, events that
//! commit with their write, multipart uploads, and what the blob sweep keeps. These take
//! `&dyn Store`: a write's events are read back through `Events`.

use super::*;
use std::collections::BTreeMap;
use wisp_core::BucketName;
use wisp_store::{
    BucketDeleted, BucketRecord, Condition, ListQuery, ObjectDeleted, ObjectRecord, ObjectWrite, PartRecord,
    PartWrite, PutObject, Store, UploadRecord,
};

fn bucket(name: &str) -> TestResult<BucketName> {
    Ok(BucketName::new(name)?)
}

fn new_bucket(namespace: &Namespace, name: &str, quota_bytes: Option<u64>) -> TestResult<BucketRecord> {
    Ok(BucketRecord {
        namespace: namespace.clone(),
        name: bucket(name)?,
        created_ms: T,
        quota_bytes,
        objects: 0,
        bytes: 0,
        notifications: Vec::new(),
    })
}

fn object(namespace: &Namespace, b: &BucketName, key: &str, size: u64, blob: &str) -> ObjectRecord {
    ObjectRecord {
        namespace: namespace.clone(),
        bucket: b.clone(),
        key: key.to_owned(),
        blob: blob.to_owned(),
        size,
        etag: format!("etag-{blob}"),
        content_type: Some("text/plain".into()),
        metadata: BTreeMap::from([("colour".to_string(), "blue".to_string())]),
        headers: headers(),
        modified_ms: T,
    }
}

fn headers() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("cache-control".to_string(), "max-age=60".to_string()),
        ("expires".to_string(), "Tue, 14 Nov 2023 22:13:20 GMT".to_string()),
    ])
}

/// The blob of what a delete removed.
fn removed(deleted: ObjectDeleted) -> Option<String> {
    match deleted {
        ObjectDeleted::Deleted { removed } => Some(removed.blob),
        _ => None,
    }
}

fn put(record: ObjectRecord) -> PutObject {
    PutObject {
        record,
        events: Vec::new(),
        condition: Condition::None,
        namespace_limit: None,
    }
}

fn keys(listing: &wisp_store::Listing) -> Vec<&str> {
    listing.objects.iter().map(|o| o.key.as_str()).collect()
}

pub async fn objects_buckets_belong_to_a_namespace(store: &dyn Store) -> TestResult {
    let (alpha, beta) = (ns("alpha")?, ns("beta")?);
    let photos = bucket("photos")?;
    assert!(store.create_bucket(&new_bucket(&alpha, "photos", None)?).await?);
    assert!(!store.create_bucket(&new_bucket(&alpha, "photos", None)?).await?);
    assert!(
        store
            .create_bucket(&new_bucket(&beta, "photos", Some(9))?)
            .await?,
        "names are per namespace"
    );
    assert!(store.create_bucket(&new_bucket(&alpha, "docs", None)?).await?);
    let names = |list: Vec<BucketRecord>| list.into_iter().map(|b| b.name.to_string()).collect::<Vec<_>>();
    assert_eq!(names(store.list_buckets(Some(&alpha)).await?), ["docs", "photos"]);
    assert_eq!(
        names(store.list_buckets(None).await?),
        ["docs", "photos", "photos"]
    );
    assert_eq!(
        store
            .get_bucket(&beta, &photos)
            .await?
            .and_then(|b| b.quota_bytes),
        Some(9)
    );
    store
        .put_object(put(object(&alpha, &photos, "a", 3, "b1")))
        .await?;
    assert_eq!(
        store.delete_bucket(&alpha, &photos).await?,
        BucketDeleted::NotEmpty
    );
    assert_eq!(
        store.delete_bucket(&beta, &photos).await?,
        BucketDeleted::Deleted { parts: vec![] }
    );
    assert_eq!(
        store.delete_bucket(&beta, &photos).await?,
        BucketDeleted::NotFound
    );
    assert!(
        store.get_bucket(&alpha, &photos).await?.is_some(),
        "the other namespace's stays"
    );
    assert_eq!(store.get_object(&beta, &photos, "a").await?, None);
    Ok(())
}

pub async fn objects_put_replaces_whole_and_checks_conditions(store: &dyn Store) -> TestResult {
    let alpha = ns("alpha")?;
    let b = bucket("photos")?;
    store.create_bucket(&new_bucket(&alpha, "photos", None)?).await?;
    let first = object(&alpha, &b, "cat.jpg", 10, "b1");
    assert_eq!(
        store.put_object(put(first.clone())).await?,
        ObjectWrite::Stored { replaced: None }
    );
    assert_eq!(
        store.get_object(&alpha, &b, "cat.jpg").await?,
        Some(first.clone())
    );
    let second = object(&alpha, &b, "cat.jpg", 4, "b2");
    assert_eq!(
        store.put_object(put(second.clone())).await?,
        ObjectWrite::Stored {
            replaced: Some(first)
        }
    );
    let counts = store.get_bucket(&alpha, &b).await?.map(|b| (b.objects, b.bytes));
    assert_eq!(counts, Some((1, 4)));
    let absent = PutObject {
        condition: Condition::Absent,
        ..put(object(&alpha, &b, "cat.jpg", 1, "b3"))
    };
    assert_eq!(store.put_object(absent).await?, ObjectWrite::ConditionFailed);
    let wrong = PutObject {
        condition: Condition::EtagIs("etag-b1".into()),
        ..put(object(&alpha, &b, "cat.jpg", 1, "b3"))
    };
    assert_eq!(store.put_object(wrong).await?, ObjectWrite::ConditionFailed);
    let right = PutObject {
        condition: Condition::EtagIs("etag-b2".into()),
        ..put(object(&alpha, &b, "cat.jpg", 1, "b3"))
    };
    assert!(
        matches!(store.put_object(right).await?, ObjectWrite::Stored { replaced: Some(r) } if r.blob == "b2")
    );
    let present = |key: &str, blob: &str| PutObject {
        condition: Condition::Present,
        ..put(object(&alpha, &b, key, 1, blob))
    };
    assert_eq!(
        store.put_object(present("bird.jpg", "b9")).await?,
        ObjectWrite::ConditionFailed,
        "`If-Match: *` needs an object"
    );
    assert!(
        matches!(store.put_object(present("cat.jpg", "b3p")).await?, ObjectWrite::Stored { replaced: Some(r) } if r.blob == "b3")
    );
    let new_key = PutObject {
        condition: Condition::Absent,
        ..put(object(&alpha, &b, "dog.jpg", 2, "b4"))
    };
    assert_eq!(
        store.put_object(new_key).await?,
        ObjectWrite::Stored { replaced: None }
    );
    let missing = object(&alpha, &bucket("nothere")?, "x", 1, "b5");
    assert_eq!(store.put_object(put(missing)).await?, ObjectWrite::NoBucket);
    let counts = store.get_bucket(&alpha, &b).await?.map(|b| (b.objects, b.bytes));
    assert_eq!(counts, Some((2, 3)));
    Ok(())
}

pub async fn objects_deletes_check_their_conditions(store: &dyn Store) -> TestResult {
    let alpha = ns("alpha")?;
    let b = bucket("photos")?;
    store.create_bucket(&new_bucket(&alpha, "photos", None)?).await?;
    store
        .put_object(put(object(&alpha, &b, "cat.jpg", 10, "b1")))
        .await?;
    store
        .put_object(put(object(&alpha, &b, "dog.jpg", 2, "b2")))
        .await?;
    let delete = |key: &'static str, condition: Condition| {
        let (alpha, b) = (alpha.clone(), b.clone());
        async move { store.delete_object(&alpha, &b, key, condition, vec![]).await }
    };
    for refused in [Condition::EtagIs("etag-b2".into()), Condition::Absent] {
        assert_eq!(
            delete("cat.jpg", refused.clone()).await?,
            ObjectDeleted::ConditionFailed,
            "{refused:?}"
        );
    }
    assert!(
        store.get_object(&alpha, &b, "cat.jpg").await?.is_some(),
        "a refused delete leaves the object"
    );
    assert_eq!(
        removed(delete("cat.jpg", Condition::EtagIs("etag-b1".into())).await?),
        Some("b1".to_string())
    );
    for condition in [
        Condition::None,
        Condition::Present,
        Condition::EtagIs("etag-b1".into()),
    ] {
        assert_eq!(
            delete("cat.jpg", condition.clone()).await?,
            ObjectDeleted::NotFound,
            "{condition:?}"
        );
    }
    assert_eq!(
        removed(delete("dog.jpg", Condition::Present).await?),
        Some("b2".to_string())
    );
    let counts = store.get_bucket(&alpha, &b).await?.map(|b| (b.objects, b.bytes));
    assert_eq!(counts, Some((0, 0)));
    Ok(())
}

pub async fn objects_quotas_refuse_what_does_not_fit(store: &dyn Store) -> TestResult {
    let alpha = ns("alpha")?;
    let (small, big) = (bucket("small")?, bucket("big")?);
    store
        .create_bucket(&new_bucket(&alpha, "small", Some(100))?)
        .await?;
    store.create_bucket(&new_bucket(&alpha, "big", None)?).await?;
    store
        .put_object(put(object(&alpha, &small, "a", 60, "b1")))
        .await?;
    let over = store
        .put_object(put(object(&alpha, &small, "b", 60, "b2")))
        .await?;
    assert!(
        matches!(over, ObjectWrite::OverQuota(ref why) if why.contains("small")),
        "{over:?}"
    );
    // An overwrite frees what it replaces.
    let fits = store
        .put_object(put(object(&alpha, &small, "a", 100, "b3")))
        .await?;
    assert!(matches!(fits, ObjectWrite::Stored { .. }));
    let limited = |record, limit| PutObject {
        namespace_limit: Some(limit),
        ..put(record)
    };
    let over = store
        .put_object(limited(object(&alpha, &big, "c", 50, "b4"), 120))
        .await?;
    assert!(
        matches!(over, ObjectWrite::OverQuota(ref why) if why.contains("namespace")),
        "{over:?}"
    );
    let fits = store
        .put_object(limited(object(&alpha, &big, "c", 20, "b5"), 120))
        .await?;
    assert!(matches!(fits, ObjectWrite::Stored { .. }));
    assert_eq!(store.storage_used(&alpha).await?, 120);
    assert_eq!(store.storage_used(&ns("beta")?).await?, 0);
    Ok(())
}

pub async fn objects_list_by_prefix_and_delimiter_in_pages(store: &dyn Store) -> TestResult {
    let alpha = ns("alpha")?;
    let b = bucket("files")?;
    store.create_bucket(&new_bucket(&alpha, "files", None)?).await?;
    for key in ["a/1", "a/2", "b/1", "c", "d/x/y", "d/z", "e", "é"] {
        store.put_object(put(object(&alpha, &b, key, 1, key))).await?;
    }
    let list = |prefix: &str, delimiter: Option<&str>, after: Option<&str>, max_keys| ListQuery {
        prefix: prefix.into(),
        delimiter: delimiter.map(Into::into),
        after: after.map(Into::into),
        max_keys,
    };
    let all = store
        .list_objects(&alpha, &b, &list("", None, None, 1000))
        .await?
        .ok_or("bucket")?;
    assert_eq!(
        keys(&all),
        ["a/1", "a/2", "b/1", "c", "d/x/y", "d/z", "e", "é"],
        "byte order"
    );
    assert!(!all.truncated);
    let rolled = store
        .list_objects(&alpha, &b, &list("", Some("/"), None, 1000))
        .await?
        .ok_or("bucket")?;
    assert_eq!(keys(&rolled), ["c", "e", "é"]);
    assert_eq!(rolled.common_prefixes, ["a/", "b/", "d/"]);
    let under_d = store
        .list_objects(&alpha, &b, &list("d/", Some("/"), None, 1000))
        .await?
        .ok_or("bucket")?;
    assert_eq!(
        (keys(&under_d), under_d.common_prefixes.clone()),
        (vec!["d/z"], vec!["d/x/".to_string()])
    );
    // Pages of two entries, objects and prefixes together, each starting after the last.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store
            .list_objects(&alpha, &b, &list("", Some("/"), after.as_deref(), 2))
            .await?
            .ok_or("bucket")?;
        assert!(page.objects.len() + page.common_prefixes.len() <= 2);
        seen.extend(page.common_prefixes.iter().cloned());
        seen.extend(page.objects.iter().map(|o| o.key.clone()));
        if !page.truncated {
            break;
        }
        after = page.next.clone();
        assert!(after.is_some());
    }
    seen.sort();
    assert_eq!(seen, ["a/", "b/", "c", "d/", "e", "é"]);
    let prefixed = store
        .list_objects(&alpha, &b, &list("a/", None, Some("a/1"), 1000))
        .await?
        .ok_or("bucket")?;
    assert_eq!(keys(&prefixed), ["a/2"]);
    assert_eq!(
        store
            .list_objects(&alpha, &bucket("nothere")?, &list("", None, None, 10))
            .await?,
        None
    );
    Ok(())
}

pub async fn objects_events_commit_with_their_write(store: &dyn Store) -> TestResult {
    let alpha = ns("alpha")?;
    let b = bucket("photos")?;
    let thumbs = func("thumbs")?;
    store.create_bucket(&new_bucket(&alpha, "photos", None)?).await?;
    let with_event = |record, id: &str, condition| PutObject {
        events: vec![event(&alpha, &thumbs, id, T_US, T)],
        condition,
        ..put(record)
    };
    store
        .put_object(with_event(
            object(&alpha, &b, "a", 1, "b1"),
            "e1",
            Condition::None,
        ))
        .await?;
    assert!(
        store.get_event(&alpha, "e1").await?.is_some(),
        "the put's event is recorded"
    );
    let refused = store
        .put_object(with_event(
            object(&alpha, &b, "a", 1, "b2"),
            "e2",
            Condition::Absent,
        ))
        .await?;
    assert_eq!(refused, ObjectWrite::ConditionFailed);
    assert!(
        store.get_event(&alpha, "e2").await?.is_none(),
        "a refused put records no event"
    );
    store
        .delete_object(
            &alpha,
            &b,
            "nothing",
            Condition::None,
            vec![event(&alpha, &thumbs, "e3", T_US, T)],
        )
        .await?;
    assert!(
        store.get_event(&alpha, "e3").await?.is_none(),
        "no delete, no event"
    );
    let refused = store
        .delete_object(
            &alpha,
            &b,
            "a",
            Condition::EtagIs("another".into()),
            vec![event(&alpha, &thumbs, "e5", T_US, T)],
        )
        .await?;
    assert_eq!(refused, ObjectDeleted::ConditionFailed);
    assert!(
        store.get_event(&alpha, "e5").await?.is_none(),
        "a refused delete records no event"
    );
    store
        .delete_object(
            &alpha,
            &b,
            "a",
            Condition::None,
            vec![event(&alpha, &thumbs, "e4", T_US, T)],
        )
        .await?;
    assert!(store.get_event(&alpha, "e4").await?.is_some());
    Ok(())
}

pub async fn objects_multipart_uploads_complete_and_abort(store: &dyn Store) -> TestResult {
    let alpha = ns("alpha")?;
    let b = bucket("videos")?;
    let upload = |id: &str, key: &str| UploadRecord {
        namespace: alpha.clone(),
        bucket: b.clone(),
        key: key.into(),
        upload_id: id.into(),
        created_ms: T,
        content_type: Some("video/mp4".into()),
        metadata: BTreeMap::new(),
        headers: headers(),
    };
    let part = |id: &str, number, blob: &str| PartRecord {
        upload_id: id.into(),
        number,
        blob: blob.into(),
        size: 5,
        etag: format!("etag-{blob}"),
        modified_ms: T,
    };
    assert!(
        !store.create_upload(&upload("u0", "x")).await?,
        "no bucket, no upload"
    );
    store.create_bucket(&new_bucket(&alpha, "videos", None)?).await?;
    assert!(store.create_upload(&upload("u1", "movie.mp4")).await?);
    assert!(store.create_upload(&upload("u2", "clip.mp4")).await?);
    assert!(store.create_upload(&upload("u3", "other/a.mp4")).await?);
    assert_eq!(
        store.get_upload(&alpha, &b, "u1").await?,
        Some(upload("u1", "movie.mp4"))
    );
    assert_eq!(
        store.get_upload(&ns("beta")?, &b, "u1").await?,
        None,
        "another namespace's upload"
    );
    assert_eq!(
        store.put_part(&part("u1", 1, "p1")).await?,
        PartWrite::Stored { replaced: None }
    );
    assert_eq!(
        store.put_part(&part("u1", 2, "p2")).await?,
        PartWrite::Stored { replaced: None }
    );
    assert_eq!(
        store.put_part(&part("u1", 1, "p1b")).await?,
        PartWrite::Stored {
            replaced: Some(part("u1", 1, "p1"))
        }
    );
    assert_eq!(store.put_part(&part("nope", 1, "p9")).await?, PartWrite::NoUpload);
    let listed: Vec<u32> = store
        .list_parts("u1", 0, 10)
        .await?
        .iter()
        .map(|p| p.number)
        .collect();
    assert_eq!(listed, [1, 2]);
    assert_eq!(store.list_parts("u1", 1, 10).await?, vec![part("u1", 2, "p2")]);
    let ids = |list: Vec<UploadRecord>| list.into_iter().map(|u| u.upload_id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_uploads(&alpha, &b, "", None, 10).await?),
        ["u2", "u1", "u3"]
    );
    assert_eq!(
        ids(store.list_uploads(&alpha, &b, "other/", None, 10).await?),
        ["u3"]
    );
    assert_eq!(
        ids(store
            .list_uploads(&alpha, &b, "", Some(("clip.mp4".into(), "u2".into())), 10)
            .await?),
        ["u1", "u3"]
    );
    let in_use: Vec<String> = store.blobs_in_use().await?;
    assert!(in_use.contains(&"p1b".to_string()) && in_use.contains(&"p2".to_string()));
    let object_put = put(object(&alpha, &b, "movie.mp4", 10, "joined"));
    let refused = PutObject {
        condition: Condition::Present,
        ..object_put.clone()
    };
    assert_eq!(
        store.complete_upload("u1", refused).await?,
        Some((ObjectWrite::ConditionFailed, vec![])),
        "a refused completion"
    );
    assert!(
        store.get_upload(&alpha, &b, "u1").await?.is_some(),
        "leaves the upload to complete again"
    );
    let (written, parts) = store
        .complete_upload("u1", object_put.clone())
        .await?
        .ok_or("upload")?;
    assert_eq!(written, ObjectWrite::Stored { replaced: None });
    assert_eq!(parts.len(), 2);
    assert_eq!(store.get_upload(&alpha, &b, "u1").await?, None);
    assert_eq!(
        store
            .get_object(&alpha, &b, "movie.mp4")
            .await?
            .map(|o| o.headers),
        Some(headers()),
        "the object keeps its headers"
    );
    assert_eq!(
        store.complete_upload("u1", object_put).await?,
        None,
        "completed once"
    );
    store.put_part(&part("u2", 1, "q1")).await?;
    assert_eq!(
        store.abort_upload(&alpha, &b, "u2").await?,
        Some(vec![part("u2", 1, "q1")])
    );
    assert_eq!(store.abort_upload(&alpha, &b, "u2").await?, None);
    let mut in_use = store.blobs_in_use().await?;
    in_use.sort();
    assert_eq!(in_use, ["joined"], "the parts' blobs are no longer named");
    // A bucket's unfinished uploads go with it.
    store
        .delete_object(&alpha, &b, "movie.mp4", Condition::None, vec![])
        .await?;
    store.put_part(&part("u3", 1, "r1")).await?;
    assert_eq!(
        store.delete_bucket(&alpha, &b).await?,
        BucketDeleted::Deleted {
            parts: vec![part("u3", 1, "r1")]
        }
    );
    Ok(())
}
