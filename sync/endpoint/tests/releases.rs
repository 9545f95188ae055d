//! Safe updates at the CRM, on SQLite and on a throwaway PostgreSQL: a signed release uploaded
//! through the admin API (unsigned refused, a changed package under the same version refused),
//! downloaded by a kiosk piece by piece into exactly the signed bytes, offered to a canary share
//! of kiosks (stable by kiosk id) or a store, a pin overriding the rollout, and a rollout that
//! halts by itself once enough kiosks report rolling it back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, Harness, Kiosk};
use crm_endpoint::db::releases::canary_bucket;
use kiosk_protocol::events::{Event, FirmwareUpdated, UpdateResult};
use kiosk_protocol::release::{
    ReleaseAssignment, ReleaseManifest, ReleaseSigningKey, SignedRelease, assignment_path,
};
use reqwest::Method;

/// A package-like blob over three storage chunks, so pieces cross chunk borders.
fn package(seed: u8) -> Vec<u8> {
    (0..1_300_000_u32)
        .map(|i| u8::try_from((i * 7 + u32::from(seed)) % 251).unwrap())
        .collect()
}

fn sign(key: &ReleaseSigningKey, version: &str, bytes: &[u8]) -> SignedRelease {
    ReleaseManifest::of_package(version, "arm64", bytes)
        .unwrap()
        .sign(key)
}

async fn upload(
    h: &Harness,
    version: &str,
    bytes: &[u8],
    signature: Option<&str>,
) -> reqwest::Response {
    let mut req = h
        .admin(Method::PUT, &format!("/v1/admin/releases/{version}/arm64"))
        .body(bytes.to_vec());
    if let Some(s) = signature {
        req = req.header("x-release-signature", s);
    }
    req.send().await.unwrap()
}

