//! Signage on the lobby display (and the content of browse points): the store's campaign
//! content from the feed's cache, chosen for who is in the store (`kiosk_core::signage`), each
//! lobby play journaled as `content_played`.
//!
//! Data flow: feed → campaign cache → [`Signage::next`] (chooser over the store picture) →
//! lobby page plays it between calls → [`Signage::played`] → journal → outbox → CRM.
//!
//! The lobby page is on the shop LAN without a login, so it cannot invent plays: the kiosk hands
//! out each play with an unguessable id and journals it once, when the page reports it ended,
//! for no longer than it was on screen. Pictures are decoded and size-checked before they are
//! served; a campaign whose content is unusable keeps running on tickets and kiosks.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use kiosk_core::audience::StorePicture;
use kiosk_core::signage::{Chooser, Item};
use kiosk_journal::db::KioskDb;
use kiosk_protocol::events::{ContentPlayed, ContentSurface, Event, SegmentCount};
use kiosk_protocol::wire::{
    Campaign, ContentImage, ContentItem, Localized, MAX_CONTENT_IMAGE_BYTES,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use crate::setup::StoreTime;

/// Plays handed out and not yet reported (a display that vanished leaves its play here until
/// newer ones push it out).
const PENDING_PLAYS: usize = 32;
/// Largest picture side, in pixels: a 4K display's width.
const MAX_SIDE: u32 = kiosk_protocol::picture::MAX_PICTURE_SIDE;

/// Content a campaign carries that cannot be shown.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContentError {
    /// The picture's type is not one a display shows.
    #[error(
        "content {content} of campaign {campaign}: picture type {mime} is not image/png, image/jpeg or image/webp"
    )]
    Mime {
        /// The campaign.
        campaign: String,
        /// The item.
        content: String,
        /// The type given.
        mime: String,
    },
    /// The picture is not valid base64, or not the picture its type says.
    #[error(
        "content {content} of campaign {campaign}: the picture is not a valid {mime}: {reason}"
    )]
    Undecodable {
        /// The campaign.
        campaign: String,
        /// The item.
        content: String,
        /// The type given.
        mime: String,
        /// Why.
        reason: String,
    },
    /// The picture is larger than a content picture may be.
    #[error(
        "content {content} of campaign {campaign}: the picture is {bytes} bytes or {width}x{height} pixels, over {MAX_CONTENT_IMAGE_BYTES} bytes or {MAX_SIDE} pixels a side"
    )]
    TooLarge {
        /// The campaign.
        campaign: String,
        /// The item.
        content: String,
        /// Decoded size.
        bytes: usize,
        /// Width (0 when not decoded).
        width: u32,
        /// Height (0 when not decoded).
        height: u32,
    },
    /// The time on screen is outside 3 to 60 seconds.
    #[error(
        "content {content} of campaign {campaign}: {duration_s} s on screen is outside 3 to 60 s"
    )]
    Duration {
        /// The campaign.
        campaign: String,
        /// The item.
        content: String,
        /// The duration given.
        duration_s: u32,
    },
}

/// A checked picture, ready to serve.
#[derive(Debug, Clone)]
pub struct Picture {
    /// Its type.
    pub mime: String,
    /// Its bytes.
    pub bytes: Arc<Vec<u8>>,
    /// Strong validator for caching (`"<sha256 prefix>"`).
    pub etag: String,
}

/// Checks a content item: its duration and, decoded, its picture.
pub fn check(campaign: &str, item: &ContentItem) -> Result<Option<Picture>, ContentError> {
    if !(3..=60).contains(&item.duration_s) {
        return Err(ContentError::Duration {
            campaign: campaign.to_owned(),
            content: item.id.clone(),
            duration_s: item.duration_s,
        });
    }
    item.image
        .as_ref()
        .map(|image| check_picture(campaign, &item.id, image))
        .transpose()
}

