//! `bench/run policy`: decisions per second of `symbiont-policy`, single-threaded, on a set of ten
//! policies with guards, against `cedar-policy` deciding the same requests on the same rules
//! written in Cedar (`policies/bench.sym`, `policies/bench.cedar`). `bench/README.md` says how to
//! read the output.
//!
//! This crate is its own workspace, outside the main one, so that building and testing the
//! project never builds cedar-policy.
//!
//! Order of work: build both engines and a fixed, seeded mix of requests; check that both decide
//! every request of the mix the same way (and that no guard of either errs, since the two
//! languages treat evaluation errors differently), or stop; then time each engine on the mix,
//! alternating runs so that both see the same machine; then print a table and the `RESULT` line.

use std::{
    hint::black_box,
    process::ExitCode,
    str::FromStr,
    time::{Duration, Instant},
};

use serde_json::{json, Value as Json};
use symbiont_policy::{
    engine::Outcome,
    levels::{DEFAULT_CLASSIFICATIONS, DEFAULT_CLEARANCES},
    Effect, Engine, LevelKind, Reason, Value,
};

const SYM_PATH: &str = "bench/policy-vs-cedar/policies/bench.sym";
const SYM: &str = include_str!("../policies/bench.sym");
const CEDAR: &str = include_str!("../policies/bench.cedar");
const AGENT: &str = "bench_agent";

const USAGE: &str = "usage: bench/run policy [--requests N] [--seed N] [--runs N] [--run-ms N] [--samples N]";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Options

struct Options {
    /// Distinct requests in the mix.
    requests: usize,
    /// Seed of the request generator.
    seed: u64,
    /// Timed throughput runs per engine (the reported figure is their median).
    runs: usize,
    /// Target duration of one throughput run, in milliseconds.
    run_ms: u64,
    /// Individually timed decisions per engine for the latency percentiles.
    samples: usize,
}

fn options() -> Result<Options, String> {
    let mut options = Options { requests: 4096, seed: 0x5eed_cafe, runs: 9, run_ms: 200, samples: 400_000 };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if matches!(arg.as_str(), "-h" | "--help") {
            println!("{USAGE}\n\nSee bench/README.md, section `policy`.");
            std::process::exit(0);
        }
        let value = args.next().ok_or_else(|| format!("`{arg}` needs a number\n{USAGE}"))?;
        let number =
            value.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| format!("`{arg}` needs a positive integer, found `{value}`"))?;
        match arg.as_str() {
            "--requests" => options.requests = number as usize,
            "--seed" => options.seed = number,
            "--runs" => options.runs = number as usize,
            "--run-ms" => options.run_ms = number,
            "--samples" => options.samples = number as usize,
            other => return Err(format!("unknown argument `{other}` for `policy`\n{USAGE}")),
        }
    }
    Ok(options)
}

// -------------------------------------------------------------------------------------------------
// The request mix

/// SplitMix64: a small, fixed generator, so that a seed means the same mix on every machine and
/// with every version of every dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Operations some rule of the set governs, directly or through the catalogue's hierarchy.
const GOVERNED: &[&str] = &[
    "read",
    "search",
    "file_read",
    "file_system_write",
    "file_delete",
    "analyze",
    "summarize",
    "generate_code",
    "https_request",
    "http_request",
    "web_request",
    "socket_connect",
    "execute_code",
    "spawn_process",
    "secret_access",
    "modify_policy",
    "send_message",
    "publish",
    "send_notification",
    "delegate",
    "memory_read",
    "memory_write",
    "request_approval",
    "spawn_agent",
];

/// Operations no rule covers (default deny), including one outside the catalogue.
const UNGOVERNED: &[&str] = &["write", "file_access", "dns_lookup", "env_access", "invoke_tool", "receive_message", "deploy"];

/// One request, independent of either engine's representation.
struct Spec {
    op: &'static str,
    path: &'static str,
    user_clearance: &'static str,
    data_classification: &'static str,
    code_review: &'static str,
    audit_trail: bool,
    team: &'static str,
    roles: Vec<&'static str>,
    environment: &'static str,
    hour: i64,
    host: &'static str,
    topic: &'static str,
    size_bytes: i64,
    mfa: bool,
}

