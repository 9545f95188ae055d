//! The `kiosk` binary's library: the wiring of a running kiosk ([`runtime`]), the UI server
//! ([`ui`]), the command line ([`cli`]) with its field commands, and `kiosk demo` ([`demo`]).
//!
//! Data flow: device → input → engine → (journal, printer, screen) → outbox → endpoint. The pure
//! journey state machine and turn queue are the `kiosk-core` crate, the journal and the kiosk
//! database the `kiosk-journal` crate; this crate carries out what they decide.
//!
//! Layering (each module imports only those listed before it):
//! 1. [`version`], [`paths`], `service`, [`credentials`], [`config`], `setup` (site config into
//!    the core's settings);
//! 2. `devices` (one thread per device, turning driver events into inputs);
//! 3. `executor` (the task that owns the journey and the queue and runs their effects), with
//!    the [`staff`] messages it consumes; [`screen`] (is the kiosk page on the screen; its
//!    watchdog); [`signage`] (the lobby's campaign content, chosen for who is in the store);
//! 4. `status`, [`stepin`] (the Step-In devices' signatures), then [`ui`] (screen, counter and lobby pages; it is handed a status source);
//! 5. [`runtime`] (starts all of the above in named steps);
//! 6. `remote_log`, `provision`, `selftest`, [`bench`] (the simulator control panel of a bench
//!    kiosk and of the demo), [`demo`]; and last [`cli`].

pub mod accessibility;
pub mod bench;
pub mod cli;
pub mod config;
pub mod credentials;
#[cfg(feature = "demo")]
pub mod demo;
mod devices;
mod executor;
pub mod paths;
mod provision;
mod remote_log;
pub mod runtime;
pub mod screen;
mod selftest;
mod service;
mod setup;
pub mod signage;
mod status;
pub mod stepin;
pub mod store;
pub mod ui;
pub mod update;
pub mod updater;
pub mod version;

pub use executor::staff;