/// Checks a picture of `campaign` (`content` names it: a content item, or `variant <name>` for
/// the campaign's own): a whole picture of its type within the limits, decoded whole
/// ([`kiosk_protocol::picture::check`]), so a truncated or corrupt file is refused here rather
/// than shown broken.
pub fn check_picture(
    campaign: &str,
    content: &str,
    image: &ContentImage,
) -> Result<Picture, ContentError> {
    use kiosk_protocol::picture::PictureError;
    let undecodable = |reason: String| ContentError::Undecodable {
        campaign: campaign.to_owned(),
        content: content.to_owned(),
        mime: image.mime.as_str().to_owned(),
        reason,
    };
    let too_large = |bytes: usize, width: u32, height: u32| ContentError::TooLarge {
        campaign: campaign.to_owned(),
        content: content.to_owned(),
        bytes,
        width,
        height,
    };
    let checked = kiosk_protocol::picture::check(image).map_err(|e| match e {
        PictureError::TooManyBytes(bytes) => too_large(bytes, 0, 0),
        PictureError::TooLarge { width, height } => too_large(0, width, height),
        other => undecodable(other.to_string()),
    })?;
    let digest = Sha256::digest(&checked.bytes);
    Ok(Picture {
        mime: image.mime.as_str().to_owned(),
        etag: format!("\"{}\"", hex::encode(&digest[..12])),
        bytes: Arc::new(checked.bytes),
    })
}

/// Where the kiosk serves the picture of `campaign`'s `variant` (its own, else the campaign's).
pub(crate) fn campaign_picture_url(campaign: &str, variant: &str) -> String {
    format!(
        "/api/kiosk/campaign/{}/{}/picture",
        url_segment(campaign),
        url_segment(variant)
    )
}

/// The picture of `campaign`'s `variant` (its own, else the campaign's) from the campaign cache,
/// while the campaign runs; `None` when there is none.
pub(crate) fn campaign_image(
    db: &KioskDb,
    today: time::Date,
    campaign: &str,
    variant: &str,
) -> Option<ContentImage> {
    db.campaigns()
        .ok()?
        .into_iter()
        .find(|c| c.id == campaign && c.runs_on(today))?
        .picture_for(variant)
        .cloned()
}

/// The content of the campaigns running on `today`, each item checked ([`check`]; those that
/// fail are logged and skipped), with its picture.
pub(crate) fn usable_content(
    db: &KioskDb,
    today: time::Date,
) -> Vec<(Campaign, ContentItem, Option<Picture>)> {
    let campaigns = match db.campaigns() {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cached campaigns: no content");
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for c in campaigns.into_iter().filter(|c| c.runs_on(today)) {
        for item in &c.content {
            match check(&c.id, item) {
                Ok(pic) => out.push((c.clone(), item.clone(), pic)),
                Err(e) => tracing::warn!(error = %e, "content skipped"),
            }
        }
    }
    out
}

/// The content a browse point shows to `segment` (campaigns without targets are for everyone).
pub(crate) fn browse_items(
    db: &KioskDb,
    today: time::Date,
    segment: &str,
) -> Vec<kiosk_core::journey::BrowseItem> {
    usable_content(db, today)
        .into_iter()
        .filter(|(c, _, _)| {
            c.target_segments.is_empty() || c.target_segments.iter().any(|s| s == segment)
        })
        .map(|(c, item, _)| kiosk_core::journey::BrowseItem {
            image: item.image.as_ref().map(|_| content_url(&c.id, &item.id)),
            alt: item
                .image
                .as_ref()
                .map(|i| kiosk_core::journey::Localized::new(&i.alt.es, &i.alt.en)),
            text: kiosk_core::journey::Localized::new(&item.text.es, &item.text.en),
            campaign_id: c.id,
            content_id: item.id,
            duration_s: item.duration_s,
        })
        .collect()
}

/// Where the kiosk serves a content item's picture.
fn content_url(campaign: &str, content: &str) -> String {
    format!(
        "/api/lobby/content/{}/{}",
        url_segment(campaign),
        url_segment(content)
    )
}

/// What a display shows for one play.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Slide {
    /// The play's id: the display reports it when the play ends.
    pub play: Uuid,
    /// The campaign.
    pub campaign_id: String,
    /// The item.
    pub content_id: String,
    /// The language to show first (`es`, `en`): lobby plays alternate.
    pub lang: String,
    /// The text, in each language.
    pub text: Localized,
    /// The picture's URL on this kiosk, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The picture's text alternative, in each language.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alt: Option<Localized>,
    /// Seconds on screen.
    pub duration_s: u32,
}

/// A play report that cannot be journaled.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlayError {
    /// The id was not handed out, or was reported already.
    #[error("no such play: it was reported already or never handed out")]
    Unknown,
    /// The journal refused the event.
    #[error("cannot journal the play: {0}")]
    Journal(String),
}

/// A lobby play handed out, not yet reported (browse points journal their own plays in the
/// journey).
struct Pending {
    play: Uuid,
    campaign_id: String,
    content_id: String,
    audience: Vec<SegmentCount>,
    duration_s: u32,
    handed_out: Instant,
}

