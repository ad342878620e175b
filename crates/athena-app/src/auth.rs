//! Email-code login, JWT access tokens, rotating refresh tokens, sessions.
//!
//! Brute force of 6-digit codes is impossible by construction: a code burns after
//! `login_code_max_attempts` wrong guesses, an address gets `login_failures_per_hour` wrong guesses an
//! hour across codes, and a new code can be sent at most once a minute — so at most ~20 of 10^6 codes
//! can be tried per hour.

use athena_domain::{Email, Role, SessionId, UserId};
use athena_store::{LoginCode, NewSession, NewUser, Session, User};
use chrono::Duration;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{App, AppError, AppResult};

pub const AUDIENCE: &str = "authenticated";
const CODE_TTL_MINUTES: i64 = 10;
const SEND_INTERVAL_SECS: i64 = 60;

/// Access token claims, exactly as `CONTRACTS.md` lists them.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    user_id: String,
    sid: String,
    iat: i64,
    exp: i64,
    aud: String,
}

pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub(crate) fn new(secret: &[u8]) -> Self {
        // Only HS256: a token signed with another algorithm (or `none`) is rejected outright.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iat"]);
        validation.leeway = 60;
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation }
    }
}

/// Who is calling, established from a valid access token of a live session.
#[derive(Clone, Debug, PartialEq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
}

#[derive(Debug, Serialize)]
pub struct SendCodeResult {
    pub sent: bool,
    pub expires_in: i64,
    /// Only in development without SMTP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev_code: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
    pub token_type: &'static str,
}

#[derive(Debug, Serialize)]
pub struct SessionRef {
    pub id: SessionId,
}

#[derive(Debug, Serialize)]
pub struct LoginResult {
    pub user: User,
    pub tokens: TokenPair,
    pub session: SessionRef,
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(h.finalize())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl App {
    pub async fn send_login_code(&self, email: &Email) -> AppResult<SendCodeResult> {
        let now = self.clock.now();
        let recent = self.store.count_rate_events("send_code", email.as_str(), now - Duration::seconds(SEND_INTERVAL_SECS)).await?;
        if recent > 0 {
            return Err(AppError::RateLimited { retry_after_secs: SEND_INTERVAL_SECS as u64 });
        }
        self.store.record_rate_event("send_code", email.as_str(), now).await?;
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        self.store
            .put_login_code(LoginCode {
                email: email.clone(),
                code_hash: sha256_hex(&[email.as_str(), &code]),
                attempts: 0,
                expires_at: now + Duration::minutes(CODE_TTL_MINUTES),
                created_at: now,
            })
            .await?;
        self.mailer.send_login_code(email, &code).await?;
        Ok(SendCodeResult { sent: true, expires_in: CODE_TTL_MINUTES * 60, dev_code: self.mailer.returns_dev_code().then_some(code) })
    }

    pub async fn verify_login_code(&self, email: &Email, code: &str, user_agent: &str) -> AppResult<LoginResult> {
        let now = self.clock.now();
        let limits = &self.config.limits;
        let failures = self.store.count_rate_events("code_failure", email.as_str(), now - Duration::hours(1)).await?;
        if failures >= u64::from(limits.login_failures_per_hour) {
            return Err(AppError::RateLimited { retry_after_secs: 3600 });
        }
        let code = code.trim();
        let well_formed = code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit());
        let stored = self.store.login_code(email).await?;
        let matches = match &stored {
            Some(c) if c.expires_at > now && well_formed => constant_time_eq(&c.code_hash, &sha256_hex(&[email.as_str(), code])),
            _ => false,
        };
        if !matches {
            self.store.record_rate_event("code_failure", email.as_str(), now).await?;
            if stored.is_some() {
                let attempts = self.store.add_login_code_attempt(email).await?;
                if attempts >= limits.login_code_max_attempts {
                    self.store.delete_login_code(email).await?;
                }
            }
            return Err(AppError::InvalidCode);
        }
        self.store.delete_login_code(email).await?;
        let user = match self.store.user_by_email(email).await? {
            Some(u) => u,
            None => self.create_user(email, Role::User).await?,
        };
        let (session, refresh_token) = self.open_session(&user.id, user_agent).await?;
        Ok(LoginResult { tokens: self.token_pair(&user.id, &session.id, refresh_token)?, session: SessionRef { id: session.id }, user })
    }

