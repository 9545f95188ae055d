//! The store's queue as every kiosk computes it: all ops folded in the store's fixed order.

use std::collections::{BTreeMap, BTreeSet};

use kiosk_core::queue::{Change, IssueRequest, Numbering, Queue, QueueError, ServiceDay};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::op::{OpKey, Step, StoreOp};

/// A step that was valid where it was taken but not once every kiosk's steps were merged (two
/// counters called the same turn while cut off from each other, say). The step sorted later in
/// the store's order is dropped; every kiosk drops the same one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The dropped op.
    pub key: OpKey,
    /// The turn concerned.
    pub turn_id: Uuid,
    /// Its label, when the turn is known.
    pub label: String,
    /// The counter whose step was dropped.
    pub counter: Option<String>,
    /// The step (`call`, `serve`, ...).
    pub step: String,
    /// Why, in words staff understand.
    pub reason: String,
    /// When the dropped step was taken.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// Applies one step to `queue` by the queue's own rules, as its kiosk did when taking it.
/// Returns the change (turn rows and events) or why the step does not fit.
pub fn apply_step(queue: &Queue, step: &Step, at: OffsetDateTime) -> Result<Change, QueueError> {
    match step {
        Step::Issue {
            turn_id,
            service,
            number,
            tag,
            priority,
            card_token,
            campaign_id,
            locale,
            coupon: _,
        } => queue
            .plan_replicated_issue(
                IssueRequest {
                    turn_id: *turn_id,
                    service: service.clone(),
                    priority: *priority,
                    card_token: card_token.clone(),
                    campaign_id: campaign_id.clone(),
                    locale: *locale,
                },
                Numbering {
                    number: *number,
                    tag: *tag,
                },
                at,
            )
            .map(|plan| plan.change),
        Step::Call { turn_id, counter } => queue.plan_call(*turn_id, counter, at),
        Step::Recall { turn_id, counter } => queue.plan_recall(*turn_id, counter, at),
        Step::Serve { turn_id, counter } => queue.plan_served(*turn_id, counter, at),
        Step::NoShow { turn_id, counter } => queue.plan_no_show(*turn_id, counter, at),
        Step::Park { turn_id, counter } => queue.plan_park(*turn_id, counter, at),
        Step::Transfer {
            turn_id,
            to,
            counter,
        } => queue.plan_replicated_transfer(*turn_id, to, counter.as_deref(), at),
        Step::WalkOut { turn_id, counter } => queue.plan_walkout(*turn_id, counter.as_deref(), at),
        // Marks, not queue steps: the queue does not change.
        Step::Rate { .. }
        | Step::Redeem { .. }
        | Step::AssistRequest { .. }
        | Step::AssistAck { .. } => Ok(Change {
            upserts: Vec::new(),
            counter: None,
            events: Vec::new(),
        }),
    }
}

/// Whether a turn's survey can be answered now (docs/DESIGN.md invariant 17): the journey's own
/// word for it, decided here from the store's queue and marks.
pub use kiosk_core::journey::SurveyStatus;

/// Ops between two checkpoints of the fold: a late op refolds from the checkpoint before it, not
/// from the start of the day.
const CHECKPOINT_EVERY: usize = if cfg!(test) { 8 } else { 256 };

/// The whole store's queue: every kiosk's ops and their fold.
#[derive(Debug, Clone)]
pub struct StoreQueue {
    /// What the queue starts from (turns kept from before the store layer; usually empty).
    base: Queue,
    /// All ops, in the store's order.
    ops: BTreeMap<OpKey, StoreOp>,
    /// Highest sequence held per kiosk (ops are held without gaps).
    heads: BTreeMap<String, u64>,
    /// The fold of all ops.
    queue: Queue,
    /// Steps dropped by the merge, in the store's order.
    conflicts: Vec<Conflict>,
    /// The last op folded into `queue`.
    last: Option<OpKey>,
    /// Fold states after every [`CHECKPOINT_EVERY`] ops: (last op folded, queue, conflicts).
    checkpoints: Vec<(OpKey, Queue, usize)>,
    /// Turns whose survey was answered ([`Step::Rate`] marks held), with when.
    rated: BTreeMap<Uuid, OffsetDateTime>,
    /// Coupons redeemed ([`Step::Redeem`] marks held), with when. The kiosk database keeps the
    /// codes past pruning; this is what the ops held say.
    redeemed: BTreeMap<String, OffsetDateTime>,
    /// Assistance requests held ([`Step::AssistRequest`] marks), by request id.
    assist_requests: BTreeMap<Uuid, (OpKey, AssistRequest)>,
    /// Acknowledgements held ([`Step::AssistAck`] marks): the first in the store's order wins.
    assist_acks: BTreeMap<Uuid, (OpKey, String, OffsetDateTime)>,
}

