//! [`SessionRepository`] on Redis; see the module `redis_store` for the key
//! layout.

use std::sync::LazyLock;

use redis::{Script, Value};
use safebox_domain::ports::{RefreshRotation, SessionRepository};
use safebox_domain::{RepoError, Session, SessionId, SessionKind, Timestamp, TokenDigest, UserId};

use super::{RedisStore, corrupt};

const SESSION: &str = "session:";
const COOKIE: &str = "cookie:";
const REFRESH: &str = "refresh:";
const SESSION_REFRESH: &str = "session-refresh:";
const USER_SESSIONS: &str = "user-sessions:";

/// Key names and ending a session, shared by the scripts. `ARGV[1]` is always the
/// prefix. Built from the constants above so that Rust and Lua cannot disagree on
/// the layout.
fn prelude() -> String {
    format!(
        r"
local prefix = ARGV[1]
local function session_key(id) return prefix .. '{SESSION}' .. id end
local function cookie_key(digest) return prefix .. '{COOKIE}' .. digest end
local function refresh_key(digest) return prefix .. '{REFRESH}' .. digest end
local function tokens_key(id) return prefix .. '{SESSION_REFRESH}' .. id end
local function user_key(user) return prefix .. '{USER_SESSIONS}' .. user end

-- Deletes the session, its cookie index entry and every refresh token it ever
-- had; returns 1 if the session existed.
local function end_session(id)
  local skey = session_key(id)
  local owner = redis.call('HMGET', skey, 'user', 'cookie')
  local tkey = tokens_key(id)
  for _, digest in ipairs(redis.call('SMEMBERS', tkey)) do
    redis.call('DEL', refresh_key(digest))
  end
  redis.call('DEL', tkey)
  if owner[2] then
    local ckey = cookie_key(owner[2])
    if redis.call('GET', ckey) == id then redis.call('DEL', ckey) end
  end
  if owner[1] then redis.call('ZREM', user_key(owner[1]), id) end
  return redis.call('DEL', skey)
end
"
    )
}

fn script(body: &str) -> Script {
    Script::new(&format!("{}{body}", prelude()))
}

/// ARGV: prefix, id, user, kind, created_at, expires_at, credential digest, then
/// the session hash's fields and values. KEYS: the session, its credential's key,
/// the user's index.
static CREATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id, user, kind = ARGV[2], ARGV[3], ARGV[4]
local created, expires, credential = tonumber(ARGV[5]), ARGV[6], ARGV[7]
local skey, ckey, ukey = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', skey) + redis.call('EXISTS', ckey) > 0 then
  return redis.error_reply('ERR safebox: session id or credential already stored')
end
-- The contract: creating a session deletes the user's expired ones. Entries
-- whose session Redis already expired just leave the index.
for _, other in ipairs(redis.call('ZRANGE', ukey, 0, -1)) do
  local other_expires = redis.call('HGET', session_key(other), 'expires')
  if not other_expires then
    redis.call('ZREM', ukey, other)
  elseif tonumber(other_expires) <= created then
    end_session(other)
    redis.call('ZREM', ukey, other)
  end
end
local fields = {}
for i = 8, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', skey, unpack(fields))
redis.call('EXPIREAT', skey, expires)
-- An expiry already past by Redis' clock deleted the session at once: store
-- nothing that would point at it.
if redis.call('EXISTS', skey) == 0 then return 0 end
if kind == 'cookie' then
  redis.call('SET', ckey, id)
else
  redis.call('HSET', ckey, 'session', id)
  local tkey = tokens_key(id)
  redis.call('SADD', tkey, credential)
  redis.call('EXPIREAT', tkey, expires)
end
redis.call('EXPIREAT', ckey, expires)
redis.call('ZADD', ukey, ARGV[5], id)
-- The index lives as long as the user's longest session (-1: no expiry yet).
local index_expires = redis.call('EXPIRETIME', ukey)
if index_expires == -1 or index_expires < tonumber(expires) then
  redis.call('EXPIREAT', ukey, expires)
end
return 1
",
    )
});

/// KEYS: the cookie's index entry. Returns the session's hash, or nil.
static FIND_BY_COOKIE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local id = redis.call('GET', KEYS[1])
if not id then return false end
return redis.call('HGETALL', session_key(id))
",
    )
});

/// KEYS: the session. ARGV: prefix, now. A missing session stays missing: HSET
/// alone would create a hash without an expiry.
static TOUCH: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'used', ARGV[2])
end
return 0
",
    )
});

