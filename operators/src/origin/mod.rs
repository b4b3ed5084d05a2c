//! The origin operator: overseas origin, caller-number spoofing, invalid senders, and
//! the sender-number registry for bulk traffic.
//!
//! - [`number`]: sender parsing with libphonenumber metadata.
//! - [`registry`]: the registration table.
//!
//! Signals (all configurable in [`OriginConfig`]):
//! - `origin.international` (category `overseas`, label `[국제발신]`, hint label): the
//!   message arrived on an international route, through a configured international
//!   gateway, or from a network whose country is not `KR`. Score: the country's risk.
//! - `origin.spoofed_domestic` (category `spoofing`, hint block): a Korean (+82) number
//!   as sender on an internationally arriving message (발신번호 변작).
//! - `origin.invalid_sender` (category `spoofing`, hint block): a sender that is not a
//!   valid, assignable number, or a special service number that never sends SMS.
//! - `registry.unregistered`, `registry.wrong_operator`, `registry.suspended`,
//!   `registry.expired` (category `registry`): bulk traffic (with `relay.operator`)
//!   from a number not registered to that relay operator. Person-to-person traffic is
//!   not checked.
//!
//! Parsing a number through the metadata costs microseconds, so each worker keeps a
//! bounded cache of parsed senders (cleared when full: spam rotates numbers, and an
//! LRU's bookkeeping would cost more than the occasional re-parse).

pub mod number;
pub mod registry;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use spamflow_schemas::Route;

pub use number::{parse_sender, SenderId, SenderKind};
pub use registry::{mask_number, Lookup, Registry, RegistryError};

use crate::{ActionHint, ConfigProblem, EventCtx, OperatorWorker, Signal, StatelessOperator};

/// `[origin]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OriginConfig {
    /// Label the SMSC must prepend to overseas-origin messages.
    pub international_label: String,
    /// Risk score (0..=100) of overseas origin by ISO country code.
    pub country_risk: BTreeMap<String, u8>,
    /// Risk score of an overseas country not in `country_risk`.
    pub default_country_risk: u8,
    /// Gateway ids (prefixes) that are international interconnects.
    pub international_gateways: Vec<String>,
    /// Block a Korean number arriving on an international route (spoofing).
    pub block_spoofed: bool,
    /// Block senders that are not valid, assignable numbers.
    pub block_invalid: bool,
    /// Special service numbers that never send SMS (emergency and public services).
    pub never_sending: Vec<String>,
    /// Check bulk traffic against the sender-number registry.
    pub check_registry: bool,
    /// What a registry failure does: `block`, `label` or `score`.
    pub registry_action: String,
    /// Parsed senders cached per worker.
    pub cache_size: usize,
}

impl Default for OriginConfig {
    fn default() -> Self {
        OriginConfig {
            international_label: "[국제발신]".into(),
            country_risk: BTreeMap::new(),
            default_country_risk: 10,
            international_gateways: vec!["igw".into()],
            block_spoofed: true,
            block_invalid: true,
            never_sending: [
                "112", "119", "110", "111", "113", "117", "118", "122", "125", "128", "182",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            check_registry: true,
            registry_action: "block".into(),
            cache_size: 100_000,
        }
    }
}

impl OriginConfig {
    /// Every problem at once, as (key under `[origin]`, reason).
    pub fn validate(&self) -> Vec<ConfigProblem> {
        let mut errs = Vec::new();
        for (c, r) in &self.country_risk {
            if c.len() != 2 || !c.chars().all(|x| x.is_ascii_uppercase()) {
                errs.push(ConfigProblem::new(
                    format!("country_risk.{c}"),
                    "not an ISO 3166 alpha-2 code in upper case",
                ));
            }
            if *r > 100 {
                errs.push(ConfigProblem::new(
                    format!("country_risk.{c}"),
                    format!("{r} is above 100"),
                ));
            }
        }
        if self.default_country_risk > 100 {
            errs.push(ConfigProblem::new(
                "default_country_risk",
                format!("{} is above 100", self.default_country_risk),
            ));
        }
        if !matches!(self.registry_action.as_str(), "block" | "label" | "score") {
            errs.push(ConfigProblem::new(
                "registry_action",
                format!("{:?} is not block, label or score", self.registry_action),
            ));
        }
        if self.cache_size == 0 {
            errs.push(ConfigProblem::new("cache_size", "must be positive"));
        }
        errs
    }
}

/// The origin operator (stateless; the registry is shared and followed live).
#[derive(Debug, Clone)]
pub struct OriginOperator {
    cfg: Arc<OriginConfig>,
    registry: Arc<Registry>,
}

impl OriginOperator {
    /// An operator with `cfg`, checking bulk traffic against `registry`.
    pub fn new(cfg: OriginConfig, registry: Arc<Registry>) -> Self {
        OriginOperator {
            cfg: Arc::new(cfg),
            registry,
        }
    }

