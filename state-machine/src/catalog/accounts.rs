//! Accounts in the catalog: registration with unique emails, roles, and refresh-token families
//! with single-use rotation and reuse detection (a rotated token presented again revokes its
//! whole family, since it must have leaked). Passwords arrive already hashed (argon2id); the
//! state machine only stores and compares what the log carries.

use std::collections::BTreeSet;

use proto::catalog::{CatalogReply, Role, TheaterId, User, UserId};
use proto::command::Rejection;

use super::{Catalog, Family, RefreshToken};
use crate::limits::{
    CATALOG_LIST_MAX, EMAIL_BYTES_MAX, REFRESH_FAMILIES_PER_USER_MAX, USER_NAME_BYTES_MAX,
};
use crate::validate::{check_hash, check_id, check_text, conflict, invalid, not_found};

impl Catalog {
    pub(super) fn register(
        &mut self,
        user_id: UserId,
        email: &str,
        name: &str,
        password_hash: &str,
        role: Role,
        now: u64,
    ) -> Result<CatalogReply, Rejection> {
        check_id("user_id", user_id)?;
        if email.len() > EMAIL_BYTES_MAX
            || email.chars().any(|c| c.is_uppercase() || c.is_whitespace() || c.is_control())
            || !email.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty() && !domain.is_empty() && !domain.contains('@')
            })
        {
            return Err(invalid("email", "a lowercase address like name@example.com"));
        }
        check_text("name", name, 1, USER_NAME_BYTES_MAX)?;
        if !password_hash.starts_with("$argon2id$") || password_hash.len() > 512 {
            return Err(invalid("password_hash", "an argon2id PHC string"));
        }
        if let Some(existing) = self.users.get(&user_id) {
            return if existing.email == email {
                Ok(CatalogReply::User { user: existing.clone() })
            } else {
                Err(conflict(format!("user id {user_id} is taken")))
            };
        }
        if self.emails.contains_key(email) {
            return Err(Rejection::EmailTaken);
        }
        let user = User {
            user_id,
            email: email.to_owned(),
            name: name.to_owned(),
            password_hash: password_hash.to_owned(),
            role,
            theaters: BTreeSet::new(),
            created_at_ms: now,
        };
        self.emails.insert(email.to_owned(), user_id);
        self.users.insert(user_id, user.clone());
        Ok(CatalogReply::User { user })
    }

    pub(super) fn set_user_role(
        &mut self,
        user_id: &UserId,
        role: &Role,
        theaters: &BTreeSet<TheaterId>,
    ) -> Result<CatalogReply, Rejection> {
        if !self.users.contains_key(user_id) {
            return Err(not_found("user", *user_id));
        }
        if *role != Role::TheaterManager && !theaters.is_empty() {
            return Err(invalid("theaters", "only a theater manager manages theaters"));
        }
        if theaters.len() > CATALOG_LIST_MAX {
            return Err(invalid("theaters", format!("at most {CATALOG_LIST_MAX}")));
        }
        if let Some(missing) = theaters.iter().find(|t| !self.theaters.contains_key(t)) {
            return Err(not_found("theater", *missing));
        }
        let user = self.users.get_mut(user_id).expect("checked above");
        user.role = *role;
        user.theaters = theaters.clone();
        Ok(CatalogReply::User { user: user.clone() })
    }

    pub(super) fn issue_refresh_token(
        &mut self,
        token_hash: &str,
        user_id: &UserId,
        expires_at_ms: &u64,
        now: u64,
    ) -> Result<CatalogReply, Rejection> {
        check_hash(token_hash)?;
        let user = self.users.get(user_id).ok_or_else(|| not_found("user", *user_id))?.clone();
        if let Some(existing) = self.tokens.get(token_hash) {
            // A replayed issue of the same token is harmless; anything else is a clash.
            return if existing.user_id == *user_id && existing.family == *token_hash {
                Ok(CatalogReply::User { user })
            } else {
                Err(conflict("token already issued"))
            };
        }
        if *expires_at_ms <= now {
            return Err(invalid("expires_at_ms", "must be after the entry's time"));
        }
        loop {
            let families = self.user_families.entry(*user_id).or_default();
            if families.len() < REFRESH_FAMILIES_PER_USER_MAX {
                break;
            }
            let (_, oldest) = families.pop_first().expect("non-empty");
            self.drop_family_tokens(&oldest);
        }
        self.user_families.entry(*user_id).or_default().insert((now, token_hash.to_owned()));
        self.families.insert(
            token_hash.to_owned(),
            Family { user_id: *user_id, issued_at_ms: now, tokens: BTreeSet::new() },
        );
        self.insert_token(token_hash, *user_id, token_hash, *expires_at_ms);
        Ok(CatalogReply::User { user })
    }

    pub(super) fn rotate_refresh_token(
        &mut self,
        old_hash: &str,
        new_hash: &str,
        expires_at_ms: &u64,
        now: u64,
    ) -> Result<CatalogReply, Rejection> {
        check_hash(new_hash)?;
        let Some(old) = self.tokens.get(old_hash).cloned() else {
            return Err(Rejection::RefreshTokenInvalid);
        };
        if old.used {
            self.revoke_family(&old.family);
            return Err(Rejection::RefreshTokenReused);
        }
        if old.expires_at_ms <= now {
            return Err(Rejection::RefreshTokenInvalid);
        }
        if self.tokens.contains_key(new_hash) || *expires_at_ms <= now {
            return Err(conflict("new token already issued or already expired"));
        }
        let user = self.users.get(&old.user_id).ok_or(Rejection::RefreshTokenInvalid)?.clone();
        if let Some(token) = self.tokens.get_mut(old_hash) {
            token.used = true;
        }
        self.insert_token(new_hash, old.user_id, &old.family, *expires_at_ms);
        Ok(CatalogReply::User { user })
    }

    pub(super) fn revoke_refresh_token(
        &mut self,
        token_hash: &str,
    ) -> Result<CatalogReply, Rejection> {
        if let Some(family) = self.tokens.get(token_hash).map(|t| t.family.clone()) {
            self.revoke_family(&family);
        }
        Ok(CatalogReply::Revoked)
    }

    pub(super) fn insert_token(
        &mut self,
        hash: &str,
        user_id: UserId,
        family: &str,
        expires_at_ms: u64,
    ) {
        self.tokens.insert(
            hash.to_owned(),
            RefreshToken { user_id, family: family.to_owned(), expires_at_ms, used: false },
        );
        self.token_expiry.insert((expires_at_ms, hash.to_owned()));
        if let Some(f) = self.families.get_mut(family) {
            f.tokens.insert(hash.to_owned());
        }
    }

    /// Forgets every token of a family (revocation: unknown tokens are invalid).
    pub(super) fn revoke_family(&mut self, family: &str) {
        if let Some(f) = self.families.get(family) {
            if let Some(set) = self.user_families.get_mut(&f.user_id) {
                set.remove(&(f.issued_at_ms, family.to_owned()));
            }
        }
        self.drop_family_tokens(family);
    }

    pub(super) fn drop_family_tokens(&mut self, family: &str) {
        if let Some(f) = self.families.remove(family) {
            for hash in f.tokens {
                if let Some(token) = self.tokens.remove(&hash) {
                    self.token_expiry.remove(&(token.expires_at_ms, hash));
                }
            }
        }
    }

    /// Drops tokens that expired at or before `now`, and families left empty.
    pub(super) fn prune_tokens(&mut self, now: u64) {
        while let Some((at, _)) = self.token_expiry.first() {
            if *at > now {
                break;
            }
            let (_, hash) = self.token_expiry.pop_first().expect("first() was Some");
            let Some(token) = self.tokens.remove(&hash) else { continue };
            let empty = self.families.get_mut(&token.family).is_some_and(|f| {
                f.tokens.remove(&hash);
                f.tokens.is_empty()
            });
            if empty {
                self.revoke_family(&token.family);
            }
        }
    }

    /// A user by id (for tests and the gateway's manager checks through queries).
    pub fn user(&self, user_id: UserId) -> Option<&User> {
        self.users.get(&user_id)
    }

    /// Number of live refresh tokens (for tests: pruning keeps this bounded).
    pub fn refresh_tokens(&self) -> usize {
        self.tokens.len()
    }
}