/// KEYS: the user's index. Returns the hashes of the indexed sessions that still
/// exist, newest first, and drops the entries of those Redis expired.
static LIST: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local found = {}
for _, id in ipairs(redis.call('ZREVRANGE', KEYS[1], 0, -1)) do
  local fields = redis.call('HGETALL', session_key(id))
  if #fields == 0 then
    redis.call('ZREM', KEYS[1], id)
  else
    found[#found + 1] = fields
  end
end
return found
",
    )
});

/// KEYS: the session. ARGV: prefix, id.
static END: LazyLock<Script> = LazyLock::new(|| script("return end_session(ARGV[2])"));

/// KEYS: the user's index. ARGV: prefix, the id to keep (empty: none).
static END_OTHERS: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local ended = 0
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if id ~= ARGV[2] then
    ended = ended + end_session(id)
    redis.call('ZREM', KEYS[1], id)
  end
end
return ended
",
    )
});

/// KEYS: the presented token's record, the replacement's. ARGV: prefix, now, the
/// replacement's digest. Returns `{outcome}` or `{outcome, session hash}`.
static ROTATE: LazyLock<Script> = LazyLock::new(|| {
    script(
        r"
local record = redis.call('HMGET', KEYS[1], 'session', 'spent')
local id = record[1]
if not id then return {'unknown'} end
local skey = session_key(id)
if redis.call('EXISTS', skey) == 0 then return {'unknown'} end
if record[2] then return {'reused', redis.call('HGETALL', skey)} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return redis.error_reply('ERR safebox: replacement refresh token already stored')
end
local expires = redis.call('HGET', skey, 'expires')
redis.call('HSET', KEYS[1], 'spent', ARGV[2])
redis.call('HSET', KEYS[2], 'session', id)
redis.call('EXPIREAT', KEYS[2], expires)
local tkey = tokens_key(id)
redis.call('SADD', tkey, ARGV[3])
redis.call('EXPIREAT', tkey, expires)
redis.call('HSET', skey, 'used', ARGV[2])
return {'rotated', redis.call('HGETALL', skey)}
",
    )
});

/// [`SessionRepository`] on Redis, for several instances that share sessions.
/// Every key of a session expires at the session's `expires_at`; see the module
/// `redis_store` for the layout. Refresh tokens and cookies are stored only as
/// the digests the caller passes.
///
/// Unlike the SQL repository this one cannot check that the user exists:
/// accounts live in the database, so [`SessionRepository::create`] stores
/// sessions of any user id. Callers create sessions only for an account they
/// just loaded.
#[derive(Debug, Clone)]
pub struct RedisSessionRepository {
    store: RedisStore,
}

impl RedisSessionRepository {
    /// A repository on `store`.
    pub fn new(store: RedisStore) -> Self {
        Self { store }
    }

    fn session_key(&self, id: &SessionId) -> String {
        self.store.key(SESSION, &id.to_string())
    }

    fn user_key(&self, user: &UserId) -> String {
        self.store.key(USER_SESSIONS, &user.to_string())
    }
}

impl SessionRepository for RedisSessionRepository {
    fn create(&self, session: &Session, credential: &TokenDigest) -> Result<(), RepoError> {
        let credential_key = match session.kind {
            SessionKind::Cookie => self.store.key(COOKIE, &credential.0),
            SessionKind::Bearer => self.store.key(REFRESH, &credential.0),
        };
        let id = session.id.to_string();
        let user = session.user_id.to_string();
        let created = session.created_at.as_secs().to_string();
        let used = session.last_used_at.as_secs().to_string();
        let expires = session.expires_at.as_secs().to_string();
        let mut fields: Vec<(&str, &str)> = vec![
            ("id", &id),
            ("user", &user),
            ("kind", session.kind.as_str()),
            ("created", &created),
            ("used", &used),
            ("expires", &expires),
        ];
        if let Some(ip) = &session.client_ip {
            fields.push(("ip", ip));
        }
        if let Some(agent) = &session.user_agent {
            fields.push(("ua", agent));
        }
        if session.kind == SessionKind::Cookie {
            fields.push(("cookie", &credential.0));
        }
        let mut call = CREATE.prepare_invoke();
        call.key(self.session_key(&session.id))
            .key(credential_key)
            .key(self.user_key(&session.user_id))
            .arg(self.store.prefix())
            .arg(&id)
            .arg(&user)
            .arg(session.kind.as_str())
            .arg(&created)
            .arg(&expires)
            .arg(&credential.0);
        for (field, value) in fields {
            call.arg(field).arg(value);
        }
        self.store.run(|conn| call.invoke::<i64>(conn)).map(drop)
    }

