//! Credentials: argon2id password hashes, HS256 access tokens and opaque refresh tokens.
//!
//! Why a crate of its own: two programs make credentials. The gateway hashes passwords on
//! register and login and signs and verifies tokens; `marqueectl create-user` hashes the first
//! admin's password offline. Both must hash the same way under the same policy, and the CLI
//! must not link the HTTP server, the search engines and everything else the gateway carries
//! to do it. The cluster client crate is no home either: it knows nothing about users, and
//! the nodes (which never see a password) use it too.
//!
//! Why not in the state machine: hashing is slow and salted (random), so it must never run
//! inside `apply` — the gateway hashes, the meta group stores the PHC string. The access token
//! is a short-lived JWT any gateway verifies without a round trip to the cluster; the refresh
//! token is 256 random bits whose SHA-256 the meta group keeps, rotates and revokes
//! (`CatalogCommand::{Issue,Rotate,Revoke}RefreshToken`), so a stolen, already-used refresh
//! token revokes its whole session.

mod tickets;

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use proto::catalog::{Role, UserId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

pub use tickets::{codes_match, TicketKey, TICKET_CODE_CHARS};

/// Shortest password accepted.
pub const PASSWORD_CHARS_MIN: usize = 8;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const PASSWORD_BYTES_MAX: usize = 256;
/// Shortest JWT signing secret.
pub const JWT_SECRET_BYTES_MIN: usize = 32;
/// The `iss` claim of Marquee's access tokens.
pub const ISSUER: &str = "marquee";

/// Why a credential operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// The password breaks the policy.
    #[error("{0}")]
    WeakPassword(String),
    /// The access token is missing, malformed, forged or expired.
    #[error("invalid access token: {0}")]
    InvalidToken(String),
    /// A bad signing secret.
    #[error("{0}")]
    Config(String),
    /// Hashing failed (a bug or resource exhaustion).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Argon2id with OWASP's recommended minimum (19 MiB, 2 passes, 1 lane): ~20-40 ms a hash.
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("static argon2 parameters are valid");
    Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params)
}

/// Checks the password policy: 8..=256 bytes of which at least 8 characters, not all spaces.
///
/// # Errors
/// `WeakPassword` saying what is wrong.
pub fn check_password(password: &str) -> Result<(), CredentialError> {
    if password.chars().count() < PASSWORD_CHARS_MIN || password.trim().is_empty() {
        return Err(CredentialError::WeakPassword(format!(
            "password must have at least {PASSWORD_CHARS_MIN} characters"
        )));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        return Err(CredentialError::WeakPassword(format!(
            "password must be at most {PASSWORD_BYTES_MAX} bytes"
        )));
    }
    Ok(())
}

/// Hashes a password (policy-checked) into an argon2id PHC string. CPU-heavy: call it from a
/// blocking thread ([`Hasher`]).
///
/// # Errors
/// `WeakPassword`, or `Hashing` on an internal failure.
pub fn hash_password(password: &str) -> Result<String, CredentialError> {
    check_password(password)?;
    let salt = SaltString::generate(&mut OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| CredentialError::Hashing(e.to_string()))
}

/// Whether `password` matches the PHC string (false for an unparsable hash).
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .is_ok_and(|hash| argon2().verify_password(password.as_bytes(), &hash).is_ok())
}

/// Runs password hashing off the async threads, at most `permits` at once, so a login storm
/// queues instead of starving the request handlers of CPU.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// A real hash of a random password, verified against when the email is unknown so that
    /// a login takes as long whether or not the account exists.
    decoy: Arc<str>,
}

impl Hasher {
    /// A hasher running at most `concurrency` hashes at once.
    ///
    /// # Panics
    /// If hashing the decoy fails (static parameters, so never in practice).
    pub fn new(concurrency: usize) -> Hasher {
        let decoy = hash_password(&random_token()).expect("hashing a random password succeeds");
        Hasher { permits: Arc::new(Semaphore::new(concurrency.max(1))), decoy: decoy.into() }
    }

    /// Hashes a new password.
    ///
    /// # Errors
    /// As [`hash_password`].
    pub async fn hash(&self, password: String) -> Result<String, CredentialError> {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| CredentialError::Hashing(e.to_string()))?
    }

    /// Verifies a password against a stored hash, or against the decoy when there is none.
    pub async fn verify(&self, password: String, phc: Option<String>) -> bool {
        let _permit = self.permits.acquire().await.expect("the semaphore is never closed");
        let (phc, real) = match phc {
            Some(phc) => (phc, true),
            None => (self.decoy.to_string(), false),
        };
        tokio::task::spawn_blocking(move || verify_password(&password, &phc) && real)
            .await
            .unwrap_or(false)
    }
}