    /// The registry it checks.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }
}

impl StatelessOperator for OriginOperator {
    fn name(&self) -> &'static str {
        "origin"
    }

    fn content_hash(&self) -> String {
        // The registry is live data, like the input; its content is not part of the
        // rules version. The configuration is.
        hex::encode(Sha256::digest(
            serde_json::to_vec(&*self.cfg).unwrap_or_default(),
        ))
    }

    fn worker(&self) -> Box<dyn OperatorWorker> {
        Box::new(OriginWorker { op: self.clone() })
    }
}

/// Parsed senders by the text they were presented as, for one worker: each sender is
/// parsed once (a few microseconds) and every operator reads the same identity
/// ([`EventCtx::sender`]). Cleared when it holds `capacity` senders.
#[derive(Debug)]
pub struct SenderCache {
    map: HashMap<String, Arc<SenderId>>,
    capacity: usize,
}

impl SenderCache {
    /// An empty cache of at most `capacity` senders (`origin.cache_size`).
    pub fn new(capacity: usize) -> Self {
        SenderCache {
            map: HashMap::with_capacity(capacity.min(1024)),
            capacity: capacity.max(1),
        }
    }

    /// The identity of the sender presented as `raw`.
    pub fn get(&mut self, raw: &str) -> Arc<SenderId> {
        if let Some(id) = self.map.get(raw) {
            return id.clone();
        }
        if self.map.len() >= self.capacity {
            self.map.clear();
        }
        let id = Arc::new(parse_sender(raw));
        self.map.insert(raw.to_owned(), id.clone());
        id
    }
}

struct OriginWorker {
    op: OriginOperator,
}