fn generate(count: usize, seed: u64) -> Vec<Spec> {
    let mut rng = Rng(seed);
    (0..count)
        .map(|_| Spec {
            // Most requests are about operations the set governs, some about others.
            op: if rng.chance(85) { rng.pick(GOVERNED) } else { rng.pick(UNGOVERNED) },
            path: rng.pick(&[
                "/workspace/src/main.rs",
                "/workspace/tmp/out.txt",
                "/workspace/tmp/",
                "/workspaces/other/notes.md",
                "/etc/passwd",
                "/home/user/.ssh/id_ed25519",
            ]),
            user_clearance: rng.pick(DEFAULT_CLEARANCES),
            data_classification: rng.pick(DEFAULT_CLASSIFICATIONS),
            code_review: if rng.chance(80) { "mandatory" } else { "optional" },
            audit_trail: rng.chance(85),
            team: rng.pick(&["platform", "research", "contractors"]),
            roles: ["notifier", "reviewer", "operator"].into_iter().filter(|_| rng.chance(50)).collect(),
            environment: rng.pick(&["dev", "staging", "prod"]),
            hour: rng.below(24) as i64,
            host: rng.pick(&["api.github.com", "crates.io", "docs.rs", "example.com", "exfil.test"]),
            topic: rng.pick(&["events.build", "events.deploy", "alerts.ops", "metrics"]),
            size_bytes: rng.pick(&[512, 65_536, 1_048_576, 4_194_304]),
            mfa: rng.chance(70),
        })
        .collect()
}

/// A request as `Engine::decide` takes it: operation, arguments, environment.
struct OurRequest {
    op: &'static str,
    args: Value,
    env: Value,
}

fn ours(spec: &Spec) -> OurRequest {
    let env = json!({
        "user_clearance": spec.user_clearance,
        "data_classification": spec.data_classification,
        "code_review": spec.code_review,
        "audit_trail": spec.audit_trail,
        "user": { "team": spec.team, "roles": spec.roles },
        "request": {
            "environment": spec.environment,
            "hour": spec.hour,
            "host": spec.host,
            "topic": spec.topic,
            "size_bytes": spec.size_bytes,
            "mfa": spec.mfa,
        },
    });
    OurRequest { op: spec.op, args: Value::from(json!([spec.path])), env: Value::from(env) }
}

/// Ranks of the levels as `bench.cedar` writes them: the position in the default lists.
fn rank(kind: LevelKind, name: &str) -> i64 {
    symbiont_policy::Levels::default().rank(kind, name).expect("the mix only uses known levels") as i64
}

fn cedar_request(spec: &Spec) -> Result<cedar_policy::Request, String> {
    let context = json!({
        "path": spec.path,
        "user_clearance": rank(LevelKind::Clearance, spec.user_clearance),
        "data_classification": rank(LevelKind::Classification, spec.data_classification),
        "code_review": spec.code_review,
        "audit_trail": spec.audit_trail,
        "user": { "team": spec.team, "roles": spec.roles },
        "request": {
            "environment": spec.environment,
            "hour": spec.hour,
            "host": spec.host,
            "topic": spec.topic,
            "size_bytes": spec.size_bytes,
            "mfa": spec.mfa,
        },
    });
    let context = cedar_policy::Context::from_json_value(context, None).map_err(|e| format!("Cedar context: {e}"))?;
    cedar_policy::Request::new(uid("Agent", AGENT)?, uid("Action", spec.op)?, uid("Resource", "workspace")?, context, None)
        .map_err(|e| format!("Cedar request: {e}"))
}

fn uid(kind: &str, id: &str) -> Result<cedar_policy::EntityUid, String> {
    cedar_policy::EntityUid::from_str(&format!("{kind}::{}", Json::from(id))).map_err(|e| format!("Cedar entity `{kind}::{id}`: {e}"))
}

// -------------------------------------------------------------------------------------------------
// The engines

struct Cedar {
    authorizer: cedar_policy::Authorizer,
    policies: cedar_policy::PolicySet,
    entities: cedar_policy::Entities,
}