async fn assignment(h: &Harness, kiosk: &Kiosk, running: &str) -> Option<SignedRelease> {
    let resp = h
        .signed(
            kiosk,
            Method::GET,
            &assignment_path(&kiosk.id, "arm64", running, None),
            vec![],
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer = resp.json::<ReleaseAssignment>().await.unwrap();
    if let (Some(new), Some(current)) = (&answer.release, &answer.current) {
        assert_ne!(new.manifest.version, current.manifest.version);
        assert_eq!(current.manifest.version, running);
    }
    answer.release
}

async fn rollout(h: &Harness, version: &str, body: serde_json::Value) -> reqwest::Response {
    h.admin(Method::PUT, &format!("/v1/admin/rollouts/{version}"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn releases_uploaded_signed_are_downloaded_piecewise_into_the_signed_bytes(backend: Backend) {
    let h = Harness::start(backend).await;
    let key = ReleaseSigningKey::generate();
    let bytes = package(1);
    let signed = sign(&key, "0.2.0-1", &bytes);

    let resp = upload(&h, "0.2.0-1", &bytes, None).await;
    assert_eq!(resp.status(), 400);
    assert!(
        resp.text()
            .await
            .unwrap()
            .contains("unsigned release refused")
    );
    let resp = upload(&h, "0.2.0-1", &bytes, Some("not a signature")).await;
    assert_eq!(resp.status(), 400);

    let resp = upload(&h, "0.2.0-1", &bytes, Some(&signed.signature)).await;
    assert_eq!(resp.status(), 200);
    let stored: SignedRelease = resp.json().await.unwrap();
    assert_eq!(stored, signed);
    stored.verify_signature(&key.public()).unwrap();
    // Again: the same package is fine; another under the same version is refused.
    assert_eq!(
        upload(&h, "0.2.0-1", &bytes, Some(&signed.signature))
            .await
            .status(),
        200
    );
    let other = package(2);
    let resp = upload(
        &h,
        "0.2.0-1",
        &other,
        Some(&sign(&key, "0.2.0-1", &other).signature),
    )
    .await;
    assert_eq!(resp.status(), 409);
    assert!(resp.text().await.unwrap().contains("releases never change"));

    // A kiosk downloads it in pieces of 300,000 bytes (crossing the 512 KiB chunks).
    let k = &h.kiosk;
    let mut got = Vec::new();
    while got.len() < bytes.len() {
        let path = format!(
            "/v1/kiosks/{}/releases/0.2.0-1/arm64?offset={}&length=300000",
            k.id,
            got.len()
        );
        let resp = h
            .signed(k, Method::GET, &path, vec![])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let piece = resp.bytes().await.unwrap();
        assert!(!piece.is_empty());
        got.extend_from_slice(&piece);
    }
    signed
        .verify_package(&key.public(), got.as_slice())
        .unwrap();
    // Unsigned requests get nothing.
    let resp = h
        .client
        .get(format!(
            "{}/v1/kiosks/{}/releases/0.2.0-1/arm64?offset=0&length=10",
            h.base, k.id
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    h.stop().await;
}

async fn a_canary_share_a_store_and_a_pin_decide_which_kiosks_get_a_release(backend: Backend) {
    let h = Harness::start(backend).await;
    let key = ReleaseSigningKey::generate();
    for v in ["0.2.0-1", "0.3.0-1"] {
        let bytes = package(v.as_bytes()[2]);
        let s = sign(&key, v, &bytes);
        assert_eq!(
            upload(&h, v, &bytes, Some(&s.signature)).await.status(),
            200
        );
    }
    let mut kiosks = vec![h.kiosk.clone()];
    for _ in 0..11 {
        kiosks.push(h.enroll("north").await);
    }
    // No rollout: nobody is offered anything.
    assert_eq!(assignment(&h, &kiosks[0], "0.1.0-1").await, None);

    // A 50 % canary of 0.2.0: exactly the kiosks whose bucket is under 50.
    assert_eq!(
        rollout(
            &h,
            "0.2.0-1",
            serde_json::json!({ "percent": 50, "max_failures": 3 })
        )
        .await
        .status(),
        204
    );
    for k in &kiosks {
        let got = assignment(&h, k, "0.1.0-1")
            .await
            .map(|r| r.manifest.version);
        let expected = (canary_bucket(&k.id) < 50).then(|| "0.2.0-1".to_owned());
        assert_eq!(
            got,
            expected,
            "kiosk {} (bucket {})",
            k.id,
            canary_bucket(&k.id)
        );
    }
    // 0.3.0 for every kiosk of another store: north's kiosks are not in it.
    h.admin(Method::POST, "/v1/admin/stores")
        .json(&serde_json::json!({ "id": "south", "name": "South" }))
        .send()
        .await
        .unwrap();
    let south = h.enroll("south").await;
    assert_eq!(
        rollout(
            &h,
            "0.3.0-1",
            serde_json::json!({ "store_id": "south", "percent": 100, "max_failures": 3 })
        )
        .await
        .status(),
        204
    );
    assert_eq!(
        assignment(&h, &south, "0.1.0-1")
            .await
            .map(|r| r.manifest.version)
            .as_deref(),
        Some("0.3.0-1")
    );
    let outside = kiosks
        .iter()
        .find(|k| canary_bucket(&k.id) >= 50)
        .expect("a kiosk outside the canary");
    assert_eq!(assignment(&h, outside, "0.1.0-1").await, None);

    // A pin wins over every rollout, and unpinning gives the kiosk back to them.
    let resp = h
        .admin(Method::PUT, &format!("/v1/admin/kiosks/{}/pin", outside.id))
        .json(&serde_json::json!({ "version": "0.3.0-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        assignment(&h, outside, "0.1.0-1")
            .await
            .map(|r| r.manifest.version)
            .as_deref(),
        Some("0.3.0-1")
    );
    let resp = h
        .admin(Method::PUT, &format!("/v1/admin/kiosks/{}/pin", outside.id))
        .json(&serde_json::json!({ "version": null }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(assignment(&h, outside, "0.1.0-1").await, None);
    // A rollout or pin of a release never uploaded is refused.
    assert_eq!(
        rollout(
            &h,
            "9.9.9",
            serde_json::json!({ "percent": 10, "max_failures": 1 })
        )
        .await
        .status(),
        404
    );
    h.stop().await;
}

async fn a_rollout_halts_by_itself_once_enough_kiosks_roll_it_back(backend: Backend) {
    let h = Harness::start(backend).await;
    let key = ReleaseSigningKey::generate();
    let bytes = package(3);
    let s = sign(&key, "0.2.0-1", &bytes);
    assert_eq!(
        upload(&h, "0.2.0-1", &bytes, Some(&s.signature))
            .await
            .status(),
        200
    );
    assert_eq!(
        rollout(
            &h,
            "0.2.0-1",
            serde_json::json!({ "percent": 100, "max_failures": 2 })
        )
        .await
        .status(),
        204
    );
    let a = h.kiosk.clone();
    let b = h.enroll("north").await;
    let c = h.enroll("north").await;
    assert!(assignment(&h, &c, "0.1.0-1").await.is_some());
    let report = |result| {
        Event::FirmwareUpdated(FirmwareUpdated {
            version: "0.2.0-1".into(),
            previous: Some("0.1.0-1".into()),
            result,
            reason: Some("its self-test failed: printer: absent".into()),
        })
    };
    // One rollback (reported twice: counted once) and one success: still going.
    let ev = h.envelope(&a, 1, report(UpdateResult::RolledBack));
    assert_eq!(h.post_events(&a, vec![ev.clone()]).await.status(), 200);
    assert_eq!(
        h.post_events(
            &a,
            vec![h.envelope(&a, 2, report(UpdateResult::RolledBack))]
        )
        .await
        .status(),
        200
    );
    assert_eq!(
        h.post_events(&c, vec![h.envelope(&c, 1, report(UpdateResult::Installed))])
            .await
            .status(),
        200
    );
    assert!(assignment(&h, &c, "0.1.0-1").await.is_some());
    // The second kiosk rolling back reaches the threshold: nobody is offered it any more.
    assert_eq!(
        h.post_events(
            &b,
            vec![h.envelope(&b, 1, report(UpdateResult::RolledBack))]
        )
        .await
        .status(),
        200
    );
    assert_eq!(assignment(&h, &c, "0.1.0-1").await, None);
    let list: serde_json::Value = h
        .admin(Method::GET, "/v1/admin/releases")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let r = &list["releases"][0];
    assert_eq!(r["failures"], 2, "{list}");
    assert_eq!(r["installed"], 1, "{list}");
    assert!(r["rollout"]["halted_ms"].is_i64(), "{list}");
    assert!(
        r["rollout"]["halted_reason"]
            .as_str()
            .unwrap()
            .contains("2 kiosks rolled back"),
        "{list}"
    );
    // The operator fixes the cause and restarts it (a higher threshold): offered again.
    assert_eq!(
        rollout(
            &h,
            "0.2.0-1",
            serde_json::json!({ "percent": 100, "max_failures": 5 })
        )
        .await
        .status(),
        204
    );
    assert!(assignment(&h, &c, "0.1.0-1").await.is_some());
    h.stop().await;
}

on_both_databases!(
    releases_uploaded_signed_are_downloaded_piecewise_into_the_signed_bytes,
    a_canary_share_a_store_and_a_pin_decide_which_kiosks_get_a_release,
    a_rollout_halts_by_itself_once_enough_kiosks_roll_it_back,
);