    async fn create_user(&self, email: &Email, role: Role) -> AppResult<User> {
        let now = self.clock.now();
        let new = NewUser {
            id: UserId::new(),
            email: email.clone(),
            display_name: email.as_str().split('@').next().unwrap_or("").to_string(),
            role,
            now,
        };
        match self.store.create_user(new).await {
            Ok(u) => Ok(u),
            // Two first logins racing: the other one created the user.
            Err(athena_store::StoreError::Conflict(_)) => self.store.user_by_email(email).await?.ok_or(AppError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// `athena admin create`: creates the user as admin, or promotes an existing one.
    pub async fn ensure_admin(&self, email: &Email) -> AppResult<User> {
        match self.store.user_by_email(email).await? {
            Some(u) if u.role == Role::Admin => Ok(u),
            Some(u) => Ok(self.store.set_user_role(&u.id, Role::Admin).await?),
            None => self.create_user(email, Role::Admin).await,
        }
    }

    async fn open_session(&self, user: &UserId, user_agent: &str) -> AppResult<(Session, String)> {
        let now = self.clock.now();
        let refresh_token = random_token();
        let session = self
            .store
            .create_session(NewSession {
                id: SessionId::new(),
                user_id: user.clone(),
                user_agent: user_agent.chars().take(256).collect(),
                refresh_hash: sha256_hex(&[&refresh_token]),
                refresh_expires_at: now + Duration::days(self.config.limits.refresh_token_ttl_days as i64),
                now,
            })
            .await?;
        Ok((session, refresh_token))
    }

    fn token_pair(&self, user: &UserId, session: &SessionId, refresh_token: String) -> AppResult<TokenPair> {
        Ok(TokenPair {
            access_token: self.issue_access_token(user, session)?,
            refresh_token,
            expires_in: self.config.limits.access_token_ttl_secs,
            token_type: "bearer",
        })
    }

    pub fn issue_access_token(&self, user: &UserId, session: &SessionId) -> AppResult<String> {
        let now = self.clock.now().timestamp();
        let claims = Claims {
            sub: user.to_string(),
            user_id: user.to_string(),
            sid: session.to_string(),
            iat: now,
            exp: now + self.config.limits.access_token_ttl_secs as i64,
            aud: AUDIENCE.to_string(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.tokens.encoding).map_err(AppError::internal)
    }

    /// Verifies signature, algorithm, audience and expiry, and that the session is still live
    /// (so logging out ends access at once, not an hour later).
    pub async fn authenticate(&self, token: &str) -> AppResult<Principal> {
        Ok(self.authenticate_until(token).await?.0)
    }

    /// As [`App::authenticate`], also returning when the token expires (the sync service counts
    /// down to it). Tokens meant to live longer than a day are refused.
    pub async fn authenticate_until(&self, token: &str) -> AppResult<(Principal, chrono::DateTime<chrono::Utc>)> {
        let data =
            jsonwebtoken::decode::<Claims>(token, &self.tokens.decoding, &self.tokens.validation).map_err(|_| AppError::InvalidToken)?;
        let claims = data.claims;
        if claims.exp - claims.iat > 86_400 {
            return Err(AppError::InvalidToken);
        }
        let expires = chrono::DateTime::from_timestamp(claims.exp, 0).ok_or(AppError::InvalidToken)?;
        let (Ok(user_id), Ok(session_id)) = (claims.sub.parse::<UserId>(), claims.sid.parse::<SessionId>()) else {
            return Err(AppError::InvalidToken);
        };
        if self.live_sessions.is_live(&session_id, &user_id) {
            return Ok((Principal { user_id, session_id }, expires));
        }
        let session = match self.store.session(&session_id).await {
            Ok(s) => s,
            Err(athena_store::StoreError::NotFound) => return Err(AppError::InvalidToken),
            Err(e) => return Err(e.into()),
        };
        if session.user_id != user_id || session.revoked_at.is_some() {
            return Err(AppError::InvalidToken);
        }
        self.live_sessions.remember(&session_id, &user_id);
        Ok((Principal { user_id, session_id }, expires))
    }

    pub async fn refresh(&self, refresh_token: &str) -> AppResult<LoginResult> {
        let now = self.clock.now();
        let old_hash = sha256_hex(&[refresh_token.trim()]);
        let session = self.store.session_by_refresh_hash(&old_hash).await?.ok_or(AppError::InvalidRefresh)?;
        if session.revoked_at.is_some() || session.refresh_expires_at <= now {
            return Err(AppError::InvalidRefresh);
        }
        let new_token = random_token();
        let rotated = self
            .store
            .rotate_refresh(
                &session.id,
                &old_hash,
                &sha256_hex(&[&new_token]),
                now + Duration::days(self.config.limits.refresh_token_ttl_days as i64),
                now,
            )
            .await?;
        if !rotated {
            return Err(AppError::InvalidRefresh);
        }
        let user = self.store.user(&session.user_id).await?;
        Ok(LoginResult { tokens: self.token_pair(&user.id, &session.id, new_token)?, session: SessionRef { id: session.id }, user })
    }

    pub async fn logout(&self, who: &Principal, session: Option<&SessionId>) -> AppResult<()> {
        let target = session.unwrap_or(&who.session_id);
        self.store.revoke_session(&who.user_id, target, self.clock.now()).await?;
        self.live_sessions.forget(target);
        Ok(())
    }

    pub async fn sessions(&self, who: &Principal) -> AppResult<Vec<Session>> {
        Ok(self.store.list_sessions(&who.user_id, self.clock.now()).await?)
    }

    pub async fn me(&self, who: &Principal) -> AppResult<User> {
        Ok(self.store.user(&who.user_id).await?)
    }
}

fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes)
}

/// Sessions recently confirmed live, so an authenticated request does not cost a database read.
/// A revocation in this process takes effect at once; one made by another process sharing the
/// database (several API replicas) within [`LiveSessions::TTL`].
#[derive(Default)]
pub(crate) struct LiveSessions {
    entries: std::sync::Mutex<std::collections::HashMap<SessionId, (UserId, std::time::Instant)>>,
}

impl LiveSessions {
    const TTL: std::time::Duration = std::time::Duration::from_secs(5);
    /// Bounded: past this many entries the cache starts over rather than grow.
    const MAX_ENTRIES: usize = 50_000;

    fn is_live(&self, session: &SessionId, user: &UserId) -> bool {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        matches!(entries.get(session), Some((u, at)) if u == user && at.elapsed() < Self::TTL)
    }

    fn remember(&self, session: &SessionId, user: &UserId) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= Self::MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(session.clone(), (user.clone(), std::time::Instant::now()));
    }

    fn forget(&self, session: &SessionId) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).remove(session);
    }
}