impl Cedar {
    fn new() -> Result<Cedar, String> {
        let policies = cedar_policy::PolicySet::from_str(CEDAR).map_err(|e| format!("bench.cedar does not parse: {e:?}"))?;
        // The operation hierarchy, from the same catalogue our engine uses.
        let actions: Vec<Json> = symbiont_policy::catalogue::OPERATIONS
            .iter()
            .map(|op| {
                json!({
                    "uid": { "type": "Action", "id": op.name },
                    "attrs": {},
                    "parents": op.parent.map(|p| vec![json!({ "type": "Action", "id": p })]).unwrap_or_default(),
                })
            })
            .collect();
        let entities = cedar_policy::Entities::from_json_value(Json::Array(actions), None).map_err(|e| format!("Cedar entities: {e}"))?;
        Ok(Cedar { authorizer: cedar_policy::Authorizer::new(), policies, entities })
    }

    #[inline]
    fn allows(&self, request: &cedar_policy::Request) -> bool {
        self.authorizer.is_authorized(request, &self.policies, &self.entities).decision() == cedar_policy::Decision::Allow
    }
}

#[inline]
fn we_allow(engine: &Engine, request: &OurRequest) -> bool {
    engine.decide(request.op, &request.args, &request.env).effect == Effect::Allow
}

fn our_engine() -> Result<Engine, String> {
    // Lowering problems would change the meaning of a rule (an unevaluable guard fails closed).
    let model = symbiont_policy::lower::lower_file(SYM_PATH, SYM, &symbiont_syntax_tree(SYM));
    if let Some(issue) = model.issues.first() {
        return Err(format!("{}: {}", issue.loc, issue.message));
    }
    let universe = symbiont_policy::load([(SYM_PATH, SYM)], symbiont_policy::config::Config::default());
    let effective = universe.effective(Some(AGENT)).map_err(|e| e.to_string())?;
    if !effective.missing.is_empty() {
        return Err(format!("bench.sym references undefined policies: {:?}", effective.missing));
    }
    Ok(Engine::compile(effective))
}

fn symbiont_syntax_tree(text: &str) -> symbiont_syntax::ast::SourceFile {
    symbiont_syntax::parse(text).tree()
}

// -------------------------------------------------------------------------------------------------
// Equivalence

/// How the mix exercises the rules, from our engine's explanations.
#[derive(Default)]
struct Coverage {
    allowed: usize,
    denied_by_deny: usize,
    denied_by_default: usize,
    denied_by_requirement: usize,
    /// Rules that matched: guards that held, unconditional rules, requirements that held.
    rules_matched: usize,
    guards_false: usize,
}

fn check_equivalence(
    engine: &Engine,
    cedar: &Cedar,
    specs: &[Spec],
    our: &[OurRequest],
    theirs: &[cedar_policy::Request],
) -> Result<Coverage, String> {
    let mut coverage = Coverage::default();
    let mut mismatches = Vec::new();
    // Which rules took part in some decision (matched, or failed a requirement).
    let mut decisive = vec![false; engine.effective().rules.len()];
    for ((spec, request), cedar_request) in specs.iter().zip(our).zip(theirs) {
        let mut errors = Vec::new();
        let decision = engine.decide_traced(request.op, &request.args, &request.env, &mut |id, outcome| match outcome {
            Outcome::Matched => {
                coverage.rules_matched += 1;
                decisive[id as usize] = true;
            }
            Outcome::GuardFalse => coverage.guards_false += 1,
            Outcome::GuardError(e) => errors.push(format!("rule `{}`: {e}", engine.rule(id).text)),
            Outcome::PreconditionFailed { error: Some(e), .. } => errors.push(format!("rule `{}`: {e}", engine.rule(id).text)),
            Outcome::PreconditionFailed { error: None, .. } => decisive[id as usize] = true,
        });
        match decision.reason {
            Reason::Allowed => coverage.allowed += 1,
            Reason::Denied => coverage.denied_by_deny += 1,
            Reason::NotAllowed => coverage.denied_by_default += 1,
            Reason::RequirementFailed => coverage.denied_by_requirement += 1,
        }
        let response = cedar.authorizer.is_authorized(cedar_request, &cedar.policies, &cedar.entities);
        errors.extend(response.diagnostics().errors().map(|e| format!("Cedar: {e}")));
        // The languages differ on errors (ours fails closed, Cedar skips a policy that errs), so a
        // mix that makes either err would not compare like with like.
        if !errors.is_empty() {
            return Err(format!("a guard could not be evaluated on a `{}` request: {}", spec.op, errors.join("; ")));
        }
        let ours = decision.effect == Effect::Allow;
        let cedars = response.decision() == cedar_policy::Decision::Allow;
        if ours != cedars {
            mismatches.push(format!(
                "  {} (path {}, clearance {}, classification {}): symbiont-policy {} ({:?}), Cedar {} (policies {:?})",
                spec.op,
                spec.path,
                spec.user_clearance,
                spec.data_classification,
                decision.effect.as_str(),
                decision.reason,
                if cedars { "allow" } else { "deny" },
                response
                    .diagnostics()
                    .reason()
                    .map(|id| cedar.policies.policy(id).and_then(|p| p.annotation("id")).unwrap_or(id.as_ref()).to_string())
                    .collect::<Vec<_>>(),
            ));
        }
    }
    if !mismatches.is_empty() {
        let shown = mismatches.iter().take(10).cloned().collect::<Vec<_>>().join("\n");
        return Err(format!(
            "the engines disagree on {} of {} requests, so a comparison would be meaningless; first ones:\n{shown}",
            mismatches.len(),
            specs.len()
        ));
    }
    for (what, n) in [
        ("allowed", coverage.allowed),
        ("denied by a deny rule", coverage.denied_by_deny),
        ("denied by default", coverage.denied_by_default),
        ("denied by a failed requirement", coverage.denied_by_requirement),
        ("matching a rule", coverage.rules_matched),
        ("with a guard false", coverage.guards_false),
    ] {
        if n == 0 {
            return Err(format!("the request mix has no request {what}: use more requests or another seed"));
        }
    }
    if let Some(id) = decisive.iter().position(|d| !d) {
        return Err(format!(
            "rule `{}` takes part in no decision of the mix: use more requests or another seed",
            engine.rule(id as u32).text
        ));
    }
    Ok(coverage)
}

