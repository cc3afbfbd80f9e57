//! The simulated customers, payment provider and recovery sweeper.
//!
//! Each client is a Jepsen-style process recorded in the chaos harness's history format
//! (`crate::chaos::history`): it holds explicit seats or the best available ones, then books
//! (hold → `BeginCheckout` → charge → `Confirm`, most bookings later cancelled with a refund),
//! releases, or abandons the hold to expiry. It sends each command to the node it believes
//! leads, as the gateway does, and retries an unanswered command under the same request id
//! (idempotent) until a deadline; an operation whose outcome it never learns is `info`.
//! The payment provider is the sandbox's own idempotent ledger (`payments::ledger`: charges and
//! refunds by key) whose answers can be lost after it charged; the sweeper settles what clients left unsettled, as the
//! gateway's recovery sweeper does: a charged pending checkout is confirmed, a charged
//! checkout that failed or expired is refunded, a cancellation is completed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use node::proposer::ProposeError;
use proto::command::{Command, Outcome, Proposal, Query, QueryResult, Reply};
use proto::ids::{BookingId, HoldId, OwnerId, SeatId, ShowId};
use proto::inventory::{BookingStatus, SeatSelection};

use crate::chaos::history::{Event, EventType, OpKind};

use super::World;

/// Rows and seats of every simulated show: small, so clients collide.
pub const ROWS: u32 = 2;
/// Seats per row.
pub const SEATS_PER_ROW: u32 = 6;
/// Price of a seat, minor units.
pub const PRICE_MINOR: i64 = 10_000;
/// Hold lifetime clients ask for.
pub const HOLD_TTL_MS: u64 = 4_000;
/// Checkout window.
pub const CHECKOUT_WINDOW_MS: u64 = 3_000;
/// How long a client keeps retrying one unanswered command.
const RETRY_FOR: Duration = Duration::from_secs(6);

/// Shows of a run.
pub fn shows() -> Vec<ShowId> {
    vec![ShowId(7001), ShowId(7002), ShowId(7003)]
}

/// The payment provider: the sandbox's own ledger (`payments::ledger`, what `marquee-payments`
/// and the gateway's in-process sandbox run), called in process; the simulator decides the
/// card's token and whether the answer gets back.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Charges and refunds by key.
    pub provider: payments::ledger::Ledger,
    /// Charge keys whose saga a client is still running (the sweeper leaves them alone).
    pub in_flight: std::collections::BTreeSet<String>,
}

impl Ledger {
    /// Charge key -> charge reference, and refund key -> refunded charge reference.
    pub fn records(&self) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let charges =
            self.provider.charges.iter().map(|(k, r)| (k.clone(), r.reference.clone())).collect();
        let refunds = self
            .provider
            .refunds
            .iter()
            .map(|(k, (charge, _))| (k.clone(), charge.clone()))
            .collect();
        (charges, refunds)
    }
}

/// What came of a command.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // One per command in flight; never stored.
pub enum Answer {
    /// Applied: its outcome.
    Applied(Outcome),
    /// Never learned.
    Unknown,
}

