//! Who may call what: bearer tokens, the roles they carry, and the layer that checks every
//! request before it reaches a service.
//!
//! Tokens are configured in a TOML file as SHA-256 hashes, never in clear, so the file is not a
//! secret. Tokens are 256-bit random strings (`rapport token new`), so a plain hash is enough:
//! there is nothing to guess that a slow hash would protect. A presented token is hashed and
//! compared with every configured hash in constant time.
//!
//! Health and reflection stay open so that stock tools and orchestrators work without a token.
//! Every other method needs a token whose role [`Permission::allows`] it; a method of Rapport's
//! services that the table does not name needs `admin`, so a new RPC is closed until it is
//! given its roles.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rapport_domain::{Limits, StaffId};
use rapport_proto::v1 as pb;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::Status;

use crate::error::AccessError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Appends events (internal systems, integrations).
    Writer,
    /// Reads history, verifies, exports, and sees accounts as they were.
    Auditor,
    /// Works with projections and rule sets: rebuild, activate, compare; reads accounts.
    Analyst,
    /// Exercises the rights of the people the ledger holds data about: forgets contacts and
    /// reports what is held about them (the Privacy service), and nothing else.
    #[serde(rename = "privacy_officer")]
    PrivacyOfficer,
    /// Everything.
    Admin,
}

impl Role {
    /// Every role, in the order the documentation lists them.
    pub const ALL: [Role; 5] = [Role::Writer, Role::Auditor, Role::Analyst, Role::PrivacyOfficer, Role::Admin];

    /// The role's name in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Role::Writer => "writer",
            Role::Auditor => "auditor",
            Role::Analyst => "analyst",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a method is open to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Anyone, without a token (health, reflection).
    Open,
    /// Tokens with one of these roles, and `admin`.
    Roles(&'static [Role]),
}

impl Permission {
    /// The permission of a gRPC method, by its path (`/rapport.v1.Ledger/Append`).
    pub fn of(path: &str) -> Permission {
        use Role::{Analyst, Auditor, PrivacyOfficer, Writer};
        let open = ["/grpc.health.v1.Health/", "/grpc.reflection.v1.", "/grpc.reflection.v1alpha."];
        if open.iter().any(|prefix| path.starts_with(prefix)) {
            return Permission::Open;
        }
        Permission::Roles(match path {
            "/rapport.v1.Ledger/Append" | "/rapport.v1.Ledger/AppendStream" => &[Writer],
            "/rapport.v1.Ledger/ReadStream"
            | "/rapport.v1.Ledger/ReadAll"
            | "/rapport.v1.Ledger/Subscribe"
            | "/rapport.v1.Ledger/Verify"
            | "/rapport.v1.Ledger/Digest" => &[Auditor],
            // Accounts as they are and as they were: what auditors check and analysts study.
            "/rapport.v1.Accounts/GetAccount"
            | "/rapport.v1.Accounts/ListAccounts"
            | "/rapport.v1.Accounts/Handover"
            | "/rapport.v1.Accounts/GiftRegister"
            | "/rapport.v1.Accounts/ListPlans"
            | "/rapport.v1.Accounts/Cadence"
            | "/rapport.v1.Accounts/Contributions"
            // Which rules a view was scored under is part of reading it.
            | "/rapport.v1.Projections/ListRuleSets" => &[Auditor, Analyst],
            "/rapport.v1.Projections/Rebuild"
            | "/rapport.v1.Projections/Activate"
            | "/rapport.v1.Projections/Compare"
            // What works across the portfolio: the analyst's table.
            | "/rapport.v1.Projections/Playbook" => &[Analyst],
            // A subject report holds everything about a person, opened: not for auditors or
            // analysts, who see forgotten contacts as forgotten like everyone else.
            "/rapport.v1.Privacy/ForgetContact" | "/rapport.v1.Privacy/SubjectReport" => &[PrivacyOfficer],
            // Anything not named here: admin only.
            _ => &[],
        })
    }

    /// Whether a caller with `role` may call the method.
    pub fn allows(self, role: Role) -> bool {
        match self {
            Permission::Open => true,
            Permission::Roles(roles) => role == Role::Admin || roles.contains(&role),
        }
    }

    /// The roles to name when refusing, for the error message.
    fn needed(self) -> String {
        match self {
            Permission::Open => "no token".into(),
            Permission::Roles(roles) => {
                let names: Vec<&str> = roles.iter().map(|r| r.name()).chain(["admin"]).collect();
                names.join(" or ")
            }
        }
    }
}

/// The authenticated caller of a request, as the layer found it; handlers read it from the
/// request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's identity: recorded with every event it appends.
    pub identity: String,
    /// What it may do.
    pub role: Role,
    /// Whether it may append events whose actor is someone else (an integration recording
    /// what staff did); otherwise an event's actor must be the identity or left empty.
    pub records_for_others: bool,
}