/// An assistance request as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistRequest {
    /// The request.
    pub request_id: Uuid,
    /// The kiosk that took it.
    pub origin: String,
    /// Who asked: `kiosk` or `step_in`.
    pub source: String,
    /// Where staff should go (kiosk or device id).
    pub place: String,
    /// The place as staff know it.
    pub place_name: String,
    /// The customer's turn, if any.
    pub turn_id: Option<Uuid>,
    /// When it was asked (store time).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The counter that took it and when, once one did.
    pub acknowledged: Option<AssistAck>,
}

/// The acknowledgement that stands for a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssistAck {
    /// The counter whose staff took it.
    pub counter: String,
    /// The kiosk the counter page runs on.
    pub origin: String,
    /// When (store time).
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl AssistRequest {
    /// Milliseconds from the request to `ack_at` (store time; 0 if the clocks disagree).
    pub fn response_ms(&self, ack_at: OffsetDateTime) -> u64 {
        u64::try_from((ack_at - self.at).whole_milliseconds()).unwrap_or(0)
    }
}

impl StoreQueue {
    /// A store queue starting from `base`.
    pub fn new(base: Queue) -> Self {
        StoreQueue {
            queue: base.clone(),
            base,
            ops: BTreeMap::new(),
            heads: BTreeMap::new(),
            conflicts: Vec::new(),
            last: None,
            checkpoints: Vec::new(),
            rated: BTreeMap::new(),
            redeemed: BTreeMap::new(),
            assist_requests: BTreeMap::new(),
            assist_acks: BTreeMap::new(),
        }
    }

    /// Every assistance request held, oldest first, with its acknowledgement if one is held (the
    /// first in the store's order, whichever kiosk took it).
    pub fn assistance(&self) -> Vec<AssistRequest> {
        let mut out: Vec<AssistRequest> = self
            .assist_requests
            .values()
            .map(|(_, r)| {
                let mut r = r.clone();
                r.acknowledged = self
                    .assist_acks
                    .get(&r.request_id)
                    .map(|(key, counter, at)| AssistAck {
                        counter: counter.clone(),
                        origin: key.origin.clone(),
                        at: *at,
                    });
                r
            })
            .collect();
        out.sort_by(|a, b| a.at.cmp(&b.at).then(a.request_id.cmp(&b.request_id)));
        out
    }

    /// Assistance requests no counter has acknowledged yet (as far as this kiosk knows), oldest
    /// first: what every counter page shows.
    pub fn open_assistance(&self) -> Vec<AssistRequest> {
        self.assistance()
            .into_iter()
            .filter(|r| r.acknowledged.is_none())
            .collect()
    }

    /// One request, with its acknowledgement if held.
    pub fn assist_request(&self, request_id: Uuid) -> Option<AssistRequest> {
        self.assistance()
            .into_iter()
            .find(|r| r.request_id == request_id)
    }

    /// Whether `turn_id`'s survey may be answered now: served, and not rated at any kiosk whose
    /// ops this one holds.
    pub fn survey_status(&self, turn_id: Uuid) -> SurveyStatus {
        use kiosk_core::queue::TurnStatus;
        let Some(turn) = self.queue.turn(turn_id) else {
            return SurveyStatus::Unknown;
        };
        if self.rated.contains_key(&turn_id) {
            return SurveyStatus::AlreadyAnswered;
        }
        match turn.status {
            TurnStatus::Served => SurveyStatus::Open,
            TurnStatus::Waiting | TurnStatus::Called | TurnStatus::Parked => {
                SurveyStatus::NotServed
            }
            TurnStatus::NoShow | TurnStatus::Expired | TurnStatus::WalkedOut => {
                SurveyStatus::Closed
            }
        }
    }

    /// Whether a [`Step::Redeem`] of `code` is among the ops held.
    pub fn coupon_redeemed(&self, code: &str) -> bool {
        self.redeemed.contains_key(code)
    }

