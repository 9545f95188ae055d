//! What this build is: version, git commit and target triple (set by `build.rs`), as printed by
//! `kiosk version`, reported by `kiosk status` and the self-test, and sent with remote logs.

/// Version of this build.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git commit this binary was built from.
pub const GIT_COMMIT: &str = env!("KIOSK_GIT_COMMIT");
/// Target triple this binary was built for.
pub const TARGET: &str = env!("KIOSK_TARGET");