impl Caller {
    /// Checks or fills in the actor of every event of an append: an empty actor becomes the
    /// identity; another actor is refused unless the token records for others.
    pub(crate) fn assign_actors(&self, events: &mut [pb::Event]) -> Result<(), AccessError> {
        for (index, event) in events.iter_mut().enumerate() {
            if event.actor.is_empty() {
                event.actor.clone_from(&self.identity);
            } else if event.actor != self.identity && !self.records_for_others {
                return Err(AccessError::ActorNotCaller {
                    index,
                    actor: event.actor.clone(),
                    identity: self.identity.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The configured tokens.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    grants: Vec<(Arc<Caller>, [u8; 32])>,
}

/// The tokens file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    identity: String,
    role: Role,
    sha256: String,
    #[serde(default)]
    records_for_others: bool,
}

/// Why a tokens file was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// Not TOML of the expected shape.
    #[error("the tokens file is not valid: {0}")]
    Syntax(String),
    /// An entry breaks a rule.
    #[error("token {index} ({identity:?}): {reason}")]
    Invalid {
        /// The entry's place in the file, from 1.
        index: usize,
        /// Its identity, as written.
        identity: String,
        /// What is wrong and what to write instead.
        reason: String,
    },
}

impl Tokens {
    /// Reads a tokens file:
    ///
    /// ```toml
    /// [[token]]
    /// identity = "crm-sync"          # recorded with every event it appends
    /// role = "writer"                # writer, auditor, analyst or admin
    /// sha256 = "9f86d0…"             # `rapport token hash` of the token, 64 hex digits
    /// records_for_others = true      # optional: may append events of other actors
    /// ```
    ///
    /// Every identity must be a valid staff identifier (it becomes an event's actor) and
    /// appear once; every hash once.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let file: TokensFile = toml::from_str(text).map_err(|e| TokensError::Syntax(e.to_string()))?;
        let mut grants: Vec<(Arc<Caller>, [u8; 32])> = Vec::with_capacity(file.token.len());
        for (index, entry) in file.token.into_iter().enumerate() {
            let invalid =
                |reason: String| TokensError::Invalid { index: index + 1, identity: entry.identity.clone(), reason };
            StaffId::parse(&entry.identity, &Limits::default()).map_err(|e| invalid(format!("identity: {e}")))?;
            let hash = parse_hash(&entry.sha256).ok_or_else(|| {
                invalid("sha256 must be 64 hex digits: the output of `rapport token hash TOKEN`".into())
            })?;
            if grants.iter().any(|(caller, _)| caller.identity == entry.identity) {
                return Err(invalid("the identity appears twice; give each token its own identity".into()));
            }
            if grants.iter().any(|(_, known)| *known == hash) {
                return Err(invalid("the same token hash appears twice".into()));
            }
            let caller =
                Caller { identity: entry.identity, role: entry.role, records_for_others: entry.records_for_others };
            grants.push((Arc::new(caller), hash));
        }
        Ok(Tokens { grants })
    }

    /// The caller a presented token belongs to, if any. Compares the token's hash with every
    /// configured hash, in constant time each, and always with all of them.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Caller>> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (caller, hash) in &self.grants {
            if bool::from(hash.ct_eq(&presented)) {
                found = Some(Arc::clone(caller));
            }
        }
        found
    }

    /// How many tokens are configured.
    pub fn len(&self) -> usize {
        self.grants.len()
    }

    /// Whether no token is configured (then no request can pass).
    pub fn is_empty(&self) -> bool {
        self.grants.is_empty()
    }

    /// The caller of a request to `path` carrying these headers, or why it may not call it.
    /// `None` for an open method.
    fn check(&self, path: &str, headers: &http::HeaderMap) -> Result<Option<Arc<Caller>>, AccessError> {
        let permission = Permission::of(path);
        if permission == Permission::Open {
            return Ok(None);
        }
        let header = headers.get(http::header::AUTHORIZATION).ok_or(AccessError::NoToken)?;
        let token = header.to_str().ok().and_then(bearer_token).ok_or(AccessError::MalformedHeader)?;
        let caller = self.authenticate(token).ok_or(AccessError::UnknownToken)?;
        if !permission.allows(caller.role) {
            return Err(AccessError::Forbidden {
                identity: caller.identity.clone(),
                role: caller.role,
                method: path.to_owned(),
                needed: permission.needed(),
            });
        }
        Ok(Some(caller))
    }
}

/// The token of an `authorization` value `Bearer <token>`. The scheme is case-insensitive
/// (RFC 7235 §2.1: `Bearer`, `bearer` and `BEARER` are the same scheme).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The SHA-256 of a token, in hex, as the tokens file holds it.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(hash)
}

/// The tower layer that checks every request against the tokens (when authentication is on)
/// and hands the [`Caller`] to the handlers in the request's extensions.
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    tokens: Option<Arc<Tokens>>,
}

impl Guard {
    /// Checks requests against `tokens`; lets everything through when `None`.
    pub(crate) fn new(tokens: Option<Arc<Tokens>>) -> Self {
        Self { tokens }
    }
}

