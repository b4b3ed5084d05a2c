//! One worker's operator chain: event in, verdict out.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use spamflow_schemas::{Reason, Verdict};

use crate::classifier::{ClassifierWorker, Model, ModelHandle};
use crate::normalize::Normalized;
use crate::origin::{SenderCache, SenderId};
use crate::policy::CLASSIFIER;
use crate::{
    EventCtx, OperatorWorker, Policy, Signal, StateError, StateUpdate, StatefulOperator,
    StatelessOperator,
};

type StatefulFactory = Arc<dyn Fn() -> Box<dyn StatefulOperator> + Send + Sync>;

/// The chain normalizes this much of each text, once per event, for every operator that
/// reads the canonical form (the pattern operator's default scan limit).
pub const CANONICAL_MAX_BYTES: usize = 8 * 1024;

/// `text` cut to at most `max` bytes at a character boundary.
fn prefix(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `rules_version`: a content hash of the policy, every stateless operator's rules and
/// the configuration of every stateful operator that can change a verdict.
fn rules_version(
    policy: &Policy,
    stateless: &[Arc<dyn StatelessOperator>],
    stateful: &[(&'static str, String)],
) -> String {
    let mut h = Sha256::new();
    h.update(serde_json::to_vec(policy.config()).unwrap_or_default());
    // An operator with an empty hash (statistics, a test build's fault injector) never
    // changes a verdict.
    for op in stateless {
        let hash = op.content_hash();
        if !hash.is_empty() {
            h.update(op.name());
            h.update(hash);
        }
    }
    for (name, hash) in stateful.iter().filter(|(_, hash)| !hash.is_empty()) {
        h.update(name);
        h.update(hash);
    }
    format!("sha256:{}", &hex::encode(h.finalize())[..16])
}

fn generations(ops: &[Arc<dyn StatelessOperator>]) -> u64 {
    ops.iter()
        .map(|o| o.generation())
        .fold(0u64, u64::wrapping_add)
}

/// Everything needed to build a [`Chain`] per worker thread. Cheap to clone: compiled
/// stateless operators are shared, stateful operators are made fresh per worker.
#[derive(Clone)]
pub struct ChainBuilder {
    stateless: Vec<Arc<dyn StatelessOperator>>,
    stateful: Vec<(&'static str, StatefulFactory)>,
    stateful_hashes: Vec<(&'static str, String)>,
    policy: Arc<Policy>,
    classifier: Option<ModelHandle>,
    shadow_model: Option<ModelHandle>,
    sender_cache: usize,
}

impl std::fmt::Debug for ChainBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainBuilder")
            .field(
                "stateless",
                &self.stateless.iter().map(|o| o.name()).collect::<Vec<_>>(),
            )
            .field(
                "stateful",
                &self.stateful.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            )
            .field("rules_version", &self.rules_version())
            .field("model", &self.classifier)
            .field("shadow_model", &self.shadow_model)
            .finish()
    }
}

impl ChainBuilder {
    /// A chain with no operators: every verdict is `allow` with score 0.
    pub fn new(policy: Policy) -> Self {
        ChainBuilder {
            stateless: Vec::new(),
            stateful: Vec::new(),
            stateful_hashes: Vec::new(),
            policy: Arc::new(policy),
            classifier: None,
            shadow_model: None,
            sender_cache: 100_000,
        }
    }

    /// Each worker caches this many parsed senders (`origin.cache_size`; 100,000 unless
    /// set).
    pub fn sender_cache(mut self, capacity: usize) -> Self {
        self.sender_cache = capacity;
        self
    }

    /// Runs the classifier with the model `handle` serves, after the stateless operators
    /// and before the stateful ones, and decides with that model's fitted policy; a
    /// `shadow` model's decision is reported in `shadow[]` only.
    pub fn classifier(mut self, handle: ModelHandle, shadow: Option<ModelHandle>) -> Self {
        self.classifier = Some(handle);
        self.shadow_model = shadow;
        self
    }

    /// Adds a stateless operator (evaluated in the order added).
    pub fn stateless(mut self, op: Arc<dyn StatelessOperator>) -> Self {
        self.stateless.push(op);
        self
    }

    /// Adds a stateful operator; `make` is called once per worker.
    pub fn stateful(
        mut self,
        name: &'static str,
        make: impl Fn() -> Box<dyn StatefulOperator> + Send + Sync + 'static,
    ) -> Self {
        let probe = make();
        self.stateful_hashes.push((name, probe.content_hash()));
        self.stateful.push((name, Arc::new(make)));
        self
    }

    /// Whether any operator keeps state (the runtime then needs the changelog topic).
    pub fn has_state(&self) -> bool {
        !self.stateful.is_empty()
    }

    /// Names of the operators, in evaluation order.
    pub fn operator_names(&self) -> Vec<&'static str> {
        self.stateless
            .iter()
            .map(|o| o.name())
            .chain(self.classifier.as_ref().map(|_| CLASSIFIER))
            .chain(self.stateful.iter().map(|(n, _)| *n))
            .collect()
    }

    /// Content hash of the policy and every operator's rules, tables and config:
    /// `rules_version` in every verdict.
    pub fn rules_version(&self) -> String {
        rules_version(&self.policy, &self.stateless, &self.stateful_hashes)
    }

    /// The policy.
    pub fn policy(&self) -> &Arc<Policy> {
        &self.policy
    }

    /// A chain for one worker thread.
    pub fn build(&self) -> Chain {
        Chain {
            stateless: self.stateless.iter().map(|o| o.worker()).collect(),
            stateful: self.stateful.iter().map(|(_, make)| make()).collect(),
            policy: self.policy.clone(),
            rules_version: self.rules_version(),
            generation: generations(&self.stateless),
            ops: self.stateless.clone(),
            stateful_hashes: self.stateful_hashes.clone(),
            signals: Vec::with_capacity(16),
            norm: Normalized::new(),
            classifier: self
                .classifier
                .clone()
                .map(|h| (h, ClassifierWorker::new())),
            model: None,
            shadow_model: self
                .shadow_model
                .clone()
                .map(|h| (h, ClassifierWorker::new())),
            senders: SenderCache::new(self.sender_cache),
        }
    }
}

/// One worker's operator chain. Synchronous and infallible on the hot path.
pub struct Chain {
    stateless: Vec<Box<dyn OperatorWorker>>,
    stateful: Vec<Box<dyn StatefulOperator>>,
    policy: Arc<Policy>,
    rules_version: String,
    /// Sum of the stateless operators' generations when `rules_version` was computed.
    generation: u64,
    ops: Vec<Arc<dyn StatelessOperator>>,
    stateful_hashes: Vec<(&'static str, String)>,
    signals: Vec<Signal>,
    /// The canonical form of the current event's text.
    norm: Normalized,
    classifier: Option<(ModelHandle, ClassifierWorker)>,
    /// The model that scored the current event: its version is in the verdict.
    model: Option<Arc<Model>>,
    shadow_model: Option<(ModelHandle, ClassifierWorker)>,
    senders: SenderCache,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain")
            .field("rules_version", &self.rules_version)
            .finish_non_exhaustive()
    }
}

impl Chain {
    /// The identity of the sender presented as `raw`, parsed once per sender and worker:
    /// what [`EventCtx::sender`] carries to every operator.
    pub fn sender(&mut self, raw: &str) -> Arc<SenderId> {
        self.senders.get(raw)
    }

    /// Runs every operator on the event and lets the policy decide. The verdict borrows
    /// from the event and the chain ([`Verdict::into_owned`] to keep it).
    pub fn process<'a>(&'a mut self, ctx: &EventCtx<'a>, decided_at: DateTime<Utc>) -> Verdict<'a> {
        let g = generations(&self.ops);
        if g != self.generation {
            // Rules were swapped (hot reload): stamp the new version from now on.
            self.rules_version = rules_version(&self.policy, &self.ops, &self.stateful_hashes);
            self.generation = g;
        }
        self.signals.clear();
        self.norm
            .normalize(prefix(&ctx.event.text, CANONICAL_MAX_BYTES));
        for op in &mut self.stateless {
            op.inspect_canonical(ctx, &self.norm, &mut self.signals);
        }
        // One model per event: its score and its fitted policy decide together even if a
        // reload swaps the model meanwhile.
        if let Some((handle, worker)) = &mut self.classifier {
            let m = handle.load();
            // Held until the next event swaps it; the reference count is touched only
            // when a reload changed the model.
            if !self
                .model
                .as_ref()
                .is_some_and(|held| Arc::ptr_eq(held, &m))
            {
                self.model = Some(Arc::clone(&m));
            }
            worker.inspect(&m, &self.norm, &ctx.event.text, &mut self.signals);
        }
        for op in &mut self.stateful {
            op.inspect(ctx, &mut self.signals);
        }
        let shadow = self.shadow_decision(ctx, decided_at);
        let mut verdict = self.policy.decide(
            ctx.event,
            &self.signals,
            &self.rules_version,
            self.model.as_deref(),
            decided_at,
        );
        verdict.shadow.extend(shadow);
        for op in &mut self.stateful {
            op.decided(ctx, &verdict);
        }
        verdict
    }

    /// The shadow model's decision on the event whose signals were just gathered, as a
    /// shadow reason: code `shadow_model.<action>`, its score, and its version as evidence.
    fn shadow_decision(
        &mut self,
        ctx: &EventCtx<'_>,
        decided_at: DateTime<Utc>,
    ) -> Option<Reason<'static>> {
        let (handle, worker) = self.shadow_model.as_mut()?;
        let m = handle.load();
        let mut signals: Vec<Signal> = self
            .signals
            .iter()
            .filter(|s| s.operator != CLASSIFIER)
            .cloned()
            .collect();
        worker.inspect(&m, &self.norm, &ctx.event.text, &mut signals);
        let v = self.policy.decide(
            ctx.event,
            &signals,
            &self.rules_version,
            Some(&m),
            decided_at,
        );
        let category = v.reasons.first().map_or("none", |r| &*r.category);
        Some(Reason {
            operator: CLASSIFIER.into(),
            code: format!("shadow_model.{}", v.action.as_str()).into(),
            category: category.to_owned().into(),
            score: v.score,
            evidence: v.model_version.map(|m| m.into_owned().into()),
            span: None,
        })
    }

    /// The signals of the stateless operators alone (no classifier, no state, no policy):
    /// what `spamflow train` fits the policy on.
    pub fn stateless_signals(&mut self, ctx: &EventCtx<'_>) -> &[Signal] {
        self.signals.clear();
        for op in &mut self.stateless {
            op.inspect(ctx, &mut self.signals);
        }
        &self.signals
    }

    /// The policy (for alerts).
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// `rules_version` stamped on this chain's verdicts.
    pub fn rules_version(&self) -> &str {
        &self.rules_version
    }

    /// Whether any operator keeps state.
    pub fn has_state(&self) -> bool {
        !self.stateful.is_empty()
    }

    /// `partition` is now owned by this chain.
    pub fn assigned(&mut self, partition: i32) {
        for op in &mut self.stateful {
            op.assigned(partition);
        }
    }

    /// `partition` is no longer owned: drop its state.
    pub fn revoked(&mut self, partition: i32) {
        for op in &mut self.stateful {
            op.revoked(partition);
        }
    }

    /// Applies one changelog record to the operator named `operator`. Records of an
    /// operator that no longer exists are skipped (returns `Ok(false)`).
    pub fn restore(
        &mut self,
        partition: i32,
        operator: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<bool, StateError> {
        match self.stateful.iter_mut().find(|op| op.name() == operator) {
            Some(op) => op.restore(partition, key, value).map(|()| true),
            None => Ok(false),
        }
    }

    /// The records for other topics made for `partition` since the last call (see
    /// [`StatefulOperator::side_records`]).
    pub fn side_records(&mut self, partition: i32, out: &mut Vec<crate::SideRecord>) {
        for op in &mut self.stateful {
            op.side_records(partition, out);
        }
    }

    /// Hands `f(operator, update, published)` each key of `partition` changed since the
    /// last snapshot (`published`: see [`StatefulOperator::published`]).
    pub fn snapshot(
        &mut self,
        partition: i32,
        buf: &mut Vec<StateUpdate>,
        mut f: impl FnMut(&'static str, StateUpdate, bool),
    ) {
        for op in &mut self.stateful {
            buf.clear();
            op.snapshot(partition, buf);
            for u in buf.drain(..) {
                let published = u.value.is_some() && op.published(&u.key);
                f(op.name(), u, published);
            }
        }
    }
}