/// 256 random bits, base64url without padding: a refresh token.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 hex of a refresh token: what the meta group stores.
pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id, as a decimal string (JWT's `sub` is a string).
    pub sub: String,
    /// Role when the token was issued.
    pub role: Role,
    /// Issuer, [`ISSUER`].
    pub iss: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

/// Signs and verifies access tokens (HS256 with a secret shared by every gateway).
#[derive(Clone)]
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Lifetime of an access token.
    pub access_ttl: Duration,
    /// Lifetime of a refresh token.
    pub refresh_ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("access_ttl", &self.access_ttl)
            .field("refresh_ttl", &self.refresh_ttl)
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Keys from a secret of at least [`JWT_SECRET_BYTES_MIN`] bytes.
    ///
    /// # Errors
    /// A short secret.
    pub fn new(
        secret: &[u8],
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<TokenKeys, CredentialError> {
        if secret.len() < JWT_SECRET_BYTES_MIN {
            return Err(CredentialError::Config(format!(
                "the signing secret must be at least {JWT_SECRET_BYTES_MIN} bytes"
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        })
    }

    /// A signed access token for `user_id` with `role`, issued at `now_s`.
    ///
    /// # Errors
    /// Signing failed (never with an HMAC key).
    pub fn issue(
        &self,
        user_id: UserId,
        role: Role,
        now_s: u64,
    ) -> Result<String, CredentialError> {
        let claims = Claims {
            sub: user_id.to_string(),
            role,
            iss: ISSUER.to_owned(),
            iat: now_s,
            exp: now_s + self.access_ttl.as_secs(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| CredentialError::Hashing(e.to_string()))
    }

    /// Verifies a token's signature, issuer and expiry and returns its user and role.
    ///
    /// # Errors
    /// `InvalidToken` saying why (expired, bad signature, malformed).
    pub fn verify(&self, token: &str) -> Result<(UserId, Role), CredentialError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| CredentialError::InvalidToken(e.to_string()))?;
        let user_id = data
            .claims
            .sub
            .parse()
            .map_err(|_| CredentialError::InvalidToken("sub is not a user id".into()))?;
        Ok((user_id, data.claims.role))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7; 32], Duration::from_secs(900), Duration::from_secs(86_400)).unwrap()
    }

    fn now_s() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn password_round_trip_and_policy() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct horsE", &phc));
        assert!(!verify_password("correct horse", "not a hash"));
        assert_ne!(phc, hash_password("correct horse").unwrap(), "salted");
        assert!(matches!(hash_password("short"), Err(CredentialError::WeakPassword(_))));
        assert!(matches!(hash_password("        "), Err(CredentialError::WeakPassword(_))));
        assert!(check_password(&"x".repeat(PASSWORD_BYTES_MAX + 1)).is_err());
        assert!(check_password("ünïcödé!").is_ok());
    }

    #[test]
    fn tokens_verify_and_reject_forgeries_and_expiry() {
        let keys = keys();
        let token = keys.issue(42, Role::TheaterManager, now_s()).unwrap();
        assert_eq!(keys.verify(&token).unwrap(), (42, Role::TheaterManager));
        // Another secret: rejected.
        let other =
            TokenKeys::new(&[8; 32], Duration::from_secs(900), Duration::from_secs(1)).unwrap();
        assert!(other.verify(&token).is_err());
        // Tampered payload: rejected.
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let admin = Claims {
            sub: "42".into(),
            role: Role::Admin,
            iss: ISSUER.into(),
            iat: now_s(),
            exp: now_s() + 900,
        };
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&admin).unwrap());
        assert!(keys.verify(&parts.join(".")).is_err());
        // Expired (issued an hour ago with a 15 minute lifetime): rejected.
        let old = keys.issue(42, Role::Customer, now_s() - 3600).unwrap();
        assert!(keys.verify(&old).is_err());
        // `alg: none` and garbage: rejected.
        let none = format!("eyJhbGciOiJub25lIn0.{}.", parts[1]);
        assert!(keys.verify(&none).is_err());
        assert!(keys.verify("garbage").is_err());
        assert!(TokenKeys::new(b"short", Duration::ZERO, Duration::ZERO).is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (random_token(), random_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_eq!(token_hash(&a), token_hash(&a));
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[tokio::test]
    async fn hasher_verifies_against_the_decoy_without_an_account() {
        let hasher = Hasher::new(2);
        let phc = hasher.hash("a long password".into()).await.unwrap();
        assert!(hasher.verify("a long password".into(), Some(phc)).await);
        assert!(!hasher.verify("a long password".into(), None).await);
    }
}