impl<S> tower_layer::Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded { inner, tokens: self.tokens.clone() }
    }
}

/// A service behind the [`Guard`].
#[derive(Debug, Clone)]
pub(crate) struct Guarded<S> {
    inner: S,
    tokens: Option<Arc<Tokens>>,
}

type Reply<E> = Pin<Box<dyn Future<Output = Result<http::Response<tonic::body::Body>, E>> + Send>>;

impl<S, B> tower_service::Service<http::Request<B>> for Guarded<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = Reply<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if let Some(tokens) = &self.tokens {
            match tokens.check(request.uri().path(), request.headers()) {
                Ok(Some(caller)) => {
                    request.extensions_mut().insert(caller);
                }
                Ok(None) => {}
                Err(refused) => {
                    let status = Status::from(refused);
                    return Box::pin(async move { Ok(status.into_http()) });
                }
            }
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(&str, &str, &str)]) -> String {
        entries
            .iter()
            .map(|(identity, role, token)| {
                format!("[[token]]\nidentity = \"{identity}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n", token_hash(token))
            })
            .collect()
    }

    #[test]
    fn a_token_is_known_by_its_hash_only() {
        let tokens =
            Tokens::parse(&file(&[("crm-sync", "writer", "secret-1"), ("ada", "auditor", "secret-2")])).unwrap();
        assert_eq!(tokens.len(), 2);
        let caller = tokens.authenticate("secret-2").unwrap();
        assert_eq!((caller.identity.as_str(), caller.role), ("ada", Role::Auditor));
        assert!(tokens.authenticate("secret-3").is_none());
        assert!(tokens.authenticate("").is_none());
        // The hash itself is not a token.
        assert!(tokens.authenticate(&token_hash("secret-1")).is_none());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER t0k", "bEaReR  t0k ", " Bearer t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        for value in ["Basic t0k", "Bearer", "Bearer ", "Bearert0k", "t0k", ""] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }

    #[test]
    fn the_hash_is_sha256_in_hex() {
        // sha256(b"abc"), a FIPS 180-2 test vector.
        assert_eq!(token_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn a_bad_tokens_file_names_the_entry_and_the_problem() {
        let hash = token_hash("t");
        let cases = [
            ("[[token]]\nidentity = \"a\"\nrole = \"root\"\nsha256 = \"x\"\n", "unknown variant `root`"),
            (&format!("[[token]]\nidentity = \"a\"\nrole = \"admin\"\nsha256 = \"{hash}\"\ncolour = 1\n"), "colour"),
            (
                "[[token]]\nidentity = \"a\"\nrole = \"admin\"\nsha256 = \"abc\"\n",
                "token 1 (\"a\"): sha256 must be 64 hex",
            ),
            (
                &format!("[[token]]\nidentity = \"a b\"\nrole = \"admin\"\nsha256 = \"{hash}\"\n"),
                "token 1 (\"a b\"): identity",
            ),
            (&file(&[("a", "admin", "t"), ("a", "writer", "u")]), "token 2 (\"a\"): the identity appears twice"),
            (&file(&[("a", "admin", "t"), ("b", "writer", "t")]), "token 2 (\"b\"): the same token hash"),
        ];
        for (text, expected) in cases {
            let error = Tokens::parse(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}\n→ {error}\nexpected to contain {expected:?}");
        }
    }

    #[test]
    fn admin_may_call_everything_and_open_methods_need_nothing() {
        for path in ["/rapport.v1.Ledger/Append", "/rapport.v1.Projections/Rebuild", "/rapport.v1.Ledger/Future"] {
            assert!(Permission::of(path).allows(Role::Admin), "{path}");
        }
        assert_eq!(Permission::of("/grpc.health.v1.Health/Check"), Permission::Open);
        assert_eq!(Permission::of("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"), Permission::Open);
        // An RPC the table does not name is for admin only.
        assert!(
            Role::ALL.iter().filter(|r| Permission::of("/rapport.v1.Ledger/Future").allows(**r)).eq([&Role::Admin])
        );
    }

    #[test]
    fn actors_are_checked_against_the_identity_or_taken_from_it() {
        let caller = Caller { identity: "crm-sync".into(), role: Role::Writer, records_for_others: false };
        let event = |actor: &str| pb::Event { actor: actor.into(), ..Default::default() };
        let mut events = vec![event(""), event("crm-sync")];
        caller.assign_actors(&mut events).unwrap();
        assert!(events.iter().all(|e| e.actor == "crm-sync"));
        let mut events = vec![event(""), event("li.wei")];
        let refused = caller.assign_actors(&mut events).unwrap_err();
        assert!(matches!(refused, AccessError::ActorNotCaller { index: 1, .. }), "{refused:?}");
        let integration = Caller { records_for_others: true, ..caller };
        let mut events = vec![event(""), event("li.wei")];
        integration.assign_actors(&mut events).unwrap();
        assert_eq!(events[1].actor, "li.wei");
    }
}
