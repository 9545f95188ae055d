//! Barcode / QR scanners: serial (CDC-ACM) and USB HID, and the decoders that validate what they
//! read (EAN-13, EAN-8, UPC-A, the project's signed ticket and coupon QR payloads).

pub mod settings;