impl World {
    /// Sends one command the way the gateway does: to the node believed to lead, following
    /// refusals, retrying an unanswered command under the same request id until a deadline.
    /// Every command carries a request id: a retry of one that was applied but whose answer
    /// was lost must get the first outcome back, not a second, different one.
    pub async fn submit(&self, request_id: String, command: Command) -> Answer {
        let deadline = tokio::time::Instant::now() + RETRY_FOR;
        let proposal = Proposal { request_id: Some(request_id), command };
        while tokio::time::Instant::now() < deadline {
            let node = self.leader_or_any();
            let Some(node) = node else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let attempt = tokio::time::timeout(
                Duration::from_secs(3),
                self.node(node).propose(proposal.clone()),
            )
            .await;
            match attempt {
                Ok(Ok(outcome)) => return Answer::Applied(outcome),
                // Not proposed there: try elsewhere. Anything else may have been applied:
                // the retry carries the same request id.
                Ok(Err(ProposeError::NotLeader(_) | ProposeError::Unavailable(_)))
                | Ok(Err(ProposeError::Timeout))
                | Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        Answer::Unknown
    }

    fn leader_or_any(&self) -> Option<u64> {
        let running: Vec<u64> =
            self.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect();
        if let Some(leader) = running.iter().find(|id| self.node(**id).is_leader()) {
            return Some(*leader);
        }
        if running.is_empty() {
            return None;
        }
        let pick = self.random_range(0, running.len() as u64 - 1) as usize;
        Some(running[pick])
    }

    /// The provider charges `money` under `key` (idempotent: a key charged before answers its
    /// charge whatever the token); `None` when the answer did not come back (the charge may
    /// have happened): the sandbox's `tok_fail_after_charge`, or a lost answer.
    fn charge(&self, key: &str, money: &proto::layout::Money) -> Option<Result<String, ()>> {
        use payments::ledger::{ChargeOutcome, Token};
        let token = if self.random_bool(0.1) {
            Token::Decline
        } else if self.random_bool(0.02) {
            Token::FailAfterCharge
        } else {
            Token::Success
        };
        let lost = self.random_bool(self.cfg.payment_loss);
        let outcome = self.ledger.lock().expect("ledger lock").provider.charge(
            key,
            token,
            money.amount_minor,
            &money.currency,
        );
        match outcome {
            _ if lost => None,
            Ok(ChargeOutcome::Charged { receipt, .. }) => Some(Ok(receipt.reference)),
            Ok(ChargeOutcome::Declined(_)) | Err(_) => Some(Err(())),
            Ok(_) => None,
        }
    }

    /// Refunds the whole charge of `key` under `refund:<key>`, once however often asked; the
    /// refund's reference (`None`: nothing was charged under `key`).
    fn refund(&self, key: &str) -> Option<String> {
        let mut ledger = self.ledger.lock().expect("ledger lock");
        let charge = ledger.provider.lookup(key)?.clone();
        let refund_key = format!("refund:{key}");
        let refunded = ledger.provider.refund(
            &refund_key,
            &charge.reference,
            charge.amount_minor,
            &charge.currency,
        );
        refunded.ok().map(|(receipt, _)| receipt.reference)
    }

    fn record(&self, mut event: Event) {
        event.time_ns = self.elapsed_ns();
        event.wall_ms = self.now_ms();
        self.history.lock().expect("history lock").push(event);
    }
}

fn event(process: i64, kind: EventType, op: OpKind, show: ShowId) -> Event {
    crate::chaos::workload::event(process, kind, op, show.0)
}

fn kind_of<T>(answer: &Answer, ok: impl Fn(&Reply) -> Option<T>) -> (EventType, Option<T>) {
    match answer {
        Answer::Applied(Ok(reply)) => match ok(reply) {
            Some(value) => (EventType::Ok, Some(value)),
            None => (EventType::Info, None),
        },
        Answer::Applied(Err(_)) => (EventType::Fail, None),
        Answer::Unknown => (EventType::Info, None),
    }
}

fn strings(seats: &[SeatId]) -> Vec<String> {
    seats.iter().map(|s| s.0.clone()).collect()
}

/// One client until `until` (simulated time).
pub async fn client(world: Arc<World>, index: usize, clients: usize, until: tokio::time::Instant) {
    let mut process = index as i64;
    let mut n = 0u64;
    while tokio::time::Instant::now() < until {
        n += 1;
        let shows = shows();
        let show = shows[world.random_range(0, shows.len() as u64 - 1) as usize];
        let owner = OwnerId(format!("u{}", index * 3 + (n % 3) as usize));
        let mut invoke = event(process, EventType::Invoke, OpKind::Hold, show);
        let selection = if world.random_bool(0.3) {
            SeatSelection::BestAvailable {
                quantity: world.random_range(1, 2) as u32,
                category: "standard".into(),
            }
        } else {
            let row = crate::row_label(world.random_range(0, u64::from(ROWS) - 1) as usize);
            let first = world.random_range(1, u64::from(SEATS_PER_ROW) - 1) as u32;
            let last = (first + world.random_range(0, 1) as u32).min(SEATS_PER_ROW);
            let seats: Vec<SeatId> = (first..=last).map(|s| SeatId(format!("{row}{s}"))).collect();
            invoke.seats = strings(&seats);
            SeatSelection::Seats(seats)
        };
        world.record(invoke);
        let answer = world
            .submit(
                format!("c{index}-{n}-hold"),
                Command::Hold {
                    show_id: show,
                    owner: owner.clone(),
                    selection,
                    ttl_ms: Some(HOLD_TTL_MS),
                    owner_seats_max: None,
                },
            )
            .await;
        let (kind, hold) = kind_of(&answer, |reply| match reply {
            Reply::Held { hold } => Some(hold.clone()),
            _ => None,
        });
        let mut done = event(process, kind, OpKind::Hold, show);
        done.detail = format!("{answer:?}").chars().take(160).collect();
        if let Some(hold) = &hold {
            done.hold_id = Some(hold.hold_id.to_string());
            done.seats = strings(&hold.seats);
            done.expires_at_ms = Some(hold.expires_at_ms);
        }
        world.record(done);
        let Some(hold) = hold else {
            if kind == EventType::Info {
                process += clients as i64;
            }
            tokio::time::sleep(Duration::from_millis(world.random_range(20, 200))).await;
            continue;
        };
        let choice = world.random_range(0, 99);
        let outcome = if choice < 55 {
            book(&world, process, show, &owner, hold.hold_id, n, index).await
        } else if choice < 75 {
            release(&world, process, show, &owner, hold.hold_id).await
        } else {
            EventType::Ok // abandoned: it expires
        };
        if outcome == EventType::Info {
            process += clients as i64;
        }
        tokio::time::sleep(Duration::from_millis(world.random_range(10, 100))).await;
    }
}

async fn release(
    world: &World,
    process: i64,
    show: ShowId,
    owner: &OwnerId,
    hold: HoldId,
) -> EventType {
    let mut invoke = event(process, EventType::Invoke, OpKind::Release, show);
    invoke.hold_id = Some(hold.to_string());
    world.record(invoke);
    let answer = world
        .submit(format!("{hold}-release"), Command::Release { hold_id: hold, owner: owner.clone() })
        .await;
    let (kind, _) = kind_of(&answer, |_| Some(()));
    let mut done = event(process, kind, OpKind::Release, show);
    done.hold_id = Some(hold.to_string());
    world.record(done);
    kind
}

/// The booking saga, as the gateway runs it; then, for most bookings, a cancellation.
async fn book(
    world: &World,
    process: i64,
    show: ShowId,
    owner: &OwnerId,
    hold: HoldId,
    n: u64,
    index: usize,
) -> EventType {
    let mut invoke = event(process, EventType::Invoke, OpKind::Book, show);
    invoke.hold_id = Some(hold.to_string());
    world.record(invoke);
    let finish = |kind: EventType, booking: Option<(BookingId, Vec<SeatId>)>, detail: &str| {
        let mut done = event(process, kind, OpKind::Book, show);
        done.hold_id = Some(hold.to_string());
        done.detail = detail.to_owned();
        if let Some((id, seats)) = booking {
            done.booking_id = Some(id.to_string());
            done.seats = strings(&seats);
        }
        world.record(done);
        kind
    };
    let answer = world
        .submit(
            format!("c{index}-{n}-checkout"),
            Command::BeginCheckout {
                hold_id: hold,
                owner: owner.clone(),
                window_ms: CHECKOUT_WINDOW_MS,
            },
        )
        .await;
    let (kind, booking) = kind_of(&answer, |reply| match reply {
        Reply::Booking { booking } => Some(booking.clone()),
        _ => None,
    });
    let Some(booking) = booking else { return finish(kind, None, "checkout") };
    let key = booking.booking_id.to_string();
    world.ledger.lock().expect("ledger lock").in_flight.insert(key.clone());
    let kind = charge_and_confirm(world, &booking, &key).await;
    world.ledger.lock().expect("ledger lock").in_flight.remove(&key);
    let kind = match kind {
        Ok(()) => {
            finish(EventType::Ok, Some((booking.booking_id, booking.seats.clone())), "confirmed")
        }
        Err((kind, detail)) => return finish(kind, None, detail),
    };
    // Cancel most bookings, so seats come back and the shows keep selling.
    if !world.random_bool(0.85) {
        return kind;
    }
    cancel(world, process, show, owner, &booking.booking_id, booking.amount.amount_minor).await
}

/// Charge, then confirm (or fail the checkout, or refund a charge that came too late).
async fn charge_and_confirm(
    world: &World,
    booking: &proto::inventory::BookingView,
    key: &str,
) -> Result<(), (EventType, &'static str)> {
    let mut charged = None;
    for _ in 0..3 {
        match world.charge(key, &booking.amount) {
            Some(result) => {
                charged = Some(result);
                break;
            }
            None => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let reference = match charged {
        // Never learned whether the card was charged: the sweeper settles it.
        None => return Err((EventType::Info, "charge unknown")),
        Some(Err(())) => {
            let answer = world
                .submit(
                    format!("{}-fail", booking.booking_id),
                    Command::FailCheckout {
                        booking_id: booking.booking_id,
                        reason: "card declined".into(),
                        keep_hold: false,
                    },
                )
                .await;
            let kind = match answer {
                Answer::Unknown => EventType::Info,
                Answer::Applied(_) => EventType::Fail,
            };
            return Err((kind, "declined"));
        }
        Some(Ok(reference)) => reference,
    };
    let answer = world
        .submit(
            format!("{}-confirm", booking.booking_id),
            Command::Confirm {
                booking_id: booking.booking_id,
                payment_ref: reference,
                ticket_code: None,
            },
        )
        .await;
    match answer {
        Answer::Unknown => Err((EventType::Info, "confirm unknown")),
        Answer::Applied(Err(_)) => {
            // Too late (the checkout expired): give the money back.
            world.refund(key);
            Err((EventType::Fail, "confirm refused; refunded"))
        }
        Answer::Applied(Ok(_)) => Ok(()),
    }
}

async fn cancel(
    world: &World,
    process: i64,
    show: ShowId,
    owner: &OwnerId,
    booking: &BookingId,
    amount: i64,
) -> EventType {
    let mut invoke = event(process, EventType::Invoke, OpKind::Cancel, show);
    invoke.booking_id = Some(booking.to_string());
    world.record(invoke);
    let answer = world
        .submit(
            format!("{booking}-cancel"),
            Command::RequestCancel {
                booking_id: *booking,
                owner: Some(owner.clone()),
                refund_minor: amount,
                deadline_ms: u64::MAX,
            },
        )
        .await;
    let mut kind = match answer {
        Answer::Applied(Ok(_)) => EventType::Ok,
        Answer::Applied(Err(_)) => EventType::Fail,
        Answer::Unknown => EventType::Info,
    };
    if kind == EventType::Ok {
        let refund_ref = world.refund(&booking.to_string()).unwrap_or_default();
        let answer = world
            .submit(
                format!("{booking}-cancelled"),
                Command::CancelBooking { booking_id: *booking, owner: owner.clone(), refund_ref },
            )
            .await;
        if !matches!(answer, Answer::Applied(Ok(_))) {
            kind = EventType::Info;
        }
    }
    let mut done = event(process, kind, OpKind::Cancel, show);
    done.booking_id = Some(booking.to_string());
    world.record(done);
    kind
}

/// One pass of the recovery sweeper over every charge and started cancellation; returns how
/// many are still unsettled.
pub async fn sweep(world: &World) -> usize {
    let (charges, in_flight) = {
        let ledger = world.ledger.lock().expect("ledger lock");
        (ledger.records().0, ledger.in_flight.clone())
    };
    let mut unsettled = 0;
    for (key, reference) in charges {
        if in_flight.contains(&key) {
            unsettled += 1;
            continue;
        }
        let Ok(booking_id) = key.parse::<BookingId>() else { continue };
        let Some(booking) = world.read_booking(booking_id) else {
            unsettled += 1;
            continue;
        };
        let refunded = world
            .ledger
            .lock()
            .expect("ledger lock")
            .provider
            .refunds
            .contains_key(&format!("refund:{key}"));
        match booking.status {
            BookingStatus::PendingPayment => {
                let answer = world
                    .submit(
                        format!("{key}-confirm"),
                        Command::Confirm { booking_id, payment_ref: reference, ticket_code: None },
                    )
                    .await;
                if matches!(answer, Answer::Applied(Err(_))) {
                    world.refund(&key);
                }
                unsettled += 1;
            }
            BookingStatus::Failed if !refunded => {
                world.refund(&key);
            }
            BookingStatus::Cancelling => {
                let refund_ref = world.refund(&key).unwrap_or_default();
                let owner = booking.owner.clone();
                let _ = world
                    .submit(
                        format!("{key}-cancelled"),
                        Command::CancelBooking { booking_id, owner, refund_ref },
                    )
                    .await;
                unsettled += 1;
            }
            _ => {}
        }
    }
    unsettled
}

impl World {
    /// A booking as the current leader's replica has applied it.
    fn read_booking(&self, booking_id: BookingId) -> Option<proto::inventory::BookingView> {
        let leader = self.nodes.iter().find(|n| n.is_leader())?;
        let process = leader.process()?;
        match process.sm.query(&Query::Booking { booking_id }) {
            QueryResult::Booking { booking } => Some(booking),
            _ => None,
        }
    }
}