// -------------------------------------------------------------------------------------------------
// Timing

/// Decides the whole mix `passes` times; returns the number of allows (so nothing is optimised
/// away) and the time taken.
fn timed_passes<R>(requests: &[R], passes: usize, decide: &impl Fn(&R) -> bool) -> Duration {
    let start = Instant::now();
    let mut allowed = 0usize;
    for _ in 0..passes {
        for request in requests {
            allowed += decide(black_box(request)) as usize;
        }
    }
    let elapsed = start.elapsed();
    black_box(allowed);
    elapsed
}

/// How many passes over the mix take about `target`.
fn calibrate<R>(requests: &[R], target: Duration, decide: &impl Fn(&R) -> bool) -> usize {
    let mut passes = 1;
    loop {
        let took = timed_passes(requests, passes, decide);
        if took >= target / 4 || passes >= 1 << 20 {
            let per_pass = took.as_secs_f64() / passes as f64;
            return ((target.as_secs_f64() / per_pass.max(1e-12)).round() as usize).max(1);
        }
        passes *= 2;
    }
}

/// Nanoseconds of each of `samples` decisions, timed one by one, cycling through the mix; sorted.
fn latencies<R>(requests: &[R], samples: usize, decide: &impl Fn(&R) -> bool) -> Vec<u64> {
    let mut out = Vec::with_capacity(samples);
    let mut allowed = 0usize;
    for request in requests.iter().cycle().take(samples) {
        let start = Instant::now();
        allowed += decide(black_box(request)) as usize;
        out.push(start.elapsed().as_nanos() as u64);
    }
    black_box(allowed);
    out.sort_unstable();
    out
}

/// The median cost of timing nothing: two back-to-back clock reads.
fn clock_overhead_ns() -> u64 {
    let mut samples: Vec<u64> = (0..100_000)
        .map(|_| {
            let start = Instant::now();
            black_box(());
            start.elapsed().as_nanos() as u64
        })
        .collect();
    samples.sort_unstable();
    samples[samples.len() / 2]
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 * p / 100.0).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index] as f64
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

struct Measured {
    /// Decisions per second of each throughput run.
    rates: Vec<f64>,
    /// Individually timed decisions, sorted, in ns.
    latencies: Vec<u64>,
}

impl Measured {
    fn rate(&self) -> f64 {
        median(&self.rates)
    }

