//! GPIO: an optional presence / people-counter sensor (debounced input) and a status LED, on the
//! Linux GPIO character device, with a simulator.

pub mod settings;
