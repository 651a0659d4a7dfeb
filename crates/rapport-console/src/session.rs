//! Who is looking. With tokens, a person signs in with theirs on the login page; the console
//! keeps it server-side under a random session id, which the browser holds in a cookie
//! (HttpOnly, SameSite=Strict, Secure under TLS, expiring), and passes it on with every call,
//! so the server's role table decides what each page may show. Without tokens there are no
//! sessions, and every page says that access is open.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rapport_server::{Role, Tokens};

/// The cookie that holds the session id.
pub(crate) const COOKIE: &str = "rapport_session";

/// How long a session lasts from sign-in.
pub(crate) const LIFETIME: Duration = Duration::from_secs(8 * 3_600);

/// A signed-in person.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    /// The token they signed in with, sent on with every call.
    pub token: String,
    pub identity: String,
    pub role: Role,
    expires: Instant,
}

/// The open sessions.
#[derive(Debug)]
pub(crate) struct Sessions {
    open: Mutex<HashMap<String, Session>>,
    /// Cookies are marked Secure when the console serves TLS.
    secure: bool,
}

impl Sessions {
    pub(crate) fn new(secure: bool) -> Sessions {
        Sessions { open: Mutex::default(), secure }
    }

    /// Signs in with `token`, if the server knows it: a new session id, or `None`.
    pub(crate) fn sign_in(&self, tokens: &Tokens, token: &str) -> Option<String> {
        let caller = tokens.authenticate(token.trim())?;
        let mut id = [0u8; 32];
        getrandom::fill(&mut id).ok()?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let session = Session {
            token: token.trim().to_owned(),
            identity: caller.identity.clone(),
            role: caller.role,
            expires: Instant::now() + LIFETIME,
        };
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        open.retain(|_, s| s.expires > now);
        open.insert(id.clone(), session);
        Some(id)
    }

    /// The session a cookie header names, while it lasts.
    pub(crate) fn find(&self, cookies: Option<&str>) -> Option<Session> {
        let id = session_id(cookies?)?;
        let open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        open.get(id).filter(|s| s.expires > Instant::now()).cloned()
    }

    /// Ends the session a cookie header names.
    pub(crate) fn sign_out(&self, cookies: Option<&str>) {
        if let Some(id) = cookies.and_then(session_id) {
            self.open.lock().unwrap_or_else(PoisonError::into_inner).remove(id);
        }
    }

    /// The `Set-Cookie` value that gives the browser a session.
    pub(crate) fn cookie(&self, id: &str) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LIFETIME.as_secs())
    }

    /// The `Set-Cookie` value that takes it away.
    pub(crate) fn expired_cookie(&self) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
    }
}

/// The session id in a `Cookie` header.
fn session_id(cookies: &str) -> Option<&str> {
    cookies.split(';').filter_map(|pair| pair.trim().split_once('=')).find(|(name, _)| *name == COOKIE).map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_id_is_read_from_among_other_cookies() {
        assert_eq!(session_id("a=1; rapport_session=abc; b=2"), Some("abc"));
        assert_eq!(session_id("rapport_session_old=x"), None);
        assert_eq!(session_id(""), None);
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_under_tls() {
        let plain = Sessions::new(false).cookie("id");
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict") && !plain.contains("Secure"));
        assert!(Sessions::new(true).cookie("id").ends_with("; Secure"));
        assert!(Sessions::new(true).expired_cookie().contains("Max-Age=0"));
    }
}
