//! The kiosk firmware: configuration, the durable journal, the journey engine, the UI server,
//! the wiring of devices and sync, and the `kiosk` command line.
//!
//! Data flow: device → input → engine → (journal, printer, screen) → outbox → endpoint.
#![warn(missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod crypto;
#[cfg(feature = "demo")]
pub mod demo;
pub mod journal;
pub mod journey;
pub mod paths;
pub mod provision;
pub mod queue;
pub mod remote_log;
pub mod runtime;
pub mod selftest;
pub mod service;
pub mod status;
pub mod ui;