impl OperatorWorker for OriginWorker {
    fn inspect(&mut self, ctx: &EventCtx<'_>, out: &mut Vec<Signal>) {
        let ev = ctx.event;
        let sender = ctx.sender;
        let cfg = &*self.op.cfg;
        let via_gateway = ev.origin.gateway.as_deref().is_some_and(|g| {
            cfg.international_gateways
                .iter()
                .any(|p| g.starts_with(p.as_str()))
        });
        let foreign_network = ev
            .origin
            .country
            .as_deref()
            .is_some_and(|c| !c.eq_ignore_ascii_case("KR"));
        let international =
            ev.origin.route == Route::International || via_gateway || foreign_network;
        if international {
            let country = ev
                .origin
                .country
                .as_deref()
                .or(sender.country.as_deref())
                .unwrap_or("??")
                .to_ascii_uppercase();
            let risk = cfg
                .country_risk
                .get(&country)
                .copied()
                .unwrap_or(cfg.default_country_risk);
            out.push(Signal {
                hint: ActionHint::Label,
                label: Some(cfg.international_label.clone().into()),
                evidence: Some(
                    format!(
                        "route {:?}, gateway {}, country {country}",
                        ev.origin.route,
                        ev.origin.gateway.as_deref().unwrap_or("-")
                    )
                    .to_lowercase(),
                ),
                ..Signal::new("origin", "origin.international", "overseas", risk)
            });
            if sender.is_korean_number() {
                out.push(Signal {
                    hint: if cfg.block_spoofed {
                        ActionHint::Block
                    } else {
                        ActionHint::Score
                    },
                    evidence: Some(format!(
                        "domestic {} number {} arrived internationally",
                        sender.kind.as_str(),
                        sender.key
                    )),
                    ..Signal::new("origin", "origin.spoofed_domestic", "spoofing", 90)
                });
            }
        }
        let never = matches!(sender.kind, SenderKind::ShortCode)
            && cfg
                .never_sending
                .iter()
                .any(|n| sender.key.strip_prefix("short:") == Some(n.as_str()));
        if sender.kind == SenderKind::Invalid || never {
            out.push(Signal {
                hint: if cfg.block_invalid {
                    ActionHint::Block
                } else {
                    ActionHint::Score
                },
                evidence: Some(if never {
                    format!("{} is a service number that never sends SMS", sender.key)
                } else {
                    "not a valid, assignable number".into()
                }),
                ..Signal::new("origin", "origin.invalid_sender", "spoofing", 80)
            });
        }
        if cfg.check_registry
            && ev.relay_operator().is_none()
            && sender.kind.is_number()
            && self.op.registry.is_suspended(&sender.key)
        {
            // A suspended number is blocked whatever the traffic (a spammer's own phone).
            out.push(Signal {
                hint: ActionHint::Block,
                evidence: Some(format!("{} is suspended", sender.key)),
                ..Signal::new("origin", "registry.suspended", "registry", 60)
            });
        }
        if let (true, Some(op)) = (cfg.check_registry, ev.relay_operator()) {
            let reseller = ev.relay.as_ref().and_then(|r| r.reseller.as_deref());
            let lookup = if sender.kind.is_number() {
                self.op
                    .registry
                    .check(&sender.key, op, reseller, ctx.event_time_ms)
            } else {
                Lookup::Unregistered
            };
            let (code, evidence) = match lookup {
                Lookup::Ok => return,
                Lookup::Unregistered => (
                    "registry.unregistered",
                    format!("{} is not registered", sender.key),
                ),
                Lookup::WrongOperator { registered_to } => (
                    "registry.wrong_operator",
                    format!("{} is registered to {registered_to}, not {op}", sender.key),
                ),
                Lookup::Suspended => ("registry.suspended", format!("{} is suspended", sender.key)),
                Lookup::Expired => (
                    "registry.expired",
                    format!("{} registration is not valid at this time", sender.key),
                ),
            };
            let hint = match cfg.registry_action.as_str() {
                // Suspension is a hard rule, whatever registry_action says.
                _ if code == "registry.suspended" => ActionHint::Block,
                "block" => ActionHint::Block,
                "label" => ActionHint::Label,
                _ => ActionHint::Score,
            };
            out.push(Signal {
                hint,
                evidence: Some(evidence),
                ..Signal::new("origin", code, "registry", 60)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spamflow_schemas::{
        MessageKind, Origin, RegistrationRecord, RegistrationStatus, Relay, SubmissionEvent,
    };

    fn ev(
        sender: &str,
        route: Route,
        country: Option<&str>,
        relay: Option<&str>,
    ) -> SubmissionEvent {
        SubmissionEvent {
            schema_version: 1,
            message_id: "m".into(),
            submitted_at: "2026-03-01T09:00:00Z".parse().unwrap(),
            sender: sender.into(),
            recipient: "+821011112222".into(),
            text: "hi".into(),
            kind: MessageKind::Sms,
            origin: Origin {
                route,
                gateway: None,
                smsc: "s".into(),
                country: country.map(Into::into),
            },
            relay: relay.map(|op| Relay {
                operator: Some(op.into()),
                reseller: None,
                first_sender_code: None,
            }),
        }
    }

    fn codes(op: &OriginOperator, e: &SubmissionEvent) -> Vec<(String, ActionHint)> {
        let mut w = op.worker();
        let mut out = Vec::new();
        w.inspect(
            &EventCtx {
                event: e,
                sender: &crate::origin::parse_sender(&e.sender),
                partition: 0,
                event_time_ms: e.event_time_ms(),
                counted: false,
            },
            &mut out,
        );
        out.into_iter()
            .map(|s| (s.code.into_owned(), s.hint))
            .collect()
    }

    #[test]
    fn overseas_spoofing_invalid_and_registry() {
        let reg = Arc::new(Registry::new());
        reg.put(&RegistrationRecord {
            number: "1588-1234".into(),
            owner: "Acme".into(),
            relay_operator: "relay-a".into(),
            reseller: None,
            status: RegistrationStatus::Active,
            valid_from: None,
            valid_until: None,
            ..Default::default()
        })
        .unwrap();
        let mut cfg = OriginConfig::default();
        cfg.country_risk.insert("CN".into(), 35);
        let op = OriginOperator::new(cfg, reg);
        use ActionHint::*;
        assert!(codes(&op, &ev("010-1234-5678", Route::Domestic, None, None)).is_empty());
        assert_eq!(
            codes(
                &op,
                &ev("+447911123456", Route::International, Some("GB"), None)
            ),
            vec![("origin.international".into(), Label)]
        );
        assert_eq!(
            codes(
                &op,
                &ev("010-1234-5678", Route::International, Some("CN"), None)
            ),
            vec![
                ("origin.international".into(), Label),
                ("origin.spoofed_domestic".into(), Block)
            ]
        );
        assert_eq!(
            codes(
                &op,
                &ev("+8613800138000", Route::Domestic, Some("CN"), None)
            ),
            vec![("origin.international".into(), Label)]
        );
        assert_eq!(
            codes(&op, &ev("010-0000", Route::Domestic, None, None)),
            vec![("origin.invalid_sender".into(), Block)]
        );
        assert_eq!(
            codes(&op, &ev("112", Route::Domestic, None, None)),
            vec![("origin.invalid_sender".into(), Block)]
        );
        assert!(codes(&op, &ev("15881234", Route::Domestic, None, Some("relay-a"))).is_empty());
        assert_eq!(
            codes(&op, &ev("15881234", Route::Domestic, None, Some("relay-b"))),
            vec![("registry.wrong_operator".into(), Block)]
        );
        assert_eq!(
            codes(
                &op,
                &ev("010-9999-8888", Route::Domestic, None, Some("relay-a"))
            ),
            vec![("registry.unregistered".into(), Block)]
        );
        // Person-to-person traffic is not checked against the registry.
        assert!(codes(&op, &ev("010-9999-8888", Route::Domestic, None, None)).is_empty());
    }

    #[test]
    fn country_risk_scores_the_overseas_signal() {
        let mut cfg = OriginConfig::default();
        cfg.country_risk.insert("PH".into(), 40);
        let op = OriginOperator::new(cfg, Arc::new(Registry::new()));
        let mut w = op.worker();
        let e = ev("+639171234567", Route::International, Some("PH"), None);
        let mut out = Vec::new();
        w.inspect(
            &EventCtx {
                event: &e,
                sender: &crate::origin::parse_sender(&e.sender),
                partition: 0,
                event_time_ms: 0,
                counted: false,
            },
            &mut out,
        );
        assert_eq!(out[0].score, 40);
        assert_eq!(out[0].label.as_deref(), Some("[국제발신]"));
        assert!(OriginConfig::default().validate().is_empty());
        let bad = OriginConfig {
            registry_action: "nuke".into(),
            ..OriginConfig::default()
        };
        assert_eq!(bad.validate()[0].key, "registry_action");
    }
}