    fn find(&self, id: &SessionId) -> Result<Option<Session>, RepoError> {
        let reply: Value = self
            .store
            .run(|conn| redis::cmd("HGETALL").arg(self.session_key(id)).query(conn))?;
        optional_session(reply)
    }

    fn find_by_cookie(&self, cookie: &TokenDigest) -> Result<Option<Session>, RepoError> {
        let mut call = FIND_BY_COOKIE.prepare_invoke();
        call.key(self.store.key(COOKIE, &cookie.0))
            .arg(self.store.prefix());
        let reply: Value = self.store.run(|conn| call.invoke(conn))?;
        Ok(optional_session(reply)?.filter(|session| session.kind == SessionKind::Cookie))
    }

    fn touch(&self, id: &SessionId, now: Timestamp) -> Result<(), RepoError> {
        let mut call = TOUCH.prepare_invoke();
        call.key(self.session_key(id))
            .arg(self.store.prefix())
            .arg(now.as_secs());
        self.store.run(|conn| call.invoke::<i64>(conn)).map(drop)
    }

    fn list(&self, user: &UserId, now: Timestamp) -> Result<Vec<Session>, RepoError> {
        let mut call = LIST.prepare_invoke();
        call.key(self.user_key(user)).arg(self.store.prefix());
        let reply: Value = self.store.run(|conn| call.invoke(conn))?;
        let Value::Array(hashes) = reply else {
            return Err(corrupt("session list reply"));
        };
        let mut sessions = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let session = parse_session(hash)?;
            if session.is_live(now) && session.user_id == *user {
                sessions.push(session);
            }
        }
        // The index orders by created_at then id already; sorting again keeps the
        // contract even if two instances' clocks wrote equal scores oddly.
        sessions.sort_by_key(|session| std::cmp::Reverse((session.created_at, session.id.0)));
        Ok(sessions)
    }

    fn end(&self, id: &SessionId) -> Result<bool, RepoError> {
        let mut call = END.prepare_invoke();
        call.key(self.session_key(id))
            .arg(self.store.prefix())
            .arg(id.to_string());
        let ended: i64 = self.store.run(|conn| call.invoke(conn))?;
        Ok(ended > 0)
    }

    fn end_others(&self, user: &UserId, keep: &SessionId) -> Result<u64, RepoError> {
        self.end_indexed(user, Some(keep))
    }

    fn end_all(&self, user: &UserId) -> Result<u64, RepoError> {
        self.end_indexed(user, None)
    }

    fn rotate_refresh(
        &self,
        presented: &TokenDigest,
        replacement: &TokenDigest,
        now: Timestamp,
    ) -> Result<RefreshRotation, RepoError> {
        let mut call = ROTATE.prepare_invoke();
        call.key(self.store.key(REFRESH, &presented.0))
            .key(self.store.key(REFRESH, &replacement.0))
            .arg(self.store.prefix())
            .arg(now.as_secs())
            .arg(&replacement.0);
        let reply: Value = self.store.run(|conn| call.invoke(conn))?;
        let Value::Array(mut parts) = reply else {
            return Err(corrupt("refresh rotation reply"));
        };
        let session = if parts.len() == 2 { parts.pop() } else { None };
        let outcome = parts
            .pop()
            .and_then(|outcome| text(outcome).ok())
            .ok_or_else(|| corrupt("refresh rotation reply"))?;
        match (outcome.as_str(), session) {
            ("unknown", None) => Ok(RefreshRotation::Unknown),
            ("rotated", Some(session)) => Ok(RefreshRotation::Rotated(parse_session(session)?)),
            ("reused", Some(session)) => Ok(RefreshRotation::Reused(parse_session(session)?)),
            _ => Err(corrupt("refresh rotation reply")),
        }
    }
}

impl RedisSessionRepository {
    fn end_indexed(&self, user: &UserId, keep: Option<&SessionId>) -> Result<u64, RepoError> {
        let mut call = END_OTHERS.prepare_invoke();
        call.key(self.user_key(user))
            .arg(self.store.prefix())
            .arg(keep.map(ToString::to_string).unwrap_or_default());
        let ended: i64 = self.store.run(|conn| call.invoke(conn))?;
        u64::try_from(ended).map_err(|_| corrupt("count of ended sessions"))
    }
}

