//! The thermal ticket printer: ticket layout, ESC/POS encoding, transports (USB printer class,
//! serial, TCP 9100, file), real-time status, and a virtual printer that renders paper as PNG.

pub mod settings;
