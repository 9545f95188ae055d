//! Issue 19: the kiosk's "call an assistant" button and Step-In devices send
//! `assistance_requested` and `assistance_acknowledged`; the endpoint stores them like every
//! other event (the dashboard's figures are built on them elsewhere), on both databases.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed unwrap is the failure message"
)]

mod common;

use common::{Backend, Harness};
use kiosk_protocol::events::Event;
use kiosk_protocol::events::{
    AssistanceAcknowledged, AssistanceRequested, AssistanceSource, Envelope,
};
use kiosk_protocol::wire::{BatchResponse, EventStatus, batches_path};
use reqwest::Method;
use uuid::Uuid;

on_both_databases!(assistance_requests_and_acknowledgements_are_stored);

async fn assistance_requests_and_acknowledgements_are_stored(b: Backend) {
    let h = Harness::start(b).await;
    let k = h.kiosk.clone();
    let from_kiosk = Uuid::now_v7();
    let from_device = Uuid::now_v7();
    let events: Vec<Envelope> = vec![
        h.envelope(
            &k,
            1,
            Event::AssistanceRequested(AssistanceRequested {
                request_id: from_kiosk,
                source: AssistanceSource::Kiosk,
                place: k.id.clone(),
                place_name: "Quiosco de la entrada".into(),
                turn_id: Some(Uuid::now_v7()),
            }),
        ),
        h.envelope(
            &k,
            2,
            Event::AssistanceRequested(AssistanceRequested {
                request_id: from_device,
                source: AssistanceSource::StepIn,
                place: "atm-1".into(),
                place_name: "Cajero de la entrada".into(),
                turn_id: None,
            }),
        ),
        h.envelope(
            &k,
            3,
            Event::AssistanceAcknowledged(AssistanceAcknowledged {
                request_id: from_kiosk,
                counter: "3".into(),
                response_ms: 42_000,
            }),
        ),
    ];
    let body = h.batch_body(&k, events.clone());
    let answer: BatchResponse = h
        .signed(&k, Method::POST, &batches_path(&k.id), body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer
            .results
            .iter()
            .map(|r| (r.id, r.status))
            .collect::<Vec<_>>(),
        events
            .iter()
            .map(|e| (e.id, EventStatus::Accepted))
            .collect::<Vec<_>>(),
        "{answer:?}"
    );
    assert_eq!(h.event_count().await, 3);
    h.stop().await;
}