    fn best(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    fn us(&self, p: f64) -> f64 {
        percentile(&self.latencies, p) / 1000.0
    }
}

// -------------------------------------------------------------------------------------------------

fn run() -> Result<(), String> {
    let options = options()?;

    // Both engines start from pre-parsed, pre-built inputs: timing covers the decision alone.
    let engine = our_engine()?;
    let cedar = Cedar::new()?;
    let specs = generate(options.requests, options.seed);
    let our: Vec<OurRequest> = specs.iter().map(ours).collect();
    let theirs: Vec<cedar_policy::Request> = specs.iter().map(cedar_request).collect::<Result<_, _>>()?;

    let policies = engine.effective().policies.len();
    let rules = engine.effective().rules.len();
    println!(
        "policy set: {policies} policies, {rules} rules (policies/bench.sym), {} Cedar policies (policies/bench.cedar)",
        cedar.policies.policies().count()
    );
    if policies != 10 {
        return Err(format!("bench.sym should give the agent 10 policies, it gives {policies}"));
    }

    let coverage = check_equivalence(&engine, &cedar, &specs, &our, &theirs)?;
    println!(
        "equivalence check: both engines decide all {} requests (seed {}) the same: {} allowed, {} denied by a deny rule, {} denied by default, {} denied by a failed requirement; every rule took part; {} rule matches, {} guards false, no evaluation errors",
        specs.len(),
        options.seed,
        coverage.allowed,
        coverage.denied_by_deny,
        coverage.denied_by_default,
        coverage.denied_by_requirement,
        coverage.rules_matched,
        coverage.guards_false,
    );

    let ours_decide = |r: &OurRequest| we_allow(&engine, r);
    let cedar_decide = |r: &cedar_policy::Request| cedar.allows(r);

    // Warm-up and calibration: each run decides the mix whole passes for about --run-ms.
    let target = Duration::from_millis(options.run_ms);
    let our_passes = calibrate(&our, target, &ours_decide);
    let cedar_passes = calibrate(&theirs, target, &cedar_decide);

    // Throughput, alternating engines run by run so that both see the same machine.
    let mut our_rates = Vec::new();
    let mut cedar_rates = Vec::new();
    for _ in 0..options.runs {
        let took = timed_passes(&our, our_passes, &ours_decide);
        our_rates.push((our_passes * our.len()) as f64 / took.as_secs_f64());
        let took = timed_passes(&theirs, cedar_passes, &cedar_decide);
        cedar_rates.push((cedar_passes * theirs.len()) as f64 / took.as_secs_f64());
    }

    // Latency: every decision timed on its own.
    let clock = clock_overhead_ns();
    let ours_measured = Measured { rates: our_rates, latencies: latencies(&our, options.samples, &ours_decide) };
    let cedar_measured = Measured { rates: cedar_rates, latencies: latencies(&theirs, options.samples, &cedar_decide) };

    println!(
        "\n{} requests in the mix; throughput: median of {} runs of ~{} ms each per engine, alternating; latency: {} decisions timed one by one (clock overhead {} ns, included)\n",
        specs.len(),
        options.runs,
        options.run_ms,
        options.samples,
        clock
    );
    println!(
        "{:<16} {:>15} {:>15} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "engine", "decisions/s", "best/s", "p50 µs", "p90 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    for (name, m) in [("symbiont-policy", &ours_measured), ("cedar-policy", &cedar_measured)] {
        println!(
            "{:<16} {:>15.0} {:>15.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.1}",
            name,
            m.rate(),
            m.best(),
            m.us(50.0),
            m.us(90.0),
            m.us(99.0),
            m.us(99.9),
            m.us(100.0)
        );
    }
    let ratio = ours_measured.rate() / cedar_measured.rate();
    let p99 = ours_measured.us(99.0);
    println!(
        "\nratio (symbiont-policy / cedar-policy decisions/s): {ratio:.2}x; goal >= 5x: {}; symbiont-policy p99 {p99:.3} µs, goal <= 5 µs: {}",
        if ratio >= 5.0 { "met" } else { "NOT met" },
        if p99 <= 5.0 { "met" } else { "NOT met" },
    );
    println!(
        "RESULT policy decisions_per_s={:.0} cedar_decisions_per_s={:.0} ratio={:.2} p99_us={:.3}",
        ours_measured.rate(),
        cedar_measured.rate(),
        ratio,
        p99
    );
    Ok(())
}