/// A session hash from HGETALL, or `None` for a missing key (an empty hash or nil).
fn optional_session(reply: Value) -> Result<Option<Session>, RepoError> {
    match reply {
        Value::Nil => Ok(None),
        Value::Array(ref items) if items.is_empty() => Ok(None),
        Value::Map(ref items) if items.is_empty() => Ok(None),
        other => parse_session(other).map(Some),
    }
}

fn text(value: Value) -> Result<String, RepoError> {
    match value {
        Value::BulkString(bytes) => {
            String::from_utf8(bytes).map_err(|_| corrupt("a session field that is not UTF-8"))
        }
        Value::SimpleString(text) => Ok(text),
        _ => Err(corrupt("a session field that is not a string")),
    }
}

/// Parses a session hash, as a flat field/value array (RESP2, and every script
/// reply) or a map (RESP3 HGETALL).
fn parse_session(reply: Value) -> Result<Session, RepoError> {
    let pairs: Vec<(Value, Value)> = match reply {
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(corrupt("a session hash with an odd number of items"));
            }
            let mut items = items.into_iter();
            std::iter::from_fn(|| Some((items.next()?, items.next()?))).collect()
        }
        Value::Map(pairs) => pairs,
        _ => return Err(corrupt("a session that is not a hash")),
    };
    let mut id = None;
    let mut user = None;
    let mut kind = None;
    let mut created = None;
    let mut used = None;
    let mut expires = None;
    let mut client_ip = None;
    let mut user_agent = None;
    for (field, value) in pairs {
        let value = text(value)?;
        match text(field)?.as_str() {
            "id" => id = Some(value),
            "user" => user = Some(value),
            "kind" => kind = Some(value),
            "created" => created = Some(value),
            "used" => used = Some(value),
            "expires" => expires = Some(value),
            "ip" => client_ip = Some(value),
            "ua" => user_agent = Some(value),
            // The cookie's digest is for ending the session only.
            _ => {}
        }
    }
    let uuid = |value: Option<String>, what| {
        value
            .as_deref()
            .and_then(|text| uuid::Uuid::parse_str(text).ok())
            .ok_or_else(|| corrupt(what))
    };
    let time = |value: Option<String>, what| {
        value
            .as_deref()
            .and_then(|text| text.parse::<i64>().ok())
            .map(Timestamp)
            .ok_or_else(|| corrupt(what))
    };
    Ok(Session {
        id: SessionId(uuid(id, "session id")?),
        user_id: UserId(uuid(user, "session user id")?),
        kind: kind
            .as_deref()
            .and_then(SessionKind::parse)
            .ok_or_else(|| corrupt("session kind"))?,
        created_at: time(created, "session created_at")?,
        last_used_at: time(used, "session last_used_at")?,
        expires_at: time(expires, "session expires_at")?,
        client_ip,
        user_agent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn session_hashes_parse_and_corrupt_ones_are_internal_errors() {
        let id = SessionId::generate();
        let user = UserId::generate();
        let flat = |kind: &str| {
            Value::Array(
                [
                    ("id", id.to_string()),
                    ("user", user.to_string()),
                    ("kind", kind.to_owned()),
                    ("created", "10".to_owned()),
                    ("used", "11".to_owned()),
                    ("expires", "12".to_owned()),
                    ("cookie", "digest".to_owned()),
                ]
                .iter()
                .flat_map(|(field, value)| [bulk(field), bulk(value)])
                .collect(),
            )
        };
        let session = parse_session(flat("cookie")).unwrap();
        assert_eq!(session.id, id);
        assert_eq!(session.user_id, user);
        assert_eq!(session.kind, SessionKind::Cookie);
        assert_eq!(
            (session.created_at, session.last_used_at, session.expires_at),
            (Timestamp(10), Timestamp(11), Timestamp(12))
        );
        assert_eq!((session.client_ip, session.user_agent), (None, None));
        assert!(matches!(
            parse_session(flat("other")),
            Err(RepoError::Internal(_))
        ));
        assert!(matches!(
            parse_session(Value::Array(vec![bulk("id")])),
            Err(RepoError::Internal(_))
        ));
        assert!(matches!(
            parse_session(Value::Int(3)),
            Err(RepoError::Internal(_))
        ));
        assert_eq!(optional_session(Value::Nil).unwrap(), None);
        assert_eq!(optional_session(Value::Array(vec![])).unwrap(), None);
    }
}