    /// The merged queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Steps the merge dropped, in the store's order.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// Highest sequence held per kiosk: what to ask peers for next.
    pub fn heads(&self) -> &BTreeMap<String, u64> {
        &self.heads
    }

    /// The highest hybrid-clock stamp held.
    pub fn max_hlc(&self) -> u64 {
        self.ops.keys().next_back().map_or(0, |k| k.hlc)
    }

    /// Number of ops held.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether no op is held.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The ops of `origin` after sequence `after`, in sequence order, at most `limit`.
    pub fn ops_after(&self, origin: &str, after: u64, limit: usize) -> Vec<StoreOp> {
        let mut out: Vec<StoreOp> = self
            .ops
            .values()
            .filter(|o| o.origin == origin && o.seq > after)
            .cloned()
            .collect();
        out.sort_by_key(|o| o.seq);
        out.truncate(limit);
        out
    }

    /// The ops [`StoreQueue::merge`] would take from `ops`: new, and contiguous with what is
    /// held per kiosk (persist exactly these, then merge them).
    pub fn acceptable(&self, ops: &[StoreOp]) -> Vec<StoreOp> {
        let mut sorted: Vec<&StoreOp> = ops.iter().collect();
        sorted.sort_by(|a, b| a.origin.cmp(&b.origin).then(a.seq.cmp(&b.seq)));
        let mut heads = self.heads.clone();
        let mut out = Vec::new();
        for op in sorted {
            let head = heads.get(&op.origin).copied().unwrap_or(0);
            if op.seq == head + 1 {
                heads.insert(op.origin.clone(), op.seq);
                out.push(op.clone());
            }
        }
        out
    }

    /// Moves a kiosk's head forward past ops no peer holds any more (service days pruned
    /// everywhere): the next op taken from `origin` is `first`.
    pub fn skip_to(&mut self, origin: &str, first: u64) {
        let head = self.heads.entry(origin.to_owned()).or_insert(0);
        if first > *head + 1 {
            *head = first - 1;
        }
    }

    /// Takes in ops (this kiosk's own or a peer's). Ops already held are ignored; an op that
    /// would leave a gap in its kiosk's sequence is refused (it comes again with the missing
    /// ones). Returns the ops taken and the conflicts the merge newly found.
    pub fn merge(&mut self, ops: impl IntoIterator<Item = StoreOp>) -> (usize, Vec<Conflict>) {
        let mut incoming: Vec<StoreOp> = ops.into_iter().collect();
        incoming.sort_by(|a, b| a.origin.cmp(&b.origin).then(a.seq.cmp(&b.seq)));
        let mut taken: Vec<OpKey> = Vec::new();
        for op in incoming {
            let head = self.heads.get(&op.origin).copied().unwrap_or(0);
            if op.seq != head + 1 {
                continue;
            }
            self.heads.insert(op.origin.clone(), op.seq);
            self.note_mark(&op);
            let key = op.key();
            taken.push(key.clone());
            self.ops.insert(key, op);
        }
        let Some(earliest) = taken.iter().min().cloned() else {
            return (0, Vec::new());
        };
        let before: BTreeSet<OpKey> = self.conflicts.iter().map(|c| c.key.clone()).collect();
        if self.last.as_ref().is_some_and(|last| earliest < *last) {
            self.rewind_before(&earliest);
        }
        self.fold_forward();
        let new = self
            .conflicts
            .iter()
            .filter(|c| !before.contains(&c.key))
            .cloned()
            .collect();
        (taken.len(), new)
    }

    /// Runs the queue with new settings (a new store configuration) and refolds every op held
    /// with them: kiosks holding the same ops and the same configuration compute the same queue.
    pub fn set_settings(&mut self, settings: kiosk_core::queue::QueueSettings) {
        self.base.set_settings(settings);
        self.refold();
    }

    fn refold(&mut self) {
        self.checkpoints.clear();
        let mut queue = self.base.clone();
        let mut conflicts = Vec::new();
        for op in self.ops.values() {
            fold_one(&mut queue, &mut conflicts, op);
        }
        self.last = self.ops.keys().next_back().cloned();
        self.queue = queue;
        self.conflicts = conflicts;
    }