struct State {
    chooser: Chooser,
    pending: VecDeque<Pending>,
    pictures: HashMap<(String, String), Picture>,
    /// Campaign pictures checked since start, by the SHA-256 of their base64 text: a greeting
    /// asks for its picture every time, and decoding it each time cost tens of milliseconds on
    /// a Pi; an edited picture is new text, checked once.
    campaign_pictures: HashMap<[u8; 32], Option<Picture>>,
}

/// The signage of one kiosk.
pub struct Signage {
    db: KioskDb,
    picture: watch::Receiver<StorePicture>,
    time: StoreTime,
    state: Mutex<State>,
}

impl std::fmt::Debug for Signage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signage").finish_non_exhaustive()
    }
}

/// The seed of a kiosk's draws: its id, so a kiosk plays the same sequence for the same audience.
pub fn seed_for(kiosk_id: &str) -> u64 {
    let d = Sha256::digest(kiosk_id.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_be_bytes(b)
}

impl Signage {
    /// Signage over the campaign cache in `db`, for the audience in `picture`.
    pub(crate) fn new(
        db: KioskDb,
        picture: watch::Receiver<StorePicture>,
        time: StoreTime,
        seed: u64,
    ) -> Self {
        Signage {
            db,
            picture,
            time,
            state: Mutex::new(State {
                chooser: Chooser::new(seed),
                pending: VecDeque::new(),
                pictures: HashMap::new(),
                campaign_pictures: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding it leaves consistent data (each change is one assignment).
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Today's campaigns' usable content (items that fail [`check`] are logged and skipped).
    fn content(&self, state: &mut State) -> Vec<(Campaign, ContentItem)> {
        usable_content(&self.db, self.time.now().date())
            .into_iter()
            .map(|(c, item, pic)| {
                let key = (c.id.clone(), item.id.clone());
                match pic {
                    Some(p) => state.pictures.insert(key, p),
                    None => state.pictures.remove(&key),
                };
                (c, item)
            })
            .collect()
    }

    /// The next lobby play for the store's audience, or `None` when there is no content for it.
    pub fn next_lobby(&self) -> Option<Slide> {
        let picture = self.picture.borrow().clone();
        let mut state = self.lock();
        let content = self.content(&mut state);
        let items: Vec<Item> = content
            .iter()
            .map(|(c, i)| Item {
                campaign_id: c.id.clone(),
                content_id: i.id.clone(),
                target_segments: c.target_segments.clone(),
                duration_s: i.duration_s,
            })
            .collect();
        let lang = if state.chooser.step() % 2 == 0 {
            "es"
        } else {
            "en"
        };
        let chosen = state.chooser.next(&items, &picture)?;
        let audience = picture
            .audience()
            .into_iter()
            .map(|(segment, count)| SegmentCount { segment, count })
            .collect();
        let (campaign, item) = &content[chosen];
        Some(self.hand_out(&mut state, campaign, item, audience, lang))
    }

    fn hand_out(
        &self,
        state: &mut State,
        campaign: &Campaign,
        item: &ContentItem,
        audience: Vec<SegmentCount>,
        lang: &str,
    ) -> Slide {
        let play = Uuid::new_v4();
        state.pending.push_back(Pending {
            play,
            campaign_id: campaign.id.clone(),
            content_id: item.id.clone(),
            audience,
            duration_s: item.duration_s,
            handed_out: Instant::now(),
        });
        while state.pending.len() > PENDING_PLAYS {
            state.pending.pop_front();
        }
        Slide {
            play,
            campaign_id: campaign.id.clone(),
            content_id: item.id.clone(),
            lang: lang.to_owned(),
            text: item.text.clone(),
            image: item
                .image
                .as_ref()
                .map(|_| content_url(&campaign.id, &item.id)),
            alt: item.image.as_ref().map(|i| i.alt.clone()),
            duration_s: item.duration_s,
        }
    }

    /// A play ended after `shown_ms` on screen (a call may have cut it short): journals
    /// `content_played` once, for no longer than it was out nor than its duration.
    pub fn played(&self, play: Uuid, shown_ms: u64) -> Result<ContentPlayed, PlayError> {
        let p = {
            let mut state = self.lock();
            let at = state
                .pending
                .iter()
                .position(|p| p.play == play)
                .ok_or(PlayError::Unknown)?;
            state.pending.remove(at).ok_or(PlayError::Unknown)?
        };
        let out_ms = u64::try_from(p.handed_out.elapsed().as_millis()).unwrap_or(u64::MAX);
        let event = ContentPlayed {
            campaign_id: p.campaign_id,
            content_id: p.content_id,
            surface: ContentSurface::Lobby,
            duration_ms: shown_ms.min(out_ms).min(u64::from(p.duration_s) * 1_000),
            audience: p.audience,
            card_token: None,
        };
        self.db
            .append(Event::ContentPlayed(event.clone()))
            .map_err(|e| PlayError::Journal(e.to_string()))?;
        Ok(event)
    }

    /// The checked picture of `campaign`'s `variant` on the kiosk screen, from the campaign
    /// cache now ([`campaign_image`]), checked once per picture; `None` when there is none or it
    /// fails its checks (logged: the screen then shows the campaign's text alone).
    pub fn campaign_picture(&self, campaign: &str, variant: &str) -> Option<Picture> {
        let image = campaign_image(&self.db, self.time.now().date(), campaign, variant)?;
        let key: [u8; 32] = Sha256::digest(image.data.as_bytes()).into();
        if let Some(checked) = self.lock().campaign_pictures.get(&key) {
            return checked.clone();
        }
        let checked = check_picture(campaign, &format!("variant {variant}"), &image)
            .map_err(|e| tracing::warn!(error = %e, "campaign picture not shown"))
            .ok();
        let mut state = self.lock();
        if state.campaign_pictures.len() >= 64 {
            state.campaign_pictures.clear();
        }
        state.campaign_pictures.insert(key, checked.clone());
        checked
    }

    /// The checked picture of a content item (as last read from the cache).
    pub fn picture(&self, campaign: &str, content: &str) -> Option<Picture> {
        let mut state = self.lock();
        if let Some(p) = state
            .pictures
            .get(&(campaign.to_owned(), content.to_owned()))
        {
            return Some(p.clone());
        }
        // Not handed out since the kiosk started: read the cache.
        self.content(&mut state);
        state
            .pictures
            .get(&(campaign.to_owned(), content.to_owned()))
            .cloned()
    }
}

/// Ids are `[a-z0-9-]` in practice; anything else is percent-encoded.
fn url_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use kiosk_protocol::wire::{ContentImage, ImageMime};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 80, 160]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    fn item(mime: &str, bytes: &[u8], duration_s: u32) -> ContentItem {
        ContentItem {
            id: "spring-1".into(),
            text: Localized {
                es: "Café".into(),
                en: "Coffee".into(),
            },
            image: Some(ContentImage {
                mime: serde_json::from_value(serde_json::json!(mime)).unwrap(),
                data: base64::engine::general_purpose::STANDARD.encode(bytes),
                alt: Localized {
                    es: "Una taza".into(),
                    en: "A cup".into(),
                },
            }),
            duration_s,
        }
    }

    #[test]
    fn a_small_png_is_decoded_and_served_with_a_stable_validator() {
        let bytes = png(64, 32);
        let pic = check("c", &item("image/png", &bytes, 8)).unwrap().unwrap();
        assert_eq!(*pic.bytes, bytes);
        assert_eq!(pic.mime, "image/png");
        let again = check("c", &item("image/png", &bytes, 8)).unwrap().unwrap();
        assert_eq!(pic.etag, again.etag);
    }

    #[test]
    fn bad_pictures_and_durations_are_refused_with_the_campaign_and_item_named() {
        let bytes = png(8, 8);
        // A type the feed cannot even carry (`ImageMime` has png, jpeg and webp only).
        assert!(serde_json::from_value::<ImageMime>(serde_json::json!("image/gif")).is_err());
        let err = check("spring", &item("image/jpeg", &bytes, 8)).unwrap_err();
        assert!(matches!(err, ContentError::Undecodable { .. }), "{err}");
        assert!(err.to_string().contains("spring"), "{err}");
        let mut truncated = bytes.clone();
        truncated.truncate(bytes.len() - 20);
        let err = check("spring", &item("image/png", &truncated, 8)).unwrap_err();
        assert!(matches!(err, ContentError::Undecodable { .. }), "{err}");
        let err = check("spring", &item("image/png", &png(4_000, 2), 8)).unwrap_err();
        assert!(matches!(err, ContentError::TooLarge { .. }), "{err}");
        let huge = vec![0u8; MAX_CONTENT_IMAGE_BYTES + 1];
        let err = check("spring", &item("image/png", &huge, 8)).unwrap_err();
        assert!(matches!(err, ContentError::TooLarge { .. }), "{err}");
        let err = check("spring", &item("image/png", &bytes, 90)).unwrap_err();
        assert!(err.to_string().contains("90 s"), "{err}");
    }
}
