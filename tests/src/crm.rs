//! Talking to a CRM endpoint as a kiosk does: one batch of events, signed with the kiosk's
//! device secret exactly as the sync client signs it (`kiosk_protocol::auth::sign_request`).

use kiosk_protocol::auth::sign_request;
use kiosk_protocol::events::Envelope;
use kiosk_protocol::wire::{BatchRequest, DeviceSecret, KioskClock, batches_path};

/// Posts `envs` as one batch of kiosk `kiosk_id` to the endpoint at `base`, the kiosk's clock
/// read as `clock`, signed with `secret` at `signed_at` (unix seconds); panics unless the
/// endpoint answers 200, with its answer as the message.
#[allow(
    clippy::missing_panics_doc,
    clippy::expect_used,
    reason = "test support: a refused batch is the test's failure"
)]
pub async fn post_batch(
    base: &str,
    kiosk_id: &str,
    secret: &DeviceSecret,
    clock: KioskClock,
    envs: Vec<Envelope>,
    signed_at: i64,
) {
    let batch = BatchRequest::new(kiosk_id, clock, envs).expect("a well-formed batch");
    let body = serde_json::to_vec(&batch).expect("a batch serialises");
    let path = batches_path(kiosk_id);
    let headers = sign_request(kiosk_id, secret, "POST", &path, &body, signed_at);
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body);
    for (k, v) in headers.pairs() {
        req = req.header(k, v);
    }
    let resp = req.send().await.expect("the endpoint answers");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "the batch of {kiosk_id}: {text}");
}