    /// Forgets ops and turns of service days before `keep_from` (the retention of the queue: the
    /// journal keeps the events).
    pub fn prune(&mut self, keep_from: ServiceDay, opening: time::Time) {
        let old: Vec<OpKey> = self
            .ops
            .iter()
            .filter(|(_, o)| ServiceDay::at(o.at, opening) < keep_from)
            .map(|(k, _)| k.clone())
            .collect();
        if old.is_empty() {
            return;
        }
        for k in &old {
            self.ops.remove(k);
        }
        self.rated.clear();
        self.redeemed.clear();
        self.assist_requests.clear();
        self.assist_acks.clear();
        let held: Vec<StoreOp> = self.ops.values().cloned().collect();
        for op in &held {
            self.note_mark(op);
        }
        // Heads stay: sequences never go back.
        self.refold();
    }

    /// Keeps a survey, coupon or assistance mark (the first one held wins; a second is
    /// harmless).
    fn note_mark(&mut self, op: &StoreOp) {
        match &op.step {
            Step::Rate { turn_id } => {
                self.rated.entry(*turn_id).or_insert(op.at);
            }
            Step::Redeem { code, .. } => {
                self.redeemed.entry(code.clone()).or_insert(op.at);
            }
            Step::AssistRequest {
                request_id,
                source,
                place,
                place_name,
                turn_id,
            } => {
                self.assist_requests.entry(*request_id).or_insert((
                    op.key(),
                    AssistRequest {
                        request_id: *request_id,
                        origin: op.origin.clone(),
                        source: source.clone(),
                        place: place.clone(),
                        place_name: place_name.clone(),
                        turn_id: *turn_id,
                        at: op.at,
                        acknowledged: None,
                    },
                ));
            }
            Step::AssistAck {
                request_id,
                counter,
            } => {
                // Two counters acknowledging while cut off: the first in the store's order
                // stands on every kiosk, whatever order the ops arrived in.
                let key = op.key();
                let earlier = self
                    .assist_acks
                    .get(request_id)
                    .is_some_and(|(held, _, _)| *held < key);
                if !earlier {
                    self.assist_acks
                        .insert(*request_id, (key, counter.clone(), op.at));
                }
            }
            _ => {}
        }
    }

    /// Rolls the fold back to the last checkpoint before `key`.
    fn rewind_before(&mut self, key: &OpKey) {
        while let Some((at, _, _)) = self.checkpoints.last() {
            if at < key {
                break;
            }
            self.checkpoints.pop();
        }
        match self.checkpoints.last() {
            Some((at, queue, conflicts)) => {
                self.queue = queue.clone();
                self.conflicts.truncate(*conflicts);
                self.last = Some(at.clone());
            }
            None => {
                self.queue = self.base.clone();
                self.conflicts.clear();
                self.last = None;
            }
        }
    }

    /// Folds every op after `last`.
    fn fold_forward(&mut self) {
        use std::ops::Bound;
        let start = match &self.last {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Unbounded,
        };
        let mut folded_since_checkpoint = self.folded_since_checkpoint();
        let keys: Vec<OpKey> = self
            .ops
            .range((start, Bound::Unbounded))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(op) = self.ops.get(&key) {
                fold_one(&mut self.queue, &mut self.conflicts, op);
            }
            self.last = Some(key.clone());
            folded_since_checkpoint += 1;
            if folded_since_checkpoint >= CHECKPOINT_EVERY {
                self.checkpoints
                    .push((key, self.queue.clone(), self.conflicts.len()));
                folded_since_checkpoint = 0;
            }
        }
    }

    fn folded_since_checkpoint(&self) -> usize {
        let from = self.checkpoints.last().map(|(k, _, _)| k.clone());
        match (&from, &self.last) {
            (_, None) => 0,
            (None, Some(last)) => self.ops.range(..=last.clone()).count(),
            (Some(from), Some(last)) => self
                .ops
                .range((
                    std::ops::Bound::Excluded(from.clone()),
                    std::ops::Bound::Included(last.clone()),
                ))
                .count(),
        }
    }
}

fn fold_one(queue: &mut Queue, conflicts: &mut Vec<Conflict>, op: &StoreOp) {
    match apply_step(queue, &op.step, op.at) {
        Ok(change) => queue.apply(&change),
        Err(e) => {
            let turn_id = op.step.turn_id();
            conflicts.push(Conflict {
                key: op.key(),
                turn_id,
                label: queue.turn(turn_id).map(|t| t.label()).unwrap_or_default(),
                counter: op.step.counter().map(str::to_owned),
                step: op.step.name().to_owned(),
                reason: e.to_string(),
                at: op.at,
            });
        }
    }
}
