//! The customer journey engine: what the kiosk screen shows and does, from the attract screen to
//! the goodbye with a turn ticket and a coupon, and the survey a served customer opens by scanning
//! their ticket on the way out.
//!
//! Data flow: drivers and touchscreen → [`Input`] → **[`step`]** → [`Effect`]s (journal events,
//! profile lookups, turn issuing, printing, a wake-up time) and a new [`State`], whose
//! [`view`] the UI server pushes to the screen. The engine is pure: no I/O, no clock reads;
//! the monotonic time is passed in with every input. See `engine.rs` for the defined outcomes
//! of double taps, taps while printing, scans while registering and printer failures.
//!
//! The runtime loop is:
//!
//! ```text
//! loop {
//!     let input = next(device inputs, UI touches, answers to effects, Tick at the last WakeAt);
//!     let (next, effects) = journey::step(&config, &state, input, clock.mono_ms());
//!     state = next;
//!     for effect in effects { carry it out (answers come back as inputs) }
//!     screen.send(journey::view(&config, &state));
//! }
//! ```

mod browse;
mod machine;

mod state;
mod types;
mod view;

pub use crate::locale::{Locale, Localized};
pub use browse::{BrowseItem, BrowseTurn, KioskRole};
pub use machine::{step, time_limit, warns};
pub use state::{
    Customer, ErrorKind, Notice, NoticeKind, RegistrationError, Screen, Session, State, Survey, Tap,
};
pub use types::{
    Campaign, CampaignPicture, ConsentPolicy, Coupon, CouponOutcome, CustomerProfile, Effect,
    Input, IssuedTurn, JourneyConfig, RegistrationForm, ScanInput, SurveyReason, SurveyStatus,
    TicketJob, Timeouts, Touch, TurnRequest, coupon_code, parse_coupon_code,
};
pub use view::{
    BrowseItemView, ConsentBox, ConsentStatus, CouponView, NoticeView, PictureView, ReasonChoice,
    ScreenBody, ScreenView, ServiceChoice, SurveyView, TimeWarningView, TurnView, qr_svg, view,
};

#[cfg(test)]
mod browse_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod time_limit_tests;
