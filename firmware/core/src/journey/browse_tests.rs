//! The browse role: a card (or "continue without a card") shows the content for the visitor's
//! segment and their turn, one item after another, each play journaled; no turn is taken.

use kiosk_protocol::CardToken;
use kiosk_protocol::events::{ContentPlayed, ContentSurface, Event, ProfileSource, ReaderKind};

use super::tests::{card, config};
use super::*;

fn browse_config() -> JourneyConfig {
    JourneyConfig {
        role: KioskRole::Browse,
        ticket_notes: Default::default(),
        ..config()
    }
}

struct Point {
    config: JourneyConfig,
    state: State,
    now: u64,
    effects: Vec<Effect>,
}

impl Point {
    fn new() -> Self {
        let config = browse_config();
        Point {
            state: State::new(config.default_locale),
            config,
            now: 1_000,
            effects: Vec::new(),
        }
    }

    fn send(&mut self, input: Input) -> Vec<Effect> {
        let (state, fx) = step(&self.config, &self.state, input, self.now);
        self.state = state;
        self.effects.extend(fx.iter().cloned());
        fx
    }

    fn body(&self) -> ScreenBody {
        view(&self.config, &self.state).body
    }

    fn plays(&self) -> Vec<ContentPlayed> {
        self.effects
            .iter()
            .filter_map(|e| match e {
                Effect::Record(Event::ContentPlayed(p)) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn load_request(&self) -> (uuid::Uuid, String, Option<CardToken>) {
        self.effects
            .iter()
            .rev()
            .find_map(|e| match e {
                Effect::LoadBrowse {
                    visit_id,
                    segment,
                    card_token,
                } => Some((*visit_id, segment.clone(), card_token.clone())),
                _ => None,
            })
            .expect("content asked for")
    }

    fn advance(&mut self, ms: u64) -> Vec<Effect> {
        self.now += ms;
        self.send(Input::Tick)
    }
}

fn item(id: &str, duration_s: u32) -> BrowseItem {
    BrowseItem {
        campaign_id: "coffee".into(),
        content_id: id.into(),
        text: Localized::new("Café gratis", "Free coffee"),
        image: Some(format!("/api/lobby/content/coffee/{id}")),
        alt: Some(Localized::new("Una taza", "A cup")),
        duration_s,
    }
}

fn vip_found(n: u8) -> Input {
    Input::ProfileFound {
        token: card(n),
        profile: CustomerProfile {
            card_token: card(n),
            display_name: "Ana".into(),
            segment: Some("vip".into()),
            locale: Some(Locale::En),
            consents: vec![kiosk_protocol::events::ConsentPurpose::Profile],
        },
        campaign: None,
        source: ProfileSource::LocalCache,
    }
}

#[test]
fn a_tapped_card_sees_its_segments_content_and_its_turn_without_taking_one() {
    let mut p = Point::new();
    p.send(Input::CardTapped {
        token: card(1),
        reader: ReaderKind::Mfrc522,
    });
    p.send(vip_found(1));
    let (visit, segment, token) = p.load_request();
    assert_eq!((segment.as_str(), token), ("vip", Some(card(1))));
    assert!(matches!(p.body(), ScreenBody::Browse { loading: true, .. }));
    let turn = BrowseTurn {
        label: "A-012".into(),
        ahead: Some(3),
        counter: None,
    };
    p.send(Input::BrowseLoaded {
        visit_id: visit,
        items: vec![item("one", 8), item("two", 5)],
        turn: Some(turn.clone()),
    });
    let ScreenBody::Browse {
        item: Some(shown),
        turn: Some(shown_turn),
        position,
        count,
        name,
        ..
    } = p.body()
    else {
        panic!("{:?}", p.body())
    };
    assert_eq!(
        (shown.content_id.as_str(), shown.text.as_str()),
        ("one", "Free coffee")
    );
    assert_eq!(
        shown.alt.as_deref(),
        Some("A cup"),
        "in the customer's language"
    );
    assert_eq!((position, count), (1, 2));
    assert_eq!(shown_turn, turn);
    assert_eq!(name.as_deref(), Some("Ana"));

    // The first item's time is up: it is journaled whole, the second plays.
    p.advance(8_000);
    let ScreenBody::Browse {
        item: Some(second), ..
    } = p.body()
    else {
        panic!("{:?}", p.body())
    };
    assert_eq!(second.content_id, "two");
    // "Done" after 2 s: the second is journaled for 2 s, and the attract screen is back.
    p.now += 2_000;
    p.send(Input::Touch(Touch::Done));
    assert!(matches!(p.body(), ScreenBody::Attract { .. }));
    let plays = p.plays();
    assert_eq!(plays.len(), 2);
    assert_eq!(plays[0].duration_ms, 8_000);
    assert_eq!(plays[1].duration_ms, 2_000);
    for play in &plays {
        assert_eq!(play.surface, ContentSurface::Browse);
        assert_eq!(play.card_token, Some(card(1)));
        assert_eq!(play.audience.len(), 1);
        assert_eq!(play.audience[0].segment, "vip");
    }
    assert!(
        !p.effects
            .iter()
            .any(|e| matches!(e, Effect::IssueTurn(_) | Effect::PrintTicket(_))),
        "a browse point takes no turn"
    );
}

#[test]
fn a_visitor_without_a_card_and_an_unknown_card_see_the_anonymous_content() {
    let mut p = Point::new();
    p.send(Input::Touch(Touch::Start));
    let (_, segment, token) = p.load_request();
    assert_eq!((segment.as_str(), token), ("anonymous", None));
    p.send(Input::Touch(Touch::Cancel));
    assert!(matches!(p.body(), ScreenBody::Attract { .. }));

    p.send(Input::CardTapped {
        token: card(9),
        reader: ReaderKind::Mfrc522,
    });
    p.send(Input::ProfileNotFound { token: card(9) });
    let (_, segment, token) = p.load_request();
    assert_eq!(
        (segment.as_str(), token),
        ("anonymous", None),
        "no registration offer, and no card on the plays of a card nobody registered"
    );
}

#[test]
fn the_visit_ends_after_the_last_item_and_a_late_answer_is_ignored() {
    let mut p = Point::new();
    p.send(Input::Touch(Touch::Start));
    let (visit, ..) = p.load_request();
    p.send(Input::BrowseLoaded {
        visit_id: visit,
        items: vec![item("only", 5)],
        turn: None,
    });
    p.advance(5_000);
    assert!(matches!(p.body(), ScreenBody::Attract { .. }));
    assert_eq!(p.plays().len(), 1);
    // The content of a visit that is over changes nothing.
    p.send(Input::BrowseLoaded {
        visit_id: visit,
        items: vec![item("late", 5)],
        turn: None,
    });
    assert!(matches!(p.body(), ScreenBody::Attract { .. }));
    // Content that never comes: back to the attract screen after the lookup time.
    p.send(Input::Touch(Touch::Start));
    p.advance(config().timeouts.lookup_ms + 1);
    assert!(matches!(p.body(), ScreenBody::Attract { .. }));
    assert_eq!(p.plays().len(), 1);
}

#[test]
fn another_card_ends_the_play_on_screen_and_starts_its_own_visit() {
    let mut p = Point::new();
    p.send(Input::CardTapped {
        token: card(1),
        reader: ReaderKind::Mfrc522,
    });
    p.send(vip_found(1));
    let (visit, ..) = p.load_request();
    p.send(Input::BrowseLoaded {
        visit_id: visit,
        items: vec![item("one", 10)],
        turn: None,
    });
    p.now += 3_000;
    p.send(Input::CardTapped {
        token: card(2),
        reader: ReaderKind::Mfrc522,
    });
    assert_eq!(p.plays().len(), 1);
    assert_eq!(p.plays()[0].duration_ms, 3_000);
    assert!(matches!(p.body(), ScreenBody::Identifying));
}

#[test]
fn the_queue_role_is_unchanged_a_card_is_greeted() {
    let mut p = Point::new();
    p.config.role = KioskRole::Queue;
    p.send(Input::CardTapped {
        token: card(1),
        reader: ReaderKind::Mfrc522,
    });
    p.send(vip_found(1));
    assert!(matches!(p.body(), ScreenBody::Greeting { .. }));
    assert!(
        !p.effects
            .iter()
            .any(|e| matches!(e, Effect::LoadBrowse { .. }))
    );
}
