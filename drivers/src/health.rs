//! Health of a device as its driver sees it: ok, degraded or absent, with a reason a technician can
//! act on. Drivers report changes; the firmware turns them into `device_status_changed` events.

use std::fmt;

pub use kiosk_types::DeviceHealth;

/// A device's health and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The state.
    pub state: DeviceHealth,
    /// Why, in words a technician can act on; `None` when ok.
    pub reason: Option<String>,
}

impl Health {
    /// A working device.
    pub fn ok() -> Self {
        Health {
            state: DeviceHealth::Ok,
            reason: None,
        }
    }

    /// A device that works with a problem.
    pub fn degraded(reason: impl Into<String>) -> Self {
        Health {
            state: DeviceHealth::Degraded,
            reason: Some(reason.into()),
        }
    }

    /// A device that cannot be used.
    pub fn absent(reason: impl Into<String>) -> Self {
        Health {
            state: DeviceHealth::Absent,
            reason: Some(reason.into()),
        }
    }

    /// Whether the device can be used at all.
    pub fn is_usable(&self) -> bool {
        self.state != DeviceHealth::Absent
    }
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match self.state {
            DeviceHealth::Ok => "ok",
            DeviceHealth::Degraded => "degraded",
            DeviceHealth::Absent => "absent",
        };
        match &self.reason {
            Some(reason) => write!(f, "{state}: {reason}"),
            None => f.write_str(state),
        }
    }
}
