//! The browse role's words: a kiosk configured as a *browse point* shows content and offers for
//! the segment of whoever taps a card (and their turn, if they have one today), without taking a
//! turn. The transitions are in the journey's machine, like every screen's.
//!
//! Data flow: card tap → lookup → [`super::Effect::LoadBrowse`] → runtime (campaign content for
//! the segment, the customer's turn in the store queue) → [`super::Input::BrowseLoaded`] → the
//! items play one after another, each ending in a `content_played` event → attract.

use serde::{Deserialize, Serialize};

use crate::locale::Localized;

/// What a kiosk is for (`kiosk.role` in the site config).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KioskRole {
    /// Customers take turns (and answer surveys, register): the default.
    #[default]
    Queue,
    /// A browse point: customers see content and offers for their segment, no turn taken.
    Browse,
}

/// One piece of content at a browse point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseItem {
    /// The campaign.
    pub campaign_id: String,
    /// The item within it.
    pub content_id: String,
    /// Its text.
    pub text: Localized,
    /// Its picture's URL on the kiosk, if any.
    pub image: Option<String>,
    /// The picture's text alternative.
    pub alt: Option<Localized>,
    /// Seconds on screen.
    pub duration_s: u32,
}

/// The customer's turn today, as a browse point shows it ("your turn A-012, 3 ahead").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrowseTurn {
    /// Its label.
    pub label: String,
    /// Turns before it in its service; `None` once called.
    pub ahead: Option<u32>,
    /// The counter calling it, once called.
    pub counter: Option<String>,
}
